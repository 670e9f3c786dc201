// Explain: why a request is routed where it is, for `portico explain` and the admin API.
//
// explain() replays RouteTable::match() step by step and records each decision: the listeners
// of the port and why one was chosen, the candidates evaluated before the winning match (in
// precedence order) with the first condition that failed, and the routes of the listener that
// were not candidates because none of their hostnames covers the host. It allocates freely;
// it is meant for diagnostics, not for the request path.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "router/route_table.h"

namespace portico::router {

struct ListenerConsidered {
  std::string id;        // "ns/gateway/listener"
  std::string hostname;  // listener hostname ("" = any)
  bool chosen = false;
  std::string reason;  // "exact hostname match", "hostname x does not match host y", ...
};

// A candidate that did not match, or a route that was not a candidate.
struct NearMiss {
  std::string route;           // "ns/name"; other kinds than HTTPRoute: "GRPCRoute ns/name"
  int32_t rule_index = -1;     // -1: the whole route (hostname reason)
  int32_t match_index = -1;    // -1: the whole route
  std::string route_hostname;  // the route hostname group the candidate came from
  std::string reason;          // the first failing condition
};

struct Explanation {
  // The request as explained (host normalized).
  std::string host;
  std::string method;
  std::string path;
  std::string query;

  std::string listener;  // chosen listener id; empty: no listener accepts the host (404)
  std::vector<ListenerConsidered> listeners;

  // The winner; rule == nullptr when nothing matched (404).
  const config::Rule* rule = nullptr;
  std::string matched_route;  // as NearMiss::route
  int32_t rule_index = -1;
  int32_t match_index = -1;
  std::string matched_hostname;  // route hostname group ("" = route without hostnames)
  std::string why;               // "matches PathPrefix /api, method POST"

  // Candidates evaluated before the winner (all of them when nothing matched), in precedence
  // order, then the routes of the listener whose hostnames do not cover the host.
  std::vector<NearMiss> near_misses;
};

// Any thread; `table` must outlive the result's `rule` pointer use.
Explanation explain(const RouteTable& table, const RouteInput& in);

// Human-readable, several lines, ending in '\n'.
std::string toText(const Explanation& e);

// {"request": {...}, "listener": ..., "listeners": [...], "match": {...} | null,
//  "near_misses": [...]}
nlohmann::json toJson(const Explanation& e);

}  // namespace portico::router
