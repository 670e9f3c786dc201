// Decoding of Gateway (gateway.networking.k8s.io/v1) specs.
#include <algorithm>
#include <set>

#include "config/model.h"
#include "config/syntax.h"
#include "net/address.h"

namespace portico::config {
namespace {

constexpr size_t kMaxListeners = 64;
constexpr size_t kMaxAddresses = 16;
constexpr size_t kMaxRouteKinds = 8;

void decodeAllowedRoutes(MapReader& listener, ListenerModel* out) {
  Reporter& r = listener.reporter();
  MapReader allowed(r, listener.take("allowedRoutes"), listener.childPath("allowedRoutes"));
  MapReader namespaces(r, allowed.take("namespaces"), allowed.childPath("namespaces"));
  if (std::optional<std::string> from = namespaces.string("from")) {
    if (*from == "All") {
      out->allow_all_namespaces = true;
    } else if (*from == "Selector") {
      r.error(namespaces.markOf("from"), namespaces.childPath("from"),
              "from: Selector is not supported yet (use Same or All)");
    } else if (*from != "Same") {
      r.error(namespaces.markOf("from"), namespaces.childPath("from"),
              "Unsupported value: \"" + *from + "\": supported values: \"Same\", \"All\"");
    }
  }
  namespaces.unsupported("selector", "a namespace selector");
  namespaces.finish();

  YAML::Node kinds = allowed.take("kinds");
  if (!isAbsent(kinds)) {
    bool any_http_route = false, any_grpc_route = false;
    forEachItem(r, kinds, allowed.childPath("kinds"), kMaxRouteKinds,
                [&](const YAML::Node& item, const std::string& path, size_t) {
                  MapReader kind(r, item, path);
                  std::string group = kind.string("group").value_or(std::string(kGatewayGroup));
                  std::optional<std::string> k = kind.string("kind", Need::kRequired);
                  kind.finish();
                  if (!k) return;
                  if (group == kGatewayGroup && *k == "HTTPRoute") {
                    any_http_route = true;
                  } else if (group == kGatewayGroup && *k == "GRPCRoute") {
                    any_grpc_route = true;
                  } else {
                    r.warning(kind.markOf("kind"), path,
                              "ResolvedRefs=False/InvalidRouteKinds: route kind " + group + "/" +
                                  *k + " is not supported (only HTTPRoute and GRPCRoute)");
                  }
                });
    out->allows_http_route = any_http_route;
    out->allows_grpc_route = any_grpc_route;
  }
  allowed.finish();
}

ListenerModel decodeListener(Reporter& r, const YAML::Node& node, const std::string& path,
                             std::set<std::string>* names) {
  int errors_before = r.errorCount();
  ListenerModel l;
  l.where = Where{markOf(node), path};
  MapReader m(r, node, path);
  if (std::optional<std::string> name = m.string("name", Need::kRequired)) {
    std::string problem = checkDnsSubdomain(*name);
    if (!problem.empty()) {
      r.error(m.markOf("name"), m.childPath("name"), invalidValue(*name, problem));
    } else if (!names->insert(*name).second) {
      r.error(m.markOf("name"), m.childPath("name"),
              "Duplicate value: \"" + *name + "\": listener names must be unique");
    }
    l.name = *name;
  }
  if (std::optional<int64_t> port = m.integer("port", 1, 65535, Need::kRequired))
    l.port = static_cast<uint16_t>(*port);
  if (std::optional<std::string> hostname = m.string("hostname")) {
    std::string problem = checkHostname(*hostname, /*allow_wildcard=*/true);
    if (!problem.empty()) {
      r.error(m.markOf("hostname"), m.childPath("hostname"), invalidValue(*hostname, problem));
    }
    l.hostname = *hostname;
  }
  std::optional<std::string> protocol = m.string("protocol", Need::kRequired);
  l.protocol = protocol.value_or("");
  if (protocol && *protocol != "HTTP" && *protocol != "HTTPS") {
    m.ignore("tls");
    m.ignore("allowedRoutes");
    m.finish();
    if (*protocol == "TLS" || *protocol == "TCP" || *protocol == "UDP") {
      r.warning(m.markOf("protocol"), m.childPath("protocol"),
                "protocol " + *protocol + " is not supported yet; listener skipped");
      l.reason = "UnsupportedProtocol";
      l.message = "protocol " + *protocol + " is not supported yet";
    } else {
      r.error(m.markOf("protocol"), m.childPath("protocol"),
              "Unsupported value: \"" + *protocol +
                  "\": supported values: \"HTTP\", \"HTTPS\" (\"TLS\", \"TCP\", \"UDP\" later)");
      l.reason = "UnsupportedProtocol";
      l.message = "unknown protocol " + *protocol;
    }
    l.accepted = false;
    return l;
  }
  if (protocol && *protocol == "HTTPS") {
    decodeListenerTls(m, &l);
  } else {
    if (m.has("tls")) {
      r.error(m.markOf("tls"), m.childPath("tls"),
              "Forbidden: tls must not be set for protocol HTTP");
    }
    m.ignore("tls");
  }
  decodeAllowedRoutes(m, &l);
  m.finish();
  if (r.errorCount() > errors_before) {
    l.accepted = false;
    l.reason = "Invalid";
    l.message = "listener " + path + " is invalid; see the diagnostics";
  }
  return l;
}

}  // namespace

std::optional<GatewayModel> decodeGateway(const Resource& res, Reporter& r) {
  GatewayModel g;
  if (isAbsent(res.spec)) {
    r.error(markOf(res.document), "spec", "Required value");
    return std::nullopt;
  }
  MapReader spec(r, res.spec, "spec");
  if (!spec.valid()) return std::nullopt;
  int errors_start = r.errorCount();
  g.class_name = spec.string("gatewayClassName").value_or("");

  forEachItem(r, spec.take("addresses"), spec.childPath("addresses"), kMaxAddresses,
              [&](const YAML::Node& item, const std::string& path, size_t) {
                MapReader a(r, item, path);
                std::string type = a.string("type").value_or("IPAddress");
                std::optional<std::string> value = a.string("value", Need::kRequired);
                a.finish();
                if (type != "IPAddress") {
                  r.error(a.markOf("type"), a.childPath("type"),
                          "Unsupported value: \"" + type +
                              "\": only IPAddress is supported (Hostname and NamedAddress later)");
                  return;
                }
                if (value && !isIpLiteral(*value)) {
                  r.error(a.markOf("value"), a.childPath("value"),
                          invalidValue(*value, "must be an IPv4 or IPv6 address"));
                  return;
                }
                if (!value) return;
                // Canonical text ("::1" for "[::1]") so that equal addresses share a socket.
                std::string ip =
                    net::Address::parseIp(*value, 0).value_or(net::Address{}).ipString();
                if (std::find(g.addresses.begin(), g.addresses.end(), ip) == g.addresses.end())
                  g.addresses.push_back(ip);
              });
  spec.unsupported("infrastructure", "spec.infrastructure", /*error=*/false);
  spec.unsupported("tls", "Gateway-level TLS", /*error=*/false);
  spec.unsupported("allowedListeners", "ListenerSet attachment", /*error=*/false);
  // Claim "listeners" before finish() so that its errors are counted apart.
  YAML::Node listeners = spec.take("listeners", Need::kRequired);
  spec.finish();
  bool gateway_ok = r.errorCount() == errors_start;

  // Errors inside one listener reject only that listener; a malformed list rejects the Gateway.
  std::set<std::string> names;
  bool listeners_ok = forEachItem(r, listeners, spec.childPath("listeners"), kMaxListeners,
                                  [&](const YAML::Node& item, const std::string& path, size_t) {
                                    g.listeners.push_back(decodeListener(r, item, path, &names));
                                  });
  if (listeners.IsDefined() && listeners.IsSequence() && listeners.size() == 0) {
    r.error(markOf(listeners), spec.childPath("listeners"),
            "Required value: at least one listener");
    listeners_ok = false;
  }
  if (!gateway_ok || !listeners_ok || !listeners.IsDefined()) return std::nullopt;
  return g;
}

}  // namespace portico::config
