// A configuration resource: one Kubernetes-style YAML document
// {apiVersion, kind, metadata, spec}, with its source file and the parsed YAML kept so that
// every later diagnostic can point at the line and column of the field it is about.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/diagnostic.h"
#include "config/yaml_reader.h"

namespace portico::config {

// Sorts after every real timestamp: resources without creationTimestamp are "newest".
inline constexpr int64_t kNoTimestamp = INT64_MAX;

struct DecodedSpec;  // the compiler's decoded spec (compilation.h)
struct StatusCache;  // the compiler's last status of the resource, with its JSON (compilation.h)

// Holds the compiler's decoded spec of a resource once it has been computed, so that a later
// compile of the same document (a reload that did not change it) reuses it. Shared by the
// copies of a Resource; filled and read on the main thread only.
struct DecodeSlot {
  std::shared_ptr<const DecodedSpec> spec;
  // The route stats id of "ns/name" in the StatsIds with instance() `stats_instance` (0: none).
  uint64_t stats_instance = 0;
  uint32_t route_stats_id = 0;
  // The status the last compile gave the resource, and its /config_dump JSON.
  std::shared_ptr<const StatusCache> status;
};

struct Resource {
  std::string file;  // source file as given to the loader
  // The whole document. Nodes keep their Marks (0-based line/column) relative to the start of
  // the document's text in the file: add `line_offset` for the line in the file (a Reporter
  // built from subject() does).
  YAML::Node document;
  int line_offset = 0;      // lines of the file before the text of this document
  YAML::Mark mark;          // start of the document's top-level mapping, in the file (absolute)
  std::string api_version;  // "gateway.networking.k8s.io/v1"
  std::string kind;         // "HTTPRoute"
  std::string name;
  std::string ns = "default";
  std::string creation_timestamp;     // metadata.creationTimestamp as written, "" when absent
  int64_t created_us = kNoTimestamp;  // the same in microseconds since the epoch
  int64_t generation = 0;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  YAML::Node spec;  // undefined when absent
  // Decoded spec cache; never null for resources from decodeResource().
  std::shared_ptr<DecodeSlot> decoded = std::make_shared<DecodeSlot>();

  // "gateway.networking.k8s.io" for "gateway.networking.k8s.io/v1"; "" for a core "v1".
  std::string_view group() const;
  // "v1" for "gateway.networking.k8s.io/v1".
  std::string_view version() const;
  // Identity for diagnostics.
  Subject subject() const { return Subject{file, kind, ns, name, line_offset}; }
  // "HTTPRoute default/api".
  std::string id() const { return kind + ' ' + ns + '/' + name; }
};

// Decodes the envelope of one YAML document (not its spec). Returns nullopt, with error
// diagnostics appended to *out, when the document is not a valid resource: not a mapping,
// apiVersion, kind or metadata.name missing or malformed, or unknown top-level or metadata
// fields. `status` is accepted and ignored, as are server-set metadata fields (uid,
// resourceVersion, managedFields, ...).
std::optional<Resource> decodeResource(const YAML::Node& doc, const std::string& file,
                                       std::vector<Diagnostic>* out);

}  // namespace portico::config
