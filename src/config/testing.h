// Test helpers for config tests (test-only, not part of the core library): a temporary
// directory that writes files and removes itself, and the CompilerTest fixture.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "config/compiler.h"
#include "config/diagnostic.h"
#include "config/loader.h"
#include "router/route_table.h"

namespace portico::config::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "portico-test-XXXXXX").string();
    char* dir = mkdtemp(tmpl.data());
    path_ = dir != nullptr ? dir : tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // Writes `text` to path()/name and returns the full path.
  std::string write(std::string_view name, std::string_view text) const {
    std::string full = path_ + "/" + std::string(name);
    std::filesystem::create_directories(std::filesystem::path(full).parent_path());
    std::ofstream out(full, std::ios::binary);
    out << text;
    return full;
  }

 private:
  std::string path_;
};

// Every diagnostic formatted, for EXPECT_THAT(..., Contains(...)).
inline std::vector<std::string> formatAll(const std::vector<Diagnostic>& diagnostics) {
  std::vector<std::string> out;
  for (const Diagnostic& d : diagnostics) out.push_back(d.format());
  return out;
}

inline constexpr std::string_view kGateway = R"(apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  listeners:
  - {name: http, port: 8080, protocol: HTTP}
---
)";

inline constexpr std::string_view kBackends = R"(apiVersion: portico.dev/v1alpha1
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

// Compiles YAML written to a temporary file; helpers to query the result.
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
    nlohmann::json dump = nlohmann::json::parse(renderConfigDump(snap()));
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

}  // namespace portico::config::testing
