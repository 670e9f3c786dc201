// Diagnostics: what is wrong with the configuration, and where.
//
// Every finding of the loader and the compiler is a Diagnostic pointing at a file position and
// a field path, formatted GNU/compiler-style so editors and CI can annotate it:
//   file:line:col: error: Kind namespace/name: field.path: message
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace portico::config {

enum class Severity : uint8_t {
  kError,    // the resource (or the part named by field_path) is rejected
  kWarning,  // accepted, but something is ignored or degraded
};

struct Diagnostic {
  std::string file;  // "" when not from a file
  int line = 0;      // 1-based; 0 when unknown
  int col = 0;       // 1-based; 0 when unknown
  Severity severity = Severity::kError;
  std::string kind;        // "HTTPRoute"; "" for file-level findings (YAML syntax)
  std::string ns;          // metadata.namespace
  std::string name;        // metadata.name; "" when unknown
  std::string field_path;  // "spec.rules[0].backendRefs[1].weight"; "" for the whole resource
  std::string message;

  // "file:line:col: error: Kind ns/name: field.path: message". Unknown parts are left out
  // with their separators: "file: error: message", "file:3:1: error: Kind: message".
  std::string format() const;
};

// True when any diagnostic has Severity::kError.
bool hasErrors(const std::vector<Diagnostic>& diagnostics);

}  // namespace portico::config
