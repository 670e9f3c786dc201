// Decoding of HTTPRoute (gateway.networking.k8s.io/v1) specs.
//
// Every field of HTTPRoute v1 is parsed. Fields whose runtime is not implemented yet (the
// CORS and ExternalAuth filters, retries, session persistence) are validated and then reported as
// errors "... is not implemented yet", which rejects the route: serving it without them would route
// traffic the user excluded. Regular expressions (RE2) are compiled here, once; an invalid one is
// an error at its field.
#include "config/decode_route.h"

#include <strings.h>

#include <algorithm>
#include <array>

#include "config/model.h"
#include "config/syntax.h"
#include "router/matchers.h"

namespace portico::config {
namespace {

constexpr size_t kMaxParentRefs = 32;
constexpr size_t kMaxHostnames = 16;
constexpr size_t kMaxRules = 16;
constexpr size_t kMaxMatchesPerRule = 64;
constexpr size_t kMaxMatchesTotal = 128;
constexpr size_t kMaxHeaderMatches = 16;
constexpr size_t kMaxFilters = 16;
constexpr size_t kMaxBackendRefs = 16;
constexpr int64_t kMaxWeight = 1'000'000;

constexpr std::array<std::string_view, 9> kMethods = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"};
constexpr std::array<std::string_view, 8> kFilterTypes = {"RequestHeaderModifier",
                                                          "ResponseHeaderModifier",
                                                          "RequestMirror",
                                                          "RequestRedirect",
                                                          "URLRewrite",
                                                          "CORS",
                                                          "ExtensionRef",
                                                          "ExternalAuth"};

// Compiles `value` as RE2; an error at `mark`/`path` when it does not compile.
std::shared_ptr<const re2::RE2> compileOrReport(Reporter& r, const YAML::Mark& mark,
                                                const std::string& path, const std::string& value) {
  std::string problem;
  std::shared_ptr<const re2::RE2> re = router::compileRegex(value, &problem);
  if (re == nullptr)
    r.error(mark, path, invalidValue(value, "invalid RE2 regular expression: " + problem));
  return re;
}

std::string unsupportedValue(std::string_view value, std::string_view supported) {
  return "Unsupported value: \"" + std::string(value) +
         "\": supported values: " + std::string(supported);
}

ParentRefModel decodeParentRef(Reporter& r, const YAML::Node& node, const std::string& path,
                               const Resource& res) {
  ParentRefModel p;
  p.where = Where{markOf(node), path};
  p.ns = res.ns;
  MapReader m(r, node, path);
  if (std::optional<std::string> group = m.string("group")) p.group = *group;
  if (std::optional<std::string> kind = m.string("kind")) p.kind = *kind;
  if (std::optional<std::string> ns = m.string("namespace")) {
    std::string problem = checkDnsLabel(*ns);
    if (!problem.empty())
      r.error(m.markOf("namespace"), m.childPath("namespace"), invalidValue(*ns, problem));
    p.ns = *ns;
  }
  if (std::optional<std::string> name = m.string("name", Need::kRequired)) p.name = *name;
  if (std::optional<std::string> section = m.string("sectionName")) {
    std::string problem = checkDnsSubdomain(*section);
    if (!problem.empty())
      r.error(m.markOf("sectionName"), m.childPath("sectionName"), invalidValue(*section, problem));
    p.section_name = *section;
  }
  if (std::optional<int64_t> port = m.integer("port", 1, 65535))
    p.port = static_cast<uint16_t>(*port);
  m.finish();
  return p;
}

// headers[] or queryParams[] of a match.
void decodeStringMatches(Reporter& r, const YAML::Node& node, const std::string& path,
                         bool header_names, std::vector<StringMatchModel>* out) {
  forEachItem(r, node, path, kMaxHeaderMatches,
              [&](const YAML::Node& item, const std::string& item_path, size_t) {
                MapReader m(r, item, item_path);
                StringMatchModel h;
                std::string type = m.string("type").value_or("Exact");
                if (type == "RegularExpression") {
                  h.type = StringMatchKind::kRegularExpression;
                } else if (type != "Exact") {
                  r.error(m.markOf("type"), m.childPath("type"),
                          unsupportedValue(type, "\"Exact\", \"RegularExpression\""));
                }
                if (std::optional<std::string> name = m.string("name", Need::kRequired)) {
                  std::string problem = header_names ? checkHeaderName(*name)
                                                     : (name->empty() || name->size() > 256
                                                            ? "must be 1 to 256 characters"
                                                            : "");
                  if (!problem.empty())
                    r.error(m.markOf("name"), m.childPath("name"), invalidValue(*name, problem));
                  h.name = *name;
                }
                if (std::optional<std::string> value = m.string("value", Need::kRequired)) {
                  if (value->empty() || value->size() > 4096) {
                    r.error(m.markOf("value"), m.childPath("value"),
                            invalidValue(*value, "must be 1 to 4096 characters"));
                  } else if (h.type == StringMatchKind::kRegularExpression) {
                    h.regex = compileOrReport(r, m.markOf("value"), m.childPath("value"), *value);
                  }
                  h.value = *value;
                }
                m.finish();
                for (const StringMatchModel& prev : *out) {
                  bool same = header_names ? strcasecmp(prev.name.c_str(), h.name.c_str()) == 0
                                           : prev.name == h.name;
                  if (same)
                    r.warning(markOf(item), item_path,
                              "Duplicate value: \"" + h.name +
                                  "\": only the first match on a name is considered");
                }
                out->push_back(std::move(h));
              });
}

MatchModel decodeMatch(Reporter& r, const YAML::Node& node, const std::string& path) {
  MatchModel match;
  match.where = Where{markOf(node), path};
  MapReader m(r, node, path);
  if (m.has("path")) {
    MapReader p(r, m.take("path"), m.childPath("path"));
    std::string type = p.string("type").value_or("PathPrefix");
    std::string value = p.string("value").value_or("/");
    if (type == "Exact" || type == "PathPrefix") {
      match.path_kind = type == "Exact" ? PathKind::kExact : PathKind::kPathPrefix;
      std::string problem = checkPathValue(value);
      if (!problem.empty())
        r.error(p.markOf("value"), p.childPath("value"), invalidValue(value, problem));
    } else if (type == "RegularExpression") {
      match.path_kind = PathKind::kRegularExpression;
      if (value.empty() || value.size() > 1024) {
        r.error(p.markOf("value"), p.childPath("value"),
                invalidValue(value, "must be 1 to 1024 characters"));
      } else {
        match.path_regex = compileOrReport(r, p.markOf("value"), p.childPath("value"), value);
      }
    } else {
      r.error(p.markOf("type"), p.childPath("type"),
              unsupportedValue(type, "\"Exact\", \"PathPrefix\", \"RegularExpression\""));
    }
    match.path = value;
    p.finish();
  }
  if (m.has("headers"))
    decodeStringMatches(r, m.take("headers"), m.childPath("headers"), true, &match.headers);
  if (m.has("queryParams")) {
    decodeStringMatches(r, m.take("queryParams"), m.childPath("queryParams"), false,
                        &match.query_params);
  }
  if (std::optional<std::string> method = m.string("method")) {
    if (std::find(kMethods.begin(), kMethods.end(), *method) == kMethods.end()) {
      r.error(m.markOf("method"), m.childPath("method"),
              unsupportedValue(*method,
                               "GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH"));
    }
    match.method = *method;
  }
  m.finish();
  return match;
}

// Header names a filter may not modify: framing, hop-by-hop and the ones Portico generates.
constexpr std::array<std::string_view, 11> kReservedHeaders = {"host",
                                                               "content-length",
                                                               "transfer-encoding",
                                                               "connection",
                                                               "keep-alive",
                                                               "proxy-connection",
                                                               "te",
                                                               "trailer",
                                                               "upgrade",
                                                               "x-forwarded-for",
                                                               "x-forwarded-proto"};

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  return out;
}

// A header name of a modifier: a token, not reserved; lowercased into *out.
bool checkModifierName(Reporter& r, const YAML::Mark& mark, const std::string& path,
                       const std::string& name, std::string* out) {
  std::string problem = checkHeaderName(name);
  if (!problem.empty()) {
    r.error(mark, path, invalidValue(name, problem));
    return false;
  }
  *out = lowercase(name);
  if (std::find(kReservedHeaders.begin(), kReservedHeaders.end(), *out) != kReservedHeaders.end()) {
    r.error(mark, path, "Forbidden: header \"" + name + "\" cannot be modified by a filter");
    return false;
  }
  return true;
}

// set[] / add[] of a header modifier: {name, value} with distinct names.
void decodeHeaderValues(Reporter& r, const YAML::Node& node, const std::string& path,
                        std::vector<HeaderValue>* out) {
  forEachItem(r, node, path, kMaxHeaderMatches,
              [&](const YAML::Node& item, const std::string& item_path, size_t) {
                MapReader m(r, item, item_path);
                HeaderValue hv;
                bool ok = true;
                if (std::optional<std::string> name = m.string("name", Need::kRequired)) {
                  ok = checkModifierName(r, m.markOf("name"), m.childPath("name"), *name, &hv.name);
                } else {
                  ok = false;
                }
                if (std::optional<std::string> value = m.string("value", Need::kRequired)) {
                  bool bad_char = std::any_of(value->begin(), value->end(), [](char c) {
                    auto u = static_cast<unsigned char>(c);
                    return (u < 0x20 && c != '\t') || u == 0x7f;
                  });
                  if (value->empty() || value->size() > 4096) {
                    r.error(m.markOf("value"), m.childPath("value"),
                            invalidValue(*value, "must be 1 to 4096 characters"));
                  } else if (bad_char) {
                    r.error(m.markOf("value"), m.childPath("value"),
                            invalidValue(*value, "must not contain control characters"));
                  }
                  hv.value = *value;
                }
                m.finish();
                if (!ok) return;
                for (const HeaderValue& prev : *out) {
                  if (prev.name == hv.name) {
                    r.error(markOf(item), item_path, "Duplicate value: \"" + hv.name + "\"");
                    return;
                  }
                }
                out->push_back(std::move(hv));
              });
}

HeaderModifier decodeHeaderModifier(Reporter& r, const YAML::Node& node, const std::string& path) {
  HeaderModifier mod;
  MapReader m(r, node, path);
  if (m.has("set")) decodeHeaderValues(r, m.take("set"), m.childPath("set"), &mod.set);
  if (m.has("add")) decodeHeaderValues(r, m.take("add"), m.childPath("add"), &mod.add);
  if (m.has("remove")) {
    forEachItem(r, m.take("remove"), m.childPath("remove"), kMaxHeaderMatches,
                [&](const YAML::Node& item, const std::string& item_path, size_t) {
                  std::optional<std::string> name = readString(r, item, item_path);
                  std::string lower;
                  if (!name || !checkModifierName(r, markOf(item), item_path, *name, &lower))
                    return;
                  if (std::find(mod.remove.begin(), mod.remove.end(), lower) != mod.remove.end()) {
                    r.error(markOf(item), item_path, "Duplicate value: \"" + lower + "\"");
                    return;
                  }
                  mod.remove.push_back(std::move(lower));
                });
  }
  m.finish();
  return mod;
}

// path of a RequestRedirect or URLRewrite (HTTPPathModifier).
PathModifier decodePathModifier(Reporter& r, const YAML::Node& node, const std::string& path) {
  PathModifier pm;
  MapReader m(r, node, path);
  std::optional<std::string> type = m.string("type", Need::kRequired);
  std::string_view field;
  if (!type) {
  } else if (*type == "ReplaceFullPath") {
    pm.kind = PathModifierKind::kReplaceFullPath;
    field = "replaceFullPath";
  } else if (*type == "ReplacePrefixMatch") {
    pm.kind = PathModifierKind::kReplacePrefixMatch;
    field = "replacePrefixMatch";
  } else {
    r.error(m.markOf("type"), m.childPath("type"),
            unsupportedValue(*type, "\"ReplaceFullPath\", \"ReplacePrefixMatch\""));
  }
  for (std::string_view key : {"replaceFullPath", "replacePrefixMatch"}) {
    if (key == field) {
      std::optional<std::string> value = m.string(key, Need::kRequired);
      if (!value) continue;
      // An empty ReplacePrefixMatch removes the prefix; any other value is an absolute path.
      if (!(value->empty() && pm.kind == PathModifierKind::kReplacePrefixMatch)) {
        std::string problem = checkPathValue(*value);
        if (!problem.empty())
          r.error(m.markOf(key), m.childPath(key), invalidValue(*value, problem));
      }
      pm.value = *value;
    } else if (m.has(key)) {
      m.take(key);
      r.error(m.markOf(key), m.childPath(key),
              "Forbidden: " + std::string(key) + " must not be set for type " + type.value_or(""));
    } else {
      m.ignore(key);
    }
  }
  m.finish();
  return pm;
}

std::string decodePreciseHostname(MapReader& m) {
  std::optional<std::string> host = m.string("hostname");
  if (!host) return "";
  std::string problem = checkHostname(*host, /*allow_wildcard=*/false);
  if (!problem.empty())
    m.reporter().error(m.markOf("hostname"), m.childPath("hostname"), invalidValue(*host, problem));
  return *host;
}

Redirect decodeRedirect(Reporter& r, const YAML::Node& node, const std::string& path) {
  Redirect rd;
  MapReader m(r, node, path);
  if (std::optional<std::string> scheme = m.string("scheme")) {
    if (*scheme != "http" && *scheme != "https")
      r.error(m.markOf("scheme"), m.childPath("scheme"),
              unsupportedValue(*scheme, "\"http\", \"https\""));
    rd.scheme = *scheme;
  }
  rd.hostname = decodePreciseHostname(m);
  if (m.has("path")) rd.path = decodePathModifier(r, m.take("path"), m.childPath("path"));
  if (std::optional<int64_t> port = m.integer("port", 1, 65535))
    rd.port = static_cast<uint16_t>(*port);
  if (std::optional<int64_t> code = m.integer("statusCode", 100, 599)) {
    if (*code != 301 && *code != 302 && *code != 303 && *code != 307 && *code != 308) {
      r.error(m.markOf("statusCode"), m.childPath("statusCode"),
              unsupportedValue(std::to_string(*code), "301, 302, 303, 307, 308"));
    }
    rd.status_code = static_cast<uint16_t>(*code);
  }
  m.finish();
  return rd;
}

UrlRewrite decodeUrlRewrite(Reporter& r, const YAML::Node& node, const std::string& path) {
  UrlRewrite rw;
  MapReader m(r, node, path);
  rw.hostname = decodePreciseHostname(m);
  if (m.has("path")) rw.path = decodePathModifier(r, m.take("path"), m.childPath("path"));
  m.finish();
  return rw;
}

// Filter types whose runtime is implemented; RequestRedirect and ExtensionRef (a direct
// response) only on rules, the others on rules and backendRefs.
bool filterImplemented(std::string_view type, bool on_backend_ref) {
  if (type == "RequestHeaderModifier" || type == "ResponseHeaderModifier" || type == "URLRewrite" ||
      type == "RequestMirror") {
    return true;
  }
  return !on_backend_ref && (type == "RequestRedirect" || type == "ExtensionRef");
}

BackendRefModel decodeObjectRef(Reporter& r, const YAML::Node& node, const std::string& path,
                                const Resource& res);

MirrorModel decodeMirror(Reporter& r, const YAML::Node& node, const std::string& path,
                         const Resource& res) {
  MirrorModel mirror;
  mirror.where = Where{markOf(node), path};
  MapReader m(r, node, path);
  YAML::Node ref = m.take("backendRef", Need::kRequired);
  if (ref.IsDefined()) mirror.backend = decodeObjectRef(r, ref, m.childPath("backendRef"), res);
  if (m.has("percent") && m.has("fraction")) {
    r.error(m.markOf("fraction"), m.childPath("fraction"),
            "Forbidden: percent and fraction cannot both be set");
  }
  if (std::optional<int64_t> percent = m.integer("percent", 0, 100))
    mirror.per_million = static_cast<uint32_t>(*percent * 10'000);
  if (m.has("fraction")) {
    MapReader f(r, m.take("fraction"), m.childPath("fraction"));
    std::optional<int64_t> num = f.integer("numerator", 0, INT32_MAX, Need::kRequired);
    int64_t den = f.integer("denominator", 1, INT32_MAX).value_or(100);
    if (num && *num > den) {
      r.error(f.markOf("numerator"), f.childPath("numerator"),
              "Invalid value: numerator must be less than or equal to denominator");
    } else if (num) {
      mirror.per_million = static_cast<uint32_t>(*num * 1'000'000 / den);
    }
    f.finish();
  }
  m.finish();
  return mirror;
}

ExtensionRefModel decodeExtensionRef(Reporter& r, const YAML::Node& node, const std::string& path) {
  ExtensionRefModel ext;
  ext.where = Where{markOf(node), path};
  MapReader m(r, node, path);
  ext.group = m.string("group", Need::kRequired).value_or("");
  ext.kind = m.string("kind", Need::kRequired).value_or("");
  ext.name = m.string("name", Need::kRequired).value_or("");
  m.finish();
  return ext;
}

// filters[] of a rule or of a backendRef, into *out.
// `grpc`: a GRPCRoute's filters (RequestHeaderModifier, ResponseHeaderModifier, RequestMirror;
// ExtensionRef is not implemented for GRPCRoute).
void decodeFilters(Reporter& r, const YAML::Node& node, const std::string& path,
                   const Resource& res, bool on_backend_ref, FiltersModel* out, bool grpc = false) {
  forEachItem(
      r, node, path, kMaxFilters,
      [&](const YAML::Node& item, const std::string& item_path, size_t) {
        MapReader m(r, item, item_path);
        std::optional<std::string> type = m.string("type", Need::kRequired);
        bool known = type && std::find(kFilterTypes.begin(), kFilterTypes.end(), *type) !=
                                 kFilterTypes.end();
        if (grpc && known) {
          known = *type == "RequestHeaderModifier" || *type == "ResponseHeaderModifier" ||
                  *type == "RequestMirror" || *type == "ExtensionRef";
        }
        bool decode =
            known && filterImplemented(*type, on_backend_ref) && !(grpc && *type == "ExtensionRef");
        // Each type's configuration lives in the field named after it (lowerCamelCase).
        constexpr std::array<std::pair<std::string_view, std::string_view>, 8> kFields = {{
            {"RequestHeaderModifier", "requestHeaderModifier"},
            {"ResponseHeaderModifier", "responseHeaderModifier"},
            {"RequestMirror", "requestMirror"},
            {"RequestRedirect", "requestRedirect"},
            {"URLRewrite", "urlRewrite"},
            {"CORS", "cors"},
            {"ExtensionRef", "extensionRef"},
            {"ExternalAuth", "externalAuth"},
        }};
        for (const auto& [t, key] : kFields) {
          if (!decode) {
            m.ignore(key);
            continue;
          }
          if (t != *type) {
            if (m.has(key)) {
              m.take(key);
              r.error(m.markOf(key), m.childPath(key),
                      "Forbidden: " + std::string(key) + " must not be set for type " + *type);
            } else {
              m.ignore(key);
            }
            continue;
          }
          if (!m.has(key)) {
            m.take(key, Need::kRequired);  // reports "Required value"
            continue;
          }
          YAML::Node value = m.take(key);
          std::string value_path = m.childPath(key);
          auto duplicate = [&] {
            r.error(m.markOf("type"), m.childPath("type"),
                    "Duplicate value: \"" + *type + "\": at most one per " +
                        (on_backend_ref ? "backendRef" : "rule"));
          };
          if (t == "RequestHeaderModifier") {
            if (out->request_headers) duplicate();
            out->request_headers = decodeHeaderModifier(r, value, value_path);
          } else if (t == "ResponseHeaderModifier") {
            if (out->response_headers) duplicate();
            out->response_headers = decodeHeaderModifier(r, value, value_path);
          } else if (t == "RequestRedirect") {
            if (out->redirect) duplicate();
            out->redirect = decodeRedirect(r, value, value_path);
          } else if (t == "URLRewrite") {
            if (out->url_rewrite) duplicate();
            out->url_rewrite = decodeUrlRewrite(r, value, value_path);
          } else if (t == "RequestMirror") {
            out->mirrors.push_back(decodeMirror(r, value, value_path, res));
          } else if (t == "ExtensionRef") {
            if (!out->extension_refs.empty()) duplicate();
            out->extension_refs.push_back(decodeExtensionRef(r, value, value_path));
          }
        }
        m.finish();
        if (!type || decode) return;
        if (!known) {
          r.error(m.markOf("type"), m.childPath("type"),
                  unsupportedValue(*type, grpc ? "RequestHeaderModifier, ResponseHeaderModifier, "
                                                 "RequestMirror, ExtensionRef"
                                               : "RequestHeaderModifier, ResponseHeaderModifier, "
                                                 "RequestMirror, RequestRedirect, URLRewrite, "
                                                 "CORS, ExtensionRef"));
        } else if (grpc && *type == "ExtensionRef") {
          r.error(m.markOf("type"), m.childPath("type"),
                  "filter ExtensionRef is not implemented yet for GRPCRoute");
        } else if (on_backend_ref && (*type == "RequestRedirect" || *type == "ExtensionRef")) {
          r.error(m.markOf("type"), m.childPath("type"),
                  "Unsupported value: \"" + *type +
                      "\": a backendRef filter cannot answer the request; put it on the rule");
        } else {
          r.error(m.markOf("type"), m.childPath("type"),
                  "filter " + *type + " is not implemented yet");
        }
      });
}

// Cross-field rules of a rule's filters (Gateway API CEL validations).
void checkRuleFilters(Reporter& r, const RuleModel& rule, const std::string& filters_path,
                      const YAML::Mark& mark) {
  const FiltersModel& f = rule.filters;
  if (f.redirect && f.url_rewrite) {
    r.error(mark, filters_path,
            "Invalid value: IncompatibleFilters: RequestRedirect and URLRewrite cannot both be "
            "set in one rule");
  }
  if (f.redirect && !rule.backend_refs.empty()) {
    r.error(mark, filters_path,
            "Invalid value: a rule with a RequestRedirect filter must not have backendRefs");
  }
  if (!f.extension_refs.empty() && (f.redirect || !rule.backend_refs.empty())) {
    r.error(mark, filters_path,
            "Invalid value: a rule with an ExtensionRef (direct response) filter must not have "
            "backendRefs or a RequestRedirect");
  }
  auto prefix = [](const std::optional<UrlRewrite>& rw) {
    return rw && rw->path.kind == PathModifierKind::kReplacePrefixMatch;
  };
  bool prefix_rewrite =
      (f.redirect && f.redirect->path.kind == PathModifierKind::kReplacePrefixMatch) ||
      prefix(f.url_rewrite);
  for (const BackendRefModel& b : rule.backend_refs) {
    if (b.filters.url_rewrite && f.url_rewrite) {
      r.error(b.where.mark, fieldPath(b.where.path, "filters"),
              "Invalid value: URLRewrite is set on the rule and on this backendRef; set it on "
              "one of them");
    }
    prefix_rewrite = prefix_rewrite || prefix(b.filters.url_rewrite);
  }
  if (prefix_rewrite &&
      (rule.matches.size() != 1 || rule.matches[0].path_kind != PathKind::kPathPrefix)) {
    r.error(mark, filters_path,
            "Invalid value: ReplacePrefixMatch requires exactly one match, of type PathPrefix, "
            "in the rule");
  }
}

// group, kind, name, namespace, port of a backendRef (and, when `full`, weight and filters).
BackendRefModel decodeBackendRefFields(Reporter& r, const YAML::Node& node, const std::string& path,
                                       const Resource& res, bool full, bool grpc = false) {
  BackendRefModel b;
  b.where = Where{markOf(node), path};
  b.ns = res.ns;
  MapReader m(r, node, path);
  if (std::optional<std::string> group = m.string("group")) b.group = *group;
  if (std::optional<std::string> kind = m.string("kind")) b.kind = *kind;
  if (std::optional<std::string> name = m.string("name", Need::kRequired)) b.name = *name;
  if (std::optional<std::string> ns = m.string("namespace")) {
    std::string problem = checkDnsLabel(*ns);
    if (!problem.empty())
      r.error(m.markOf("namespace"), m.childPath("namespace"), invalidValue(*ns, problem));
    b.ns = *ns;
  }
  if (std::optional<int64_t> port = m.integer("port", 1, 65535))
    b.port = static_cast<uint16_t>(*port);
  if (full) {
    if (std::optional<int64_t> weight = m.integer("weight", 0, kMaxWeight))
      b.weight = static_cast<uint32_t>(*weight);
    if (m.has("filters")) {
      decodeFilters(r, m.take("filters"), m.childPath("filters"), res, true, &b.filters, grpc);
    }
  }
  m.finish();
  return b;
}

BackendRefModel decodeObjectRef(Reporter& r, const YAML::Node& node, const std::string& path,
                                const Resource& res) {
  return decodeBackendRefFields(r, node, path, res, false);
}

BackendRefModel decodeBackendRef(Reporter& r, const YAML::Node& node, const std::string& path,
                                 const Resource& res) {
  return decodeBackendRefFields(r, node, path, res, true);
}

RuleModel decodeRule(Reporter& r, const YAML::Node& node, const std::string& path,
                     const Resource& res, size_t* total_matches) {
  RuleModel rule;
  rule.where = Where{markOf(node), path};
  MapReader m(r, node, path);
  if (std::optional<std::string> name = m.string("name")) {
    std::string problem = checkDnsSubdomain(*name);
    if (!problem.empty())
      r.error(m.markOf("name"), m.childPath("name"), invalidValue(*name, problem));
    rule.name = *name;
  }
  YAML::Node matches = m.take("matches");
  forEachItem(r, matches, m.childPath("matches"), kMaxMatchesPerRule,
              [&](const YAML::Node& item, const std::string& item_path, size_t) {
                rule.matches.push_back(decodeMatch(r, item, item_path));
              });
  *total_matches += rule.matches.size();
  if (rule.matches.empty()) {
    MatchModel def;  // PathPrefix "/"
    def.where = Where{m.mark(), path};
    rule.matches.push_back(def);
  }
  bool has_filters = m.has("filters");
  YAML::Mark filters_mark = m.markOf("filters");
  if (has_filters)
    decodeFilters(r, m.take("filters"), m.childPath("filters"), res, false, &rule.filters);
  forEachItem(r, m.take("backendRefs"), m.childPath("backendRefs"), kMaxBackendRefs,
              [&](const YAML::Node& item, const std::string& item_path, size_t) {
                rule.backend_refs.push_back(decodeBackendRef(r, item, item_path, res));
              });
  checkRuleFilters(r, rule, m.childPath("filters"), has_filters ? filters_mark : m.mark());
  if (m.has("timeouts")) {
    YAML::Node timeouts = m.take("timeouts");
    MapReader t(r, timeouts, m.childPath("timeouts"));
    rule.request_timeout_ms = t.duration("request");
    rule.backend_request_timeout_ms = t.duration("backendRequest");
    if (rule.request_timeout_ms && rule.backend_request_timeout_ms &&
        *rule.request_timeout_ms != 0 &&
        (*rule.backend_request_timeout_ms == 0 ||
         *rule.backend_request_timeout_ms > *rule.request_timeout_ms)) {
      r.error(t.markOf("backendRequest"), t.childPath("backendRequest"),
              invalidValue(timeouts["backendRequest"].Scalar(),
                           "backendRequest timeout cannot be longer than request timeout (" +
                               timeouts["request"].Scalar() + ")"));
    }
    t.finish();
  }
  m.unsupported("retry", "retry");
  m.unsupported("sessionPersistence", "sessionPersistence");
  m.finish();
  return rule;
}

}  // namespace

std::optional<HttpRouteModel> decodeHttpRoute(const Resource& res, Reporter& r) {
  int errors_before = r.errorCount();
  HttpRouteModel route;
  MapReader spec(r, res.spec, "spec");
  route_decode::parentRefsAndHostnames(r, spec, res, &route);
  size_t total_matches = 0;
  YAML::Node rules = spec.take("rules");
  forEachItem(r, rules, spec.childPath("rules"), kMaxRules,
              [&](const YAML::Node& item, const std::string& path, size_t) {
                route.rules.push_back(decodeRule(r, item, path, res, &total_matches));
              });
  if (total_matches > kMaxMatchesTotal) {
    r.error(markOf(rules), spec.childPath("rules"),
            "Too many: " + std::to_string(total_matches) + ": at most " +
                std::to_string(kMaxMatchesTotal) + " matches across all rules");
  }
  if (isAbsent(rules)) {
    RuleModel def;  // one rule matching PathPrefix "/", no backends
    def.where = Where{spec.mark(), "spec.rules"};
    MatchModel match;
    match.where = def.where;
    def.matches.push_back(match);
    route.rules.push_back(def);
  }
  spec.unsupported("useDefaultGateways", "useDefaultGateways");
  spec.finish();
  if (r.errorCount() > errors_before) return std::nullopt;
  if (route.parent_refs.empty()) {
    r.warning(spec.mark(), "spec.parentRefs", "no parentRefs: the route is attached to no Gateway");
  }
  return route;
}

namespace route_decode {

ParentRefModel parentRef(Reporter& r, const YAML::Node& node, const std::string& path,
                         const Resource& res) {
  return decodeParentRef(r, node, path, res);
}

void parentRefsAndHostnames(Reporter& r, MapReader& spec, const Resource& res,
                            HttpRouteModel* route) {
  forEachItem(r, spec.take("parentRefs"), spec.childPath("parentRefs"), kMaxParentRefs,
              [&](const YAML::Node& item, const std::string& path, size_t) {
                route->parent_refs.push_back(decodeParentRef(r, item, path, res));
              });
  forEachItem(r, spec.take("hostnames"), spec.childPath("hostnames"), kMaxHostnames,
              [&](const YAML::Node& item, const std::string& path, size_t) {
                std::optional<std::string> h = readString(r, item, path);
                if (!h) return;
                std::string problem = checkHostname(*h, /*allow_wildcard=*/true);
                if (!problem.empty()) {
                  r.error(markOf(item), path, invalidValue(*h, problem));
                  return;
                }
                if (std::find(route->hostnames.begin(), route->hostnames.end(), *h) ==
                    route->hostnames.end())
                  route->hostnames.push_back(*h);
              });
}

void headerMatches(Reporter& r, const YAML::Node& node, const std::string& path,
                   std::vector<StringMatchModel>* out) {
  decodeStringMatches(r, node, path, /*header_names=*/true, out);
}

void grpcFilters(Reporter& r, const YAML::Node& node, const std::string& path, const Resource& res,
                 FiltersModel* out) {
  decodeFilters(r, node, path, res, /*on_backend_ref=*/false, out, /*grpc=*/true);
}

BackendRefModel grpcBackendRef(Reporter& r, const YAML::Node& node, const std::string& path,
                               const Resource& res) {
  return decodeBackendRefFields(r, node, path, res, /*full=*/true, /*grpc=*/true);
}

std::shared_ptr<const re2::RE2> regex(Reporter& r, const YAML::Mark& mark, const std::string& path,
                                      const std::string& value) {
  return compileOrReport(r, mark, path, value);
}

}  // namespace route_decode
}  // namespace portico::config
