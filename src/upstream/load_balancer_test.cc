#include "upstream/load_balancer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace portico::upstream {
namespace {

// Endpoints with pool ids 0..n-1 and keys "10.0.0.<i>:80".
std::vector<LbEndpoint> endpoints(size_t n, uint32_t priority = 0, const std::string& zone = "",
                                  uint32_t first_pool_id = 0) {
  std::vector<LbEndpoint> v;
  for (size_t i = 0; i < n; ++i) {
    LbEndpoint e;
    e.pool_id = first_pool_id + static_cast<uint32_t>(i);
    e.priority = priority;
    e.zone = zone;
    e.key = "10.0." + std::to_string(first_pool_id / 256) + "." +
            std::to_string((first_pool_id + i) % 256) + ":80";
    v.push_back(e);
  }
  return v;
}

std::vector<LbEndpoint> concat(std::vector<LbEndpoint> a, const std::vector<LbEndpoint>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

LbConfig config(LbType type) {
  LbConfig c;
  c.type = type;
  return c;
}

// Counts picks per endpoint index over `n` picks with a seeded generator.
std::vector<int> histogram(const LoadBalancer& lb, LbWorkerState& st, const HealthTable& health,
                           int n, int avoid = -1, uint32_t seed = 1) {
  std::vector<int> counts(lb.endpoints().size(), 0);
  std::mt19937_64 rng(seed);
  for (int i = 0; i < n; ++i) {
    const int idx = pick(lb, st, health, rng(), static_cast<uint32_t>(rng()), avoid);
    EXPECT_GE(idx, 0);
    if (idx >= 0) ++counts[static_cast<size_t>(idx)];
  }
  return counts;
}

int sum(const std::vector<int>& v, size_t begin, size_t end) {
  int s = 0;
  for (size_t i = begin; i < end; ++i) s += v[i];
  return s;
}

const LbType kAllTypes[] = {LbType::kRoundRobin, LbType::kLeastRequest, LbType::kRandom,
                            LbType::kRingHash, LbType::kMaglev};

TEST(LoadBalancerTest, HashKeyIsStableAndSpreads) {
  // Fixed values: any change here would remap every hashed request in a rolling upgrade.
  EXPECT_EQ(hashKey(""), 0u);  // MurmurHash64A, seed 0, of nothing
  EXPECT_EQ(hashKey("a"), 0x71717d2d36b6b11u);
  EXPECT_EQ(hashKey("10.0.0.1:80"), 0xed9bb5e38f6916d6u);
  EXPECT_EQ(hashKey("0123456789abcdefg"), 0xb3d8f28dd9e798fu);
  EXPECT_NE(hashKey("a"), hashKey("b"));
  EXPECT_NE(hashKey("10.0.0.1:80"), hashKey("10.0.0.1:80", 1));
  // Every length of tail is consumed: prefixes all differ.
  std::string s = "0123456789abcdefg";
  std::vector<uint64_t> seen;
  for (size_t len = 0; len <= s.size(); ++len)
    seen.push_back(hashKey(std::string_view(s).substr(0, len)));
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(std::unique(seen.begin(), seen.end()), seen.end());
}

TEST(LoadBalancerTest, EmptyGivesMinusOne) {
  HealthTable health;
  for (LbType type : kAllTypes) {
    auto lb = LoadBalancer::build({}, config(type));
    LbWorkerState st(*lb);
    EXPECT_EQ(pick(*lb, st, health, 1, 2), -1);
  }
}

TEST(LbRoundRobinTest, SmoothWeightedExactSequence) {
  HealthTable health;
  auto eps = endpoints(3);
  eps[0].weight = 5;
  auto lb = LoadBalancer::build(eps, config(LbType::kRoundRobin));
  LbWorkerState st(*lb);
  // nginx's smooth WRR for weights {5, 1, 1}: a a b a c a a, then again.
  const std::vector<int> expected = {0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0};
  std::vector<int> got;
  for (size_t i = 0; i < expected.size(); ++i) got.push_back(pick(*lb, st, health, 0, 0));
  EXPECT_EQ(got, expected);
}

TEST(LbRoundRobinTest, ProportionsAndWorkerOffsets) {
  HealthTable health;
  auto eps = endpoints(4);
  eps[1].weight = 2;
  eps[2].weight = 3;
  eps[3].weight = 4;
  auto lb = LoadBalancer::build(eps, config(LbType::kRoundRobin));
  LbWorkerState st(*lb);
  std::vector<int> counts = histogram(*lb, st, health, 1000);
  EXPECT_EQ(counts, (std::vector<int>{100, 200, 300, 400}));
  // Equal weights: workers seeded differently start on different endpoints.
  auto equal = LoadBalancer::build(endpoints(4), config(LbType::kRoundRobin));
  LbWorkerState w0(*equal, 0), w1(*equal, 1);
  EXPECT_NE(pick(*equal, w0, health, 0, 0), pick(*equal, w1, health, 0, 0));
}

TEST(LbRandomTest, FollowsWeights) {
  HealthTable health;
  auto eps = endpoints(3);
  eps[0].weight = 1;
  eps[1].weight = 3;
  eps[2].weight = 6;
  auto lb = LoadBalancer::build(eps, config(LbType::kRandom));
  LbWorkerState st(*lb);
  std::vector<int> counts = histogram(*lb, st, health, 100'000);
  EXPECT_NEAR(counts[0], 10'000, 600);
  EXPECT_NEAR(counts[1], 30'000, 900);
  EXPECT_NEAR(counts[2], 60'000, 900);
}

TEST(LbRandomTest, UnhealthyShareGoesToTheOthersByWeight) {
  HealthTable health;
  auto eps = endpoints(4);
  eps[0].weight = 10;  // the heavy one is down: rejection sampling must fall back often
  eps[2].weight = 2;
  health.set(0, HealthTable::kEjected, true);
  // 3 of 4 healthy: above the panic threshold.
  auto lb = LoadBalancer::build(eps, config(LbType::kRandom));
  LbWorkerState st(*lb);
  std::vector<int> counts = histogram(*lb, st, health, 40'000);
  EXPECT_EQ(counts[0], 0);
  EXPECT_NEAR(counts[1], 10'000, 600);
  EXPECT_NEAR(counts[2], 20'000, 600);
  EXPECT_NEAR(counts[3], 10'000, 600);
}

TEST(LbLeastRequestTest, NeverPicksTheBusiestOfTwoChoices) {
  HealthTable health;
  auto lb = LoadBalancer::build(endpoints(4), config(LbType::kLeastRequest));
  LbWorkerState st(*lb);
  for (int i = 0; i < 10; ++i) onRequestStart(st, 2);
  EXPECT_EQ(st.activeRequests(2), 10u);
  std::vector<int> counts = histogram(*lb, st, health, 3000);
  // Two distinct candidates: the busy endpoint always loses.
  EXPECT_EQ(counts[2], 0);
  EXPECT_GT(counts[0], 800);
  EXPECT_GT(counts[1], 800);
  EXPECT_GT(counts[3], 800);
  for (int i = 0; i < 20; ++i) onRequestEnd(st, 2);  // extra ends do not underflow
  EXPECT_EQ(st.activeRequests(2), 0u);
}

TEST(LbLeastRequestTest, SlowEndpointGetsLessTrafficInSimulation) {
  // Endpoint 0 holds a request for 8 ticks, the others for 1; one request arrives per tick.
  // Round robin would give each 25%; least request must starve the slow one.
  HealthTable health;
  auto lb = LoadBalancer::build(endpoints(4), config(LbType::kLeastRequest));
  LbWorkerState st(*lb);
  std::mt19937 rng(7);
  std::multimap<int, int> in_flight;  // end tick -> endpoint
  std::vector<int> counts(4, 0);
  for (int tick = 0; tick < 20'000; ++tick) {
    while (!in_flight.empty() && in_flight.begin()->first <= tick) {
      onRequestEnd(st, in_flight.begin()->second);
      in_flight.erase(in_flight.begin());
    }
    for (int r = 0; r < 3; ++r) {
      const int idx = pick(*lb, st, health, 0, rng());
      ASSERT_GE(idx, 0);
      onRequestStart(st, idx);
      ++counts[static_cast<size_t>(idx)];
      in_flight.emplace(tick + (idx == 0 ? 8 : 1), idx);
    }
  }
  EXPECT_LT(counts[0], 60'000 * 15 / 100);
  EXPECT_GT(counts[1], 60'000 * 26 / 100);
}

TEST(LbLeastRequestTest, WeightsScaleTheComparison) {
  // Weights differ: endpoints weigh weight / (active + 1). Idle, 4:1 gives a 4:1 split; with
  // 3 in flight on the heavy one, 1:1.
  HealthTable health;
  auto eps = endpoints(2);
  eps[0].weight = 4;
  auto lb = LoadBalancer::build(eps, config(LbType::kLeastRequest));
  LbWorkerState st(*lb);
  auto share = [&] {
    int heavy = 0;
    for (uint32_t i = 0; i < 10'000; ++i)
      heavy += pick(*lb, st, health, 0, i * 2654435761u) == 0 ? 1 : 0;
    return heavy;
  };
  EXPECT_NEAR(share(), 8'000, 300);
  for (int i = 0; i < 3; ++i) onRequestStart(st, 0);
  EXPECT_NEAR(share(), 5'000, 300);
}

class LbHashTest : public ::testing::TestWithParam<LbType> {};

std::map<std::string, int> keysToEndpoint(const LoadBalancer& lb, const HealthTable& health,
                                          int keys) {
  LbWorkerState st(lb);
  std::map<std::string, int> out;
  for (int k = 0; k < keys; ++k) {
    const std::string key = "user-" + std::to_string(k);
    const int idx = pick(lb, st, health, hashKey(key), static_cast<uint32_t>(k * 7919));
    EXPECT_GE(idx, 0);
    out[key] = idx;
  }
  return out;
}

TEST_P(LbHashTest, SameKeySameEndpointAcrossInstancesAndInputOrder) {
  HealthTable health;
  auto eps = endpoints(10);
  auto a = LoadBalancer::build(eps, config(GetParam()));
  std::reverse(eps.begin(), eps.end());
  auto b = LoadBalancer::build(eps, config(GetParam()));
  auto ka = keysToEndpoint(*a, health, 2000);
  auto kb = keysToEndpoint(*b, health, 2000);
  std::vector<int> per_endpoint(10, 0);
  for (const auto& [key, idx] : ka) {
    EXPECT_EQ(a->endpoints()[idx].key, b->endpoints()[kb[key]].key) << key;
    ++per_endpoint[static_cast<size_t>(idx)];
  }
  // And the keys spread: every endpoint gets a fair share of 200.
  for (int n : per_endpoint) {
    EXPECT_GT(n, 100);
    EXPECT_LT(n, 300);
  }
}

TEST_P(LbHashTest, RemovingOneOfTenMovesAboutATenth) {
  HealthTable health;
  auto eps = endpoints(10);
  auto before = LoadBalancer::build(eps, config(GetParam()));
  const std::string removed = eps[3].key;
  eps.erase(eps.begin() + 3);
  auto after = LoadBalancer::build(eps, config(GetParam()));
  auto kb = keysToEndpoint(*before, health, 10'000);
  auto ka = keysToEndpoint(*after, health, 10'000);
  int moved = 0, survivor_keys = 0, survivor_moved = 0;
  for (const auto& [key, idx] : kb) {
    const std::string& old_key = before->endpoints()[idx].key;
    const std::string& new_key = after->endpoints()[ka[key]].key;
    EXPECT_NE(new_key, removed);
    if (old_key != new_key) ++moved;
    if (old_key != removed) {
      ++survivor_keys;
      if (old_key != new_key) ++survivor_moved;
    }
  }
  EXPECT_GT(moved, 500);
  EXPECT_LT(moved, 2000);
  // Keys of surviving endpoints stay (all of them on a ring; Maglev allows a little churn).
  EXPECT_LT(survivor_moved, survivor_keys / 50);
}

TEST_P(LbHashTest, UnhealthyEndpointKeysMoveOthersStay) {
  HealthTable health;
  auto lb = LoadBalancer::build(endpoints(10), config(GetParam()));
  auto before = keysToEndpoint(*lb, health, 5000);
  health.set(4, HealthTable::kActiveUnhealthy, true);
  auto after = keysToEndpoint(*lb, health, 5000);
  int moved = 0;
  for (const auto& [key, idx] : before) {
    if (idx == 4) {
      EXPECT_NE(after[key], 4);
      ++moved;
    } else {
      EXPECT_EQ(after[key], idx) << key;
    }
  }
  EXPECT_GT(moved, 200);
}

TEST_P(LbHashTest, AvoidWalksToTheNextEndpoint) {
  HealthTable health;
  auto lb = LoadBalancer::build(endpoints(5), config(GetParam()));
  LbWorkerState st(*lb);
  for (int k = 0; k < 200; ++k) {
    const uint64_t h = hashKey(std::to_string(k));
    const int first = pick(*lb, st, health, h, 1);
    const int retry = pick(*lb, st, health, h, 2, first);
    EXPECT_NE(retry, first);
    EXPECT_EQ(pick(*lb, st, health, h, 3, first), retry);  // deterministic retry target
  }
}

TEST_P(LbHashTest, WeightsShareTheTable) {
  HealthTable health;
  auto eps = endpoints(2);
  eps[0].weight = 3;
  auto lb = LoadBalancer::build(eps, config(GetParam()));
  auto keys = keysToEndpoint(*lb, health, 10'000);
  int first = 0;
  for (const auto& [key, idx] : keys) first += idx == 0 ? 1 : 0;
  EXPECT_NEAR(first, 7500, 500);
}

INSTANTIATE_TEST_SUITE_P(Lb, LbHashTest, ::testing::Values(LbType::kRingHash, LbType::kMaglev),
                         [](const auto& info) {
                           return info.param == LbType::kRingHash ? std::string("RingHash")
                                                                  : std::string("Maglev");
                         });

TEST(LoadBalancerTest, TableSizes) {
  auto ring = LoadBalancer::build(endpoints(3), config(LbType::kRingHash));
  // 100 nodes per weight unit doubled until the 1024 minimum: 400 per endpoint.
  EXPECT_EQ(ring->hashTableSize(0), 1200u);
  LbConfig small = config(LbType::kRingHash);
  small.ring_min_size = 1;
  EXPECT_EQ(LoadBalancer::build(endpoints(3), small)->hashTableSize(0), 300u);
  auto big = LoadBalancer::build(endpoints(30), config(LbType::kRingHash));
  EXPECT_EQ(big->hashTableSize(0), 3000u);
  LbConfig c = config(LbType::kMaglev);
  EXPECT_EQ(LoadBalancer::build(endpoints(3), c)->hashTableSize(0), 65537u);
  c.maglev_table_size = 1000;  // rounded up to a prime
  EXPECT_EQ(LoadBalancer::build(endpoints(3), c)->hashTableSize(0), 1009u);
}

TEST(LoadBalancerTest, UnhealthySkippedByEveryType) {
  HealthTable health;
  health.set(1, HealthTable::kEjected, true);
  health.set(3, HealthTable::kActiveUnhealthy, true);
  for (LbType type : kAllTypes) {
    auto lb = LoadBalancer::build(endpoints(6), config(type));
    LbWorkerState st(*lb);
    std::vector<int> counts = histogram(*lb, st, health, 3000);
    EXPECT_EQ(counts[1], 0) << static_cast<int>(type);
    EXPECT_EQ(counts[3], 0) << static_cast<int>(type);
    EXPECT_EQ(sum(counts, 0, 6), 3000);
  }
}

TEST(LoadBalancerTest, PanicModeSpreadsOverAll) {
  HealthTable health;
  // 1 of 4 healthy (25% < 50%): health is ignored in the level.
  for (uint32_t id : {0u, 1u, 2u}) health.set(id, HealthTable::kActiveUnhealthy, true);
  for (LbType type : {LbType::kRoundRobin, LbType::kRandom, LbType::kLeastRequest}) {
    auto lb = LoadBalancer::build(endpoints(4), config(type));
    LbWorkerState st(*lb);
    std::vector<int> counts = histogram(*lb, st, health, 4000);
    for (int c : counts) EXPECT_GT(c, 700) << static_cast<int>(type);
  }
  // Threshold 0: only the healthy one.
  LbConfig c = config(LbType::kRandom);
  c.panic_threshold_percent = 0;
  auto lb = LoadBalancer::build(endpoints(4), c);
  LbWorkerState st(*lb);
  EXPECT_EQ(histogram(*lb, st, health, 1000)[3], 1000);
  // Nobody healthy: still an answer, whatever the threshold.
  health.set(3, HealthTable::kActiveUnhealthy, true);
  for (LbType type : kAllTypes) {
    auto all_down = LoadBalancer::build(endpoints(4), config(type));
    LbWorkerState s(*all_down);
    EXPECT_EQ(sum(histogram(*all_down, s, health, 100), 0, 4), 100);
  }
  EXPECT_EQ(sum(histogram(*lb, st, health, 100), 0, 4), 100);
}

TEST(LoadBalancerTest, HalfHealthyIsNotPanic) {
  HealthTable health;
  health.set(0, HealthTable::kEjected, true);
  health.set(1, HealthTable::kEjected, true);
  auto lb = LoadBalancer::build(endpoints(4), config(LbType::kRoundRobin));
  LbWorkerState st(*lb);
  std::vector<int> counts = histogram(*lb, st, health, 1000);
  EXPECT_EQ(counts, (std::vector<int>{0, 0, 500, 500}));
}

TEST(LoadBalancerTest, PriorityFailover) {
  HealthTable health;
  auto eps = concat(endpoints(3, 0, "", 0), endpoints(3, 1, "", 10));
  for (LbType type : kAllTypes) {
    auto lb = LoadBalancer::build(eps, config(type));
    LbWorkerState st(*lb);
    for (uint32_t id : {0u, 1u, 2u}) health.set(id, HealthTable::kActiveUnhealthy, false);
    std::vector<int> counts = histogram(*lb, st, health, 1000);
    EXPECT_EQ(sum(counts, 0, 3), 1000) << static_cast<int>(type);  // P0 healthy: all of it
    for (uint32_t id : {0u, 1u, 2u}) health.set(id, HealthTable::kActiveUnhealthy, true);
    counts = histogram(*lb, st, health, 1000);
    EXPECT_EQ(sum(counts, 3, 6), 1000) << static_cast<int>(type);  // P0 down: all to P1
  }
}

TEST(LoadBalancerTest, OverprovisioningSpillsToNextPriority) {
  HealthTable health;
  // P0: 2 of 4 healthy -> 50% × 1.4 = 70% stays; 30% spills to P1.
  auto eps = concat(endpoints(4, 0, "", 0), endpoints(4, 1, "", 10));
  health.set(0, HealthTable::kEjected, true);
  health.set(1, HealthTable::kEjected, true);
  for (LbType type : kAllTypes) {
    auto lb = LoadBalancer::build(eps, config(type));
    LbWorkerState st(*lb);
    std::vector<int> counts = histogram(*lb, st, health, 20'000);
    EXPECT_NEAR(sum(counts, 0, 4), 14'000, 500) << static_cast<int>(type);
    EXPECT_EQ(counts[0] + counts[1], 0);
  }
  // Both levels degraded (P0 30% -> 42%, P1 50% -> 70%, total 112% ≥ 100%): P0 42%, P1 58%.
  HealthTable h2;
  auto ten = concat(endpoints(10, 0, "", 0), endpoints(10, 1, "", 100));
  for (uint32_t id = 0; id < 7; ++id) h2.set(id, HealthTable::kEjected, true);
  for (uint32_t id = 100; id < 105; ++id) h2.set(id, HealthTable::kEjected, true);
  auto lb = LoadBalancer::build(ten, config(LbType::kRandom));
  LbWorkerState st(*lb);
  // P0 at 30% healthy is in panic inside its level, but still only gets its 42%.
  std::vector<int> counts = histogram(*lb, st, h2, 20'000);
  EXPECT_NEAR(sum(counts, 0, 10), 8'400, 500);
  // Total health below 100% (P0 20% -> 28%, P1 30% -> 42%): normalized 40% / 60%.
  h2.set(7, HealthTable::kEjected, true);
  h2.set(105, HealthTable::kEjected, true);
  h2.set(106, HealthTable::kEjected, true);
  counts = histogram(*lb, st, h2, 20'000);
  EXPECT_NEAR(sum(counts, 0, 10), 8'000, 500);
}

class LbZoneTest : public ::testing::Test {
 protected:
  // Zones a (local, pool ids 0-3), b (10-13), c (20-23).
  std::vector<LbEndpoint> eps_ =
      concat(concat(endpoints(4, 0, "a", 0), endpoints(4, 0, "b", 10)), endpoints(4, 0, "c", 20));
  HealthTable health_;
  LbConfig zoned(LbType type) {
    LbConfig c = config(type);
    c.local_zone = "a";
    return c;
  }
};

TEST_F(LbZoneTest, HealthyLocalZoneTakesEverything) {
  for (LbType type : {LbType::kRoundRobin, LbType::kRandom, LbType::kLeastRequest}) {
    auto lb = LoadBalancer::build(eps_, zoned(type));
    LbWorkerState st(*lb);
    std::vector<int> counts = histogram(*lb, st, health_, 3000);
    EXPECT_EQ(sum(counts, 0, 4), 3000) << static_cast<int>(type);
  }
  // 3 of 4 local healthy: 75% × 1.4 ≥ 100%, still all local.
  health_.set(0, HealthTable::kEjected, true);
  auto lb = LoadBalancer::build(eps_, zoned(LbType::kRoundRobin));
  LbWorkerState st(*lb);
  EXPECT_EQ(sum(histogram(*lb, st, health_, 3000), 1, 4), 3000);
}

TEST_F(LbZoneTest, DegradedLocalZoneSpillsByHealthyCounts) {
  health_.set(0, HealthTable::kEjected, true);
  health_.set(1, HealthTable::kEjected, true);  // a: 2/4 -> 70% local
  health_.set(20, HealthTable::kEjected, true);
  health_.set(21, HealthTable::kEjected, true);  // c: 2 healthy, b: 4 -> 20% b, 10% c
  for (LbType type : {LbType::kRoundRobin, LbType::kRandom, LbType::kLeastRequest}) {
    auto lb = LoadBalancer::build(eps_, zoned(type));
    LbWorkerState st(*lb);
    std::vector<int> counts = histogram(*lb, st, health_, 30'000);
    EXPECT_NEAR(sum(counts, 0, 4), 21'000, 600) << static_cast<int>(type);
    EXPECT_NEAR(sum(counts, 4, 8), 6'000, 500) << static_cast<int>(type);
    EXPECT_NEAR(sum(counts, 8, 12), 3'000, 400) << static_cast<int>(type);
    EXPECT_EQ(counts[0] + counts[1] + counts[8] + counts[9], 0);
  }
}

TEST_F(LbZoneTest, NoLocalZoneOrUnknownZoneSpreadsEvenly) {
  LbConfig c = zoned(LbType::kRoundRobin);
  c.local_zone = "";
  auto lb = LoadBalancer::build(eps_, c);
  LbWorkerState st(*lb);
  std::vector<int> counts = histogram(*lb, st, health_, 1200);
  EXPECT_EQ(counts, std::vector<int>(12, 100));
}

TEST_F(LbZoneTest, HashLbsIgnoreZones) {
  auto lb = LoadBalancer::build(eps_, zoned(LbType::kMaglev));
  LbWorkerState st(*lb);
  std::vector<int> counts = histogram(*lb, st, health_, 3000);
  EXPECT_GT(sum(counts, 4, 12), 1500);
}

TEST(LoadBalancerTest, AvoidHonouredWhenAnotherIsEligible) {
  HealthTable health;
  for (LbType type : kAllTypes) {
    auto lb = LoadBalancer::build(endpoints(3), config(type));
    LbWorkerState st(*lb);
    std::vector<int> counts = histogram(*lb, st, health, 600, /*avoid=*/1);
    EXPECT_EQ(counts[1], 0) << static_cast<int>(type);
    // Only the avoided endpoint is healthy: it is still returned.
    health.set(0, HealthTable::kEjected, true);
    health.set(2, HealthTable::kEjected, true);
    LbConfig c = config(type);
    c.panic_threshold_percent = 0;
    auto strict = LoadBalancer::build(endpoints(3), c);
    LbWorkerState s(*strict);
    EXPECT_EQ(histogram(*strict, s, health, 50, 1)[1], 50) << static_cast<int>(type);
    health.set(0, HealthTable::kEjected, false);
    health.set(2, HealthTable::kEjected, false);
  }
}

TEST(LoadBalancerTest, AvoidInSingleEndpointLocalZoneWidensToLevel) {
  HealthTable health;
  auto eps = concat(endpoints(1, 0, "a", 0), endpoints(2, 0, "b", 10));
  LbConfig c = config(LbType::kRoundRobin);
  c.local_zone = "a";
  auto lb = LoadBalancer::build(eps, c);
  LbWorkerState st(*lb);
  EXPECT_EQ(pick(*lb, st, health, 0, 0), 0);
  const int retry = pick(*lb, st, health, 0, 0, /*avoid=*/0);
  EXPECT_TRUE(retry == 1 || retry == 2) << retry;
}

}  // namespace
}  // namespace portico::upstream
