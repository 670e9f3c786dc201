// Loading configuration files: YAML text -> Resources, with diagnostics.
//
// Main thread only. Never throws: yaml-cpp exceptions become diagnostics.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/diagnostic.h"
#include "config/resource.h"

namespace portico::config {

enum class LoadOutcome : uint8_t {
  kOk,           // every file read and parsed; diagnostics may still hold rejected documents
  kUnreadable,   // the path (or a file in it) cannot be read: nothing is usable (exit code 2)
  kSyntaxError,  // a file is not valid YAML: its documents are missing from `resources`
};

struct LoadResult {
  LoadOutcome outcome = LoadOutcome::kOk;
  // Documents that are valid resources, in file order then document order. A document with
  // an invalid envelope (missing kind, unknown top-level field, ...) is left out with an
  // error diagnostic; empty documents are skipped silently.
  std::vector<Resource> resources;
  std::vector<Diagnostic> diagnostics;
};

// Loads `path`: a YAML file, or a directory whose *.yaml and *.yml files (not hidden, not in
// subdirectories) are read in name order. Each file may hold several documents ("---").
LoadResult loadPath(const std::string& path);

// Loads YAML text as if read from a file named `file` (for tests, fuzzing, the API server).
LoadResult loadString(std::string_view text, const std::string& file);

}  // namespace portico::config
