#include "proxy/listener.h"

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "net/socket.h"
#include "proxy/downstream_conn.h"
#include "proxy/worker.h"

namespace portico::proxy {

const config::Port* PortCache::find(const config::Snapshot& snap, uint16_t local_port, int fd) {
  if (version_ == snap.version && index_ < snap.ports.size()) return &snap.ports[index_];
  const config::Port* found = nullptr;
  for (uint32_t i = 0; i < snap.ports.size(); ++i) {
    if (snap.ports[i].port != local_port) continue;
    if (found == nullptr) {
      found = &snap.ports[i];
      index_ = i;
    } else {
      // Several bind addresses share this port number: pick the one we accepted on.
      net::Address local = net::Address{};
      local.length = sizeof local.storage;
      getsockname(fd, reinterpret_cast<sockaddr*>(&local.storage), &local.length);
      if (snap.ports[i].bind.ipString() == local.ipString()) {
        found = &snap.ports[i];
        index_ = i;
      }
    }
  }
  version_ = snap.version;
  return found;
}

Listener::Listener(Worker& worker, int fd, net::Address bind, uint16_t port)
    : worker_(worker), fd_(fd), bind_(bind), port_(port) {
  worker_.loop().add(fd_, EPOLLIN, this);
}

Listener::~Listener() { close(); }

void Listener::close() {
  if (fd_ < 0) return;
  worker_.loop().remove(fd_);
  ::close(fd_);
  fd_ = -1;
}

const std::shared_ptr<const net::ServerTlsContext>& Listener::tlsContext() {
  const config::Snapshot& snap = worker_.currentSnapshot();
  if (snap.version == tls_version_) return tls_;
  tls_version_ = snap.version;
  tls_.reset();
  for (const config::Port& p : snap.ports) {
    if (p.port == port_ && p.bind.ipString() == bind_.ipString()) {
      tls_ = p.tls;
      break;
    }
  }
  return tls_;
}

void Listener::onIo(uint32_t) {
  // Accept a bounded batch per wake-up so one busy port cannot starve the loop.
  for (int i = 0; i < 64 && fd_ >= 0; ++i) {
    sockaddr_storage peer;
    socklen_t len = sizeof peer;
    int fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or EMFILE & co: try again on the next event
    net::tuneStream(fd);
    const std::shared_ptr<const net::ServerTlsContext>& tls = tlsContext();
    net::Transport transport = tls ? net::Transport(fd, tls) : net::Transport(fd);
    auto* conn = new DownstreamConn(worker_, std::move(transport),
                                    reinterpret_cast<sockaddr*>(&peer), port_);
    conn->start();
  }
}

}  // namespace portico::proxy
