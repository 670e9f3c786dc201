// Prometheus text exposition (format 0.0.4) of the merged worker shards.
#pragma once

#include <string>
#include <vector>

#include "stats/stats.h"

namespace portico::stats {

struct ExpositionNames {
  const std::vector<std::string>* routes = nullptr;    // by route stats id: "ns/name"
  const std::vector<std::string>* backends = nullptr;  // by backend stats id
};

// Sums every shard (read concurrently with the workers writing them) and renders families
// that `promtool check metrics` accepts: HELP and TYPE for each, counters end in _total,
// durations in seconds, histograms with cumulative buckets and +Inf.
std::string renderPrometheus(const std::vector<const Shard*>& shards, const ExpositionNames& names);

}  // namespace portico::stats
