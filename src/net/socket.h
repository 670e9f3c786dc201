// Thin helpers over BSD sockets. All sockets are non-blocking and close-on-exec.
#pragma once

#include <string>

#include "common/status.h"
#include "net/address.h"

namespace portico::net {

// A listening TCP socket with SO_REUSEADDR and, if `reuse_port`, SO_REUSEPORT (one per worker).
Result<int> listenTcp(const Address& addr, bool reuse_port, int backlog = 4096);
// Starts a non-blocking connect. Returns the fd; `*in_progress` tells whether to wait for
// EPOLLOUT and check connectError().
Result<int> connectTcp(const Address& addr, bool* in_progress);
// The pending error of a connecting socket (0 when connected).
int connectError(int fd);
// TCP_NODELAY etc. for proxied connections.
void tuneStream(int fd);
// The local address a socket is bound to (to learn ephemeral ports).
Address localAddress(int fd);

}  // namespace portico::net
