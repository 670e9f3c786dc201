// Decoding of the portico.dev/v1alpha1 kinds Backend, TrafficPolicy and HTTPRouteFilter.
#include <array>
#include <cctype>
#include <set>

#include "config/model.h"
#include "config/syntax.h"

namespace portico::config {
namespace {

constexpr size_t kMaxEndpoints = 4096;
constexpr size_t kMaxTargetRefs = 16;
constexpr size_t kMaxResponseOverrides = 16;
constexpr size_t kMaxStatusMatches = 32;
constexpr size_t kMaxResponseBody = 64 * 1024;

template <typename T>
void readBytes(MapReader& m, std::string_view key, int64_t min, int64_t max, Setting<T>* out) {
  if (std::optional<int64_t> v = m.integer(key, min, max)) {
    out->value = static_cast<T>(*v);
    out->where = Where{m.markOf(key), m.childPath(key)};
  }
}

void readDuration(MapReader& m, std::string_view key, Setting<uint64_t>* out) {
  if (std::optional<uint64_t> v = m.duration(key)) {
    out->value = *v;
    out->where = Where{m.markOf(key), m.childPath(key)};
  }
}

// A response body {type: Inline, inline: "..."} into out->body.
void decodeResponseBody(Reporter& r, const YAML::Node& node, const std::string& path,
                        DirectResponse* out) {
  MapReader m(r, node, path);
  std::optional<std::string> type = m.string("type", Need::kRequired);
  if (type && *type != "Inline") {
    if (*type == "ValueRef") {
      r.error(m.markOf("type"), m.childPath("type"),
              "body type ValueRef (a ConfigMap) is not supported yet; use Inline");
    } else {
      r.error(m.markOf("type"), m.childPath("type"),
              "Unsupported value: \"" + *type + "\": supported values: \"Inline\"");
    }
  }
  if (std::optional<std::string> inline_body = m.string("inline", Need::kRequired)) {
    if (inline_body->size() > kMaxResponseBody) {
      r.error(m.markOf("inline"), m.childPath("inline"),
              "Too long: " + std::to_string(inline_body->size()) + " bytes: at most " +
                  std::to_string(kMaxResponseBody));
    }
    out->body = std::move(*inline_body);
  }
  m.ignore("valueRef");
  m.finish();
}

// contentType, body and (when `status_field`) statusCode of a direct or override response.
void decodeResponseFields(MapReader& m, DirectResponse* out) {
  Reporter& r = m.reporter();
  if (std::optional<std::string> ct = m.string("contentType")) {
    bool ok = !ct->empty() && ct->size() <= 256;
    for (char c : *ct)
      if (c < 0x20 || c == 0x7f) ok = false;
    if (!ok) {
      r.error(m.markOf("contentType"), m.childPath("contentType"),
              invalidValue(*ct, "must be a media type without control characters"));
    }
    out->content_type = std::move(*ct);
  }
  if (m.has("body")) decodeResponseBody(r, m.take("body"), m.childPath("body"), out);
  if (std::optional<int64_t> code = m.integer("statusCode", 200, 599))
    out->status_code = static_cast<uint16_t>(*code);
}

// spec.responseOverride[] of a TrafficPolicy (Envoy Gateway's field names).
void decodeResponseOverrides(Reporter& r, const YAML::Node& node, const std::string& path,
                             Setting<std::vector<ResponseOverride>>* out) {
  std::vector<ResponseOverride> list;
  forEachItem(
      r, node, path, kMaxResponseOverrides,
      [&](const YAML::Node& item, const std::string& item_path, size_t) {
        ResponseOverride ro;
        ro.response.status_code = 0;  // keep the original status unless statusCode is set
        MapReader m(r, item, item_path);
        MapReader match(r, m.take("match", Need::kRequired), m.childPath("match"));
        forEachItem(
            r, match.take("statusCodes", Need::kRequired), match.childPath("statusCodes"),
            kMaxStatusMatches, [&](const YAML::Node& sc, const std::string& sc_path, size_t) {
              MapReader c(r, sc, sc_path);
              std::string type = c.string("type").value_or("Value");
              if (type == "Value") {
                if (std::optional<int64_t> v = c.integer("value", 100, 599, Need::kRequired))
                  ro.ranges.emplace_back(static_cast<uint16_t>(*v), static_cast<uint16_t>(*v));
                c.ignore("range");
              } else if (type == "Range") {
                MapReader range(r, c.take("range", Need::kRequired), c.childPath("range"));
                std::optional<int64_t> lo = range.integer("start", 100, 599, Need::kRequired);
                std::optional<int64_t> hi = range.integer("end", 100, 599, Need::kRequired);
                if (lo && hi && *lo > *hi) {
                  r.error(range.markOf("end"), range.childPath("end"),
                          "Invalid value: end must not be less than start");
                } else if (lo && hi) {
                  ro.ranges.emplace_back(static_cast<uint16_t>(*lo), static_cast<uint16_t>(*hi));
                }
                range.finish();
                c.ignore("value");
              } else {
                r.error(
                    c.markOf("type"), c.childPath("type"),
                    "Unsupported value: \"" + type + "\": supported values: \"Value\", \"Range\"");
              }
              c.finish();
            });
        match.finish();
        MapReader resp(r, m.take("response", Need::kRequired), m.childPath("response"));
        decodeResponseFields(resp, &ro.response);
        resp.finish();
        m.finish();
        list.push_back(std::move(ro));
      });
  out->value = std::move(list);
  out->where = Where{markOf(node), path};
}

// A duration field into milliseconds (1ms to 24h); absent leaves *out unchanged.
void readMs(MapReader& m, std::string_view key, uint32_t* out) {
  if (std::optional<uint64_t> v = m.duration(key)) {
    if (*v == 0 || *v > 86'400'000) {
      m.reporter().error(m.markOf(key), m.childPath(key),
                         "Invalid value: must be a duration between 1ms and 24h");
    } else {
      *out = static_cast<uint32_t>(*v);
    }
  }
}

void decodeLoadBalancer(Reporter& r, const YAML::Node& node, const std::string& path,
                        LoadBalancerSettings* lb) {
  MapReader m(r, node, path);
  static constexpr std::pair<std::string_view, LbKind> kTypes[] = {
      {"RoundRobin", LbKind::kRoundRobin},
      {"LeastRequest", LbKind::kLeastRequest},
      {"Random", LbKind::kRandom},
      {"RingHash", LbKind::kRingHash},
      {"Maglev", LbKind::kMaglev}};
  if (std::optional<std::string> type = m.string("type")) {
    bool found = false;
    for (const auto& [name, kind] : kTypes) {
      if (*type == name) {
        lb->type = kind;
        found = true;
      }
    }
    if (!found) {
      r.error(m.markOf("type"), m.childPath("type"),
              "Unsupported value: \"" + *type +
                  "\": supported values: \"RoundRobin\", \"LeastRequest\", \"Random\", "
                  "\"RingHash\", \"Maglev\"");
    }
  }
  bool hashing = lb->type == LbKind::kRingHash || lb->type == LbKind::kMaglev;
  if (m.has("hashOn")) {
    YAML::Node h = m.take("hashOn");
    std::string h_path = m.childPath("hashOn");
    MapReader hm(r, h, h_path);
    int set = 0;
    if (std::optional<std::string> v = hm.string("header")) {
      lb->hash_on = HashOn::kHeader;
      lb->hash_name = *v;
      for (char& c : lb->hash_name)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      ++set;
    }
    if (std::optional<std::string> v = hm.string("cookie")) {
      lb->hash_on = HashOn::kCookie;
      lb->hash_name = *v;
      ++set;
    }
    if (std::optional<std::string> v = hm.string("queryParameter")) {
      lb->hash_on = HashOn::kQueryParameter;
      lb->hash_name = *v;
      ++set;
    }
    if (hm.has("sourceIP")) {
      YAML::Node v = hm.take("sourceIP");
      if (v.IsScalar() && v.Scalar() == "true") {
        lb->hash_on = HashOn::kSourceIp;
        ++set;
      } else {
        r.error(markOf(v), hm.childPath("sourceIP"), "must be true");
      }
    }
    hm.finish();
    if (set != 1) {
      r.error(markOf(h), h_path,
              "Invalid value: exactly one of header, cookie, queryParameter, sourceIP");
    }
    if (!hashing) {
      r.error(markOf(h), h_path, "Forbidden: hashOn applies to types RingHash and Maglev");
    }
  } else if (hashing) {
    r.error(m.mark(), path, "Required value: hashOn: RingHash and Maglev hash on a request key");
  }
  if (std::optional<int64_t> v = m.integer("minimumRingSize", 64, 1 << 20))
    lb->ring_min_size = static_cast<uint32_t>(*v);
  if (std::optional<int64_t> v = m.integer("maglevTableSize", 251, 5'000'011))
    lb->maglev_table_size = static_cast<uint32_t>(*v);
  if (std::optional<int64_t> v = m.integer("panicThresholdPercent", 0, 100))
    lb->panic_threshold_percent = static_cast<uint32_t>(*v);
  m.finish();
}

ActiveHealthSettings decodeActiveHealth(Reporter& r, const YAML::Node& node,
                                        const std::string& path) {
  ActiveHealthSettings a;
  MapReader m(r, node, path);
  std::string type = m.string("type", Need::kRequired).value_or("HTTP");
  if (type == "TCP") {
    a.http = false;
  } else if (type == "GRPC") {
    a.http = false;
    a.grpc = true;
  } else if (type != "HTTP") {
    r.error(m.markOf("type"), m.childPath("type"),
            "Unsupported value: \"" + type + "\": supported values: \"HTTP\", \"TCP\", \"GRPC\"");
  }
  if (m.has("grpc")) {
    MapReader g(r, m.take("grpc"), m.childPath("grpc"));
    if (std::optional<std::string> svc = g.string("service")) a.grpc_service = *svc;
    g.finish();
    if (!a.grpc) r.error(m.markOf("grpc"), m.childPath("grpc"), "Forbidden: for type GRPC only");
  }
  if (m.has("http")) {
    MapReader h(r, m.take("http"), m.childPath("http"));
    if (std::optional<std::string> p = h.string("path")) {
      if (p->empty() || (*p)[0] != '/') {
        r.error(h.markOf("path"), h.childPath("path"), invalidValue(*p, "must start with '/'"));
      }
      a.path = *p;
    }
    if (std::optional<std::string> host = h.string("host")) a.host = *host;
    forEachItem(r, h.take("expectedStatuses"), h.childPath("expectedStatuses"), 32,
                [&](const YAML::Node& item, const std::string& item_path, size_t) {
                  if (std::optional<int64_t> c = readInteger(r, item, item_path, 100, 599)) {
                    auto code = static_cast<uint16_t>(*c);
                    a.expected_statuses.emplace_back(code, code);
                  }
                });
    h.finish();
    if (!a.http) r.error(m.markOf("http"), m.childPath("http"), "Forbidden: for type HTTP only");
  }
  readMs(m, "interval", &a.interval_ms);
  readMs(m, "timeout", &a.timeout_ms);
  readMs(m, "jitter", &a.jitter_ms);
  if (std::optional<int64_t> v = m.integer("healthyThreshold", 1, 100))
    a.healthy_threshold = static_cast<uint32_t>(*v);
  if (std::optional<int64_t> v = m.integer("unhealthyThreshold", 1, 100))
    a.unhealthy_threshold = static_cast<uint32_t>(*v);
  m.finish();
  return a;
}

PassiveHealthSettings decodePassiveHealth(Reporter& r, const YAML::Node& node,
                                          const std::string& path) {
  PassiveHealthSettings p;
  MapReader m(r, node, path);
  if (std::optional<int64_t> v = m.integer("consecutive5XxErrors", 0, 1000))
    p.consecutive_5xx = static_cast<uint32_t>(*v);
  if (std::optional<int64_t> v = m.integer("consecutiveGatewayErrors", 0, 1000))
    p.consecutive_gateway_errors = static_cast<uint32_t>(*v);
  readMs(m, "baseEjectionTime", &p.base_ejection_ms);
  if (std::optional<int64_t> v = m.integer("maxEjectionPercent", 0, 100))
    p.max_ejection_percent = static_cast<uint32_t>(*v);
  // Envoy's sweep interval: here ejections are decided as errors arrive (warning, ignored).
  m.unsupported("interval", "interval (ejections are decided as errors arrive)", false);
  m.finish();
  return p;
}

}  // namespace

std::optional<RouteFilterModel> decodeRouteFilter(const Resource& res, Reporter& r) {
  int errors_before = r.errorCount();
  RouteFilterModel f;
  if (isAbsent(res.spec)) {
    r.error(res.mark, "spec", "Required value");
    return std::nullopt;
  }
  MapReader spec(r, res.spec, "spec");
  if (spec.has("directResponse")) {
    MapReader m(r, spec.take("directResponse"), "spec.directResponse");
    DirectResponse dr;
    decodeResponseFields(m, &dr);
    m.finish();
    f.direct_response = std::move(dr);
  }
  for (std::string_view key : {"urlRewrite", "credentialInjection"})
    spec.unsupported(key, std::string("spec.") + std::string(key));
  spec.finish();
  if (r.errorCount() > errors_before) return std::nullopt;
  if (!f.direct_response) {
    r.error(spec.mark(), "spec", "Required value: directResponse");
    return std::nullopt;
  }
  return f;
}

std::optional<BackendModel> decodeBackend(const Resource& res, Reporter& r) {
  int errors_before = r.errorCount();
  BackendModel b;
  if (isAbsent(res.spec)) {
    r.error(markOf(res.document), "spec", "Required value");
    return std::nullopt;
  }
  MapReader spec(r, res.spec, "spec");
  std::set<std::pair<std::string, uint16_t>> seen;
  YAML::Node endpoints = spec.take("endpoints", Need::kRequired);
  forEachItem(r, endpoints, spec.childPath("endpoints"), kMaxEndpoints,
              [&](const YAML::Node& item, const std::string& path, size_t) {
                MapReader m(r, item, path);
                EndpointModel e;
                e.where = Where{markOf(item), path};
                if (std::optional<std::string> address = m.string("address", Need::kRequired)) {
                  e.address = *address;
                  if (!isIpLiteral(*address)) {
                    std::string detail;
                    if (address->find(':') != std::string::npos &&
                        isIpLiteral(address->substr(0, address->rfind(':')))) {
                      detail = "must be an IP address alone; put the port in \"port\"";
                    } else if (checkHostname(*address, false).empty() || *address == "localhost") {
                      e.dns = true;
                    } else {
                      detail = "must be an IPv4 or IPv6 address or a DNS name";
                    }
                    if (!detail.empty()) {
                      r.error(m.markOf("address"), m.childPath("address"),
                              invalidValue(*address, detail));
                    }
                  }
                }
                if (std::optional<int64_t> port = m.integer("port", 1, 65535))
                  e.port = static_cast<uint16_t>(*port);
                if (std::optional<int64_t> w = m.integer("weight", 1, 128))
                  e.weight = static_cast<uint32_t>(*w);
                if (std::optional<int64_t> pr = m.integer("priority", 0, 8))
                  e.priority = static_cast<uint32_t>(*pr);
                if (std::optional<std::string> z = m.string("zone")) e.zone = *z;
                if (std::optional<std::string> z = m.string("region")) e.region = *z;
                m.finish();
                if (!seen.emplace(e.address, e.port).second) {
                  r.warning(e.where.mark, path,
                            "Duplicate value: endpoint " + e.address +
                                (e.port != 0 ? ":" + std::to_string(e.port) : "") +
                                " is listed twice and gets twice the traffic");
                }
                b.endpoints.push_back(std::move(e));
              });
  if (endpoints.IsDefined() && endpoints.IsSequence() && endpoints.size() == 0) {
    r.warning(markOf(endpoints), "spec.endpoints",
              "no endpoints: requests to this Backend answer 503");
  }
  if (spec.has("loadBalancer")) {
    decodeLoadBalancer(r, spec.take("loadBalancer"), spec.childPath("loadBalancer"),
                       &b.load_balancer);
  }
  if (spec.has("healthCheck")) {
    MapReader hc(r, spec.take("healthCheck"), spec.childPath("healthCheck"));
    if (hc.has("active"))
      b.active_health = decodeActiveHealth(r, hc.take("active"), hc.childPath("active"));
    if (hc.has("passive"))
      b.passive_health = decodePassiveHealth(r, hc.take("passive"), hc.childPath("passive"));
    hc.finish();
  }
  if (spec.has("circuitBreaker")) {
    MapReader cb(r, spec.take("circuitBreaker"), spec.childPath("circuitBreaker"));
    CircuitBreakerSettings& c = b.circuit_breaker;
    for (auto [key, field] : {std::pair{"maxConnections", &c.max_connections},
                              {"maxPendingRequests", &c.max_pending_requests},
                              {"maxParallelRequests", &c.max_parallel_requests},
                              {"maxParallelRetries", &c.max_parallel_retries}}) {
      if (std::optional<int64_t> v = cb.integer(key, 0, 1'000'000))
        *field = static_cast<uint32_t>(*v);
    }
    cb.finish();
  }
  if (spec.has("connectionPool")) {
    MapReader cp(r, spec.take("connectionPool"), spec.childPath("connectionPool"));
    if (std::optional<int64_t> v = cp.integer("maxRequestsPerConnection", 0, 1'000'000))
      b.pool.max_requests_per_connection = static_cast<uint32_t>(*v);
    if (std::optional<int64_t> v = cp.integer("maxIdleConnectionsPerWorker", 0, 100'000))
      b.pool.max_idle_per_worker = static_cast<uint32_t>(*v);
    readMs(cp, "idleTimeout", &b.pool.idle_timeout_ms);
    cp.finish();
  }
  if (std::optional<std::string> protocol = spec.string("protocol")) {
    if (*protocol == "http2") {
      b.protocol = BackendProtocol::kHttp2;
    } else if (*protocol == "grpc") {
      b.protocol = BackendProtocol::kGrpc;
    } else if (*protocol != "http1") {
      r.error(spec.markOf("protocol"), spec.childPath("protocol"),
              "Unsupported value: \"" + *protocol +
                  "\": supported values: \"http1\", \"http2\", \"grpc\"");
    }
  }
  decodeBackendTls(spec, &b);
  spec.finish();
  if (r.errorCount() > errors_before) return std::nullopt;
  return b;
}

namespace {

constexpr std::array<std::string_view, 6> kRetryTriggers = {
    "5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx", "retriable-status-codes"};

void readDurationMs(MapReader& m, std::string_view key, uint32_t* out) {
  if (std::optional<uint64_t> v = m.duration(key)) {
    if (*v == 0 || *v > UINT32_MAX / 2) {
      m.reporter().error(m.markOf(key), m.childPath(key),
                         "Invalid value: must be a duration between 1ms and 24h");
    } else {
      *out = static_cast<uint32_t>(*v);
    }
  }
}

// retry {numRetries, retryOn {triggers, httpStatusCodes}, perRetry {timeout, backOff
// {baseInterval, maxInterval}}, budget {percent, minRetryConcurrency}, retryNonIdempotent,
// bufferLimit}.
RetryPolicy decodeRetry(Reporter& r, const YAML::Node& node, const std::string& path) {
  RetryPolicy p;
  MapReader m(r, node, path);
  if (std::optional<int64_t> n = m.integer("numRetries", 0, 10))
    p.num_retries = static_cast<uint32_t>(*n);
  bool any_trigger = false;
  if (m.has("retryOn")) {
    MapReader on(r, m.take("retryOn"), m.childPath("retryOn"));
    forEachItem(r, on.take("triggers"), on.childPath("triggers"), kRetryTriggers.size(),
                [&](const YAML::Node& item, const std::string& item_path, size_t) {
                  std::optional<std::string> t = readString(r, item, item_path);
                  if (!t) return;
                  any_trigger = true;
                  if (*t == "5xx") {
                    p.on_5xx = true;
                  } else if (*t == "gateway-error") {
                    p.on_gateway_error = true;
                  } else if (*t == "reset") {
                    p.on_reset = true;
                  } else if (*t == "connect-failure") {
                    p.on_connect_failure = true;
                  } else if (*t == "retriable-4xx") {
                    p.on_retriable_4xx = true;
                  } else if (*t != "retriable-status-codes") {
                    r.error(markOf(item), item_path,
                            "Unsupported value: \"" + *t +
                                "\": supported values: \"5xx\", \"gateway-error\", \"reset\", "
                                "\"connect-failure\", \"retriable-4xx\", "
                                "\"retriable-status-codes\"");
                  }
                });
    forEachItem(r, on.take("httpStatusCodes"), on.childPath("httpStatusCodes"), 32,
                [&](const YAML::Node& item, const std::string& item_path, size_t) {
                  if (std::optional<int64_t> c = readInteger(r, item, item_path, 100, 599)) {
                    p.status_codes.push_back(static_cast<uint16_t>(*c));
                    any_trigger = true;
                  }
                });
    on.finish();
  }
  if (!any_trigger) {
    // Envoy Gateway's default: connect-failure and refused-stream (no HTTP/2 here yet).
    p.on_connect_failure = true;
  }
  if (m.has("perRetry")) {
    MapReader per(r, m.take("perRetry"), m.childPath("perRetry"));
    readDurationMs(per, "timeout", &p.per_try_timeout_ms);
    if (per.has("backOff")) {
      MapReader b(r, per.take("backOff"), per.childPath("backOff"));
      readDurationMs(b, "baseInterval", &p.base_interval_ms);
      bool max_set = b.has("maxInterval");
      p.max_interval_ms = p.base_interval_ms * 10;
      readDurationMs(b, "maxInterval", &p.max_interval_ms);
      if (max_set && p.max_interval_ms < p.base_interval_ms) {
        r.error(b.markOf("maxInterval"), b.childPath("maxInterval"),
                "Invalid value: maxInterval must not be less than baseInterval");
      }
      b.finish();
    }
    per.finish();
  }
  if (m.has("budget")) {
    MapReader b(r, m.take("budget"), m.childPath("budget"));
    if (std::optional<int64_t> v = b.integer("percent", 1, 100))
      p.budget_percent = static_cast<uint32_t>(*v);
    if (std::optional<int64_t> v = b.integer("minRetryConcurrency", 0, 100000))
      p.min_concurrency = static_cast<uint32_t>(*v);
    b.finish();
  }
  if (m.has("retryNonIdempotent")) {
    YAML::Node v = m.take("retryNonIdempotent");
    if (v.IsScalar() && (v.Scalar() == "true" || v.Scalar() == "false")) {
      p.retry_non_idempotent = v.Scalar() == "true";
    } else {
      r.error(markOf(v), m.childPath("retryNonIdempotent"), "must be a boolean");
    }
  }
  if (std::optional<int64_t> v = m.integer("bufferLimit", 0, 16 << 20))
    p.buffer_limit = static_cast<uint32_t>(*v);
  m.finish();
  return p;
}

// timeout {http {requestTimeout, connectionIdleTimeout}, tcp {connectTimeout}} and retry
// into `out`; from `m` (the spec or its defaults/overrides).
void decodeRouteSettings(MapReader& m, RouteSettingsModel* out) {
  Reporter& r = m.reporter();
  if (m.has("timeout")) {
    MapReader t(r, m.take("timeout"), m.childPath("timeout"));
    if (t.has("http")) {
      MapReader http(r, t.take("http"), t.childPath("http"));
      readDuration(http, "requestTimeout", &out->request_ms);
      readDuration(http, "connectionIdleTimeout", &out->upstream_idle_ms);
      http.unsupported("maxConnectionDuration", "timeout.http.maxConnectionDuration");
      http.finish();
    }
    if (t.has("tcp")) {
      MapReader tcp(r, t.take("tcp"), t.childPath("tcp"));
      readDuration(tcp, "connectTimeout", &out->connect_ms);
      tcp.finish();
    }
    t.finish();
  }
  if (m.has("retry")) {
    YAML::Node node = m.take("retry");
    out->retry.where = Where{markOf(node), m.childPath("retry")};
    out->retry.value = decodeRetry(r, node, m.childPath("retry"));
  }
}

// timeouts.request / timeouts.connect (Portico's first names) into the defaults, unless the
// timeout block sets them too.
void mergeLegacy(Reporter& r, Setting<uint64_t>& legacy, Setting<uint64_t>* into) {
  if (!legacy.value) return;
  if (into->value) {
    r.error(legacy.where.mark, legacy.where.path,
            "Duplicate value: also set at " + into->where.path + "; keep one");
    return;
  }
  *into = legacy;
}

}  // namespace

std::optional<TrafficPolicyModel> decodeTrafficPolicy(const Resource& res, Reporter& r) {
  int errors_before = r.errorCount();
  TrafficPolicyModel p;
  if (isAbsent(res.spec)) {
    r.error(markOf(res.document), "spec", "Required value");
    return std::nullopt;
  }
  MapReader spec(r, res.spec, "spec");
  YAML::Node targets = spec.take("targetRefs", Need::kRequired);
  bool route_target = false;
  forEachItem(
      r, targets, spec.childPath("targetRefs"), kMaxTargetRefs,
      [&](const YAML::Node& item, const std::string& path, size_t) {
        MapReader m(r, item, path);
        std::optional<std::string> group = m.string("group", Need::kRequired);
        std::optional<std::string> kind = m.string("kind", Need::kRequired);
        std::optional<std::string> name = m.string("name", Need::kRequired);
        std::optional<std::string> section = m.string("sectionName");
        m.finish();
        if (!group || !kind || !name) return;
        if (*group != kGatewayGroup || (*kind != "Gateway" && *kind != "HTTPRoute")) {
          r.error(m.markOf("kind"), path,
                  "Unsupported value: " + *group + "/" + *kind +
                      ": targetRefs must name a gateway.networking.k8s.io Gateway or HTTPRoute");
          return;
        }
        if (section && *kind == "Gateway") {
          r.error(m.markOf("sectionName"), m.childPath("sectionName"),
                  "targeting a Gateway listener is not supported yet (target the Gateway)");
          return;
        }
        route_target = route_target || *kind == "HTTPRoute";
        p.targets.push_back(
            PolicyTargetModel{Where{markOf(item), path}, *kind, *name, section.value_or("")});
      });
  if (targets.IsDefined() && targets.IsSequence() && targets.size() == 0)
    r.error(markOf(targets), "spec.targetRefs", "Required value: at least one targetRef");

  Setting<uint64_t> legacy_request, legacy_connect;
  MapReader timeouts(r, spec.take("timeouts"), "spec.timeouts");
  readDuration(timeouts, "requestHeaders", &p.request_headers_ms);
  readDuration(timeouts, "requestBody", &p.request_body_ms);
  readDuration(timeouts, "idle", &p.idle_ms);
  readDuration(timeouts, "connect", &legacy_connect);
  readDuration(timeouts, "request", &legacy_request);
  timeouts.finish();

  MapReader limits(r, spec.take("clientLimits"), "spec.clientLimits");
  readBytes(limits, "maxRequestLineBytes", 256, 1 << 20, &p.max_request_line_bytes);
  readBytes(limits, "maxRequestHeadersBytes", 1024, 1 << 20, &p.max_request_headers_bytes);
  readBytes(limits, "maxRequestHeaders", 1, 1000, &p.max_request_headers);
  limits.finish();

  // HTTP/2 clients (Envoy Gateway's ClientTrafficPolicy http2 names): what one connection
  // and one stream may make Portico buffer.
  MapReader h2(r, spec.take("http2"), "spec.http2");
  readBytes(h2, "maxConcurrentStreams", 1, 10000, &p.h2_max_concurrent_streams);
  readBytes(h2, "initialStreamWindowSize", 65535, 16 << 20, &p.h2_stream_window);
  readBytes(h2, "initialConnectionWindowSize", 65535, 128 << 20, &p.h2_connection_window);
  h2.finish();

  if (spec.has("responseOverride")) {
    decodeResponseOverrides(r, spec.take("responseOverride"), spec.childPath("responseOverride"),
                            &p.response_overrides);
  }

  decodeRouteSettings(spec, &p.defaults);
  mergeLegacy(r, legacy_request, &p.defaults.request_ms);
  mergeLegacy(r, legacy_connect, &p.defaults.connect_ms);
  for (auto [key, settings] : {std::pair{"defaults", &p.defaults}, {"overrides", &p.overrides}}) {
    if (!spec.has(key)) continue;
    MapReader block(r, spec.take(key), spec.childPath(key));
    RouteSettingsModel inner;
    decodeRouteSettings(block, &inner);
    block.finish();
    auto take = [&](auto& from, auto& to) {
      if (!from.value) return;
      if (to.value) {
        r.error(from.where.mark, from.where.path,
                "Duplicate value: also set at " + to.where.path + "; keep one");
        return;
      }
      to = from;
    };
    take(inner.request_ms, settings->request_ms);
    take(inner.connect_ms, settings->connect_ms);
    take(inner.upstream_idle_ms, settings->upstream_idle_ms);
    take(inner.retry, settings->retry);
  }

  // Client-side settings belong to a Gateway's sockets.
  if (route_target) {
    for (const Where* w :
         {&p.request_headers_ms.where, &p.request_body_ms.where, &p.idle_ms.where,
          &p.max_request_line_bytes.where, &p.max_request_headers_bytes.where,
          &p.max_request_headers.where, &p.h2_max_concurrent_streams.where,
          &p.h2_stream_window.where, &p.h2_connection_window.where, &p.response_overrides.where}) {
      if (!w->path.empty()) {
        r.error(w->mark, w->path,
                "Forbidden: applies to a Gateway's connections; this policy targets an "
                "HTTPRoute (put it in a policy that targets the Gateway)");
      }
    }
  }

  for (std::string_view key : {"rateLimit", "faultInjection", "compression", "headers"})
    spec.unsupported(key, std::string("spec.") + std::string(key));
  spec.finish();
  if (r.errorCount() > errors_before) return std::nullopt;
  return p;
}

}  // namespace portico::config
