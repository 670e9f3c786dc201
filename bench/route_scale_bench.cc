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
using portico::config::Resource;
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

size_t heapInUse() { return mallinfo2().uordblks; }

void BM_LoadYaml(benchmark::State& state) {
  std::string text = makeConfig(static_cast<int>(state.range(0)));
  size_t bytes = 0;
  for (auto _ : state) {
    state.PauseTiming();
    size_t before = heapInUse();
    state.ResumeTiming();
    auto loaded = loadString(text, "bench.yaml");
    benchmark::DoNotOptimize(loaded.resources.data());
    state.PauseTiming();
    bytes = heapInUse() - before;  // the parsed documents the loader's result holds
    state.ResumeTiming();
  }
  state.counters["routes"] = static_cast<double>(state.range(0));
  state.counters["loaded_bytes_per_1000_routes"] =
      static_cast<double>(bytes) * 1000.0 / static_cast<double>(state.range(0));
}

// A copy of `resources` as a fresh load gives it: nothing decoded yet.
std::shared_ptr<std::vector<Resource>> freshCopy(const std::vector<Resource>& resources) {
  auto copy = std::make_shared<std::vector<Resource>>(resources);
  for (Resource& r : *copy) r.decoded = std::make_shared<portico::config::DecodeSlot>();
  return copy;
}

// compile() of a configuration none of whose documents was compiled before (start-up, or a
// reload that changed every document). `retained_bytes`: everything the compile adds to the
// heap and keeps while the config runs: the snapshot, the resource list it shares with
// /config_dump, the decoded specs (kept with the documents, reused by later versions), the
// stats ids. The parsed YAML is counted by BM_LoadYaml.
void BM_Compile(benchmark::State& state) {
  int routes = static_cast<int>(state.range(0));
  auto loaded = loadString(makeConfig(routes), "bench.yaml");
  if (loaded.resources.size() != static_cast<size_t>(routes) + 2) {
    state.SkipWithError("config did not load");
    return;
  }
  size_t bytes = 0;
  for (auto _ : state) {
    state.PauseTiming();
    {
      StatsIds ids;
      size_t before = heapInUse();
      std::shared_ptr<const std::vector<Resource>> resources = freshCopy(loaded.resources);
      state.ResumeTiming();
      CompileResult r = compile(resources, ids, 1);
      state.PauseTiming();
      resources.reset();  // the snapshot keeps it
      bytes = heapInUse() - before;
      benchmark::DoNotOptimize(r.snapshot.get());
    }
    state.ResumeTiming();
  }
  state.counters["routes"] = routes;
  state.counters["retained_bytes_per_1000_routes"] = static_cast<double>(bytes) * 1000.0 / routes;
}

// compile() of a new config version whose documents were all compiled before (their decoded
// specs are reused): the compile part of a reload that changed one route. `snapshot_bytes`:
// what each config version adds to the heap and keeps while it runs: the snapshot (route
// table, rules, backends, statuses for /config_dump) and its own list of the resources (a new
// one per version, as the gateway's loader makes it; the YAML and decoded specs are shared).
void BM_Recompile(benchmark::State& state) {
  int routes = static_cast<int>(state.range(0));
  auto loaded = loadString(makeConfig(routes), "bench.yaml");
  StatsIds ids;
  CompileResult first = compile(loaded.resources, ids, 1);
  size_t bytes = 0;
  portico::config::CompileTimings timings;
  for (auto _ : state) {
    state.PauseTiming();
    {
      size_t before = heapInUse();
      auto resources = std::make_shared<const std::vector<Resource>>(loaded.resources);
      state.ResumeTiming();
      CompileResult r = compile(resources, ids, 2);
      state.PauseTiming();
      resources.reset();
      bytes = heapInUse() - before;
      benchmark::DoNotOptimize(r.snapshot.get());
      timings = r.timings;
    }
    state.ResumeTiming();
  }
  state.counters["routes"] = routes;
  state.SetLabel(timings.describe());
  state.counters["snapshot_bytes_per_1000_routes"] = static_cast<double>(bytes) * 1000.0 / routes;
}

// Loader::loadText() of the config after a change of one route, the previous version loaded
// by the same Loader: the load part of a reload (one document parsed, the others reused).
void BM_LoadOneChanged(benchmark::State& state) {
  int routes = static_cast<int>(state.range(0));
  std::string texts[2] = {makeConfig(routes), makeConfig(routes)};
  std::string needle = "value: /exact" + std::to_string(routes / 2) + "}";
  texts[1].replace(texts[1].find(needle), needle.size(), "value: /moved}");
  portico::config::Loader loader;
  loader.loadText(texts[0], "bench.yaml");
  size_t i = 0;
  for (auto _ : state) {
    auto loaded = loader.loadText(texts[++i % 2], "bench.yaml");
    benchmark::DoNotOptimize(loaded.resources.data());
    if (loader.parsedDocuments() != 1) state.SkipWithError("expected one parsed document");
    state.PauseTiming();
    loaded = {};
    state.ResumeTiming();
  }
  state.counters["routes"] = routes;
}

// A reload that changed one route, as the gateway does it: Loader::load of the new text, then
// compile() with the CompileCache of the previous version (the unchanged routes' rules,
// attachments and statuses are reused). The label is the last compile's breakdown.
void BM_ReloadOneChanged(benchmark::State& state) {
  int routes = static_cast<int>(state.range(0));
  std::string texts[2] = {makeConfig(routes), makeConfig(routes)};
  std::string needle = "value: /exact" + std::to_string(routes / 2) + "}";
  texts[1].replace(texts[1].find(needle), needle.size(), "value: /moved}");
  portico::config::Loader loader;
  portico::config::CompileCache cache;
  portico::config::CompileOptions options;
  options.cache = &cache;
  StatsIds ids;
  uint64_t version = 1;
  CompileResult previous = compile(std::make_shared<const std::vector<Resource>>(
                                       loader.loadText(texts[0], "bench.yaml").resources),
                                   ids, version, options);
  size_t i = 0;
  size_t bytes = 0;
  for (auto _ : state) {
    state.PauseTiming();
    size_t before = heapInUse();
    state.ResumeTiming();
    auto loaded = loader.loadText(texts[++i % 2], "bench.yaml");
    auto resources = std::make_shared<const std::vector<Resource>>(std::move(loaded.resources));
    CompileResult r = compile(std::move(resources), ids, ++version, options);
    if (r.timings.routes_compiled != 1) state.SkipWithError("expected one compiled route");
    state.PauseTiming();
    bytes = heapInUse() - before;  // the new version while the previous one still runs
    state.SetLabel(r.timings.describe());
    previous = std::move(r);  // the old version is freed outside the timing, as the gateway does
    state.ResumeTiming();
  }
  state.counters["routes"] = routes;
  state.counters["version_bytes_per_1000_routes"] =
      static_cast<double>(bytes) * 1000.0 / static_cast<double>(routes);
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
BENCHMARK(BM_Recompile)->Arg(100)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LoadOneChanged)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReloadOneChanged)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Match)->Arg(10)->Arg(10000)->Unit(benchmark::kNanosecond);

}  // namespace

BENCHMARK_MAIN();
