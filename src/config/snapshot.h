// The compiled configuration: an immutable snapshot that workers read without locks.
//
// Built on the main thread by config::compile() from the resources, published to workers as a
// std::shared_ptr<const Snapshot>. A request keeps the snapshot it started with. Everything a
// request needs is reachable from here by index or pointer; nothing in it changes after build.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/backend_settings.h"
#include "config/filters.h"
#include "config/policy.h"
#include "http1/message.h"
#include "net/address.h"
#include "net/tls.h"

namespace portico::router {
class RouteTable;
}
namespace portico::upstream {
class LoadBalancer;
}
namespace portico::security {
struct Policy;
}

namespace portico::config {

// A timeout configured as "0s" (disabled). Any timeout field may hold it; armed as is, it
// fires after ~49 days, so code that does not special-case it still behaves.
inline constexpr uint32_t kTimeoutDisabledMs = UINT32_MAX;

// One upstream endpoint. `pool_id` is stable across reloads for the same address, so workers
// keep their keep-alive connections to it.
struct Endpoint {
  net::Address address;
  std::string authority;   // "ip:port", for logs and stats
  uint32_t pool_id = 0;    // the address: upstream connections are pooled by it
  uint32_t health_id = 0;  // the address in this backend: its health and outlier state
  uint32_t weight = 1;
  uint32_t priority = 0;
  std::string zone;
  std::string hostname;  // the DNS name it was resolved from, "" for an IP endpoint
};

struct Backend {
  std::string ns;
  std::string name;
  std::vector<Endpoint> endpoints;
  uint32_t stats_id = 0;  // index into the workers' backend stats, stable across reloads
  uint32_t index = 0;     // position in Snapshot::backends
  LoadBalancerSettings lb;
  std::optional<ActiveHealthSettings> active_health;
  std::optional<PassiveHealthSettings> passive_health;
  CircuitBreakerSettings circuit_breaker;
  ConnectionPoolSettings pool;
  BackendProtocol protocol = BackendProtocol::kHttp1;  // spec.protocol (grpc implies HTTP/2)
  // spec.tls: connections speak TLS with this context and SNI (null: plain TCP).
  std::shared_ptr<const net::ClientTlsContext> tls;
  std::string tls_server_name;
  // Endpoint choice; endpoints[] is in the balancer's order (its pick() indexes it).
  std::shared_ptr<const upstream::LoadBalancer> balancer;
};

// RequestMirror: a fire-and-forget copy of the request to `backend`.
struct Mirror {
  const Backend* backend = nullptr;  // resolved (unresolved mirrors are dropped at compile)
  uint32_t per_million = 1'000'000;  // share of the requests mirrored
};

// The filters of a backendRef (its own, composed with the rule's), when the rule or the
// backendRef has any: WeightedBackend keeps them behind one pointer (most have none).
struct BackendFilters {
  // The filters of a request sent to this backend: the rule's, then the backendRef's. They
  // point into the Rule or into the own_* fields below; null when there are none.
  const HeaderModifier* request_headers = nullptr;
  const HeaderModifier* response_headers = nullptr;
  const UrlRewrite* url_rewrite = nullptr;
  std::vector<Mirror> mirrors;   // the rule's, then the backendRef's
  bool has_own_filters = false;  // the backendRef has filters (for explain)
  std::unique_ptr<const HeaderModifier> own_request_headers;   // composed rule + backendRef
  std::unique_ptr<const HeaderModifier> own_response_headers;  // composed rule + backendRef
  std::unique_ptr<const UrlRewrite> own_url_rewrite;           // the backendRef's
};

inline const std::vector<Mirror> kNoMirrors;
inline const std::vector<std::string> kNoStrings;
inline const std::string kNoString;

// A backendRef of a rule after resolution. backend == nullptr: unresolved (answers 500).
struct WeightedBackend {
  const Backend* backend = nullptr;
  uint32_t weight = 1;
  std::unique_ptr<const BackendFilters> filters;  // null: no filter, no mirror

  // The effective filters of a request sent to this backend; null when there are none.
  const HeaderModifier* requestHeaders() const {
    return filters ? filters->request_headers : nullptr;
  }
  const HeaderModifier* responseHeaders() const {
    return filters ? filters->response_headers : nullptr;
  }
  const UrlRewrite* urlRewrite() const { return filters ? filters->url_rewrite : nullptr; }
  const std::vector<Mirror>& mirrors() const { return filters ? filters->mirrors : kNoMirrors; }
  // The backendRef's own filters (explain).
  bool hasOwnFilters() const { return filters && filters->has_own_filters; }
  const HeaderModifier* ownRequestHeaders() const {
    return filters ? filters->own_request_headers.get() : nullptr;
  }
  const HeaderModifier* ownResponseHeaders() const {
    return filters ? filters->own_response_headers.get() : nullptr;
  }
  const UrlRewrite* ownUrlRewrite() const {
    return filters ? filters->own_url_rewrite.get() : nullptr;
  }
};

// The settings of a rule that most rules do not have: filters, mirrors, policies. A Rule
// holds them behind one pointer, null when it has none of them.
struct RuleExtras {
  // The rule's own filters (per backend, WeightedBackend holds the effective ones); null when
  // the rule has none of that type.
  std::unique_ptr<const HeaderModifier> request_headers;
  std::unique_ptr<const HeaderModifier> response_headers;
  std::unique_ptr<const Redirect> redirect;  // answered locally; the rule has no backends
  std::unique_ptr<const UrlRewrite> url_rewrite;
  std::unique_ptr<const DirectResponse> direct_response;  // answered locally; no backends
  std::vector<Mirror> mirrors;
  // TrafficPolicy settings attached to the route or rule, merged with the route's own fields
  // (0 / null: the Gateway's). A Gateway policy's overrides still win at request time.
  uint32_t connect_timeout_ms = 0;
  uint32_t upstream_idle_ms = 0;  // idle timeout of pooled upstream connections it releases
  std::shared_ptr<const RetryPolicy> retry;
  std::vector<std::string> policy_sources;  // "retry: TrafficPolicy ns/name (HTTPRoute default)"
  // SecurityPolicy sections of the route and rule policies (security/policy.h); null: none.
  // Gateway policies are in PortSettings (the proxy layers them: security::Layers).
  std::shared_ptr<const security::Policy> security;
  // An ExtensionRef filter that did not resolve, or a SecurityPolicy targeting the rule that
  // is invalid (fail closed): the rule answers 500 with this reason (Gateway API: such a
  // filter must not be skipped).
  std::string filter_error;
  // The rule's single PathPrefix value without trailing '/' ("" for "/"), for
  // ReplacePrefixMatch (which requires exactly one PathPrefix match). Set only when the rule
  // has a redirect or a URL rewrite (its own or a backendRef's): nothing else reads it.
  std::string rewrite_prefix;
};

// One HTTPRoute rule as the proxy sees it after a match.
struct Rule {
  std::string route_ns;
  std::string route_name;
  uint32_t rule_index = 0;
  uint32_t route_stats_id = 0;            // per route (ns/name), stable across reloads
  std::vector<WeightedBackend> backends;  // weight-0 entries kept for explain; never chosen
  uint64_t total_weight = 0;              // sum of weights; 0 => 500
  uint32_t request_timeout_ms = 0;        // 0: the Gateway default
  // timeouts.backendRequest: one upstream attempt, request sent to response head; 0: unset
  // (only request_timeout applies).
  uint32_t backend_request_timeout_ms = 0;
  // Filters, mirrors, policy settings: null when the rule has none (use the accessors).
  std::unique_ptr<RuleExtras> extras;

  // The extras, created when absent (compile time only).
  RuleExtras& editExtras() {
    if (!extras) extras = std::make_unique<RuleExtras>();
    return *extras;
  }
  const HeaderModifier* requestHeaders() const {
    return extras ? extras->request_headers.get() : nullptr;
  }
  const HeaderModifier* responseHeaders() const {
    return extras ? extras->response_headers.get() : nullptr;
  }
  const Redirect* redirect() const { return extras ? extras->redirect.get() : nullptr; }
  const UrlRewrite* urlRewrite() const { return extras ? extras->url_rewrite.get() : nullptr; }
  const DirectResponse* directResponse() const {
    return extras ? extras->direct_response.get() : nullptr;
  }
  const std::vector<Mirror>& mirrors() const { return extras ? extras->mirrors : kNoMirrors; }
  uint32_t connectTimeoutMs() const { return extras ? extras->connect_timeout_ms : 0; }
  uint32_t upstreamIdleMs() const { return extras ? extras->upstream_idle_ms : 0; }
  const RetryPolicy* retry() const { return extras ? extras->retry.get() : nullptr; }
  const std::vector<std::string>& policySources() const {
    return extras ? extras->policy_sources : kNoStrings;
  }
  const security::Policy* security() const { return extras ? extras->security.get() : nullptr; }
  const std::string& filterError() const { return extras ? extras->filter_error : kNoString; }
  const std::string& rewritePrefix() const { return extras ? extras->rewrite_prefix : kNoString; }
};

// Client-side and upstream settings of the listeners on one port.
struct PortSettings {
  http1::Limits limits;
  uint32_t header_timeout_ms = 10'000;   // whole request head must arrive within this
  uint32_t body_timeout_ms = 30'000;     // max gap between two reads of a request body
  uint32_t idle_timeout_ms = 60'000;     // keep-alive connection with no request
  uint32_t connect_timeout_ms = 2'000;   // upstream connect
  uint32_t request_timeout_ms = 15'000;  // request start to response head (504 beyond)
  // HTTP/2 clients: streams at once per connection, and the flow-control windows Portico
  // grants (what one stream / one connection may make it buffer, each way). The decoded size
  // of a header block is bounded by limits.max_header_bytes.
  uint32_t h2_max_concurrent_streams = 128;
  uint32_t h2_stream_window = 256 * 1024;
  uint32_t h2_connection_window = 4 * 1024 * 1024;
  // TrafficPolicy responseOverride: replaces responses Portico generates (404 page, ...).
  std::vector<ResponseOverride> response_overrides;
  // Route defaults from policies targeting the Gateway (a rule's own settings win).
  std::shared_ptr<const RetryPolicy> retry;
  uint32_t upstream_idle_ms = 0;            // 0: the pool's default
  std::vector<std::string> policy_sources;  // "spec.retry: TrafficPolicy ns/name", for explain
  // Overrides from policies targeting the Gateway: they win over every route setting.
  struct Overrides {
    uint32_t request_timeout_ms = 0;
    uint32_t connect_timeout_ms = 0;
    uint32_t upstream_idle_ms = 0;
    std::shared_ptr<const RetryPolicy> retry;
  } overrides;
  // SecurityPolicies targeting the Gateway: their defaults (a route's or rule's own section
  // wins) and overrides (win over every route's); null when none.
  std::shared_ptr<const security::Policy> security_defaults;
  std::shared_ptr<const security::Policy> security_overrides;
};

// A listening socket (address, port) and the listeners (Gateway × listener) served on it.
struct Port {
  net::Address bind;  // from Gateway spec.addresses, default 0.0.0.0
  uint16_t port = 0;
  PortSettings settings;
  std::shared_ptr<const router::RouteTable> routes;  // listeners on this port and their routes
  // HTTPS: the port's TLS context (certificates by SNI, ALPN, client verification); null for
  // plain HTTP. Offered ALPN protocols: tls->settings().alpn.
  std::shared_ptr<const net::ServerTlsContext> tls;
};

struct ConfigDumpSource;  // config_dump.cc

// A remote JWKS the snapshot's JWT providers use: the gateway fetches it every refresh_ms
// and compiles again when the key set changes (CompileOptions::jwks).
struct JwksSource {
  std::string uri;
  uint32_t refresh_ms = 300'000;  // the smallest cacheDuration of the providers using it
  bool operator==(const JwksSource&) const = default;
};

struct Snapshot {
  uint64_t version = 0;
  std::vector<Port> ports;
  // Stable addresses for WeightedBackend and route results. Shared: a reload that did not
  // change a route reuses its rules, and the backends they point at, from the previous version.
  std::vector<std::shared_ptr<const Backend>> backends;
  // The rules, one entry per route: its first rule. A route's rules are contiguous, in one
  // allocation that the pointer to the first keeps.
  std::vector<std::shared_ptr<const Rule>> rules;
  std::vector<std::string> dns_names;    // DNS endpoint names the config uses (may repeat)
  std::vector<JwksSource> jwks_sources;  // remote JWKS URIs the config uses, sorted by uri
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
