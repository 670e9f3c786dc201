#include "upstream/load_balancer.h"

#include <algorithm>
#include <cassert>
#include <tuple>

namespace portico::upstream {
namespace {

// Shares are computed in units of 1/10000 (basis points): exact integers, no float drift, and
// finer than any test or operator can notice.
constexpr uint64_t kShareScale = 10'000;
// Envoy's overprovisioning factor (1.4): a level or zone keeps all its traffic until fewer
// than 1/1.4 ≈ 71% of its endpoints are healthy.
constexpr uint64_t kOverprovisionPercent = 140;
constexpr uint64_t kRingMaxSize = 1u << 23;  // Envoy's default maximum ring size (8M)
constexpr uint32_t kVirtualNodesPerWeight = 100;
constexpr uint32_t kEmptySlot = UINT32_MAX;
// Rejection draws before falling back to an exact scan: with half the group ineligible the
// fallback runs once in 16 picks; with all eligible, never.
constexpr int kRejectionDraws = 4;

// Per-pick random stream: splitmix64 seeded with the caller's 32-bit random, so one fresh
// value per call yields as many independent draws as a pick needs.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) without division (Lemire's multiply-shift; bias < n / 2^64).
  uint64_t below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }

 private:
  uint64_t state_;
};

uint64_t load64le(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

bool isPrime(uint32_t n) {
  if (n < 2) return false;
  for (uint32_t d = 2; static_cast<uint64_t>(d) * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

uint32_t nextPrime(uint32_t n) {
  while (!isPrime(n)) ++n;
  return n;
}

// Share of level or zone traffic its health supports: healthy/total × 1.4, capped at 100%.
uint64_t healthShare(uint64_t healthy, uint64_t total) {
  if (total == 0) return 0;
  return std::min(kShareScale, healthy * kShareScale * kOverprovisionPercent / (100 * total));
}

}  // namespace

uint64_t hashKey(std::string_view data, uint64_t seed) {
  // MurmurHash64A (Austin Appleby's public-domain design), written from its description.
  constexpr uint64_t m = 0xc6a4a7935bd1e995ull;
  constexpr int r = 47;
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const size_t len = data.size();
  uint64_t h = seed ^ (len * m);
  const size_t blocks = len / 8;
  for (size_t i = 0; i < blocks; ++i) {
    uint64_t k = load64le(p + i * 8);
    k *= m;
    k ^= k >> r;
    k *= m;
    h ^= k;
    h *= m;
  }
  const unsigned char* tail = p + blocks * 8;
  const size_t rest = len & 7;
  if (rest != 0) {
    for (size_t i = rest; i-- > 0;) h ^= static_cast<uint64_t>(tail[i]) << (8 * i);
    h *= m;
  }
  h ^= h >> r;
  h *= m;
  h ^= h >> r;
  return h;
}

// Build-time and pick-time logic with access to both classes' internals.
class Picker {
 public:
  static void buildLevels(LoadBalancer& lb);
  static void buildRing(LoadBalancer& lb, LoadBalancer::Level& level);
  static void buildMaglev(LoadBalancer& lb, LoadBalancer::Level& level);
  static int pick(const LoadBalancer& lb, LbWorkerState& st, const HealthTable& health,
                  uint64_t hash, uint32_t random, int avoid);

 private:
  struct Group {
    uint32_t begin, end;  // positions
    uint64_t eligible;    // endpoints eligible in the group (avoid excluded)
  };
  struct Ctx {
    const LoadBalancer& lb;
    const HealthTable& health;
    bool use_health;
    int avoid;
    bool eligible(uint32_t pos) const {
      return static_cast<int>(lb.order_[pos]) != avoid &&
             (!use_health || health.healthy(lb.pool_[pos]));
    }
    bool eligibleIndex(uint32_t index) const { return eligible(lb.position_[index]); }
  };

  static uint64_t countHealthy(const LoadBalancer& lb, const HealthTable& health, uint32_t begin,
                               uint32_t end) {
    uint64_t n = 0;
    for (uint32_t p = begin; p < end; ++p) n += health.healthy(lb.pool_[p]) ? 1 : 0;
    return n;
  }
  static size_t chooseLevel(const LoadBalancer& lb, const HealthTable& health, LbWorkerState& st,
                            uint64_t draw, bool* all_down);
  static int roundRobin(const Ctx& c, LbWorkerState& st, const Group& g);
  static int random(const Ctx& c, const Group& g, Rng& rng);
  static uint32_t uniformPosition(const Ctx& c, const Group& g, Rng& rng);
  static uint32_t uniformPositionExcept(const Ctx& c, const Group& g, Rng& rng, uint32_t except);
  static int leastRequest(const Ctx& c, LbWorkerState& st, const Group& g, Rng& rng);
  static int ringHash(const Ctx& c, const LoadBalancer::Level& level, uint64_t hash);
  static int maglev(const Ctx& c, const LoadBalancer::Level& level, uint64_t hash);
};

void Picker::buildLevels(LoadBalancer& lb) {
  const size_t n = lb.endpoints_.size();
  lb.order_.resize(n);
  for (uint32_t i = 0; i < n; ++i) lb.order_[i] = i;
  std::sort(lb.order_.begin(), lb.order_.end(), [&lb](uint32_t a, uint32_t b) {
    const LbEndpoint& x = lb.endpoints_[a];
    const LbEndpoint& y = lb.endpoints_[b];
    return std::tie(x.priority, x.zone, x.key, a) < std::tie(y.priority, y.zone, y.key, b);
  });
  lb.position_.resize(n);
  lb.pool_.resize(n);
  lb.weight_.resize(n);
  lb.cum_weight_.assign(n + 1, 0);
  for (uint32_t p = 0; p < n; ++p) {
    const LbEndpoint& e = lb.endpoints_[lb.order_[p]];
    lb.position_[lb.order_[p]] = p;
    lb.pool_[p] = e.pool_id;
    lb.weight_[p] = e.weight;
    lb.cum_weight_[p + 1] = lb.cum_weight_[p] + e.weight;
  }
  for (uint32_t p = 0; p < n; ++p) {
    const LbEndpoint& e = lb.endpoints_[lb.order_[p]];
    if (lb.levels_.empty() || lb.levels_.back().priority != e.priority) {
      LoadBalancer::Level level;
      level.priority = e.priority;
      level.begin = p;
      lb.levels_.push_back(std::move(level));
    }
    LoadBalancer::Level& level = lb.levels_.back();
    level.end = p + 1;
    if (level.zones.empty() || lb.endpoints_[lb.order_[level.zones.back().begin]].zone != e.zone) {
      if (!e.zone.empty() && e.zone == lb.config_.local_zone) {
        level.local_zone = static_cast<int>(level.zones.size());
      }
      level.zones.push_back({p, p});
    }
    level.zones.back().end = p + 1;
  }
  for (const LoadBalancer::Level& level : lb.levels_) {
    lb.max_zones_ = std::max(lb.max_zones_, static_cast<uint32_t>(level.zones.size()));
  }
}

void Picker::buildRing(LoadBalancer& lb, LoadBalancer::Level& level) {
  // Ketama-style: each endpoint owns weight × per_unit virtual nodes, named "key_0",
  // "key_1", ... and placed by their hash. Removing an endpoint removes only its nodes, so
  // only its keys move, as long as per_unit stays the same. Hence per_unit is 100 scaled by
  // powers of two (up to reach ring_min_size, down to stay under kRingMaxSize) rather than
  // exactly total/min: a small change in total weight rarely changes it, whereas scaling to
  // the exact minimum would reshuffle every endpoint's nodes on each add or remove.
  const uint64_t total_weight = lb.cum_weight_[level.end] - lb.cum_weight_[level.begin];
  uint64_t per_unit = kVirtualNodesPerWeight;
  while (per_unit * total_weight < lb.config_.ring_min_size) per_unit *= 2;
  while (per_unit > 1 && per_unit * total_weight > kRingMaxSize) per_unit /= 2;
  std::string name;
  for (uint32_t p = level.begin; p < level.end; ++p) {
    const uint32_t index = lb.order_[p];
    const std::string& key = lb.endpoints_[index].key;
    const uint64_t nodes = per_unit * lb.weight_[p];
    for (uint64_t v = 0; v < nodes; ++v) {
      name.assign(key).append("_").append(std::to_string(v));
      level.ring.push_back({hashKey(name), index});
    }
  }
  // Ties (vanishingly rare) are broken by key, not by index, so that the ring does not depend
  // on the order of the input endpoints.
  std::sort(level.ring.begin(), level.ring.end(),
            [&lb](const LoadBalancer::RingEntry& a, const LoadBalancer::RingEntry& b) {
              if (a.hash != b.hash) return a.hash < b.hash;
              return lb.endpoints_[a.index].key < lb.endpoints_[b.index].key;
            });
}

void Picker::buildMaglev(LoadBalancer& lb, LoadBalancer::Level& level) {
  // Google's Maglev population (NSDI'16 §3.4): every endpoint walks its own permutation of
  // the table (offset + j × skip mod M, M prime) and claims its next free slot in turn. With
  // weights, an endpoint takes a turn each round only when its accumulated credit reaches the
  // highest weight, so slots end up in proportion to the weights. Endpoints are visited by key
  // (positions sort by key within a zone only), making the table independent of input order.
  std::vector<uint32_t> by_key;
  for (uint32_t p = level.begin; p < level.end; ++p) by_key.push_back(lb.order_[p]);
  std::sort(by_key.begin(), by_key.end(), [&lb](uint32_t a, uint32_t b) {
    return std::tie(lb.endpoints_[a].key, a) < std::tie(lb.endpoints_[b].key, b);
  });
  const size_t n = by_key.size();
  const uint64_t size = level.maglev.size();
  std::vector<uint64_t> offset(n), skip(n), next(n, 0), credit(n, 0);
  uint64_t max_weight = 0;
  for (size_t i = 0; i < n; ++i) {
    const std::string& key = lb.endpoints_[by_key[i]].key;
    offset[i] = hashKey(key, 0x6d61676c65763031ull) % size;
    skip[i] = hashKey(key, 0x6d61676c65763032ull) % (size - 1) + 1;
    max_weight = std::max<uint64_t>(max_weight, lb.endpoints_[by_key[i]].weight);
  }
  uint64_t filled = 0;
  while (filled < size) {
    for (size_t i = 0; i < n && filled < size; ++i) {
      credit[i] += lb.endpoints_[by_key[i]].weight;
      if (credit[i] < max_weight) continue;
      credit[i] -= max_weight;
      uint64_t slot;
      do {
        slot = (offset[i] + next[i] * skip[i]) % size;
        ++next[i];
      } while (level.maglev[slot] != kEmptySlot);
      level.maglev[slot] = by_key[i];
      ++filled;
    }
  }
}

std::shared_ptr<const LoadBalancer> LoadBalancer::build(std::vector<LbEndpoint> endpoints,
                                                        LbConfig config) {
  std::shared_ptr<LoadBalancer> lb(new LoadBalancer());
  for (LbEndpoint& e : endpoints) {
    e.weight = std::max<uint32_t>(e.weight, 1);
    if (e.key.empty()) e.key = std::to_string(e.pool_id);
  }
  lb->endpoints_ = std::move(endpoints);
  lb->config_ = std::move(config);
  lb->config_.ring_min_size = std::max<uint32_t>(lb->config_.ring_min_size, 1);
  Picker::buildLevels(*lb);
  for (Level& level : lb->levels_) {
    if (lb->config_.type == LbType::kRingHash) {
      Picker::buildRing(*lb, level);
    } else if (lb->config_.type == LbType::kMaglev) {
      // A prime ≥ 2 so that every skip in [1, M) generates a full permutation, and at least
      // the endpoint count so that every endpoint gets a slot.
      const uint32_t wanted = std::max<uint32_t>(lb->config_.maglev_table_size,
                                                 std::max<uint32_t>(level.end - level.begin, 2));
      level.maglev.assign(nextPrime(wanted), kEmptySlot);
      Picker::buildMaglev(*lb, level);
    }
  }
  return lb;
}

size_t LoadBalancer::levelCount() const { return levels_.size(); }

size_t LoadBalancer::hashTableSize(size_t level) const {
  if (level >= levels_.size()) return 0;
  return config_.type == LbType::kMaglev ? levels_[level].maglev.size()
                                         : levels_[level].ring.size();
}

LbWorkerState::LbWorkerState(const LoadBalancer& lb, uint32_t seed)
    : rr_current_(lb.endpoints_.size(), 0),
      active_(lb.endpoints_.size(), 0),
      scratch_(std::max<size_t>(lb.levels_.size(), lb.max_zones_), 0),
      rr_offset_(lb.endpoints_.empty() ? 0 : seed % lb.endpoints_.size()) {}

size_t Picker::chooseLevel(const LoadBalancer& lb, const HealthTable& health, LbWorkerState& st,
                           uint64_t draw, bool* all_down) {
  // Envoy's cascade: each level takes what its health supports of what the levels above left
  // over; when the health summed over levels is below 100%, shares are scaled up to it.
  // Leaves each level's healthy count in scratch_ for the caller (one pass over the health).
  const size_t levels = lb.levels_.size();
  uint64_t total_health = 0;
  for (size_t i = 0; i < levels; ++i) {
    const LoadBalancer::Level& level = lb.levels_[i];
    st.scratch_[i] = static_cast<uint32_t>(countHealthy(lb, health, level.begin, level.end));
    total_health += healthShare(st.scratch_[i], level.end - level.begin);
  }
  *all_down = total_health == 0;
  if (*all_down || levels == 1) return 0;
  const uint64_t normalized = std::min(total_health, kShareScale);
  uint64_t point = draw % kShareScale;
  uint64_t remaining = kShareScale;
  size_t last_healthy = 0;
  for (size_t i = 0; i < levels; ++i) {
    const LoadBalancer::Level& level = lb.levels_[i];
    const uint64_t share = healthShare(st.scratch_[i], level.end - level.begin);
    const uint64_t load = std::min(remaining, share * kShareScale / normalized);
    if (point < load) return i;
    point -= load;
    remaining -= load;
    if (share != 0) last_healthy = i;
  }
  return last_healthy;  // rounding leftovers (a few basis points)
}

int Picker::roundRobin(const Ctx& c, LbWorkerState& st, const Group& g) {
  // Smooth weighted round robin (nginx): every eligible endpoint gains its weight, the
  // highest current weight wins and pays back the total. Interleaves heavy endpoints with the
  // others instead of bursting them. Scanning starts at the worker's offset so that workers
  // with fresh states begin on different endpoints.
  int64_t total = 0;
  uint32_t best = UINT32_MAX;
  const uint32_t size = g.end - g.begin;
  const uint32_t start = st.rr_offset_ % size;
  for (uint32_t j = 0; j < size; ++j) {
    uint32_t p = g.begin + start + j;
    if (p >= g.end) p -= size;
    if (!c.eligible(p)) continue;
    st.rr_current_[p] += c.lb.weight_[p];
    total += c.lb.weight_[p];
    if (best == UINT32_MAX || st.rr_current_[p] > st.rr_current_[best]) best = p;
  }
  if (best == UINT32_MAX) return -1;
  st.rr_current_[best] -= total;
  return static_cast<int>(c.lb.order_[best]);
}

int Picker::random(const Ctx& c, const Group& g, Rng& rng) {
  // Weighted draw over the whole group by prefix sums; rejection keeps the distribution exact
  // over the eligible endpoints. After kRejectionDraws misses, one exact scan.
  const uint64_t* cum = c.lb.cum_weight_.data();
  const uint64_t base = cum[g.begin];
  const uint64_t span = cum[g.end] - base;
  for (int i = 0; i < kRejectionDraws; ++i) {
    const uint64_t point = base + rng.below(span);
    // First position whose prefix end exceeds the point.
    const uint64_t* it = std::upper_bound(cum + g.begin + 1, cum + g.end + 1, point);
    const uint32_t p = static_cast<uint32_t>(it - cum) - 1;
    if (c.eligible(p)) return static_cast<int>(c.lb.order_[p]);
  }
  uint64_t eligible_weight = 0;
  for (uint32_t p = g.begin; p < g.end; ++p) {
    if (c.eligible(p)) eligible_weight += c.lb.weight_[p];
  }
  if (eligible_weight == 0) return -1;
  uint64_t point = rng.below(eligible_weight);
  for (uint32_t p = g.begin; p < g.end; ++p) {
    if (!c.eligible(p)) continue;
    if (point < c.lb.weight_[p]) return static_cast<int>(c.lb.order_[p]);
    point -= c.lb.weight_[p];
  }
  return -1;
}

uint32_t Picker::uniformPosition(const Ctx& c, const Group& g, Rng& rng) {
  const uint32_t size = g.end - g.begin;
  for (int i = 0; i < kRejectionDraws; ++i) {
    const uint32_t p = g.begin + static_cast<uint32_t>(rng.below(size));
    if (c.eligible(p)) return p;
  }
  uint64_t k = rng.below(g.eligible);
  for (uint32_t p = g.begin; p < g.end; ++p) {
    if (c.eligible(p) && k-- == 0) return p;
  }
  return UINT32_MAX;
}

uint32_t Picker::uniformPositionExcept(const Ctx& c, const Group& g, Rng& rng, uint32_t except) {
  // Like uniformPosition over the group minus `except` (an eligible position), which the
  // caller counted in g.eligible.
  const uint32_t size = g.end - g.begin;
  for (int i = 0; i < kRejectionDraws; ++i) {
    uint32_t p = g.begin + static_cast<uint32_t>(rng.below(size - 1));
    if (p >= except) ++p;
    if (c.eligible(p)) return p;
  }
  uint64_t k = rng.below(g.eligible - 1);
  for (uint32_t p = g.begin; p < g.end; ++p) {
    if (p != except && c.eligible(p) && k-- == 0) return p;
  }
  return UINT32_MAX;
}

int Picker::leastRequest(const Ctx& c, LbWorkerState& st, const Group& g, Rng& rng) {
  // Weights differ (Envoy's rule): a weighted draw where each eligible endpoint weighs
  // weight / (active + 1), so idle endpoints share traffic by weight and busy ones get less.
  // O(group) per pick, like round robin.
  bool uniform = true;
  for (uint32_t p = g.begin + 1; p < g.end && uniform; ++p)
    uniform = c.lb.weight_[p] == c.lb.weight_[g.begin];
  if (!uniform) {
    // Fixed point: weight × 2^20 / (active + 1), exact enough for a draw.
    uint64_t total = 0;
    for (uint32_t p = g.begin; p < g.end; ++p) {
      if (c.eligible(p))
        total += (uint64_t{c.lb.weight_[p]} << 20) / (st.active_[c.lb.order_[p]] + 1);
    }
    if (total == 0) return -1;
    uint64_t point = rng.below(total);
    for (uint32_t p = g.begin; p < g.end; ++p) {
      if (!c.eligible(p)) continue;
      uint64_t w = (uint64_t{c.lb.weight_[p]} << 20) / (st.active_[c.lb.order_[p]] + 1);
      if (point < w) return static_cast<int>(c.lb.order_[p]);
      point -= w;
    }
    return -1;
  }
  // Equal weights: power of two choices: two distinct eligible endpoints drawn uniformly, the
  // one with fewer active requests wins (ties to the first draw). Avoids the herd effect of
  // a global minimum.
  const uint32_t a = uniformPosition(c, g, rng);
  if (a == UINT32_MAX) return -1;
  if (g.eligible < 2) return static_cast<int>(c.lb.order_[a]);
  const uint32_t b = uniformPositionExcept(c, g, rng, a);
  if (b == UINT32_MAX) return static_cast<int>(c.lb.order_[a]);
  const uint32_t ia = c.lb.order_[a];
  const uint32_t ib = c.lb.order_[b];
  const uint64_t cost_a = (static_cast<uint64_t>(st.active_[ia]) + 1) * c.lb.weight_[b];
  const uint64_t cost_b = (static_cast<uint64_t>(st.active_[ib]) + 1) * c.lb.weight_[a];
  return static_cast<int>(cost_b < cost_a ? ib : ia);
}

int Picker::ringHash(const Ctx& c, const LoadBalancer::Level& level, uint64_t hash) {
  const auto& ring = level.ring;
  if (ring.empty()) return -1;
  auto it =
      std::lower_bound(ring.begin(), ring.end(), hash,
                       [](const LoadBalancer::RingEntry& e, uint64_t h) { return e.hash < h; });
  size_t i = it == ring.end() ? 0 : static_cast<size_t>(it - ring.begin());
  // Walk clockwise to the first eligible endpoint: keys of an unhealthy endpoint go to its
  // ring successors, every other key stays put.
  for (size_t step = 0; step < ring.size(); ++step) {
    if (c.eligibleIndex(ring[i].index)) return static_cast<int>(ring[i].index);
    if (++i == ring.size()) i = 0;
  }
  return -1;
}

int Picker::maglev(const Ctx& c, const LoadBalancer::Level& level, uint64_t hash) {
  const auto& table = level.maglev;
  if (table.empty()) return -1;
  size_t i = hash % table.size();
  for (size_t step = 0; step < table.size(); ++step) {
    if (c.eligibleIndex(table[i])) return static_cast<int>(table[i]);
    if (++i == table.size()) i = 0;
  }
  return -1;
}

int Picker::pick(const LoadBalancer& lb, LbWorkerState& st, const HealthTable& health,
                 uint64_t hash, uint32_t random_value, int avoid) {
  if (lb.endpoints_.empty()) return -1;
  assert(st.active_.size() == lb.endpoints_.size() && "LbWorkerState of another LoadBalancer");
  const LbType type = lb.config_.type;
  const bool hashed = type == LbType::kRingHash || type == LbType::kMaglev;
  if (avoid >= static_cast<int>(lb.endpoints_.size())) avoid = -1;
  Rng rng(random_value);

  // A hashed request picks its level with its hash too, so that it is stable while health is.
  bool all_down = false;
  const size_t level_index =
      chooseLevel(lb, health, st, hashed ? hashKey({}, hash) : rng.next(), &all_down);
  const LoadBalancer::Level& level = lb.levels_[level_index];
  const uint64_t level_total = level.end - level.begin;
  uint64_t level_healthy = st.scratch_[level_index];
  const bool panic =
      all_down || level_healthy * 100 < uint64_t{lb.config_.panic_threshold_percent} * level_total;
  if (panic) level_healthy = level_total;

  Ctx ctx{lb, health, !panic, avoid};
  const bool avoid_in_level = avoid >= 0 && lb.position_[avoid] >= level.begin &&
                              lb.position_[avoid] < level.end &&
                              (panic || health.healthy(lb.pool_[lb.position_[avoid]]));
  Group group{level.begin, level.end, level_healthy - (avoid_in_level ? 1 : 0)};

  if (!hashed && !panic && level.local_zone >= 0 && level.zones.size() > 1) {
    const size_t zones = level.zones.size();
    uint64_t other_healthy = 0;
    for (size_t z = 0; z < zones; ++z) {
      st.scratch_[z] =
          static_cast<uint32_t>(countHealthy(lb, health, level.zones[z].begin, level.zones[z].end));
      if (static_cast<int>(z) != level.local_zone) other_healthy += st.scratch_[z];
    }
    const LoadBalancer::Zone& local = level.zones[static_cast<size_t>(level.local_zone)];
    const uint64_t local_share =
        other_healthy == 0 ? kShareScale
                           : healthShare(st.scratch_[level.local_zone], local.end - local.begin);
    size_t chosen = static_cast<size_t>(level.local_zone);
    if (local_share < kShareScale && rng.below(kShareScale) >= local_share) {
      // Spill: other zones by their healthy endpoint counts.
      uint64_t point = rng.below(other_healthy);
      for (size_t z = 0; z < zones; ++z) {
        if (static_cast<int>(z) == level.local_zone) continue;
        if (point < st.scratch_[z]) {
          chosen = z;
          break;
        }
        point -= st.scratch_[z];
      }
    }
    const LoadBalancer::Zone& zone = level.zones[chosen];
    const bool avoid_in_zone =
        avoid_in_level && lb.position_[avoid] >= zone.begin && lb.position_[avoid] < zone.end;
    const uint64_t eligible = st.scratch_[chosen] - (avoid_in_zone ? 1 : 0);
    // A retry whose zone holds nothing but the endpoint to avoid widens to the whole level.
    if (eligible > 0) group = {zone.begin, zone.end, eligible};
  }
  if (group.eligible == 0) {
    // Only the avoided endpoint is eligible: better the same endpoint than none.
    ctx.avoid = -1;
    group.eligible = level_healthy;
  }

  switch (type) {
    case LbType::kRoundRobin:
      return roundRobin(ctx, st, group);
    case LbType::kLeastRequest:
      return leastRequest(ctx, st, group, rng);
    case LbType::kRandom:
      return random(ctx, group, rng);
    case LbType::kRingHash:
      return ringHash(ctx, level, hash);
    case LbType::kMaglev:
      return maglev(ctx, level, hash);
  }
  return -1;
}

int pick(const LoadBalancer& lb, LbWorkerState& state, const HealthTable& health, uint64_t hash,
         uint32_t random, int avoid) {
  return Picker::pick(lb, state, health, hash, random, avoid);
}

}  // namespace portico::upstream
