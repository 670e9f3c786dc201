// Listener: a worker's SO_REUSEPORT listening socket for one Snapshot port.
#pragma once

#include <cstdint>

#include "net/address.h"
#include "net/event_loop.h"

namespace portico::proxy {

class Worker;

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
  Worker& worker_;
  int fd_;
  net::Address bind_;
  uint16_t port_;
};

}  // namespace portico::proxy
