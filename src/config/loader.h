// Loading configuration files: YAML text -> Resources, with diagnostics.
//
// Main thread only. Never throws: yaml-cpp exceptions become diagnostics.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
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

// A loader that remembers the documents of its previous load, for reloads of large configs.
//
// Each file is split into documents at the lines that are a document start marker ("---" at
// column 0, alone or followed by a space or tab; YAML forbids that line inside any scalar);
// each document's text is parsed on its own (yaml-cpp marks are relative to the document's
// first line; Resource::line_offset gives the line in the file). A document whose text is
// byte-for-byte the same as in the previous load of the same file is not parsed again: its
// Resources (sharing the parsed YAML and the compiler's decoded spec) and its diagnostics are
// reused, with line numbers moved to where the document is now. Only the documents of the
// previous load are kept.
class Loader {
 public:
  Loader();
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // As loadPath().
  LoadResult load(const std::string& path);
  // As loadString(); `file` is the cache key.
  LoadResult loadText(std::string_view text, const std::string& file);

  // Documents parsed and documents reused by the last load.
  size_t parsedDocuments() const { return parsed_; }
  size_t reusedDocuments() const { return reused_; }
  // Where the last load spent its time (wall clock, ms): reading files, splitting them into
  // documents, matching documents with the previous load's (parsing the changed ones) and
  // listing their resources.
  struct Timings {
    double read_ms = 0;
    double split_ms = 0;
    double documents_ms = 0;
  };
  const Timings& timings() const { return timings_; }

  struct Chunk;  // the outcome of parsing one document's text

 private:
  // One document of a file as the last load saw it.
  struct Doc {
    std::string text;
    uint64_t hash = 0;
    int lines = 0;  // newlines in `text`
    std::shared_ptr<const Chunk> chunk;
    uint32_t moved_to = UINT32_MAX;  // while loading: its index in the new list once reused
  };
  using DocList = std::vector<Doc>;
  void loadFileText(std::string_view text, const std::string& file, LoadResult* result);

  // By file: the last load's documents, in file order (texts move to current_ as they are
  // reused).
  std::unordered_map<std::string, DocList> previous_;
  std::unordered_map<std::string, DocList> current_;  // being filled by this load
  size_t parsed_ = 0;
  size_t reused_ = 0;
  Timings timings_;
  std::string buffer_;  // the file being loaded; kept: a reload reads into the same memory
};

// Where the documents of `text` start, as splitting for Loader does: pairs of (byte offset,
// 0-based line). The first is always (0, 0). A part holding a directive ("%YAML") is kept
// with the document that follows it.
std::vector<std::pair<size_t, int>> splitDocuments(std::string_view text);

// Loads YAML text as if read from a file named `file` (for tests, fuzzing, the API server).
LoadResult loadString(std::string_view text, const std::string& file);

}  // namespace portico::config
