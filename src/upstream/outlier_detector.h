// OutlierDetector: passive health. Workers count consecutive errors per endpoint and report
// an endpoint when it crosses its Backend's threshold (Worker::recordOutcome); this object,
// on the main thread, ejects it from the load balancers (HealthTable kEjected) for
// baseEjectionTime × the number of times it was ejected (at most 300 s), unless that would
// eject more than maxEjectionPercent of the backend's endpoints (one is always allowed).
// Ejected endpoints return by themselves when their time is up.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/snapshot.h"
#include "net/event_loop.h"
#include "upstream/health.h"

namespace portico::upstream {

class OutlierDetector {
 public:
  static constexpr uint32_t kMaxEjectionMs = 300'000;

  OutlierDetector(net::EventLoop& loop, HealthTable& health) : loop_(loop), health_(health) {}
  OutlierDetector(const OutlierDetector&) = delete;
  OutlierDetector& operator=(const OutlierDetector&) = delete;
  ~OutlierDetector();

  // Main thread: `pool_id` (an Endpoint::health_id of `backend`) reached its error threshold.
  void report(uint32_t pool_id, const config::Backend& backend);

  struct EndpointState {
    uint32_t ejections = 0;         // times ejected so far
    uint64_t ejected_until_ms = 0;  // loop clock; 0 = not ejected
  };
  // For admin /backends; nullptr when the endpoint was never ejected.
  const EndpointState* state(uint32_t pool_id) const;
  uint64_t ejectionsTotal() const { return ejections_total_; }

 private:
  struct Entry {
    OutlierDetector* self = nullptr;
    uint32_t pool_id = 0;
    EndpointState state;
    net::Timer timer;
  };
  static void onReturn(void* ctx);

  net::EventLoop& loop_;
  HealthTable& health_;
  std::unordered_map<uint32_t, std::unique_ptr<Entry>> entries_;
  uint64_t ejections_total_ = 0;
};

}  // namespace portico::upstream
