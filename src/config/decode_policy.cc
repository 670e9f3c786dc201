// Decoding of the portico.dev/v1alpha1 kinds Backend and TrafficPolicy.
#include <set>

#include "config/model.h"
#include "config/syntax.h"

namespace portico::config {
namespace {

constexpr size_t kMaxEndpoints = 4096;
constexpr size_t kMaxTargetRefs = 16;

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

}  // namespace

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
    r.error(markOf(res.document), "spec", "Required value");
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

  for (std::string_view key : {"retries", "rateLimit", "faultInjection", "compression", "headers"})
    spec.unsupported(key, std::string("spec.") + std::string(key));
  spec.finish();
  if (r.errorCount() > errors_before) return std::nullopt;
  return p;
}

}  // namespace portico::config
