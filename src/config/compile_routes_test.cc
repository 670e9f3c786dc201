// Route attachment, backendRef resolution, shared ports and TrafficPolicy.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "config/compiler.h"
#include "config/testing.h"

namespace portico::config {
namespace {

using testing::CompilerTest;
using testing::formatAll;
using testing::kBackends;
using testing::kGateway;

TEST_F(CompilerTest, BackendRefResolutionAndPortFallback) {
  std::vector<std::string> d =
      compileText(std::string(kGateway) + R"(apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {name: portless}
spec:
  endpoints: [{address: 10.0.0.5}, {address: 10.0.0.6, port: 7000}]
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {name: other, namespace: team}
spec:
  endpoints: [{address: 10.1.0.1, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {value: /fallback}}]
    backendRefs: [{name: portless, port: 8080}]
  - matches: [{path: {value: /cross}}]
    backendRefs: [{group: portico.dev, kind: Backend, name: other, namespace: team}]
  - matches: [{path: {value: /broken}}]
    backendRefs:
    - {name: portless}
    - {name: missing, port: 80, weight: 3}
    - {name: cm, kind: ConfigMap, group: ""}
    - {name: other, namespace: team, weight: 0}
)");
  EXPECT_EQ(d, (std::vector<std::string>{
                   "F:32:7: error: HTTPRoute default/r: spec.rules[2].backendRefs[0]: Required "
                   "value: port: Backend default/portless has an endpoint without port "
                   "(spec.endpoints[0]) and this backendRef sets no port; its share of the "
                   "traffic answers 500",
                   "F:33:7: warning: HTTPRoute default/r: spec.rules[2].backendRefs[1]: "
                   "ResolvedRefs=False/BackendNotFound: Backend default/missing not found; its "
                   "share of the traffic answers 500",
                   "F:34:7: warning: HTTPRoute default/r: spec.rules[2].backendRefs[2]: "
                   "ResolvedRefs=False/InvalidKind: backendRef kind ConfigMap is not supported "
                   "(use a portico.dev Backend, or a Service reference that names a Backend); its "
                   "share of the traffic answers 500"}))
      << joined(d);

  const Rule* fallback = ruleFor("h", "/fallback");
  ASSERT_NE(fallback, nullptr);
  const Backend* b = fallback->backends[0].backend;
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(b->endpoints.size(), 2u);
  EXPECT_EQ(b->endpoints[0].authority, "10.0.0.5:8080");  // the ref's port fills in
  EXPECT_EQ(b->endpoints[1].authority, "10.0.0.6:7000");  // the endpoint's own port wins

  const Rule* cross = ruleFor("h", "/cross");
  ASSERT_NE(cross->backends[0].backend, nullptr);
  EXPECT_EQ(cross->backends[0].backend->ns, "team");

  const Rule* broken = ruleFor("h", "/broken");
  ASSERT_EQ(broken->backends.size(), 4u);
  EXPECT_EQ(broken->backends[0].backend, nullptr);
  EXPECT_EQ(broken->backends[1].backend, nullptr);
  EXPECT_EQ(broken->backends[2].backend, nullptr);
  EXPECT_NE(broken->backends[3].backend, nullptr);
  EXPECT_EQ(broken->total_weight, 5u);  // unresolved shares count: they answer 500

  nlohmann::json parent = dumpOf("HTTPRoute", "r")["status"]["parents"][0];
  EXPECT_EQ(parent["conditions"][0]["status"], "True");
  EXPECT_EQ(parent["conditions"][1]["type"], "ResolvedRefs");
  EXPECT_EQ(parent["conditions"][1]["status"], "False");
  EXPECT_EQ(parent["conditions"][1]["reason"], "UnresolvedPort");
  EXPECT_EQ(parent["controllerName"], "portico.dev/gateway");
}

TEST_F(CompilerTest, WeightsAreCopiedAndDefaultToOne) {
  compileText(std::string(kGateway) + std::string(kBackends) +
              R"(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: canary}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: api, weight: 90}, {name: web, weight: 10}, {name: web}]
)");
  const Rule* rule = ruleFor("h", "/");
  ASSERT_NE(rule, nullptr);
  ASSERT_EQ(rule->backends.size(), 3u);
  EXPECT_EQ(rule->backends[0].weight, 90u);
  EXPECT_EQ(rule->backends[1].weight, 10u);
  EXPECT_EQ(rule->backends[2].weight, 1u);
  EXPECT_EQ(rule->total_weight, 101u);
  EXPECT_EQ(rule->backends[1].backend, rule->backends[2].backend);  // one Backend object
}

TEST_F(CompilerTest, HostnamesIntersectWithListeners) {
  std::vector<std::string> d = compileText(R"(apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  listeners:
  - {name: wild, port: 8080, protocol: HTTP, hostname: "*.example.com"}
  - {name: other, port: 8080, protocol: HTTP, hostname: "other.org"}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: some}
spec:
  parentRefs: [{name: gw}]
  hostnames: [a.example.com, other.org, unrelated.net]
  rules: [{matches: [{path: {value: /some}}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: none}
spec:
  parentRefs: [{name: gw, sectionName: wild}]
  hostnames: [unrelated.net]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: all}
spec:
  parentRefs: [{name: gw, sectionName: wild}]
  rules: [{matches: [{path: {value: /all}}]}]
)");
  EXPECT_EQ(route("a.example.com", "/some"), "default/some#0");
  EXPECT_EQ(route("other.org", "/some"), "default/some#0");
  EXPECT_EQ(route("b.example.com", "/some"), "404");  // only a.example.com intersects
  EXPECT_EQ(route("b.example.com", "/all"), "default/all#0");
  EXPECT_EQ(route("other.org", "/all"), "404");  // "all" is attached to "wild" only
  EXPECT_EQ(route("unrelated.net", "/some"), "no-listener");
  d = withoutNoBackends(d);
  ASSERT_EQ(d.size(), 1u) << joined(d);
  EXPECT_EQ(d.back(),
            "F:21:16: warning: HTTPRoute default/none: spec.parentRefs[0]: "
            "Accepted=False/NoMatchingListenerHostname: Gateway default/gw listener \"wild\": no "
            "route hostname matches the listener hostnames")
      << joined(d);
  nlohmann::json gw = dumpOf("Gateway", "gw");
  EXPECT_EQ(gw["status"]["listeners"][0]["attachedRoutes"], 2);
  EXPECT_EQ(gw["status"]["listeners"][1]["attachedRoutes"], 1);
}

TEST_F(CompilerTest, AllowedRoutesNamespacesAndParentSelection) {
  std::vector<std::string> d = compileText(R"(apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  listeners:
  - {name: same, port: 8080, protocol: HTTP, hostname: same.test}
  - name: all
    port: 8080
    protocol: HTTP
    hostname: all.test
    allowedRoutes: {namespaces: {from: All}}
  - {name: other-port, port: 9090, protocol: HTTP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: shop}
spec:
  parentRefs: [{name: gw, namespace: infra}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: local, namespace: infra}
spec:
  parentRefs: [{name: gw, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: denied, namespace: shop}
spec:
  parentRefs: [{name: gw, namespace: infra, sectionName: same}, {name: gw, namespace: infra, sectionName: nope}]
)");
  d = withoutNoBackends(d);
  EXPECT_EQ(route("all.test", "/"), "infra/local#0");  // same age: "infra/local" < "shop/app"
  EXPECT_EQ(route("same.test", "/"), "infra/local#0");
  EXPECT_EQ(route("x", "/", 9090), "404");  // "other-port" admits only its own namespace
  EXPECT_EQ(d, (std::vector<std::string>{
                   "F:30:16: warning: HTTPRoute shop/denied: spec.parentRefs[0]: "
                   "Accepted=False/NotAllowedByListeners: Gateway infra/gw listener \"same\": "
                   "allowedRoutes does not admit HTTPRoutes from namespace shop",
                   "F:30:65: warning: HTTPRoute shop/denied: spec.parentRefs[1]: "
                   "Accepted=False/NoMatchingParent: Gateway infra/gw listener \"nope\": no "
                   "listener with this sectionName/port"}))
      << joined(d);
  // "app" (shop) attaches only to "all"; "local" (infra) to both listeners on port 8080.
  nlohmann::json gw = dumpOf("Gateway", "gw");
  EXPECT_EQ(gw["status"]["listeners"][0]["attachedRoutes"], 1);  // local
  EXPECT_EQ(gw["status"]["listeners"][1]["attachedRoutes"], 2);  // local, app
  EXPECT_EQ(gw["status"]["listeners"][2]["attachedRoutes"], 0);
}

TEST_F(CompilerTest, GatewaysSharePortsByHostnameAndConflictsAreRejected) {
  std::vector<std::string> d = compileText(R"(apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: a, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  listeners: [{name: http, port: 8080, protocol: HTTP, hostname: a.test}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: b, creationTimestamp: "2024-01-02T00:00:00Z"}
spec:
  listeners:
  - {name: http, port: 8080, protocol: HTTP, hostname: b.test}
  - {name: dup, port: 8080, protocol: HTTP, hostname: a.test}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: local}
spec:
  addresses: [{value: 127.0.0.1}]
  listeners: [{name: http, port: 8080, protocol: HTTP}]
)");
  EXPECT_EQ(d,
            (std::vector<std::string>{
                "F:13:5: error: Gateway default/b: spec.listeners[1]: Conflicted: port 8080 with "
                "hostname \"a.test\" is already served by listener default/a/http"}))
      << joined(d);
  ASSERT_EQ(snap().ports.size(), 2u);
  const Port* any = port(8080);
  ASSERT_NE(any, nullptr);
  ASSERT_EQ(any->routes->listeners().size(), 2u);
  EXPECT_EQ(any->routes->listeners()[0].spec.id, "default/a/http");
  EXPECT_EQ(any->routes->listeners()[1].spec.id, "default/b/http");
  ASSERT_NE(port(8080, "127.0.0.1"), nullptr);
  EXPECT_EQ(dumpOf("Gateway", "b")["status"]["listeners"][1]["conditions"][3]["type"],
            "Conflicted");
}

TEST_F(CompilerTest, TrafficPolicySetsPortSettings) {
  std::vector<std::string> d =
      compileText(std::string(kGateway) + R"(apiVersion: portico.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: old, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  timeouts: {requestHeaders: 5s, requestBody: 1m, idle: 0s, connect: 250ms, request: 1h}
  clientLimits: {maxRequestLineBytes: 4096, maxRequestHeadersBytes: 16384, maxRequestHeaders: 50}
---
apiVersion: portico.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: young, creationTimestamp: "2024-02-01T00:00:00Z"}
spec:
  targetRefs:
  - {group: gateway.networking.k8s.io, kind: Gateway, name: gw}
  - {group: gateway.networking.k8s.io, kind: Gateway, name: ghost}
  timeouts: {requestHeaders: 7s, connect: 250ms}
)");
  EXPECT_EQ(d, (std::vector<std::string>{
                   "F:23:30: warning: TrafficPolicy default/young: spec.timeouts.requestHeaders: "
                   "Conflicted: on port 8080 this is already set by the older TrafficPolicy "
                   "default/old; ignored there",
                   "F:22:5: warning: TrafficPolicy default/young: spec.targetRefs[1]: "
                   "Accepted=False/TargetNotFound: Gateway default/ghost not found"}))
      << joined(d);
  const PortSettings& s = port(8080)->settings;
  EXPECT_EQ(s.header_timeout_ms, 5000u);
  EXPECT_EQ(s.body_timeout_ms, 60000u);
  EXPECT_EQ(s.idle_timeout_ms, kTimeoutDisabledMs);
  EXPECT_EQ(s.connect_timeout_ms, 250u);
  EXPECT_EQ(s.request_timeout_ms, 3'600'000u);
  EXPECT_EQ(s.limits.max_request_line, 4096u);
  EXPECT_EQ(s.limits.max_header_bytes, 16384u);
  EXPECT_EQ(s.limits.max_headers, 50u);
  nlohmann::json young = dumpOf("TrafficPolicy", "young");
  EXPECT_EQ(young["status"]["ancestors"][0]["conditions"][0]["status"], "True");
  EXPECT_EQ(young["status"]["ancestors"][1]["conditions"][0]["reason"], "TargetNotFound");
}

TEST_F(CompilerTest, RouteTimeouts) {
  std::vector<std::string> d =
      compileText(std::string(kGateway) + R"(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: t}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {value: /a}}]
    timeouts: {request: 10s, backendRequest: 2s}
  - matches: [{path: {value: /b}}]
    timeouts: {request: 0s}
  - matches: [{path: {value: /c}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad}
spec:
  rules:
  - timeouts: {request: 1s, backendRequest: 2s}
)");
  d = withoutNoBackends(d);
  ASSERT_EQ(d.size(), 1u) << joined(d);
  EXPECT_EQ(d[0],
            "F:25:45: error: HTTPRoute default/bad: spec.rules[0].timeouts.backendRequest: Invalid "
            "value: \"2s\": backendRequest timeout cannot be longer than request timeout (1s)");
  EXPECT_EQ(ruleFor("h", "/a")->request_timeout_ms, 10'000u);
  EXPECT_EQ(ruleFor("h", "/a")->backend_request_timeout_ms, 2'000u);
  EXPECT_EQ(ruleFor("h", "/b")->request_timeout_ms, kTimeoutDisabledMs);
  EXPECT_EQ(ruleFor("h", "/c")->request_timeout_ms, 0u);
}

TEST_F(CompilerTest, PrecedenceAcrossRoutesUsesCreationTimestamp) {
  compileText(std::string(kGateway) + R"(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a-young, creationTimestamp: "2024-02-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw}]
  rules: [{matches: [{path: {value: /x}}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: z-old, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw}]
  rules: [{matches: [{path: {value: /x}}, {path: {type: Exact, value: /x/exact}}]}]
)");
  EXPECT_EQ(route("h", "/x"), "default/z-old#0");
  EXPECT_EQ(route("h", "/x/exact"), "default/z-old#0");
}

// "ns/route#rule" for a request with method, "path?query" and headers on port 8080.
std::string routeRequest(const Port* p, std::string_view method, std::string_view target,
                         std::vector<http1::Header> headers = {}) {
  if (p == nullptr) return "no-port";
  router::RouteInput in;
  in.host = "h";
  in.method = method;
  size_t q = target.find('?');
  in.path = target.substr(0, q);
  in.query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  in.headers = headers.data();
  in.header_count = static_cast<uint32_t>(headers.size());
  router::RouteDecision d = p->routes->match(in);
  if (d.rule == nullptr) return "404";
  return d.rule->route_ns + "/" + d.rule->route_name + "#" + std::to_string(d.rule->rule_index);
}

TEST_F(CompilerTest, HeaderQueryMethodAndRegexMatchesAreRouted) {
  std::vector<std::string> d = compileText(std::string(kGateway) + std::string(kBackends) +
                                           R"(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: fancy}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches:
    - path: {type: RegularExpression, value: "/v[0-9]+"}
      headers: [{name: X-Canary, value: "true"}, {name: x-canary, value: "false"}]
      queryParams: [{name: v, value: "2", type: RegularExpression}]
      method: POST
    - path: {type: Exact, value: /other}
      headers: [{name: x-env, type: RegularExpression, value: "prod|staging"}]
    backendRefs: [{name: api}]
  - backendRefs: [{name: web}]
)");
  EXPECT_EQ(withoutNoBackends(d),
            (std::vector<std::string>{
                "F:28:50: warning: HTTPRoute default/fancy: spec.rules[0].matches[0].headers[1]: "
                "Duplicate value: \"x-canary\": only the first match on a name is considered"}))
      << joined(d);
  const Port* p = port(8080);
  EXPECT_EQ(routeRequest(p, "POST", "/v12?v=2", {{"x-canary", "true"}}), "default/fancy#0");
  EXPECT_EQ(routeRequest(p, "POST", "/v12?v=2", {{"x-canary", "false"}}), "default/fancy#1");
  EXPECT_EQ(routeRequest(p, "GET", "/v12?v=2", {{"x-canary", "true"}}), "default/fancy#1");
  EXPECT_EQ(routeRequest(p, "POST", "/v12/x?v=2", {{"x-canary", "true"}}), "default/fancy#1");
  EXPECT_EQ(routeRequest(p, "GET", "/other", {{"X-Env", "staging"}}), "default/fancy#0");
  EXPECT_EQ(routeRequest(p, "GET", "/other", {{"X-Env", "dev"}}), "default/fancy#1");
}

// A route's rules share one allocation (a block sized for its rule count, up to the 16 the
// decoder admits): every rule is reachable with its own index and settings.
TEST_F(CompilerTest, EveryRuleOfARouteIsItsOwn) {
  std::string text = std::string(kGateway) + std::string(kBackends);
  for (int rules : {1, 2, 16}) {
    text += "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r" +
            std::to_string(rules) + "}\nspec:\n  parentRefs: [{name: gw}]\n  rules:\n";
    for (int i = 0; i < rules; ++i) {
      text += "  - matches: [{path: {type: Exact, value: /r" + std::to_string(rules) + "/" +
              std::to_string(i) + "}}]\n    backendRefs: [{name: " + (i % 2 ? "web" : "api") +
              "}]\n    timeouts: {request: " + std::to_string(i + 1) + "s}\n";
    }
    text += "---\n";
  }
  std::vector<std::string> d = compileText(text);
  EXPECT_TRUE(d.empty()) << joined(d);
  EXPECT_EQ(snap().rules.size(), 3u);  // one block per route
  for (int rules : {1, 2, 16}) {
    for (int i = 0; i < rules; ++i) {
      std::string path = "/r" + std::to_string(rules) + "/" + std::to_string(i);
      EXPECT_EQ(route("x", path), "default/r" + std::to_string(rules) + "#" + std::to_string(i));
      const Rule* rule = ruleFor("x", path);
      ASSERT_NE(rule, nullptr) << path;
      EXPECT_EQ(rule->request_timeout_ms, static_cast<uint32_t>((i + 1) * 1000)) << path;
      ASSERT_EQ(rule->backends.size(), 1u) << path;
      EXPECT_EQ(rule->backends[0].backend->name, i % 2 ? "web" : "api") << path;
    }
  }
}

TEST_F(CompilerTest, InvalidRegexAndHeaderNamesRejectTheRoute) {
  std::vector<std::string> d = compileText(std::string(kGateway) + std::string(kBackends) +
                                           R"(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches:
    - path: {type: RegularExpression, value: "/v(["}
    - headers: [{name: "x env", value: a}, {name: ok, type: RegularExpression, value: "a**"}]
    - queryParams: [{name: q, type: RegularExpression, value: "(?P<x"}]
    backendRefs: [{name: api}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: good}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: web}]}]
)");
  EXPECT_EQ(d,
            (std::vector<std::string>{
                "F:27:46: error: HTTPRoute default/bad: spec.rules[0].matches[0].path.value: "
                "Invalid value: \"/v([\": invalid RE2 regular expression: missing ]: [",
                "F:28:24: error: HTTPRoute default/bad: spec.rules[0].matches[1].headers[0].name: "
                "Invalid value: \"x env\": must be an HTTP header name (token characters only)",
                "F:28:87: error: HTTPRoute default/bad: spec.rules[0].matches[1].headers[1]."
                "value: Invalid value: \"a**\": invalid RE2 regular expression: bad repetition "
                "operator: **",
                "F:29:63: error: HTTPRoute default/bad: spec.rules[0].matches[2].queryParams[0]."
                "value: Invalid value: \"(?P<x\": invalid RE2 regular expression: invalid named "
                "capture group: (?P<x"}))
      << joined(d);
  EXPECT_EQ(route("h", "/v1"), "default/good#0");
  EXPECT_EQ(dumpOf("HTTPRoute", "bad")["status"]["conditions"][0]["status"], "False");
}

}  // namespace
}  // namespace portico::config
