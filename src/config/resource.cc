#include "config/resource.h"

#include "config/syntax.h"

namespace portico::config {
namespace {

// Reads a map of string to string (labels, annotations).
void readStringMap(Reporter& r, const YAML::Node& node, const std::string& path,
                   std::map<std::string, std::string>* out) {
  if (isAbsent(node)) return;
  if (!node.IsMap()) {
    r.error(markOf(node), path, "must be a mapping of strings to strings");
    return;
  }
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) {
      r.error(markOf(it->first), path, "keys must be strings");
      continue;
    }
    std::string key_path = fieldPath(path, it->first.Scalar());
    if (isAbsent(it->second)) {
      (*out)[it->first.Scalar()] = "";
      continue;
    }
    if (std::optional<std::string> v = readString(r, it->second, key_path))
      (*out)[it->first.Scalar()] = *v;
  }
}

// A scalar field of a mapping, without validation ("" when absent or not a scalar).
std::string peek(const YAML::Node& map, std::string_view key) {
  if (!map.IsMap()) return "";
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (it->first.IsScalar() && it->first.Scalar() == key)
      return it->second.IsScalar() ? it->second.Scalar() : "";
  }
  return "";
}

YAML::Node peekNode(const YAML::Node& map, std::string_view key) {
  if (map.IsMap()) {
    for (auto it = map.begin(); it != map.end(); ++it)
      if (it->first.IsScalar() && it->first.Scalar() == key) return it->second;
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

}  // namespace

std::string_view Resource::group() const {
  size_t slash = api_version.find('/');
  return slash == std::string::npos ? std::string_view()
                                    : std::string_view(api_version).substr(0, slash);
}

std::string_view Resource::version() const {
  size_t slash = api_version.find('/');
  return slash == std::string::npos ? std::string_view(api_version)
                                    : std::string_view(api_version).substr(slash + 1);
}

std::optional<Resource> decodeResource(const YAML::Node& doc, const std::string& file,
                                       std::vector<Diagnostic>* out) {
  Resource res;
  res.file = file;
  res.document = doc;
  res.mark = markOf(doc);
  // Name the resource in diagnostics about its own envelope when the names are readable.
  Subject subject = res.subject();
  subject.kind = peek(doc, "kind");
  YAML::Node peeked_meta = peekNode(doc, "metadata");
  subject.name = peek(peeked_meta, "name");
  std::string peeked_ns = peek(peeked_meta, "namespace");
  if (!peeked_ns.empty()) subject.ns = peeked_ns;
  Reporter r(subject, out);
  if (!doc.IsMap()) {
    r.error(res.mark, "", "a resource must be a mapping with apiVersion, kind, metadata and spec");
    return std::nullopt;
  }
  if (isAbsent(peekNode(doc, "apiVersion")) && isAbsent(peekNode(doc, "kind")) &&
      isAbsent(peekNode(doc, "metadata"))) {
    r.error(res.mark, "", "not a resource: apiVersion, kind and metadata are missing");
    return std::nullopt;
  }
  MapReader top(r, doc, "");
  std::optional<std::string> kind = top.string("kind", Need::kRequired);
  if (kind) {
    if (kind->empty()) {
      r.error(top.markOf("kind"), "kind", "Required value");
    }
    res.kind = *kind;
  }
  std::optional<std::string> api_version = top.string("apiVersion", Need::kRequired);
  if (api_version) {
    if (api_version->empty()) r.error(top.markOf("apiVersion"), "apiVersion", "Required value");
    res.api_version = *api_version;
  }

  YAML::Node metadata = top.take("metadata", Need::kRequired);
  MapReader meta(r, metadata, "metadata");
  if (std::optional<std::string> ns = meta.string("namespace")) {
    std::string problem = checkDnsLabel(*ns);
    if (!problem.empty()) {
      r.error(meta.markOf("namespace"), "metadata.namespace", invalidValue(*ns, problem));
    } else {
      res.ns = *ns;
    }
  }
  if (std::optional<std::string> name =
          meta.string("name", metadata.IsDefined() ? Need::kRequired : Need::kOptional)) {
    std::string problem = checkDnsSubdomain(*name);
    if (!problem.empty()) {
      r.error(meta.markOf("name"), "metadata.name", invalidValue(*name, problem));
    } else {
      res.name = *name;
    }
  }
  if (std::optional<std::string> ts = meta.string("creationTimestamp")) {
    std::optional<int64_t> us = parseRfc3339(*ts);
    if (!us) {
      r.error(meta.markOf("creationTimestamp"), "metadata.creationTimestamp",
              invalidValue(*ts, "must be an RFC 3339 date-time like \"2024-05-01T10:00:00Z\""));
    } else {
      res.creation_timestamp = *ts;
      res.created_us = *us;
    }
  }
  if (std::optional<int64_t> g = meta.integer("generation", 0, INT64_MAX)) res.generation = *g;
  readStringMap(r, meta.take("labels"), "metadata.labels", &res.labels);
  readStringMap(r, meta.take("annotations"), "metadata.annotations", &res.annotations);
  for (std::string_view ignored :
       {"uid", "resourceVersion", "managedFields", "finalizers", "ownerReferences", "selfLink",
        "generateName", "deletionTimestamp", "deletionGracePeriodSeconds"}) {
    meta.ignore(ignored);
  }
  meta.finish();

  res.spec = top.take("spec");
  top.ignore("status");
  // Core Secret and ConfigMap keep their content at the top level (decode_tls.cc reads it).
  if (res.api_version == "v1" && (res.kind == "Secret" || res.kind == "ConfigMap"))
    for (std::string_view k : {"type", "data", "stringData", "binaryData", "immutable"})
      top.ignore(k);
  top.finish();
  if (r.errorCount() > 0) return std::nullopt;
  return res;
}

}  // namespace portico::config
