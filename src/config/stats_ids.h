// StatsIds: stable small integer ids for per-route, per-backend and per-pool state.
//
// Owned by the main thread and kept across reloads: the same name gets the same id in every
// snapshot, so workers keep the counters and the keep-alive connections of a route, backend or
// endpoint that survives a config change. Ids are dense (0, 1, 2, ...) and never reused; a name
// that disappears keeps its id (its counters stay visible until restart).
// Not thread-safe: only compile() (main thread) calls it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace portico::config {

class StatsIds {
 public:
  StatsIds();
  // Distinct for every StatsIds of the process (never 0), for caches of its ids.
  uint64_t instance() const { return instance_; }

  // Route stats, by "ns/name" of the HTTPRoute.
  uint32_t route(std::string_view ns_name) { return routes_.id(ns_name); }
  // Backend stats, by "ns/name" of the Backend.
  uint32_t backend(std::string_view ns_name) { return backends_.id(ns_name); }
  // Upstream connection pools, by endpoint authority ("10.0.0.1:8080", "[::1]:80").
  uint32_t pool(std::string_view authority) { return pools_.id(authority); }
  // Endpoint health (HealthTable), by "ns/name@authority": per Backend and address.
  uint32_t health(std::string_view key) { return health_.id(key); }

  uint32_t routeCount() const { return routes_.count(); }
  uint32_t backendCount() const { return backends_.count(); }
  uint32_t poolCount() const { return pools_.count(); }
  // Names by id (index = id).
  const std::vector<std::string>& routeNames() const { return routes_.names(); }
  const std::vector<std::string>& backendNames() const { return backends_.names(); }
  const std::vector<std::string>& poolNames() const { return pools_.names(); }

 private:
  class Registry {
   public:
    uint32_t id(std::string_view name);
    uint32_t count() const { return static_cast<uint32_t>(names_.size()); }
    const std::vector<std::string>& names() const { return names_; }

   private:
    struct Hash {
      using is_transparent = void;
      size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    std::unordered_map<std::string, uint32_t, Hash, std::equal_to<>> ids_;
    std::vector<std::string> names_;
  };

  uint64_t instance_;
  Registry routes_;
  Registry backends_;
  Registry pools_;
  Registry health_;
};

}  // namespace portico::config
