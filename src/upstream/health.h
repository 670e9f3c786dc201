// HealthTable: the health of every upstream endpoint, shared by the main thread (the single
// writer: active health checks, outlier ejections) and the workers (readers on the request
// path). Indexed by config::Endpoint::pool_id, which is stable across reloads, so health
// survives a config change. One relaxed atomic byte per endpoint: no lock, no RMW on reads.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace portico::upstream {

class HealthTable {
 public:
  static constexpr uint32_t kCapacity = 1u << 18;  // pool ids beyond share the last slot

  // Reasons an endpoint is out of rotation; zero means healthy.
  enum Flag : uint8_t {
    kActiveUnhealthy = 1,  // failed its active health check (unhealthyThreshold reached)
    kEjected = 2,          // ejected by passive outlier detection
  };

  HealthTable() : flags_(new std::atomic<uint8_t>[kCapacity]) {
    for (uint32_t i = 0; i < kCapacity; ++i) flags_[i].store(0, std::memory_order_relaxed);
  }

  // Any thread.
  bool healthy(uint32_t pool_id) const { return flags(pool_id) == 0; }
  uint8_t flags(uint32_t pool_id) const {
    return flags_[slot(pool_id)].load(std::memory_order_relaxed);
  }

  // Main thread only (single writer).
  void set(uint32_t pool_id, Flag flag, bool on) {
    std::atomic<uint8_t>& f = flags_[slot(pool_id)];
    uint8_t v = f.load(std::memory_order_relaxed);
    f.store(on ? static_cast<uint8_t>(v | flag) : static_cast<uint8_t>(v & ~flag),
            std::memory_order_relaxed);
  }

 private:
  static uint32_t slot(uint32_t pool_id) { return pool_id < kCapacity ? pool_id : kCapacity - 1; }
  std::unique_ptr<std::atomic<uint8_t>[]> flags_;
};

}  // namespace portico::upstream
