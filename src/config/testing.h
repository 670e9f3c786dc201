// Test helpers for config tests: a temporary directory that writes files and removes itself.
// Test-only; not part of the core library.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "config/diagnostic.h"

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

}  // namespace portico::config::testing
