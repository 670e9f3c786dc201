// Strict decoding of yaml-cpp nodes into values, reporting Diagnostics with positions and
// field paths. Main thread only (yaml-cpp nodes share unsynchronized memory).
//
// The readers never throw: yaml-cpp exceptions are caught here and become diagnostics.
// Null values (`key:`, `key: null`, `~`) read as absent, as in Kubernetes.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/diagnostic.h"

namespace portico::config {

// The resource a Reporter's diagnostics are about.
struct Subject {
  std::string file;
  std::string kind;
  std::string ns;
  std::string name;
  // Added to the (0-based) line of every mark: YAML nodes carry marks relative to the start of
  // their document's text (see Resource::line_offset).
  int line_offset = 0;
};

// Appends diagnostics about one Subject to a caller-owned vector and counts errors.
class Reporter {
 public:
  Reporter(Subject subject, std::vector<Diagnostic>* out)
      : subject_(std::move(subject)), out_(out) {}

  void error(const YAML::Mark& at, std::string path, std::string message) {
    add(Severity::kError, at, std::move(path), std::move(message));
  }
  void warning(const YAML::Mark& at, std::string path, std::string message) {
    add(Severity::kWarning, at, std::move(path), std::move(message));
  }
  void add(Severity severity, const YAML::Mark& at, std::string path, std::string message);
  int errorCount() const { return errors_; }

 private:
  Subject subject_;
  std::vector<Diagnostic>* out_;
  int errors_ = 0;
};

// The mark of a node, or a null mark for an undefined or zombie node.
YAML::Mark markOf(const YAML::Node& node);
// True when the node is absent or null.
bool isAbsent(const YAML::Node& node);

// "parent.key" / "key" when parent is empty.
std::string fieldPath(std::string_view parent, std::string_view key);
// "parent[i]".
std::string indexPath(std::string_view parent, size_t index);

// "Invalid value: \"<v>\": <detail>" in the Kubernetes field error grammar; numbers are
// written unquoted when `quote` is false.
std::string invalidValue(std::string_view value, std::string_view detail, bool quote = true);

enum class Need : uint8_t { kOptional, kRequired };

// A strict view of one YAML mapping. Fields are claimed by name as they are read; finish()
// reports every field never claimed as `unknown field "x"` (with a "did you mean" hint).
class MapReader {
 public:
  // Reports an error unless `node` is a mapping. Absent/null reads as an empty mapping.
  MapReader(Reporter& reporter, const YAML::Node& node, std::string path);

  bool valid() const { return valid_; }
  const std::string& path() const { return path_; }
  YAML::Mark mark() const { return mark_; }
  Reporter& reporter() { return reporter_; }

  // Whether `key` is present and not null (does not claim it).
  bool has(std::string_view key) const;
  // Claims `key` and returns its value (undefined node when absent). kRequired reports
  // "Required value" at the mapping when absent or null.
  YAML::Node take(std::string_view key, Need need = Need::kOptional);
  // Claims and reads a scalar string.
  std::optional<std::string> string(std::string_view key, Need need = Need::kOptional);
  // Claims and reads an integer in [min, max].
  std::optional<int64_t> integer(std::string_view key, int64_t min, int64_t max,
                                 Need need = Need::kOptional);
  // Claims and reads a GEP-2257 duration in milliseconds.
  std::optional<uint64_t> duration(std::string_view key, Need need = Need::kOptional);
  // Claims `key` as a known field this version does not implement: when present, reports
  // `<what> not supported yet` as an error (or a warning when `error` is false).
  void unsupported(std::string_view key, std::string_view what = {}, bool error = true);
  // Claims `key` silently: a field that is accepted and ignored.
  void ignore(std::string_view key);
  // Reports the fields not claimed. Call once after reading.
  void finish();

  // The path of a child field and the mark of its value (or of the mapping when absent).
  std::string childPath(std::string_view key) const { return fieldPath(path_, key); }
  YAML::Mark markOf(std::string_view key) const;

 private:
  struct Field {
    std::string key;
    YAML::Mark key_mark;
    YAML::Node value;
    bool claimed = false;
  };
  Field* find(std::string_view key);
  const Field* find(std::string_view key) const;

  Reporter& reporter_;
  std::string path_;
  YAML::Mark mark_;
  bool valid_ = true;
  std::vector<Field> fields_;
  mutable std::vector<std::string> known_;  // every key the caller asked about, for hints
};

// Reads a scalar as a string; reports and returns nullopt when the node is not a scalar.
std::optional<std::string> readString(Reporter& r, const YAML::Node& node, const std::string& path);
// Reads a plain (unquoted) decimal integer within [min, max].
std::optional<int64_t> readInteger(Reporter& r, const YAML::Node& node, const std::string& path,
                                   int64_t min, int64_t max);

// Calls fn(item, item_path, index) for each item of a sequence. Reports and returns false when
// the node is not a sequence or has more than max_items items (then nothing is visited).
// Absent/null is an empty sequence.
bool forEachItem(Reporter& r, const YAML::Node& node, const std::string& path, size_t max_items,
                 const std::function<void(const YAML::Node&, const std::string&, size_t)>& fn);

// Limits that keep hostile documents (deep nesting, alias bombs) cheap to walk.
inline constexpr int kMaxDepth = 64;
inline constexpr size_t kMaxNodesPerDocument = 200'000;

// Walks the document counting nodes (aliases count each time they are reached). Returns ""
// when within the limits, else a message; *where is the node where the walk stopped.
std::string checkDocumentLimits(const YAML::Node& doc, YAML::Mark* where);

// Appends `node` as compact JSON to *out, with the YAML 1.2 core schema: plain scalars become
// null, booleans, integers or floats when they read as such; quoted scalars stay strings.
// Mapping keys keep their YAML order. Invalid UTF-8 becomes U+FFFD. Within the limits of
// checkDocumentLimits(); beyond them, nodes are written as null.
void appendJson(const YAML::Node& node, std::string* out);
// Appends `text` as a JSON string literal.
void appendJsonString(std::string_view text, std::string* out);

}  // namespace portico::config
