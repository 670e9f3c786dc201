#include "config/compiler.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "config/loader.h"
#include "config/testing.h"
#include "router/route_table.h"

namespace portico::config {
namespace {

using testing::formatAll;
using testing::TempDir;

constexpr std::string_view kGateway = R"(apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  listeners:
  - {name: http, port: 8080, protocol: HTTP}
---
)";

constexpr std::string_view kBackends = R"(apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {name: api}
spec:
  endpoints: [{address: 10.0.0.1, port: 9001}]
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {name: web}
spec:
  endpoints: [{address: 10.0.0.2, port: 9002}, {address: "::1", port: 9003}]
---
)";

class CompilerTest : public ::testing::Test {
 protected:
  // Writes `text` as config.yaml, loads and compiles it. Returns every diagnostic formatted
  // with the file name replaced by "F".
  std::vector<std::string> compileText(std::string_view text) {
    file_ = dir_.write("config.yaml", text);
    load_ = loadPath(file_);
    EXPECT_EQ(load_.outcome, LoadOutcome::kOk);
    result_ = compile(load_.resources, ids_, 7);
    std::vector<std::string> out;
    for (std::vector<Diagnostic>* list : {&load_.diagnostics, &result_.diagnostics}) {
      for (std::string line : formatAll(*list)) {
        if (line.starts_with(file_)) line = "F" + line.substr(file_.size());
        out.push_back(line);
      }
    }
    return out;
  }

  // The diagnostics without the "no backendRefs" warnings of routes written without backends.
  static std::vector<std::string> withoutNoBackends(const std::vector<std::string>& d) {
    std::vector<std::string> out;
    for (const std::string& line : d)
      if (line.find("no backendRefs") == std::string::npos) out.push_back(line);
    return out;
  }

  const Snapshot& snap() const { return *result_.snapshot; }

  const Port* port(uint16_t number, std::string_view bind_ip = "0.0.0.0") const {
    for (const Port& p : snap().ports)
      if (p.port == number && p.bind.ipString() == bind_ip) return &p;
    return nullptr;
  }

  // "ns/route#rule" for a request on the port, "404", or "no-listener".
  std::string route(std::string_view host, std::string_view path, uint16_t number = 8080) const {
    const Port* p = port(number);
    if (p == nullptr) return "no-port";
    router::RouteInput in;
    in.host = host;
    in.path = path;
    router::RouteDecision d = p->routes->match(in);
    if (d.listener.empty()) return "no-listener";
    if (d.rule == nullptr) return "404";
    return d.rule->route_ns + "/" + d.rule->route_name + "#" + std::to_string(d.rule->rule_index);
  }

  const Rule* ruleFor(std::string_view host, std::string_view path, uint16_t number = 8080) const {
    const Port* p = port(number);
    router::RouteInput in;
    in.host = host;
    in.path = path;
    return p == nullptr ? nullptr : p->routes->match(in).rule;
  }

  nlohmann::json dumpOf(std::string_view kind, std::string_view name) const {
    nlohmann::json dump = nlohmann::json::parse(snap().config_dump_json);
    for (const nlohmann::json& r : dump["resources"])
      if (r["kind"] == kind && r["metadata"]["name"] == name) return r;
    return nullptr;
  }

  std::string joined(const std::vector<std::string>& lines) const {
    std::string out;
    for (const std::string& l : lines) out += l + "\n";
    return out;
  }

  TempDir dir_;
  std::string file_;
  StatsIds ids_;
  LoadResult load_;
  CompileResult result_;
};

TEST_F(CompilerTest, DemoExampleCompilesCleanly) {
  LoadResult load = loadPath(std::string(PORTICO_SOURCE_DIR) + "/examples/demo.yaml");
  ASSERT_EQ(load.outcome, LoadOutcome::kOk);
  EXPECT_TRUE(load.diagnostics.empty());
  result_ = compile(load.resources, ids_, 1);
  EXPECT_TRUE(result_.diagnostics.empty()) << joined(formatAll(result_.diagnostics));
  ASSERT_EQ(snap().ports.size(), 1u);
  EXPECT_EQ(snap().ports[0].bind.toString(), "0.0.0.0:8080");
  EXPECT_EQ(snap().version, 1u);
  EXPECT_EQ(route("localhost:8080", "/api/hello"), "default/demo#0");
  EXPECT_EQ(route("localhost:8080", "/web/"), "default/demo#1");
  EXPECT_EQ(route("localhost:8080", "/other"), "404");
  const Rule* api = ruleFor("x", "/api");
  ASSERT_NE(api, nullptr);
  ASSERT_EQ(api->backends.size(), 1u);
  ASSERT_NE(api->backends[0].backend, nullptr);
  EXPECT_EQ(api->backends[0].backend->name, "api");
  EXPECT_EQ(api->backends[0].backend->endpoints[0].authority, "127.0.0.1:9001");
  EXPECT_EQ(api->total_weight, 1u);
  EXPECT_EQ(snap().route_stat_names, std::vector<std::string>{"default/demo"});
  EXPECT_EQ(snap().backend_stat_names, (std::vector<std::string>{"default/api", "default/web"}));
  EXPECT_EQ(snap().pool_count, 2u);
  EXPECT_EQ(snap().backends.size(), 2u);
}

TEST_F(CompilerTest, ErrorsPointAtFileLineColumnAndField) {
  std::vector<std::string> d = compileText(R"(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches:
    - path: {type: Prefix, value: /x}
    backendRefs:
    - name: api
      weight: 2000000
    - name: api
      port: "80"
    - name: api
      prot: 80
    timeouts: {request: 1.5s}
)");
  EXPECT_EQ(
      d,
      (std::vector<std::string>{
          "F:8:20: error: HTTPRoute default/bad: spec.rules[0].matches[0].path.type: "
          "Unsupported value: \"Prefix\": supported values: \"Exact\", \"PathPrefix\", "
          "\"RegularExpression\"",
          "F:11:15: error: HTTPRoute default/bad: spec.rules[0].backendRefs[0].weight: Invalid "
          "value: 2000000: must be an integer between 0 and 1000000, inclusive",
          "F:13:13: error: HTTPRoute default/bad: spec.rules[0].backendRefs[1].port: Invalid "
          "value: \"80\": must be an integer, not a quoted string",
          "F:15:7: error: HTTPRoute default/bad: spec.rules[0].backendRefs[2].prot: unknown field "
          "\"prot\"; did you mean \"port\"?",
          "F:16:25: error: HTTPRoute default/bad: spec.rules[0].timeouts.request: Invalid value: "
          "\"1.5s\": must be a duration of 1 to 4 parts like \"1h30m\", \"10s\" or \"500ms\" "
          "(units h, m, s, ms; no fractions)"}))
      << joined(d);
}

TEST_F(CompilerTest, OneInvalidRouteIsRejectedAloneOthersServe) {
  std::vector<std::string> d = compileText(std::string(kGateway) + std::string(kBackends) +
                                           R"(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: good}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {value: /good}}]
    backendRefs: [{name: api}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: broken}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: Exact, value: /a//b}}]
    backendRefs: [{name: api}]
  - matches: [{path: {value: /broken}}]
    backendRefs: [{name: api}]
)");
  EXPECT_EQ(d, (std::vector<std::string>{
                   "F:35:43: error: HTTPRoute default/broken: spec.rules[0].matches[0].path.value: "
                   "Invalid value: \"/a//b\": must not contain '//'"}))
      << joined(d);
  EXPECT_EQ(route("h", "/good"), "default/good#0");
  EXPECT_EQ(route("h", "/broken"), "404");
  nlohmann::json broken = dumpOf("HTTPRoute", "broken");
  EXPECT_EQ(broken["status"]["conditions"][0]["status"], "False");
  EXPECT_EQ(broken["status"]["conditions"][0]["reason"], "UnsupportedValue");
  EXPECT_EQ(dumpOf("HTTPRoute", "good")["status"]["parents"][0]["conditions"][0]["status"], "True");
}

TEST_F(CompilerTest, UnimplementedMatchesAndFiltersRejectTheRoute) {
  std::vector<std::string> d = compileText(std::string(kGateway) + std::string(kBackends) +
                                           R"(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: fancy}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches:
    - path: {type: RegularExpression, value: "/v[0-9]+"}
      headers: [{name: x-canary, value: "true"}]
      queryParams: [{name: v, value: "2", type: RegularExpression}]
      method: POST
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}]}}]
    backendRefs: [{name: api, filters: [{type: Bogus}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: plain}
spec:
  parentRefs: [{name: gw}]
)");
  EXPECT_EQ(d,
            (std::vector<std::string>{
                "F:27:20: error: HTTPRoute default/fancy: spec.rules[0].matches[0].path.type: "
                "RegularExpression path matching is not implemented yet",
                "F:28:16: error: HTTPRoute default/fancy: spec.rules[0].matches[0].headers: "
                "header matching is not implemented yet",
                "F:29:20: error: HTTPRoute default/fancy: spec.rules[0].matches[0].queryParams: "
                "query parameter matching is not implemented yet",
                "F:30:15: error: HTTPRoute default/fancy: spec.rules[0].matches[0].method: "
                "method matching is not implemented yet",
                "F:31:22: error: HTTPRoute default/fancy: spec.rules[0].filters[0].type: filter "
                "RequestHeaderModifier is not implemented yet",
                "F:32:48: error: HTTPRoute default/fancy: spec.rules[0].backendRefs[0].filters[0]."
                "type: Unsupported value: \"Bogus\": supported values: RequestHeaderModifier, "
                "ResponseHeaderModifier, RequestMirror, RequestRedirect, URLRewrite, CORS, "
                "ExtensionRef",
                "F:38:3: warning: HTTPRoute default/plain: spec.rules: no backendRefs: matching "
                "requests answer 500"}))
      << joined(d);
  // "plain" has the default rule (PathPrefix /) and no backends: total weight 0 => 500.
  EXPECT_EQ(route("h", "/v1"), "default/plain#0");
  EXPECT_EQ(ruleFor("h", "/v1")->total_weight, 0u);
}

TEST_F(CompilerTest, InvalidListenerIsRejectedAlone) {
  std::vector<std::string> d = compileText(R"(apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  listeners:
  - {name: http, port: 8080, protocol: HTTP}
  - {name: bad, port: 0, protocol: HTTP}
  - {name: tls, port: 8443, protocol: HTTPS, tls: {certificateRefs: [{name: c}]}}
  - {name: wrong, port: 9090, protocol: HTTP, hostname: "*.*.example.com"}
)");
  EXPECT_EQ(d,
            (std::vector<std::string>{
                "F:7:23: error: Gateway default/gw: spec.listeners[1].port: Invalid value: 0: "
                "must be an integer between 1 and 65535, inclusive",
                "F:8:39: warning: Gateway default/gw: spec.listeners[2].protocol: protocol HTTPS "
                "is not supported yet; listener skipped",
                "F:9:57: error: Gateway default/gw: spec.listeners[3].hostname: Invalid value: "
                "\"*.*.example.com\": a wildcard is allowed only as the whole first label "
                "(\"*.example.com\")"}))
      << joined(d);
  ASSERT_EQ(snap().ports.size(), 1u);
  EXPECT_EQ(snap().ports[0].port, 8080);
  nlohmann::json gw = dumpOf("Gateway", "gw");
  EXPECT_EQ(gw["status"]["conditions"][0]["status"], "True");
  EXPECT_EQ(gw["status"]["conditions"][0]["reason"], "ListenersNotValid");
  EXPECT_EQ(gw["status"]["listeners"][2]["conditions"][0]["reason"], "UnsupportedProtocol");
  EXPECT_EQ(gw["status"]["listeners"][0]["conditions"][2]["type"], "Programmed");
  EXPECT_EQ(gw["status"]["listeners"][0]["conditions"][2]["status"], "True");
}

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
            "value: backendRequest timeout cannot be longer than request timeout");
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

TEST_F(CompilerTest, KindsAndDuplicates) {
  std::vector<std::string> d =
      compileText(std::string(kGateway) + R"(apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: portico}
spec: {controllerName: portico.dev/gateway}
---
apiVersion: v1
kind: Service
metadata: {name: s}
---
apiVersion: portico.dev/v1
kind: Backend
metadata: {name: b}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  listeners: [{name: http, port: 9999, protocol: HTTP}]
)");
  EXPECT_EQ(d, (std::vector<std::string>{
                   "F:9:7: warning: GatewayClass default/portico: kind: kind GatewayClass is not "
                   "supported yet; ignored",
                   "F:14:7: error: Service default/s: kind: Unsupported value: kind Service of "
                   "apiVersion \"v1\": supported kinds are Gateway and HTTPRoute "
                   "(gateway.networking.k8s.io/v1), Backend and TrafficPolicy "
                   "(portico.dev/v1alpha1)",
                   "F:18:7: error: Backend default/b: kind: Unsupported value: \"portico.dev/v1\": "
                   "Backend is served as portico.dev/v1alpha1",
                   "F:24:9: error: Gateway default/gw: metadata.name: Duplicate value: Gateway "
                   "default/gw is already defined at " +
                       file_ + ":1; this definition is ignored"}))
      << joined(d);
  EXPECT_EQ(snap().ports.size(), 1u);
  EXPECT_EQ(snap().ports[0].port, 8080);
}

TEST_F(CompilerTest, StatsIdsAreStableAcrossReloads) {
  std::string routes =
      std::string(kGateway) + std::string(kBackends) + R"(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: one}
spec:
  parentRefs: [{name: gw}]
  rules: [{matches: [{path: {value: /one}}], backendRefs: [{name: api}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: two}
spec:
  parentRefs: [{name: gw}]
  rules: [{matches: [{path: {value: /two}}], backendRefs: [{name: web}]}]
)";
  compileText(routes);
  uint32_t one = ruleFor("h", "/one")->route_stats_id;
  uint32_t two = ruleFor("h", "/two")->route_stats_id;
  uint32_t api_pool = ruleFor("h", "/one")->backends[0].backend->endpoints[0].pool_id;
  uint32_t web_stats = ruleFor("h", "/two")->backends[0].backend->stats_id;
  EXPECT_NE(one, two);

  // Reload with "one" removed and a new route first: the survivors keep their ids.
  compileText(std::string(kGateway) + std::string(kBackends) +
              R"(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: zero}
spec:
  parentRefs: [{name: gw}]
  rules: [{matches: [{path: {value: /zero}}], backendRefs: [{name: api}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: two}
spec:
  parentRefs: [{name: gw}]
  rules: [{matches: [{path: {value: /two}}], backendRefs: [{name: web}]}]
)");
  EXPECT_EQ(ruleFor("h", "/two")->route_stats_id, two);
  EXPECT_EQ(ruleFor("h", "/two")->backends[0].backend->stats_id, web_stats);
  EXPECT_EQ(ruleFor("h", "/zero")->backends[0].backend->endpoints[0].pool_id, api_pool);
  EXPECT_EQ(ruleFor("h", "/zero")->route_stats_id, 2u);
  EXPECT_EQ(snap().route_stats_count, 3u);
  EXPECT_EQ(snap().route_stat_names[one], "default/one");
  EXPECT_EQ(snap().pool_count, 3u);
}

TEST_F(CompilerTest, ConfigDumpHasEveryResource) {
  compileText(std::string(kGateway) + std::string(kBackends) + R"(apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {name: broken, labels: {a: b}}
spec:
  endpoints: [{address: db.internal, port: 5432}]
)");
  nlohmann::json dump = nlohmann::json::parse(snap().config_dump_json);
  EXPECT_EQ(dump["version"], 7);
  ASSERT_EQ(dump["resources"].size(), 4u);
  nlohmann::json broken = dumpOf("Backend", "broken");
  EXPECT_EQ(broken["metadata"]["labels"]["a"], "b");
  EXPECT_EQ(broken["spec"]["endpoints"][0]["port"], 5432);
  EXPECT_EQ(broken["status"]["conditions"][0]["status"], "False");
  EXPECT_EQ(broken["status"]["conditions"][0]["message"],
            "spec.endpoints[0].address: Invalid value: \"db.internal\": DNS endpoints are not "
            "supported yet; use an IP address");
  EXPECT_EQ(dump["ports"][0]["address"], "0.0.0.0:8080");
  EXPECT_EQ(dump["ports"][0]["settings"]["requestTimeoutMs"], 15000);
}

}  // namespace
}  // namespace portico::config
