// Listener: a worker's SO_REUSEPORT listening socket for one Snapshot port. Accepted sockets
// become DownstreamConns with a plain or TLS net::Transport (the port's TLS context in the
// worker's current snapshot).
#pragma once

#include <cstdint>
#include <memory>

#include "config/snapshot.h"
#include "net/address.h"
#include "net/event_loop.h"
#include "net/tls.h"

namespace portico::proxy {

class Worker;

// The snapshot port an accepted connection belongs to, remembered per snapshot version.
class PortCache {
 public:
  // The port numbered `local_port` (several bind addresses may share the number: the one
  // `fd` was accepted on); nullptr when the snapshot has none.
  const config::Port* find(const config::Snapshot& snap, uint16_t local_port, int fd);

 private:
  uint32_t index_ = 0;
  uint64_t version_ = ~0ull;
};

class Listener final : public net::IoHandler {
 public:
  Listener(Worker& worker, int fd, net::Address bind, uint16_t port);
  ~Listener() override;
  void onIo(uint32_t events) override;
  // Stops accepting: unregisters and closes the socket.
  void close();

  const net::Address& bind() const { return bind_; }
  uint16_t port() const { return port_; }

 private:
  // The TLS context of this port in the current snapshot (null: plain), cached per version.
  const std::shared_ptr<const net::ServerTlsContext>& tlsContext();

  Worker& worker_;
  int fd_;
  uint64_t tls_version_ = ~0ull;
  std::shared_ptr<const net::ServerTlsContext> tls_;
  net::Address bind_;
  uint16_t port_;
};

}  // namespace portico::proxy
