// UpstreamConn: one HTTP/1.1 connection from a worker to an upstream endpoint.
//
// Owned by the worker's ConnectionPool while idle and by a proxy stream (UpstreamOwner) while
// it carries a request. Loop-thread only. Destroyed through EventLoop::deferDelete.
#pragma once

#include <atomic>
#include <cstdint>

#include "common/buffer.h"
#include "net/event_loop.h"
#include "net/tls.h"
#include "stats/stats.h"

namespace portico::upstream {

class UpstreamConn;
class ConnectionPool;

// The stream using a connection receives its I/O events.
class UpstreamOwner {
 public:
  virtual void onUpstreamIo(UpstreamConn* conn, uint32_t events) = 0;

 protected:
  ~UpstreamOwner() = default;
};

class UpstreamConn final : public net::IoHandler, public net::Deferred {
 public:
  // `active_gauge` (may be null) is incremented now and decremented when the socket closes;
  // so is `shared_count` (the backend's connections across workers; may be null), which the
  // caller has already incremented.
  UpstreamConn(net::EventLoop& loop, ConnectionPool& pool, int fd, uint32_t pool_id,
               uint32_t backend_stats_id, bool connecting, stats::Counter* active_gauge,
               std::atomic<uint32_t>* shared_count = nullptr);
  ~UpstreamConn() override;

  void onIo(uint32_t events) override;

  // Sets the epoll interest (EPOLLIN/EPOLLOUT); a no-op when unchanged.
  void setInterest(uint32_t events);
  // Writes as much of `out` as the socket takes. Returns false on a socket error.
  bool flush();
  // Reads like recv() (through TLS when started).
  ssize_t read(char* buf, size_t len) { return transport_.read(buf, len); }
  // Speaks TLS to the upstream from now on (before the first byte): SNI `server_name`.
  bool startTls(std::shared_ptr<const net::ClientTlsContext> tls, const std::string& server_name) {
    return transport_.startClientTls(std::move(tls), server_name);
  }
  // Unregisters and closes the socket, and schedules deletion. Idempotent.
  void close();

  int fd() const { return fd_; }
  bool closed() const { return fd_ < 0; }
  uint32_t poolId() const { return pool_id_; }
  uint32_t backendStatsId() const { return backend_stats_id_; }

  Buffer in;
  Buffer out;
  UpstreamOwner* owner = nullptr;  // null while idle in the pool
  bool connecting;                 // connect() in progress
  bool reused = false;             // carried a request before this one
  uint64_t bytes_sent = 0;         // bytes written for the current request
  uint64_t bytes_received = 0;     // bytes read for the current request
  uint32_t requests = 0;           // requests carried so far
  uint32_t max_requests = 0;       // close after this many requests; 0 = unlimited
  uint32_t idle_timeout_ms = 0;    // in the pool; 0 = the pool's default
  uint32_t max_idle = 0;           // idle connections per endpoint; 0 = the pool's default
  net::Timer idle_timer;           // armed while idle in the pool

 private:
  friend class ConnectionPool;
  net::EventLoop& loop_;
  ConnectionPool& pool_;
  int fd_;
  net::Transport transport_;  // owns fd_
  uint32_t pool_id_;
  uint32_t backend_stats_id_;
  uint32_t interest_ = 0;
  stats::Counter* active_gauge_;
  std::atomic<uint32_t>* shared_count_;
};

}  // namespace portico::upstream
