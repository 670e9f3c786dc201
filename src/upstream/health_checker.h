// HealthChecker: active health checks of upstream endpoints (HTTP GET, TCP connect, or the
// gRPC health checking protocol: grpc.health.v1.Health/Check over h2c, SERVING passes).
//
// Runs on the main thread's EventLoop, off the request path, and is the single writer of the
// HealthTable's kActiveUnhealthy flag; workers read the table lock-free. Every check is
// non-blocking: a connect, at most one small request and one response head (bounded to
// kMaxResponseHead bytes) per endpoint at a time, all under one timeout.
//
// Verdicts:
// - An endpoint starts healthy. A reload or a restart must never take traffic away from an
//   endpoint nobody has seen fail; a brand-new target's first check runs right away (within
//   its jitter) so a dead endpoint leaves rotation after unhealthy_threshold quick checks.
// - unhealthy_threshold consecutive failures set kActiveUnhealthy; healthy_threshold
//   consecutive successes clear it. Thresholds of 0 count as 1.
// - The next check is scheduled interval_ms (+ a random 0..jitter_ms) after the previous one
//   ended, so a slow endpoint is never probed by overlapping checks.
//
// Loop thread only. The loop and the table must outlive the checker.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "net/address.h"
#include "net/event_loop.h"
#include "upstream/health.h"

namespace portico::upstream {

// The healthCheck.active block of a backend, as compiled from the config.
struct ActiveCheckConfig {
  enum class Type : uint8_t { kHttp, kTcp, kGrpc };
  Type type = Type::kHttp;
  std::string grpc_service;  // kGrpc: the service asked about ("" = the server)
  std::string path = "/";
  std::string host;  // Host header; "" = the endpoint's ip:port
  // Inclusive ranges of statuses that count as success; empty means 200-299.
  std::vector<std::pair<uint16_t, uint16_t>> expected_statuses = {{200, 299}};
  uint32_t interval_ms = 5000;
  uint32_t timeout_ms = 1000;  // the whole check: connect, request and response head
  uint32_t healthy_threshold = 1;
  uint32_t unhealthy_threshold = 3;
  uint32_t jitter_ms = 0;  // random extra delay per interval, up to this

  bool operator==(const ActiveCheckConfig&) const = default;
};

struct CheckTarget {
  uint32_t pool_id = 0;  // config::Endpoint::pool_id, the HealthTable index
  net::Address address;
  std::string backend;  // "ns/name", for /backends
  ActiveCheckConfig config;
};

// One endpoint's check state, for admin /backends.
struct TargetStatus {
  uint32_t pool_id = 0;
  std::string address;  // "ip:port"
  std::string backend;
  ActiveCheckConfig::Type type = ActiveCheckConfig::Type::kHttp;
  bool healthy = true;
  uint32_t consecutive_successes = 0;
  uint32_t consecutive_failures = 0;
  uint64_t checks = 0;         // completed checks since the target (or its config) appeared
  std::string last_result;     // "HTTP 200", "HTTP 503", "connected", "connect refused",
                               // "timeout", ...; "" before the first check
  uint64_t last_check_ms = 0;  // wall clock (Unix epoch ms) of the last result; 0 = none yet
};

class HealthChecker {
 public:
  // Response heads beyond this fail the check; it bounds memory per endpoint.
  static constexpr size_t kMaxResponseHead = 16 * 1024;

  HealthChecker(net::EventLoop& loop, HealthTable& table);
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;
  // Stops every check and clears the kActiveUnhealthy flags it set.
  ~HealthChecker();

  // Replaces the set of checked endpoints (on each new config snapshot), keyed by pool_id:
  // - same pool_id, address and config: state and schedule kept (backend name refreshed);
  // - same pool_id, changed address or config: the check in flight is dropped, counters
  //   restart and a check runs soon; the current verdict stays until the new checks decide,
  //   so a known-bad endpoint does not get traffic back just because its check was edited;
  // - gone: checks stop and kActiveUnhealthy is cleared (the endpoint is no longer checked);
  // - new: starts healthy, first check soon (spread by jitter).
  // A pool_id listed twice is checked once, with the first entry's config.
  void update(std::vector<CheckTarget> targets);

  // Every target, in the order of the last update().
  std::vector<TargetStatus> status() const;

 private:
  struct Target;
  class Probe;

  void startCheck(Target* t);
  // Ends the check in flight (if any) with this result and schedules the next one.
  void complete(Target* t, bool ok, std::string result);
  void record(Target* t, bool ok, std::string result);
  void dropProbe(Target* t);
  void scheduleNext(Target* t, uint32_t base_ms);
  uint32_t jitter(uint32_t max_ms);

  net::EventLoop& loop_;
  HealthTable& table_;
  std::vector<std::unique_ptr<Target>> targets_;
  std::minstd_rand rng_;
};

}  // namespace portico::upstream
