#include "config/compiler.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "config/testing.h"

namespace portico::config {
namespace {

using testing::CompilerTest;
using testing::formatAll;
using testing::kBackends;
using testing::kGateway;

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
  - matches: [{pth: {value: /x}}]
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
          "(units h, m, s, ms; no fractions)",
          "F:17:16: error: HTTPRoute default/bad: spec.rules[1].matches[0].pth: unknown field "
          "\"pth\"; did you mean \"path\"?"}))
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

TEST_F(CompilerTest, UnimplementedFiltersRejectTheRoute) {
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
    filters: [{type: CORS, cors: {allowOrigins: ["*"]}}]
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
                "F:31:22: error: HTTPRoute default/fancy: spec.rules[0].filters[0].type: filter "
                "CORS is not implemented yet",
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

TEST_F(CompilerTest, FiltersCompileIntoTheRule) {
  std::vector<std::string> d = compileText(std::string(kGateway) + std::string(kBackends) +
                                           R"(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: f}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api/}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Env, value: prod}]
        add: [{name: x-tag, value: a}]
        remove: [X-Debug]
    - type: ResponseHeaderModifier
      responseHeaderModifier: {remove: [server]}
    - type: URLRewrite
      urlRewrite: {hostname: internal.svc, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}
    backendRefs: [{name: api}]
  - matches: [{path: {type: Exact, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, statusCode: 301, path: {type: ReplaceFullPath, replaceFullPath: /new}}
)");
  EXPECT_TRUE(d.empty()) << joined(d);
  const Rule* api = ruleFor("x", "/api/a");
  ASSERT_NE(api, nullptr);
  ASSERT_NE(api->requestHeaders(), nullptr);
  EXPECT_EQ(api->requestHeaders()->set[0].name, "x-env");
  EXPECT_EQ(api->requestHeaders()->set[0].value, "prod");
  EXPECT_EQ(api->requestHeaders()->add[0].name, "x-tag");
  EXPECT_EQ(api->requestHeaders()->remove[0], "x-debug");
  ASSERT_NE(api->responseHeaders(), nullptr);
  EXPECT_EQ(api->responseHeaders()->remove[0], "server");
  ASSERT_NE(api->urlRewrite(), nullptr);
  EXPECT_EQ(api->urlRewrite()->hostname, "internal.svc");
  EXPECT_EQ(api->urlRewrite()->path.kind, PathModifierKind::kReplacePrefixMatch);
  EXPECT_EQ(api->rewritePrefix(), "/api");
  EXPECT_EQ(api->redirect(), nullptr);
  const Rule* old = ruleFor("x", "/old");
  ASSERT_NE(old, nullptr);
  ASSERT_NE(old->redirect(), nullptr);
  EXPECT_EQ(old->redirect()->scheme, "https");
  EXPECT_EQ(old->redirect()->status_code, 301);
  EXPECT_EQ(old->redirect()->path.value, "/new");
  EXPECT_EQ(old->requestHeaders(), nullptr);
}

TEST_F(CompilerTest, InvalidFiltersRejectTheRoute) {
  std::vector<std::string> d = compileText(std::string(kGateway) + std::string(kBackends) +
                                           R"(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: f}
spec:
  parentRefs: [{name: gw}]
  rules:
  - filters:
    - {type: RequestRedirect, requestRedirect: {statusCode: 404}}
    - {type: URLRewrite, urlRewrite: {hostname: a.test}}
    backendRefs: [{name: api}]
  - matches: [{path: {type: Exact, value: /x}}]
    filters:
    - {type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /y}}}
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: Host, value: a}], add: [{name: a, value: b}, {name: A, value: c}]}
    - {type: ResponseHeaderModifier, requestHeaderModifier: {}}
  - backendRefs: [{name: api, filters: [{type: RequestRedirect, requestRedirect: {}}]}]
)");
  std::string all = joined(d);
  for (const char* want : {
           "statusCode: Unsupported value: \"404\"",
           "IncompatibleFilters",
           "a rule with a RequestRedirect filter must not have backendRefs",
           "ReplacePrefixMatch requires exactly one match, of type PathPrefix",
           "header \"Host\" cannot be modified by a filter",
           "add[1]: Duplicate value: \"a\"",
           "requestHeaderModifier must not be set for type ResponseHeaderModifier",
           "Unsupported value: \"RequestRedirect\": a backendRef filter cannot answer the request",
       }) {
    EXPECT_NE(all.find(want), std::string::npos) << want << "\n" << all;
  }
  EXPECT_EQ(route("h", "/x"), "404");
}

TEST_F(CompilerTest, InvalidListenerIsRejectedAlone) {
  std::vector<std::string> d = compileText(R"(apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  listeners:
  - {name: http, port: 8080, protocol: HTTP}
  - {name: bad, port: 0, protocol: HTTP}
  - {name: tls, port: 8443, protocol: TLS, tls: {mode: Passthrough}}
  - {name: wrong, port: 9090, protocol: HTTP, hostname: "*.*.example.com"}
)");
  EXPECT_EQ(d, (std::vector<std::string>{
                   "F:7:23: error: Gateway default/gw: spec.listeners[1].port: Invalid value: 0: "
                   "must be an integer between 1 and 65535, inclusive",
                   "F:8:39: warning: Gateway default/gw: spec.listeners[2].protocol: protocol TLS "
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
  EXPECT_EQ(
      d,
      (std::vector<std::string>{
          "F:9:7: warning: GatewayClass default/portico: kind: kind GatewayClass is not "
          "supported yet; ignored",
          "F:14:7: error: Service default/s: kind: Unsupported value: kind Service of "
          "apiVersion \"v1\": supported kinds are Gateway, HTTPRoute and GRPCRoute "
          "(gateway.networking.k8s.io/v1), Backend, TrafficPolicy, HTTPRouteFilter and "
          "SecurityPolicy (portico.dev/v1alpha1), Secret and ConfigMap (v1)",
          "F:17:13: error: Backend default/b: apiVersion: Unsupported value: \"portico.dev/v1\": "
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
  endpoints: [{address: "db internal", port: 5432}]
)");
  nlohmann::json dump = nlohmann::json::parse(renderConfigDump(snap()));
  EXPECT_EQ(dump["version"], 7);
  ASSERT_EQ(dump["resources"].size(), 4u);
  nlohmann::json broken = dumpOf("Backend", "broken");
  EXPECT_EQ(broken["metadata"]["labels"]["a"], "b");
  EXPECT_EQ(broken["spec"]["endpoints"][0]["port"], 5432);
  EXPECT_EQ(broken["status"]["conditions"][0]["status"], "False");
  EXPECT_EQ(broken["status"]["conditions"][0]["message"],
            "spec.endpoints[0].address: Invalid value: \"db internal\": must be an IPv4 or IPv6 "
            "address or a DNS name");
  EXPECT_EQ(dump["ports"][0]["address"], "0.0.0.0:8080");
  EXPECT_EQ(dump["ports"][0]["settings"]["requestTimeoutMs"], 15000);
}

}  // namespace
}  // namespace portico::config
