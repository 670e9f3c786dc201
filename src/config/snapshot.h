// The compiled configuration: an immutable snapshot that workers read without locks.
//
// Built on the main thread by config::compile() from the resources, published to workers as a
// std::shared_ptr<const Snapshot>. A request keeps the snapshot it started with. Everything a
// request needs is reachable from here by index or pointer; nothing in it changes after build.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/filters.h"
#include "http1/message.h"
#include "net/address.h"

namespace portico::router {
class RouteTable;
}

namespace portico::config {

// A timeout configured as "0s" (disabled). Any timeout field may hold it; armed as is, it
// fires after ~49 days, so code that does not special-case it still behaves.
inline constexpr uint32_t kTimeoutDisabledMs = UINT32_MAX;

// One upstream endpoint. `pool_id` is stable across reloads for the same address, so workers
// keep their keep-alive connections to it.
struct Endpoint {
  net::Address address;
  std::string authority;  // "ip:port", for logs and stats
  uint32_t pool_id = 0;
};

struct Backend {
  std::string ns;
  std::string name;
  std::vector<Endpoint> endpoints;
  uint32_t stats_id = 0;  // index into the workers' backend stats, stable across reloads
  uint32_t index = 0;     // position in Snapshot::backends
};

// A backendRef of a rule after resolution. backend == nullptr: unresolved (answers 500).
struct WeightedBackend {
  const Backend* backend = nullptr;
  uint32_t weight = 1;
};

// One HTTPRoute rule as the proxy sees it after a match.
struct Rule {
  std::string route_ns;
  std::string route_name;
  uint32_t rule_index = 0;
  std::vector<WeightedBackend> backends;  // weight-0 entries kept for explain; never chosen
  uint64_t total_weight = 0;              // sum of weights; 0 => 500
  uint32_t route_stats_id = 0;            // per route (ns/name), stable across reloads
  uint32_t request_timeout_ms = 0;        // 0: the Gateway default
  // timeouts.backendRequest: one upstream attempt, request sent to response head; 0: unset
  // (only request_timeout applies).
  uint32_t backend_request_timeout_ms = 0;
  // Filters; null when the rule has none of that type.
  std::unique_ptr<const HeaderModifier> request_headers;
  std::unique_ptr<const HeaderModifier> response_headers;
  std::unique_ptr<const Redirect> redirect;  // answered locally; the rule has no backends
  std::unique_ptr<const UrlRewrite> url_rewrite;
  // The rule's single PathPrefix value without trailing '/' ("" for "/"), for
  // ReplacePrefixMatch (which requires exactly one PathPrefix match).
  std::string rewrite_prefix;
};

// Client-side and upstream settings of the listeners on one port.
struct PortSettings {
  http1::Limits limits;
  uint32_t header_timeout_ms = 10'000;   // whole request head must arrive within this
  uint32_t body_timeout_ms = 30'000;     // max gap between two reads of a request body
  uint32_t idle_timeout_ms = 60'000;     // keep-alive connection with no request
  uint32_t connect_timeout_ms = 2'000;   // upstream connect
  uint32_t request_timeout_ms = 15'000;  // request start to response head (504 beyond)
};

// A listening socket (address, port) and the listeners (Gateway × listener) served on it.
struct Port {
  net::Address bind;  // from Gateway spec.addresses, default 0.0.0.0
  uint16_t port = 0;
  PortSettings settings;
  std::shared_ptr<const router::RouteTable> routes;  // listeners on this port and their routes
};

struct ConfigDumpSource;  // config_dump.cc

struct Snapshot {
  uint64_t version = 0;
  std::vector<Port> ports;
  std::vector<std::unique_ptr<Backend>> backends;  // stable addresses for WeightedBackend
  std::vector<std::unique_ptr<Rule>> rules;        // stable addresses for route results
  // The resources and their status, for admin /config_dump (config::renderConfigDump, main
  // thread only: workers never touch it).
  std::shared_ptr<const ConfigDumpSource> dump;
  uint32_t route_stats_count = 0;
  uint32_t backend_stats_count = 0;
  uint32_t pool_count = 0;
  // Names behind the stats ids, for exposition: index = id.
  std::vector<std::string> route_stat_names;    // "ns/name"
  std::vector<std::string> backend_stat_names;  // "ns/name"
};

}  // namespace portico::config
