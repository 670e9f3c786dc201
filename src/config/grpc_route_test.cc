// GRPCRoute: decoding into path matches, GRPCRoute precedence, validation, listener kinds,
// and Backend spec.protocol.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "config/compiler.h"
#include "config/testing.h"

namespace portico::config {
namespace {

using testing::CompilerTest;
using ::testing::Contains;
using ::testing::HasSubstr;
using testing::kBackends;
using testing::kGateway;

class GrpcRouteTest : public CompilerTest {
 protected:
  // "ns/route#rule" for a gRPC call (POST, with `headers`), "404" or "no-listener".
  std::string call(std::string_view path, std::vector<http1::Header> headers = {},
                   std::string_view host = "h") const {
    const Port* p = port(8080);
    if (p == nullptr) return "no-port";
    router::RouteInput in;
    in.host = host;
    in.path = path;
    in.method = "POST";
    in.headers = headers.data();
    in.header_count = static_cast<uint32_t>(headers.size());
    router::RouteDecision d = p->routes->match(in);
    if (d.listener.empty()) return "no-listener";
    if (d.rule == nullptr) return "404";
    return d.rule->route_ns + "/" + d.rule->route_name + "#" + std::to_string(d.rule->rule_index);
  }
};

constexpr std::string_view kRouteHead = R"(apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g}
spec:
  parentRefs: [{name: gw}]
)";

TEST_F(GrpcRouteTest, MethodMatchesBecomePathMatches) {
  std::vector<std::string> d = compileText(std::string(kGateway) + std::string(kBackends) +
                                           std::string(kRouteHead) + R"(  rules:
  - matches: [{method: {service: pkg.Svc, method: Get}}]
    backendRefs: [{name: api, port: 80}]
  - matches: [{method: {service: pkg.Svc}}]
    backendRefs: [{name: api, port: 80}]
  - matches: [{method: {method: Ping}}]
    backendRefs: [{name: api, port: 80}]
  - matches: [{method: {type: RegularExpression, service: "re\\.v[0-9]+\\.Svc", method: "L.*"}}]
    backendRefs: [{name: api, port: 80}]
  - matches: [{method: {service: .full.Name, method: Do}}]
    backendRefs: [{name: api, port: 80}]
)");
  EXPECT_EQ(d, std::vector<std::string>{}) << joined(d);
  EXPECT_EQ(call("/pkg.Svc/Get"), "default/g#0");
  EXPECT_EQ(call("/pkg.Svc/Put"), "default/g#1");
  EXPECT_EQ(call("/pkg.SvcX/Put"), "404");  // the service is a whole path segment
  EXPECT_EQ(call("/other.Svc/Ping"), "default/g#2");
  EXPECT_EQ(call("/other.Svc/PingX"), "404");
  EXPECT_EQ(call("/re.v2.Svc/List"), "default/g#3");
  EXPECT_EQ(call("/re.v2.Svc/Get"), "404");
  EXPECT_EQ(call("/re.vX.Svc/List"), "404");
  EXPECT_EQ(call("/full.Name/Do"), "default/g#4");  // a leading dot is not on the wire
  EXPECT_EQ(call("/.full.Name/Do"), "404");
}

TEST_F(GrpcRouteTest, RuleWithoutMatchesAndHeaderMatches) {
  std::vector<std::string> d = compileText(std::string(kGateway) + std::string(kBackends) +
                                           std::string(kRouteHead) + R"(  rules:
  - matches: [{headers: [{name: x-tenant, value: a}]}]
    backendRefs: [{name: api, port: 80}]
  - backendRefs: [{name: web, port: 80}]
)");
  EXPECT_EQ(d, std::vector<std::string>{}) << joined(d);
  EXPECT_EQ(call("/any.Svc/Any", {{"X-Tenant", "a"}}), "default/g#0");
  EXPECT_EQ(call("/any.Svc/Any", {{"x-tenant", "b"}}), "default/g#1");
  EXPECT_EQ(call("/any.Svc/Any"), "default/g#1");
}

// GRPCRoute precedence: characters of the service, then of the method, then header count;
// then the oldest route, then "ns/name". The rules are written in the reverse order.
TEST_F(GrpcRouteTest, PrecedenceFollowsServiceThenMethodThenHeaders) {
  std::vector<std::string> d = compileText(std::string(kGateway) + std::string(kBackends) +
                                           std::string(kRouteHead) + R"(  rules:
  - matches: [{headers: [{name: a, value: "1"}, {name: b, value: "1"}, {name: c, value: "1"}]}]
    backendRefs: [{name: api, port: 80}]
  - matches: [{method: {method: VeryLongMethodName}, headers: [{name: a, value: "1"}]}]
    backendRefs: [{name: api, port: 80}]
  - matches: [{method: {service: s.T}}]
    backendRefs: [{name: api, port: 80}]
  - matches: [{method: {service: s.T}, headers: [{name: a, value: "1"}]}]
    backendRefs: [{name: api, port: 80}]
  - matches: [{method: {service: s.T, method: VeryLongMethodName}}]
    backendRefs: [{name: api, port: 80}]
  - matches: [{method: {type: RegularExpression, service: "s.*"}}]
    backendRefs: [{name: api, port: 80}]
)");
  EXPECT_EQ(d, std::vector<std::string>{}) << joined(d);
  std::vector<http1::Header> all = {{"a", "1"}, {"b", "1"}, {"c", "1"}};
  // Service and method: the most characters.
  EXPECT_EQ(call("/s.T/VeryLongMethodName", all), "default/g#4");
  // Same service characters: a header match first. (HTTPRoute's order on the mapped paths
  // would put the RegularExpression of rule 5 before the PathPrefix "/s.T/" of rules 2 and 3.)
  EXPECT_EQ(call("/s.T/Other", all), "default/g#3");
  EXPECT_EQ(call("/s.T/Other"), "default/g#2");  // ties with rule 5: rule order
  EXPECT_EQ(call("/s.U/Other", all), "default/g#5");
  // No service: method characters first, whatever the header count.
  EXPECT_EQ(call("/x.Y/VeryLongMethodName", all), "default/g#1");
  EXPECT_EQ(call("/x.Y/Other", all), "default/g#0");
  EXPECT_EQ(call("/x.Y/Other"), "404");
}

TEST_F(GrpcRouteTest, ServiceOnlyWithHeadersBeforeServiceOnly) {
  std::vector<std::string> d = compileText(std::string(kGateway) + std::string(kBackends) +
                                           std::string(kRouteHead) + R"(  rules:
  - matches: [{method: {service: s.T}}]
    backendRefs: [{name: api, port: 80}]
  - matches: [{method: {service: s.T}, headers: [{name: a, value: "1"}]}]
    backendRefs: [{name: api, port: 80}]
  - matches: [{method: {method: M}}]
    backendRefs: [{name: api, port: 80}]
)");
  EXPECT_EQ(d, std::vector<std::string>{}) << joined(d);
  EXPECT_EQ(call("/s.T/M", {{"a", "1"}}), "default/g#1");
  EXPECT_EQ(call("/s.T/M"), "default/g#0");
  EXPECT_EQ(call("/u.V/M"), "default/g#2");
}

// Across routes: the same ranking first, then the older route.
TEST_F(GrpcRouteTest, PrecedenceAcrossRoutesAndKinds) {
  std::vector<std::string> d = compileText(std::string(kGateway) + std::string(kBackends) + R"(
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: b-new, creationTimestamp: "2024-02-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{method: {service: s.T}}]
    backendRefs: [{name: api, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: a-old, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{method: {service: s.T}}]
    backendRefs: [{name: api, port: 80}]
  - matches: [{method: {method: M}}]
    backendRefs: [{name: api, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: Exact, value: /u.V/M}}]
    backendRefs: [{name: web, port: 80}]
  - backendRefs: [{name: web, port: 80}]
)");
  EXPECT_EQ(d, std::vector<std::string>{}) << joined(d);
  EXPECT_EQ(call("/s.T/M"), "default/a-old#0");
  // GRPCRoute matches come before HTTPRoute matches of the same hostname group.
  EXPECT_EQ(call("/u.V/M"), "default/a-old#1");
  EXPECT_EQ(call("/index.html"), "default/web#1");
}

TEST_F(GrpcRouteTest, ValidationErrorsPointAtTheField) {
  std::vector<std::string> d = compileText(std::string(kGateway) + std::string(kRouteHead) +
                                           R"(  rules:
  - matches:
    - method: {service: "pkg/Svc", method: Get}
    - method: {service: pkg.Svc, method: "Get.x"}
    - method: {type: Exact}
    - method: {type: Prefix, service: a}
    - method: {type: RegularExpression, service: "(a"}
    - method: {service: a, verb: b}
    filters:
    - {type: URLRewrite, urlRewrite: {hostname: x}}
    - {type: ExtensionRef, extensionRef: {group: portico.dev, kind: HTTPRouteFilter, name: f}}
    sessionPersistence: {}
)");
  std::string all = joined(d);
  EXPECT_THAT(d,
              Contains(HasSubstr(
                  "F:15:25: error: GRPCRoute default/g: spec.rules[0].matches[0].method.service: "
                  "Invalid value: \"pkg/Svc\": service must only contain valid characters")))
      << all;
  EXPECT_THAT(d, Contains(HasSubstr("F:16:42: error: GRPCRoute default/g: "
                                    "spec.rules[0].matches[1].method.method: Invalid value: "
                                    "\"Get.x\": method must only contain valid characters")))
      << all;
  EXPECT_THAT(d, Contains(HasSubstr("F:17:15: error: GRPCRoute default/g: "
                                    "spec.rules[0].matches[2].method: Invalid value: One or both "
                                    "of 'service' or 'method' must be specified")))
      << all;
  EXPECT_THAT(d, Contains(HasSubstr("F:18:22: error: GRPCRoute default/g: "
                                    "spec.rules[0].matches[3].method.type: Unsupported value: "
                                    "\"Prefix\": supported values: \"Exact\", "
                                    "\"RegularExpression\"")))
      << all;
  EXPECT_THAT(d, Contains(HasSubstr("GRPCRoute default/g: spec.rules[0].matches[4].method.service: "
                                    "Invalid value: \"(a\": invalid RE2 regular expression")))
      << all;
  EXPECT_THAT(d,
              Contains(HasSubstr("spec.rules[0].matches[5].method.verb: unknown field \"verb\"")))
      << all;
  EXPECT_THAT(d, Contains(HasSubstr("spec.rules[0].filters[0].type: Unsupported value: "
                                    "\"URLRewrite\": supported values: RequestHeaderModifier, "
                                    "ResponseHeaderModifier, RequestMirror, ExtensionRef")))
      << all;
  EXPECT_THAT(d, Contains(HasSubstr("spec.rules[0].filters[1].type: filter ExtensionRef is not "
                                    "implemented yet for GRPCRoute")))
      << all;
  EXPECT_THAT(d, Contains(HasSubstr("spec.rules[0].sessionPersistence"))) << all;
  nlohmann::json status = dumpOf("GRPCRoute", "g")["status"];
  EXPECT_EQ(status["conditions"][0]["status"], "False") << status.dump();
  EXPECT_EQ(status["conditions"][0]["reason"], "UnsupportedValue") << status.dump();
  EXPECT_EQ(port(8080)->routes->listeners()[0].spec.routes.size(), 0u);
}

TEST_F(GrpcRouteTest, Limits) {
  std::string rules = "  rules:\n";
  for (int i = 0; i < 3; ++i) {
    rules += "  - matches:\n";
    for (int m = 0; m < 50; ++m)
      rules += "    - method: {service: s" + std::to_string(i) + ", method: M" + std::to_string(m) +
               "}\n";
  }
  std::vector<std::string> d =
      compileText(std::string(kGateway) + std::string(kRouteHead) + rules +
                  "  hostnames: [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q]\n");
  EXPECT_THAT(d, Contains(HasSubstr("spec.rules: Too many: 150: at most 128 matches across all "
                                    "rules")))
      << joined(d);
  EXPECT_THAT(d, Contains(HasSubstr("spec.hostnames: Too many"))) << joined(d);
}

TEST_F(GrpcRouteTest, FiltersAndStatus) {
  std::vector<std::string> d =
      compileText(std::string(kGateway) + std::string(kBackends) + std::string(kRouteHead) +
                  R"(  hostnames: [grpc.example.com]
  rules:
  - matches: [{method: {service: pkg.Svc}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-route, value: grpc}]}
    - type: RequestMirror
      requestMirror: {backendRef: {name: web, port: 80}}
    backendRefs:
    - name: api
      port: 80
      weight: 3
      filters:
      - type: ResponseHeaderModifier
        responseHeaderModifier: {add: [{name: x-b, value: "1"}]}
    - {name: web, port: 80, weight: 1}
)");
  EXPECT_EQ(d, std::vector<std::string>{}) << joined(d);
  const Port* p = port(8080);
  router::RouteInput in;
  in.host = "grpc.example.com";
  in.path = "/pkg.Svc/Get";
  const Rule* rule = p->routes->match(in).rule;
  ASSERT_NE(rule, nullptr);
  ASSERT_NE(rule->requestHeaders(), nullptr);
  EXPECT_EQ(rule->requestHeaders()->set[0].name, "x-route");
  EXPECT_EQ(rule->mirrors().size(), 1u);
  ASSERT_EQ(rule->backends.size(), 2u);
  EXPECT_EQ(rule->total_weight, 4u);
  ASSERT_NE(rule->backends[0].filters, nullptr);
  EXPECT_NE(rule->backends[0].filters->response_headers, nullptr);
  EXPECT_EQ(call("/pkg.Svc/Get", {}, "other.example.com"), "404");

  nlohmann::json status = dumpOf("GRPCRoute", "g")["status"];
  ASSERT_EQ(status["parents"].size(), 1u) << status.dump();
  EXPECT_EQ(status["parents"][0]["conditions"][0]["type"], "Accepted") << status.dump();
  EXPECT_EQ(status["parents"][0]["conditions"][0]["status"], "True") << status.dump();
  nlohmann::json gw = dumpOf("Gateway", "gw")["status"]["listeners"][0];
  EXPECT_EQ(gw["attachedRoutes"], 1) << gw.dump();
  EXPECT_EQ(gw["supportedKinds"].size(), 2u) << gw.dump();
  EXPECT_EQ(gw["supportedKinds"][1]["kind"], "GRPCRoute") << gw.dump();
}

TEST_F(GrpcRouteTest, ListenerAllowingOnlyHttpRouteRejectsGrpcRoute) {
  std::vector<std::string> d = compileText(R"(apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  listeners:
  - name: http
    port: 8080
    protocol: HTTP
    allowedRoutes: {kinds: [{kind: HTTPRoute}]}
  - name: grpc
    port: 8081
    protocol: HTTP
    allowedRoutes: {kinds: [{kind: GRPCRoute}]}
---
)" + std::string(kBackends) + std::string(kRouteHead) +
                                           R"(  rules:
  - backendRefs: [{name: api, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: only-http}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  rules:
  - backendRefs: [{name: api, port: 80}]
)");
  EXPECT_THAT(d, Contains(HasSubstr(
                     "warning: GRPCRoute default/only-http: spec.parentRefs[0]: "
                     "Accepted=False/NotAllowedByListeners: Gateway default/gw listener \"http\": "
                     "allowedRoutes.kinds does not include GRPCRoute")))
      << joined(d);
  EXPECT_EQ(call("/a.B/C"), "404");  // 8080 admits HTTPRoutes only
  const Port* grpc = port(8081);
  ASSERT_NE(grpc, nullptr);
  router::RouteInput in;
  in.host = "h";
  in.path = "/a.B/C";
  ASSERT_NE(grpc->routes->match(in).rule, nullptr);
  nlohmann::json listeners = dumpOf("Gateway", "gw")["status"]["listeners"];
  ASSERT_EQ(listeners[0]["supportedKinds"].size(), 1u);
  EXPECT_EQ(listeners[0]["supportedKinds"][0]["kind"], "HTTPRoute");
  ASSERT_EQ(listeners[1]["supportedKinds"].size(), 1u);
  EXPECT_EQ(listeners[1]["supportedKinds"][0]["kind"], "GRPCRoute");
  EXPECT_EQ(listeners[1]["conditions"][1]["status"], "True") << listeners.dump();  // ResolvedRefs
}

TEST_F(GrpcRouteTest, ApiVersionMustBeV1) {
  std::vector<std::string> d =
      compileText(std::string(kGateway) + R"(apiVersion: gateway.networking.k8s.io/v1alpha2
kind: GRPCRoute
metadata: {name: g}
spec: {}
)");
  EXPECT_THAT(d, Contains(HasSubstr("error: GRPCRoute default/g: apiVersion: Unsupported value: "
                                    "\"gateway.networking.k8s.io/v1alpha2\": GRPCRoute is served "
                                    "as gateway.networking.k8s.io/v1")))
      << joined(d);
}

TEST_F(GrpcRouteTest, BackendProtocol) {
  std::vector<std::string> d = compileText(R"(apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {name: g}
spec:
  protocol: grpc
  endpoints: [{address: 10.0.0.1, port: 9001}]
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {name: h2}
spec:
  protocol: http2
  endpoints: [{address: 10.0.0.2, port: 9001}]
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {name: plain}
spec:
  endpoints: [{address: 10.0.0.3, port: 9001}]
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {name: bad}
spec:
  protocol: h3
  endpoints: [{address: 10.0.0.4, port: 9001}]
)");
  EXPECT_EQ(d, (std::vector<std::string>{
                   "F:25:13: error: Backend default/bad: spec.protocol: Unsupported value: \"h3\": "
                   "supported values: \"http1\", \"http2\", \"grpc\""}))
      << joined(d);
  std::map<std::string, BackendProtocol> protocols;
  for (const auto& b : snap().backends) protocols[b->name] = b->protocol;
  EXPECT_EQ(protocols.size(), 3u);
  EXPECT_EQ(protocols["g"], BackendProtocol::kGrpc);
  EXPECT_EQ(protocols["h2"], BackendProtocol::kHttp2);
  EXPECT_EQ(protocols["plain"], BackendProtocol::kHttp1);
  EXPECT_STREQ(backendProtocolName(BackendProtocol::kGrpc), "grpc");
  // /config_dump lists the compiled backends with their protocol.
  nlohmann::json dump = nlohmann::json::parse(renderConfigDump(snap()));
  std::map<std::string, std::string> dumped;
  for (const nlohmann::json& b : dump["backends"]) dumped[b["name"]] = b["protocol"];
  EXPECT_EQ(dumped,
            (std::map<std::string, std::string>{
                {"default/g", "grpc"}, {"default/h2", "http2"}, {"default/plain", "http1"}}));
}

}  // namespace
}  // namespace portico::config
