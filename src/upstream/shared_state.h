// State shared by all workers and the main thread about upstreams: endpoint health (one
// writer, the main thread) and each backend's load for its circuit breakers (every worker
// adds and removes its own share with relaxed atomic increments; no lock anywhere).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "upstream/health.h"

namespace portico::upstream {

// Live counts of one backend across workers, checked against its circuitBreaker limits.
struct BackendLoad {
  std::atomic<uint32_t> connections{0};  // open upstream connections
  std::atomic<uint32_t> pending{0};      // requests waiting for a connection being opened
  std::atomic<uint32_t> requests{0};     // requests in flight
  std::atomic<uint32_t> retries{0};      // requests in a retry
};

class SharedState {
 public:
  static constexpr uint32_t kMaxBackends = 1u << 16;  // ids beyond share the last slot

  SharedState() : loads_(new BackendLoad[kMaxBackends]) {}

  HealthTable health;
  BackendLoad& load(uint32_t backend_stats_id) {
    return loads_[backend_stats_id < kMaxBackends ? backend_stats_id : kMaxBackends - 1];
  }

 private:
  std::unique_ptr<BackendLoad[]> loads_;
};

// Takes one unit of `counter` if it is below `limit`; false (nothing taken) at the limit.
inline bool tryAcquire(std::atomic<uint32_t>& counter, uint32_t limit) {
  uint32_t v = counter.load(std::memory_order_relaxed);
  while (v < limit) {
    if (counter.compare_exchange_weak(v, v + 1, std::memory_order_relaxed)) return true;
  }
  return false;
}

inline void release(std::atomic<uint32_t>& counter) {
  counter.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace portico::upstream
