// Load balancing over the endpoints of one backend: priority levels, zone-aware routing, and
// five algorithms (smooth weighted round robin, least request, weighted random, ring hash,
// Maglev).
//
// Split by thread ownership:
//  - LoadBalancer is immutable. The main thread builds one per backend and config version
//    (rings and Maglev tables included); every worker reads it without locks.
//  - LbWorkerState is one worker's mutable state for one LoadBalancer (round-robin cursors,
//    active request counts). Never shared between workers.
//  - HealthTable is read at pick time, so health changes apply to the next pick.
//
// Picking, in order (the Envoy model, simplified):
//  1. Priority level. Level i's health is min(100%, healthy_i / total_i × 1.4); level 0 gets
//     min(100%, health_0), the remainder goes to level 1, and so on. When the health summed
//     over levels is below 100% the shares are normalized to it. Hash LBs choose the level
//     with the request hash (same key, same level); the others with the random number.
//     No healthy endpoint anywhere: level 0 in panic mode.
//  2. Panic mode. When fewer than panic_threshold_percent of the chosen level's endpoints are
//     healthy, health is ignored inside that level (Envoy's healthy_panic_threshold: with most
//     endpoints down, concentrating all traffic on the few left would take them down too, and
//     trying a possibly-unhealthy endpoint beats failing the request). 0 disables panic mode
//     except when no endpoint at all is healthy.
//  3. Zone (non-hash LBs, no panic, local_zone set and present in the level): with the local
//     zone's healthy fraction × 1.4 ≥ 1 all traffic stays local; otherwise the local zone gets
//     that fraction and the rest spills to the other zones in proportion to their healthy
//     endpoint counts. (Envoy also weighs the gateway's own instance counts per zone; we do
//     not know them, so this assumes the gateway is evenly spread.)
//  4. The algorithm inside the chosen group. Hash LBs use all endpoints of the level and walk
//     forward from the key's ring/table slot to the first eligible endpoint.
//
// Complexity per pick (N = endpoints of the backend, G = endpoints of the chosen group):
//  - O(N) relaxed one-byte loads to count healthy endpoints per level (priority shares and the
//    panic check, one pass) plus one pass over the chosen level's zones when zone-aware. About
//    1 ns per endpoint: ~50-100 ns per pick at 10 endpoints, ~1-4 µs at 1000 (-O2, one core).
//    Fine for the tens to hundreds of endpoints per backend we expect; if it ever shows in
//    profiles, the main thread (the single HealthTable writer) can publish per-level counts.
//  - RoundRobin: O(G) (smooth WRR visits every eligible endpoint, as nginx does).
//  - Random: O(log G) with up to 4 rejection draws, O(G) fallback when they all hit unhealthy
//    or avoided endpoints. LeastRequest: the same for each of its two choices.
//  - RingHash: O(log ring) + probe; Maglev: O(1) + probe. The probe skips unhealthy entries.
// No allocation and no shared writes per pick.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "upstream/health.h"

namespace portico::upstream {

enum class LbType : uint8_t { kRoundRobin, kLeastRequest, kRandom, kRingHash, kMaglev };

struct LbEndpoint {
  uint32_t pool_id = 0;   // index into the HealthTable
  uint32_t weight = 1;    // 0 is treated as 1: drop endpoints that must get no traffic
  uint32_t priority = 0;  // 0 = highest
  std::string zone;       // "" = unknown (a zone of its own, never local)
  // Identity for hashing (e.g. "10.0.0.1:80"): ring and Maglev positions derive from it only,
  // so they agree across workers, processes and input orders. Empty: the decimal pool_id.
  std::string key;
};

struct LbConfig {
  LbType type = LbType::kRoundRobin;
  // RingHash: at least this many virtual nodes per level. Nodes are 100 per weight unit,
  // doubled until the minimum is reached (so a ring holds between min and 2 × min nodes when
  // scaled), halved above 8M.
  uint32_t ring_min_size = 1024;
  uint32_t maglev_table_size = 65537;  // Maglev: rounded up to a prime ≥ the endpoint count
  uint32_t panic_threshold_percent = 50;
  std::string local_zone;  // the gateway's own zone; "" disables zone-aware routing
};

// The 64-bit hash for hash LBs: MurmurHash64A with a fixed seed, bytes read little-endian, so
// the value is the same in every process on every platform. Callers hash the request's key
// (header, cookie, source address) with it.
uint64_t hashKey(std::string_view data, uint64_t seed = 0);

class LoadBalancer;

// One worker's mutable state for one LoadBalancer. Create it with the LoadBalancer it serves
// and use it only with that one; a request that called onRequestStart() must call
// onRequestEnd() on the same state (keep both alive while the request is in flight).
class LbWorkerState {
 public:
  // `seed` rotates where round robin starts, so that workers do not all send their first
  // requests to the same endpoint. Pass e.g. the worker index.
  explicit LbWorkerState(const LoadBalancer& lb, uint32_t seed = 0);

  uint32_t activeRequests(int index) const { return active_[static_cast<size_t>(index)]; }

 private:
  friend void onRequestStart(LbWorkerState&, int);
  friend void onRequestEnd(LbWorkerState&, int);
  friend class Picker;

  std::vector<int64_t> rr_current_;  // smooth WRR current weights, by position in the LB order
  std::vector<uint32_t> active_;     // in-flight requests, by endpoint index
  std::vector<uint32_t> scratch_;    // per-pick healthy counts (levels, zones); no allocation
  uint32_t rr_offset_ = 0;
};

class LoadBalancer {
 public:
  // Main thread. Never fails: bad sizes are adjusted (see LbConfig).
  static std::shared_ptr<const LoadBalancer> build(std::vector<LbEndpoint> endpoints,
                                                   LbConfig config);

  const std::vector<LbEndpoint>& endpoints() const { return endpoints_; }
  const LbConfig& config() const { return config_; }
  // Virtual nodes in the ring, or slots in the Maglev table, of level `level` (0 otherwise).
  size_t hashTableSize(size_t level) const;
  // Distinct priorities among the endpoints.
  size_t levelCount() const;

 private:
  friend class LbWorkerState;
  friend class Picker;
  LoadBalancer() = default;

  struct Zone {
    uint32_t begin = 0, end = 0;  // positions
  };
  struct RingEntry {
    uint64_t hash = 0;
    uint32_t index = 0;  // endpoint index
  };
  struct Level {
    uint32_t priority = 0;
    uint32_t begin = 0, end = 0;  // positions
    std::vector<Zone> zones;
    int local_zone = -1;           // index into zones, -1 when absent
    std::vector<RingEntry> ring;   // RingHash: sorted by hash
    std::vector<uint32_t> maglev;  // Maglev: slot -> endpoint index
  };

  std::vector<LbEndpoint> endpoints_;
  LbConfig config_;
  // Endpoint indices sorted by (priority, zone, key): a level and a zone within it are
  // contiguous ranges of positions. pool_/weight_ are copies by position for locality.
  std::vector<uint32_t> order_;
  std::vector<uint32_t> position_;    // endpoint index -> position
  std::vector<uint32_t> pool_;        // by position
  std::vector<uint32_t> weight_;      // by position
  std::vector<uint64_t> cum_weight_;  // cum_weight_[p] = sum of weight_[0..p)
  std::vector<Level> levels_;
  uint32_t max_zones_ = 0;
};

// Picks an endpoint; returns its index in lb.endpoints(), or -1 when there are none.
// `hash`: the request hash (hash LBs; ignored by the others). `random`: a fresh uniform 32-bit
// value per call. `avoid`: an endpoint to avoid when another eligible one exists (retries
// prefer a different endpoint), -1 for none. Worker thread owning `state`; allocation-free.
int pick(const LoadBalancer& lb, LbWorkerState& state, const HealthTable& health, uint64_t hash,
         uint32_t random, int avoid = -1);

// Active request accounting for LeastRequest (harmless for the other types).
inline void onRequestStart(LbWorkerState& state, int index) {
  if (index >= 0) ++state.active_[static_cast<size_t>(index)];
}
inline void onRequestEnd(LbWorkerState& state, int index) {
  if (index >= 0 && state.active_[static_cast<size_t>(index)] > 0) {
    --state.active_[static_cast<size_t>(index)];
  }
}

}  // namespace portico::upstream
