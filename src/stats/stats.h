// Per-worker statistics shards, merged on read by the admin thread.
//
// Each worker writes only its own Shard (single writer), with relaxed atomic loads/stores and
// no read-modify-write instructions, so counting costs a plain add. The admin thread reads all
// shards concurrently; values may be a few increments stale, never torn.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>

namespace portico::stats {

class Counter {
 public:
  void inc(uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void dec(uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// Latency histogram with fixed log-linear bounds (seconds in exposition, microseconds inside).
class Histogram {
 public:
  static constexpr std::array<uint64_t, 16> kBoundsUs = {
      250,    500,    1000,   2500,    5000,    10000,   25000,    50000,
      100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000};
  void record(uint64_t us) {
    size_t i = 0;
    while (i < kBoundsUs.size() && us > kBoundsUs[i]) ++i;
    buckets_[i].inc();
    sum_us_.inc(us);
  }
  uint64_t bucket(size_t i) const { return buckets_[i].get(); }  // non-cumulative; last = +Inf
  uint64_t sumUs() const { return sum_us_.get(); }

 private:
  std::array<Counter, kBoundsUs.size() + 1> buckets_;
  Counter sum_us_;
};

// Response classes 1xx..5xx at index 0..4.
inline size_t statusClass(int status) {
  int c = status / 100;
  return (c >= 1 && c <= 5) ? static_cast<size_t>(c - 1) : 4;
}

struct RouteStats {
  Counter requests;
  std::array<Counter, 5> responses;
  Histogram latency;
};

struct BackendStats {
  Counter requests;
  std::array<Counter, 5> responses;
  Counter connect_failures;
  Counter connect_timeouts;
  Counter resets;  // upstream reset or garbage before a complete response
  Counter response_timeouts;
  Counter connections_total;
  Counter connections_active;  // gauge
  Counter retries;             // retry attempts sent to this backend (TrafficPolicy retry)
  Counter retries_denied;      // retries refused by the retry budget
  Counter overflows;           // requests or retries refused by a circuit breaker
};

struct GlobalStats {
  Counter downstream_connections_total;
  Counter downstream_connections_active;  // gauge
  Counter downstream_requests;
  std::array<Counter, 5> downstream_responses;
  Counter bad_requests;            // rejected by the HTTP/1 parser
  Counter header_timeouts;         // slow clients closed by the header/body timeouts
  Counter no_route;                // 404 by the router
  Counter security_local_answers;  // answered by a SecurityPolicy (401, 403, ext-authz deny, CORS
                                   // preflight)
  Counter upstream_connect_failures;
  Counter upstream_resets;
  Counter upstream_retries;           // stale pooled connection retried on a fresh one
  Counter mirror_requests;            // RequestMirror copies started
  Counter mirror_failures;            // copies dropped: connect error, reset, timeout, fell behind
  Counter downstream_upgrades;        // upgrades switched (101) into a tunnel
  Counter downstream_tunnels_active;  // gauge: upgraded connections open now
  Counter http2_connections;          // client connections that spoke HTTP/2
  Counter http2_streams;              // HTTP/2 requests (streams) opened by clients
  Counter http2_abuse_closes;         // HTTP/2 connections closed for abuse (rapid reset,
                                      // floods, oversized header blocks)
  // SecurityPolicy external authorization verdicts (cache hits included); errors: timeout,
  // unreachable, 5xx, malformed answer.
  Counter ext_authz_allowed;
  Counter ext_authz_denied;
  Counter ext_authz_errors;
  Histogram latency;
};

// An append-only array indexed by stable ids, safe to read while its single writer grows it.
template <typename T>
class SegmentedArray {
 public:
  static constexpr uint32_t kSegment = 256;
  static constexpr uint32_t kMaxSegments = 1024;  // 262,144 ids

  SegmentedArray() {
    for (auto& s : segments_) s.store(nullptr, std::memory_order_relaxed);
  }
  ~SegmentedArray() {
    for (auto& s : segments_) delete[] s.load(std::memory_order_relaxed);
  }
  // Writer only. Ids beyond capacity share the last slot rather than fail.
  T& at(uint32_t id) {
    uint32_t seg = id / kSegment;
    if (seg >= kMaxSegments) seg = kMaxSegments - 1, id = seg * kSegment;
    T* p = segments_[seg].load(std::memory_order_relaxed);
    if (p == nullptr) {
      p = new T[kSegment];
      segments_[seg].store(p, std::memory_order_release);
    }
    return p[id % kSegment];
  }
  // Any thread. nullptr when nothing was ever written for that id.
  const T* find(uint32_t id) const {
    uint32_t seg = id / kSegment;
    if (seg >= kMaxSegments) return nullptr;
    const T* p = segments_[seg].load(std::memory_order_acquire);
    return p == nullptr ? nullptr : &p[id % kSegment];
  }

 private:
  std::array<std::atomic<T*>, kMaxSegments> segments_;
};

struct Shard {
  GlobalStats global;
  SegmentedArray<RouteStats> routes;
  SegmentedArray<BackendStats> backends;
};

}  // namespace portico::stats
