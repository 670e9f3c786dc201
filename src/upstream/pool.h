// ConnectionPool: a worker's idle keep-alive connections to every upstream endpoint.
//
// Indexed by Endpoint::pool_id (stable across config reloads). LIFO reuse (the warmest
// connection first), a bounded number of idle connections per endpoint, an idle timeout, and
// idle connections that the upstream closes or writes to are dropped at once.
// Loop-thread only; each worker has its own pool, so nothing here is shared.
#pragma once

#include <cstdint>
#include <vector>

#include "net/event_loop.h"
#include "upstream/upstream_conn.h"

namespace portico::upstream {

struct PoolSettings {
  uint32_t max_idle_per_endpoint = 512;
  uint32_t idle_timeout_ms = 30'000;
};

class ConnectionPool {
 public:
  ConnectionPool(net::EventLoop& loop, PoolSettings settings) : loop_(loop), settings_(settings) {}
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;
  ~ConnectionPool();

  // An idle connection to `pool_id`, now owned by `owner`, or nullptr.
  UpstreamConn* acquire(uint32_t pool_id, UpstreamOwner* owner);
  // Returns a healthy connection whose last response completed; it becomes idle.
  void release(UpstreamConn* conn);
  // Closes every idle connection (drain).
  void closeIdle();
  size_t idleCount() const;

 private:
  friend class UpstreamConn;
  void onIdleEvent(UpstreamConn* conn, uint32_t events);
  void removeIdle(UpstreamConn* conn);
  static void onIdleTimeout(void* ctx);

  net::EventLoop& loop_;
  PoolSettings settings_;
  std::vector<std::vector<UpstreamConn*>> idle_;  // by pool_id
};

}  // namespace portico::upstream
