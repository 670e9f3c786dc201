// Route-table scale: YAML load and compile time, memory, and match time for growing numbers of
// HTTPRoutes (Google Benchmark). Run by `./dev bench`; figures in docs/benchmarks.md.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <memory>
#include <string>
#include <vector>

#include "config/compiler.h"
#include "config/loader.h"
#include "config/stats_ids.h"
#include "router/route_table.h"

namespace {

using portico::config::compile;
using portico::config::CompileResult;
using portico::config::loadString;
using portico::config::StatsIds;

// One Gateway, one Backend and `routes` HTTPRoutes spread over min(routes, 1000) hostnames,
// each with two path rules.
std::string makeConfig(int routes) {
  std::string y =
      "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\n"
      "spec:\n  listeners: [{name: http, port: 8080, protocol: HTTP}]\n"
      "---\napiVersion: portico.dev/v1alpha1\nkind: Backend\nmetadata: {name: b}\n"
      "spec:\n  endpoints: [{address: 127.0.0.1, port: 9000}]\n";
  int hosts = routes < 1000 ? routes : 1000;
  for (int i = 0; i < routes; ++i) {
    std::string n = std::to_string(i);
    y += "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r" + n +
         "}\nspec:\n  parentRefs: [{name: g}]\n  hostnames: [h" + std::to_string(i % hosts) +
         ".example.com]\n  rules:\n  - matches: [{path: {type: PathPrefix, value: /svc" + n +
         "}}]\n    backendRefs: [{name: b}]\n  - matches: [{path: {type: Exact, value: /exact" + n +
         "}}]\n    backendRefs: [{name: b}]\n";
  }
  return y;
}

void BM_LoadYaml(benchmark::State& state) {
  std::string text = makeConfig(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto loaded = loadString(text, "bench.yaml");
    benchmark::DoNotOptimize(loaded.resources.data());
  }
  state.counters["routes"] = static_cast<double>(state.range(0));
}

void BM_Compile(benchmark::State& state) {
  int routes = static_cast<int>(state.range(0));
  auto loaded = loadString(makeConfig(routes), "bench.yaml");
  if (loaded.resources.size() != static_cast<size_t>(routes) + 2) {
    state.SkipWithError("config did not load");
    return;
  }
  size_t bytes = 0;
  for (auto _ : state) {
    StatsIds ids;
    size_t before = mallinfo2().uordblks;
    CompileResult r = compile(loaded.resources, ids, 1);
    bytes = mallinfo2().uordblks - before;  // what the snapshot (and ids) keep alive
    benchmark::DoNotOptimize(r.snapshot.get());
  }
  state.counters["routes"] = routes;
  state.counters["snapshot_bytes_per_1000_routes"] = static_cast<double>(bytes) * 1000.0 / routes;
}

void BM_Match(benchmark::State& state) {
  int routes = static_cast<int>(state.range(0));
  auto loaded = loadString(makeConfig(routes), "bench.yaml");
  StatsIds ids;
  CompileResult r = compile(loaded.resources, ids, 1);
  if (r.snapshot->ports.empty()) {
    state.SkipWithError("no port compiled");
    return;
  }
  const auto& table = *r.snapshot->ports[0].routes;
  int target = routes / 2;
  std::string host =
      "h" + std::to_string(target % (routes < 1000 ? routes : 1000)) + ".example.com:8080";
  std::string path = "/svc" + std::to_string(target) + "/items/42";
  portico::router::RouteInput in;
  in.host = host;
  in.path = path;
  in.method = "GET";
  for (auto _ : state) {
    auto d = table.match(in);
    if (d.rule == nullptr) state.SkipWithError("no match");
    benchmark::DoNotOptimize(d.rule);
  }
  state.counters["routes"] = routes;
}

BENCHMARK(BM_LoadYaml)->Arg(100)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Compile)->Arg(100)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Match)->Arg(10)->Arg(10000)->Unit(benchmark::kNanosecond);

}  // namespace

BENCHMARK_MAIN();
