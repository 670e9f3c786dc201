// CompileCache: a compile that reuses the previous compile's routes gives what a full compile
// of the same resources gives (route decisions, backends, statuses, diagnostics, config dump).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/compiler.h"
#include "config/loader.h"
#include "config/testing.h"
#include "router/route_table.h"

namespace portico::config {
namespace {

using testing::formatAll;

constexpr std::string_view kBase = R"(apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  listeners:
  - {name: http, port: 8080, protocol: HTTP}
  - {name: shop, port: 8080, protocol: HTTP, hostname: shop.example.com}
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {name: api}
spec:
  endpoints: [{address: 10.0.0.1, port: 9001}]
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {name: portless}
spec:
  endpoints: [{address: 10.0.0.5}]
---
apiVersion: portico.dev/v1alpha1
kind: HTTPRouteFilter
metadata: {name: down}
spec:
  directResponse: {statusCode: 503, body: {type: Inline, inline: down}}
---
apiVersion: portico.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: slow}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: timed}]
  timeout: {http: {requestTimeout: 7s}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /a}}]
    backendRefs: [{name: api}, {name: missing, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b}
spec:
  parentRefs: [{name: gw, sectionName: shop}, {name: nogw}]
  hostnames: [shop.example.com, other.example.org]
  rules:
  - matches: [{path: {type: Exact, value: /b}}]
    backendRefs: [{name: portless, port: 8000}]
  - matches: [{path: {type: PathPrefix, value: /down}}]
    filters: [{type: ExtensionRef, extensionRef: {group: portico.dev, kind: HTTPRouteFilter, name: down}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: timed}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /timed}}]
    backendRefs: [{name: api}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: portless, port: 8001}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: c}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /c}}]
    backendRefs: [{name: api, weight: 0}]
)";

// `text` with the first `from` replaced by `to`.
std::string edited(std::string_view text, std::string_view from, std::string_view to) {
  std::string out(text);
  size_t at = out.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) out.replace(at, from.size(), to);
  return out;
}

// Everything a compile result gives that the cache must not change, as text.
std::string describe(const CompileResult& r) {
  std::string out;
  for (const std::string& d : formatAll(r.diagnostics)) out += d + "\n";
  out += renderConfigDump(*r.snapshot);
  const Snapshot& s = *r.snapshot;
  for (const auto& b : s.backends) {
    out += "backend " + std::to_string(b->index) + " " + b->ns + "/" + b->name + ":";
    for (const Endpoint& e : b->endpoints) out += " " + e.authority;
    out += "\n";
  }
  out += "rule blocks " + std::to_string(s.rules.size()) + "\n";
  for (const std::string& n : s.dns_names) out += "dns " + n + "\n";
  static const char* kHosts[] = {"x", "shop.example.com", "other.example.org"};
  static const char* kPaths[] = {"/a", "/b", "/down", "/timed", "/c", "/new", "/z"};
  for (const Port& port : s.ports) {
    for (const char* host : kHosts) {
      for (const char* path : kPaths) {
        router::RouteInput in;
        in.host = host;
        in.path = path;
        in.method = "GET";
        router::RouteDecision d = port.routes->match(in);
        out += port.bind.toString() + " " + host + path + " -> " + std::string(d.listener) + " ";
        if (d.rule == nullptr) {
          out += "404\n";
          continue;
        }
        const Rule& rule = *d.rule;
        out += rule.route_ns + "/" + rule.route_name + "#" + std::to_string(rule.rule_index) +
               " timeout " + std::to_string(rule.request_timeout_ms) + " weight " +
               std::to_string(rule.total_weight) + " stats " + std::to_string(rule.route_stats_id);
        for (const WeightedBackend& wb : rule.backends) {
          out += wb.backend ? " " + wb.backend->name + "@" + std::to_string(wb.backend->index)
                            : std::string(" unresolved");
        }
        for (const Mirror& m : rule.mirrors()) out += " mirror " + m.backend->name;
        if (rule.directResponse()) out += " direct";
        for (const std::string& p : rule.policySources()) out += " [" + p + "]";
        out += "\n";
      }
    }
  }
  return out;
}

class CompileCacheTest : public ::testing::Test {
 protected:
  // Loads `text` as the next version, compiles it with the cache and without, and expects
  // the same results. Returns the cached compile's timings.
  CompileTimings reload(const std::string& text) {
    LoadResult loaded = loader_.loadText(text, "f.yaml");
    EXPECT_EQ(loaded.outcome, LoadOutcome::kOk);
    auto resources = std::make_shared<const std::vector<Resource>>(std::move(loaded.resources));
    ++version_;
    CompileOptions with_cache;
    with_cache.cache = &cache_;
    CompileResult cached = compile(resources, ids_, version_, with_cache);
    CompileResult full = compile(resources, ids_, version_);
    EXPECT_EQ(describe(cached), describe(full));
    EXPECT_EQ(full.timings.routes_reused, 0u);
    previous_ = std::move(cached);  // the next compile reuses from it, as the gateway's does
    return previous_.timings;
  }

  Loader loader_;
  StatsIds ids_;
  CompileCache cache_;
  CompileResult previous_;
  uint64_t version_ = 0;
};

TEST_F(CompileCacheTest, ReusedRoutesGiveWhatAFullCompileGives) {
  std::string base(kBase);
  CompileTimings t = reload(base);
  EXPECT_EQ(t.routes_reused, 0u);
  EXPECT_EQ(t.routes_compiled, 4u);
  // The same text again: every route reused.
  t = reload(base);
  EXPECT_EQ(t.routes_reused, 4u);
  EXPECT_EQ(t.routes_compiled, 0u);
  // One route's path changes.
  std::string text = edited(base, "value: /c}", "value: /new}");
  t = reload(text);
  EXPECT_EQ(t.routes_reused, 3u);
  EXPECT_EQ(t.routes_compiled, 1u);
  // A route with warnings moves down (a route added before it): its diagnostics follow.
  text = edited(
      text, "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: a}",
      "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
      "metadata: {name: z}\nspec:\n  parentRefs: [{name: gw}]\n  rules:\n"
      "  - matches: [{path: {value: /z}}]\n    backendRefs: [{name: nope, "
      "port: 1}]\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: "
      "HTTPRoute\nmetadata: {name: a}");
  t = reload(text);
  EXPECT_EQ(t.routes_reused, 4u);
  EXPECT_EQ(t.routes_compiled, 1u);
  // A route with warnings changes.
  text = edited(text, "    backendRefs: [{name: api}, {name: missing, port: 80}]\n",
                "    backendRefs: [{name: api}]\n");
  t = reload(text);
  EXPECT_EQ(t.routes_compiled, 1u);
  // A route is removed.
  size_t z = text.find(
      "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: z}");
  text.erase(z, text.find("---", z + 3) - z);
  t = reload(text);
  EXPECT_EQ(t.routes_reused, 4u);
  EXPECT_EQ(t.routes_compiled, 0u);
  // A document of an unknown kind added: everything is compiled.
  t = reload(text + "---\napiVersion: example.com/v1\nkind: Other\nmetadata: {name: o}\n");
  EXPECT_EQ(t.routes_reused, 0u);
  t = reload(text);
  EXPECT_EQ(t.routes_reused, 0u);  // and once more when it goes away
  // The route a policy targets changes: the policy applies to the new version.
  text = edited(text, "value: /timed}", "value: /timed/}");
  t = reload(text);
  EXPECT_EQ(t.routes_compiled, 1u);
  t = reload(base);
  EXPECT_GE(t.routes_compiled, 1u);
}

TEST_F(CompileCacheTest, BackendsForPortlessEndpointsStayAsAFullCompileMakesThem) {
  std::string base(kBase);
  reload(base);
  // A backendRef port no route used before: a full compile places the new Backend among the
  // others (the cached compile gives up reusing).
  CompileTimings t =
      reload(edited(base, "{name: portless, port: 8000}", "{name: portless, port: 8002}"));
  EXPECT_EQ(t.routes_reused, 0u);
  // The only user of a portless port goes away: its Backend is not made any more.
  t = reload(edited(base, "requestMirror: {backendRef: {name: portless, port: 8001}}",
                    "requestMirror: {backendRef: {name: api}}"));
  EXPECT_EQ(t.routes_reused, 0u);
  // Back: a route uses a port another route already uses.
  reload(base);
  t = reload(edited(base, "backendRefs: [{name: api, weight: 0}]",
                    "backendRefs: [{name: portless, port: 8000}]"));
  EXPECT_EQ(t.routes_reused, 3u);
  EXPECT_EQ(t.routes_compiled, 1u);
}

TEST_F(CompileCacheTest, ChangesBesidesRoutesCompileEverything) {
  std::string base(kBase);
  reload(base);
  // A Backend changes.
  CompileTimings t =
      reload(edited(base, "address: 10.0.0.1, port: 9001", "address: 10.0.0.9, port: 9001"));
  EXPECT_EQ(t.routes_reused, 0u);
  EXPECT_EQ(t.routes_compiled, 4u);
  // The Gateway changes (a listener hostname: routes attach differently).
  t = reload(edited(base, "hostname: shop.example.com}", "hostname: \"*.example.com\"}"));
  EXPECT_EQ(t.routes_reused, 0u);
  // The policy changes.
  t = reload(edited(base, "requestTimeout: 7s", "requestTimeout: 9s"));
  EXPECT_EQ(t.routes_reused, 0u);
  // The filter goes away.
  t = reload(edited(base, "metadata: {name: down}", "metadata: {name: gone}"));
  EXPECT_EQ(t.routes_reused, 0u);
  t = reload(base);
  EXPECT_EQ(t.routes_reused, 0u);
  t = reload(base);
  EXPECT_EQ(t.routes_reused, 4u);
}

TEST_F(CompileCacheTest, DnsAnswersAndStatsIdsAreDependencies) {
  std::string base(kBase);
  reload(base);
  LoadResult loaded = loader_.loadText(base, "f.yaml");
  auto resources = std::make_shared<const std::vector<Resource>>(std::move(loaded.resources));
  DnsAnswers dns;
  dns.by_name["x.example"] = {"10.9.9.9"};
  CompileOptions options;
  options.cache = &cache_;
  options.dns = &dns;
  EXPECT_EQ(compile(resources, ids_, 50, options).timings.routes_reused, 0u);
  EXPECT_EQ(compile(resources, ids_, 51, options).timings.routes_reused, 4u);
  StatsIds other;
  EXPECT_EQ(compile(resources, other, 52, options).timings.routes_reused, 0u);
}

}  // namespace
}  // namespace portico::config
