// Decoding of the portico.dev/v1alpha1 kinds Backend, TrafficPolicy and HTTPRouteFilter.
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
                r.error(c.markOf("type"), c.childPath("type"),
                        "Unsupported value: \"" + type +
                            "\": supported values: \"Value\", \"Range\"");
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
    r.error(res.mark, "spec", "Required value");
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
                      detail = "DNS endpoints are not supported yet; use an IP address";
                    } else {
                      detail = "must be an IPv4 or IPv6 address";
                    }
                    r.error(m.markOf("address"), m.childPath("address"),
                            invalidValue(*address, detail));
                  }
                }
                if (std::optional<int64_t> port = m.integer("port", 1, 65535))
                  e.port = static_cast<uint16_t>(*port);
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
  for (std::string_view key : {"protocol", "tls", "loadBalancer", "healthCheck"})
    spec.unsupported(key, std::string("spec.") + std::string(key));
  spec.finish();
  if (r.errorCount() > errors_before) return std::nullopt;
  return b;
}

std::optional<TrafficPolicyModel> decodeTrafficPolicy(const Resource& res, Reporter& r) {
  int errors_before = r.errorCount();
  TrafficPolicyModel p;
  if (isAbsent(res.spec)) {
    r.error(res.mark, "spec", "Required value");
    return std::nullopt;
  }
  MapReader spec(r, res.spec, "spec");
  YAML::Node targets = spec.take("targetRefs", Need::kRequired);
  forEachItem(
      r, targets, spec.childPath("targetRefs"), kMaxTargetRefs,
      [&](const YAML::Node& item, const std::string& path, size_t) {
        MapReader m(r, item, path);
        std::optional<std::string> group = m.string("group", Need::kRequired);
        std::optional<std::string> kind = m.string("kind", Need::kRequired);
        std::optional<std::string> name = m.string("name", Need::kRequired);
        m.unsupported("sectionName", "targeting a section (listener or rule)");
        m.finish();
        if (!group || !kind || !name) return;
        if (*group == kGatewayGroup && *kind == "Gateway") {
          p.targets.push_back(PolicyTargetModel{Where{markOf(item), path}, *name});
        } else if (*group == kGatewayGroup && (*kind == "HTTPRoute" || *kind == "GRPCRoute")) {
          r.error(m.markOf("kind"), m.childPath("kind"),
                  "targeting kind " + *kind + " is not supported yet (only Gateway)");
        } else {
          r.error(m.markOf("kind"), path,
                  "Unsupported value: " + *group + "/" + *kind +
                      ": targetRefs must name a gateway.networking.k8s.io Gateway");
        }
      });
  if (targets.IsDefined() && targets.IsSequence() && targets.size() == 0)
    r.error(markOf(targets), "spec.targetRefs", "Required value: at least one targetRef");

  MapReader timeouts(r, spec.take("timeouts"), "spec.timeouts");
  readDuration(timeouts, "requestHeaders", &p.request_headers_ms);
  readDuration(timeouts, "requestBody", &p.request_body_ms);
  readDuration(timeouts, "idle", &p.idle_ms);
  readDuration(timeouts, "connect", &p.connect_ms);
  readDuration(timeouts, "request", &p.request_ms);
  timeouts.finish();

  MapReader limits(r, spec.take("clientLimits"), "spec.clientLimits");
  readBytes(limits, "maxRequestLineBytes", 256, 1 << 20, &p.max_request_line_bytes);
  readBytes(limits, "maxRequestHeadersBytes", 1024, 1 << 20, &p.max_request_headers_bytes);
  readBytes(limits, "maxRequestHeaders", 1, 1000, &p.max_request_headers);
  limits.finish();

  if (spec.has("responseOverride")) {
    decodeResponseOverrides(r, spec.take("responseOverride"), spec.childPath("responseOverride"),
                            &p.response_overrides);
  }

  for (std::string_view key : {"retries", "rateLimit", "faultInjection", "compression", "headers"})
    spec.unsupported(key, std::string("spec.") + std::string(key));
  spec.finish();
  if (r.errorCount() > errors_before) return std::nullopt;
  return p;
}

}  // namespace portico::config
