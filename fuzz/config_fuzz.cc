// Fuzz target: bytes as a YAML configuration file through load, compile and a few route
// matches. Must never crash, hang or leak, whatever the input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/compiler.h"
#include "config/loader.h"
#include "router/route_table.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace portico;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  config::LoadResult load = config::loadString(text, "fuzz.yaml");
  config::StatsIds ids;
  config::CompileResult compiled = config::compile(load.resources, ids, 1);
  size_t total = 0;
  for (const config::Diagnostic& d : load.diagnostics) total += d.format().size();
  for (const config::Diagnostic& d : compiled.diagnostics) total += d.format().size();
  // Exercise the compiled tables with a few requests.
  static constexpr std::string_view kHosts[] = {"", "a.example.com", "X.Example.COM:8080",
                                                "[::1]:80", "localhost"};
  static constexpr std::string_view kPaths[] = {"/", "/api", "/api/v1/x", "/web/", ""};
  for (const config::Port& port : compiled.snapshot->ports) {
    for (std::string_view host : kHosts) {
      for (std::string_view path : kPaths) {
        router::RouteInput in;
        in.host = host;
        in.path = path;
        router::RouteDecision d = port.routes->match(in);
        if (d.rule != nullptr) {
          const config::WeightedBackend* wb =
              router::pickBackend(*d.rule, static_cast<uint32_t>(size));
          total += wb != nullptr && wb->backend != nullptr ? wb->backend->endpoints.size() : 0;
        }
      }
    }
  }
  return total == static_cast<size_t>(-1) ? 1 : 0;
}
