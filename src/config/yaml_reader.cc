#include "config/yaml_reader.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "config/syntax.h"

namespace portico::config {
namespace {

// yaml-cpp tags: "?" for plain scalars, "!" for quoted ones, or an explicit tag.
bool isPlain(const YAML::Node& n) { return n.Tag() == "?"; }

const char* typeName(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a scalar";
    default:
      return "null";
  }
}

// "a boolean" / "a number" / "null" when a plain (unquoted) scalar resolves to that type
// under the YAML 1.2 core schema, as Kubernetes' decoder reads it; nullptr for strings.
const char* plainScalarType(const YAML::Node& node) {
  if (!isPlain(node)) return nullptr;
  std::string_view s = node.Scalar();
  if (s.empty()) return nullptr;
  for (std::string_view b : {"true", "True", "TRUE", "false", "False", "FALSE"})
    if (s == b) return "a boolean";
  for (std::string_view n : {"~", "null", "Null", "NULL"})
    if (s == n) return "null";
  for (std::string_view n : {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf",
                             "-.INF", ".nan", ".NaN", ".NAN"})
    if (s == n) return "a number";
  auto hexOrOctal = [&](std::string_view prefix, std::string_view digits) {
    if (s.size() <= 2 || s.substr(0, 2) != prefix) return false;
    return s.find_first_not_of(digits, 2) == std::string_view::npos;
  };
  if (hexOrOctal("0x", "0123456789abcdefABCDEF") || hexOrOctal("0o", "01234567")) return "a number";
  // [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
  size_t i = 0;
  auto digits = [&] {
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i - start;
  };
  if (s[i] == '-' || s[i] == '+') ++i;
  size_t mantissa = digits();
  if (i < s.size() && s[i] == '.') {
    ++i;
    mantissa += digits();
  }
  if (mantissa == 0) return nullptr;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    if (digits() == 0) return nullptr;
  }
  return i == s.size() ? "a number" : nullptr;
}

bool looksInteger(std::string_view s) {
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (i >= s.size()) return false;
  for (; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

bool looksFloat(std::string_view s) {
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  size_t mantissa_digits = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++mantissa_digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++mantissa_digits;
  }
  if (mantissa_digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start) return false;
  }
  return i == s.size();
}

std::optional<int64_t> toInt64(std::string_view s) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

void Reporter::add(Severity severity, const YAML::Mark& at, std::string path, std::string message) {
  Diagnostic d;
  d.file = subject_.file;
  if (!at.is_null()) {
    d.line = at.line + 1 + subject_.line_offset;
    d.col = at.column + 1;
  }
  d.severity = severity;
  d.kind = subject_.kind;
  d.ns = subject_.ns;
  d.name = subject_.name;
  d.field_path = std::move(path);
  d.message = std::move(message);
  if (severity == Severity::kError) ++errors_;
  if (out_ != nullptr) out_->push_back(std::move(d));
}

YAML::Mark markOf(const YAML::Node& node) {
  if (!node.IsDefined()) return YAML::Mark::null_mark();
  return node.Mark();
}

bool isAbsent(const YAML::Node& node) { return !node.IsDefined() || node.IsNull(); }

std::string fieldPath(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  std::string out(parent);
  out += '.';
  out += key;
  return out;
}

std::string indexPath(std::string_view parent, size_t index) {
  return std::string(parent) + '[' + std::to_string(index) + ']';
}

std::string invalidValue(std::string_view value, std::string_view detail, bool quote) {
  std::string out = "Invalid value: ";
  if (quote) out += '"';
  out += value.size() > 80 ? std::string(value.substr(0, 77)) + "..." : std::string(value);
  if (quote) out += '"';
  out += ": ";
  out += detail;
  return out;
}

MapReader::MapReader(Reporter& reporter, const YAML::Node& node, std::string path)
    : reporter_(reporter), path_(std::move(path)), mark_(config::markOf(node)) {
  if (isAbsent(node)) return;
  if (!node.IsMap()) {
    valid_ = false;
    reporter_.error(mark_, path_,
                    std::string("must be a mapping of fields, not ") + typeName(node));
    return;
  }
  for (auto it = node.begin(); it != node.end(); ++it) {
    YAML::Node key = it->first;  // a copy: it-> returns a temporary proxy
    if (!key.IsScalar()) {
      reporter_.error(config::markOf(key), path_, "field names must be strings");
      continue;
    }
    if (find(key.Scalar()) != nullptr) {
      reporter_.error(config::markOf(key), fieldPath(path_, key.Scalar()),
                      "Duplicate value: field \"" + key.Scalar() + "\" appears twice");
      continue;
    }
    fields_.push_back(Field{key.Scalar(), config::markOf(key), it->second, false});
  }
}

MapReader::Field* MapReader::find(std::string_view key) {
  for (Field& f : fields_)
    if (f.key == key) return &f;
  return nullptr;
}

const MapReader::Field* MapReader::find(std::string_view key) const {
  for (const Field& f : fields_)
    if (f.key == key) return &f;
  return nullptr;
}

bool MapReader::has(std::string_view key) const {
  known_.emplace_back(key);
  const Field* f = find(key);
  return f != nullptr && !isAbsent(f->value);
}

YAML::Mark MapReader::markOf(std::string_view key) const {
  const Field* f = find(key);
  if (f == nullptr) return mark_;
  YAML::Mark m = config::markOf(f->value);
  return m.is_null() ? f->key_mark : m;
}

YAML::Node MapReader::take(std::string_view key, Need need) {
  known_.emplace_back(key);
  Field* f = find(key);
  if (f != nullptr) f->claimed = true;
  if (f == nullptr || isAbsent(f->value)) {
    if (need == Need::kRequired && valid_) {
      reporter_.error(f != nullptr ? f->key_mark : mark_, childPath(key), "Required value");
    }
    return YAML::Node(YAML::NodeType::Undefined);
  }
  return f->value;
}

std::optional<std::string> MapReader::string(std::string_view key, Need need) {
  YAML::Node v = take(key, need);
  if (!v.IsDefined()) return std::nullopt;
  return readString(reporter_, v, childPath(key));
}

std::optional<int64_t> MapReader::integer(std::string_view key, int64_t min, int64_t max,
                                          Need need) {
  YAML::Node v = take(key, need);
  if (!v.IsDefined()) return std::nullopt;
  return readInteger(reporter_, v, childPath(key), min, max);
}

std::optional<uint64_t> MapReader::duration(std::string_view key, Need need) {
  YAML::Node v = take(key, need);
  if (!v.IsDefined()) return std::nullopt;
  if (v.IsScalar() && plainScalarType(v) != nullptr) {
    reporter_.error(config::markOf(v), childPath(key),
                    invalidValue(v.Scalar(), "must be a duration with a unit, like \"10s\"",
                                 /*quote=*/false));
    return std::nullopt;
  }
  std::optional<std::string> s = readString(reporter_, v, childPath(key));
  if (!s) return std::nullopt;
  std::optional<uint64_t> ms = parseDurationMs(*s);
  if (!ms) {
    reporter_.error(markOf(key), childPath(key),
                    invalidValue(*s,
                                 "must be a duration of 1 to 4 parts like \"1h30m\", \"10s\" or "
                                 "\"500ms\" (units h, m, s, ms; no fractions)"));
  }
  return ms;
}

void MapReader::unsupported(std::string_view key, std::string_view what, bool error) {
  known_.emplace_back(key);
  Field* f = find(key);
  if (f == nullptr) return;
  f->claimed = true;
  if (isAbsent(f->value)) return;
  std::string message = std::string(what.empty() ? "this field" : what) + " is not supported yet";
  reporter_.add(error ? Severity::kError : Severity::kWarning, f->key_mark, childPath(key),
                std::move(message));
}

void MapReader::ignore(std::string_view key) {
  known_.emplace_back(key);
  if (Field* f = find(key)) f->claimed = true;
}

void MapReader::finish() {
  for (const Field& f : fields_) {
    if (f.claimed) continue;
    std::string message = "unknown field \"" + f.key + "\"";
    // Suggest a known field with a close spelling.
    const std::string* best = nullptr;
    size_t best_distance = 3;
    for (const std::string& known : known_) {
      size_t d = editDistance(f.key, known);
      if (d < best_distance && d < known.size()) best = &known, best_distance = d;
    }
    if (best != nullptr) message += "; did you mean \"" + *best + "\"?";
    reporter_.error(f.key_mark, childPath(f.key), std::move(message));
  }
}

std::optional<std::string> readString(Reporter& r, const YAML::Node& node,
                                      const std::string& path) {
  if (!node.IsScalar()) {
    r.error(markOf(node), path, std::string("must be a string, not ") + typeName(node));
    return std::nullopt;
  }
  if (const char* type = plainScalarType(node)) {
    r.error(markOf(node), path,
            invalidValue(node.Scalar(),
                         std::string("must be a string, not ") + type + " (quote it: \"" +
                             node.Scalar() + "\")",
                         /*quote=*/false));
    return std::nullopt;
  }
  return node.Scalar();
}

std::optional<int64_t> readInteger(Reporter& r, const YAML::Node& node, const std::string& path,
                                   int64_t min, int64_t max) {
  if (!node.IsScalar()) {
    r.error(markOf(node), path, std::string("must be an integer, not ") + typeName(node));
    return std::nullopt;
  }
  const std::string& s = node.Scalar();
  std::optional<int64_t> v;
  if (looksInteger(s)) v = toInt64(s);
  if (!isPlain(node) && node.Tag() != "tag:yaml.org,2002:int") {
    r.error(markOf(node), path, invalidValue(s, "must be an integer, not a quoted string"));
    return std::nullopt;
  }
  if (!v || *v < min || *v > max) {
    std::string detail = "must be an integer between " + std::to_string(min) + " and " +
                         std::to_string(max) + ", inclusive";
    r.error(markOf(node), path, invalidValue(s, detail, /*quote=*/!v.has_value()));
    return std::nullopt;
  }
  return v;
}

bool forEachItem(Reporter& r, const YAML::Node& node, const std::string& path, size_t max_items,
                 const std::function<void(const YAML::Node&, const std::string&, size_t)>& fn) {
  if (isAbsent(node)) return true;
  if (!node.IsSequence()) {
    r.error(markOf(node), path, std::string("must be a list, not ") + typeName(node));
    return false;
  }
  if (node.size() > max_items) {
    r.error(markOf(node), path,
            "Too many: " + std::to_string(node.size()) + ": must have at most " +
                std::to_string(max_items) + " items");
    return false;
  }
  size_t i = 0;
  for (auto it = node.begin(); it != node.end(); ++it, ++i) fn(*it, indexPath(path, i), i);
  return true;
}

std::string checkDocumentLimits(const YAML::Node& doc, YAML::Mark* where) {
  std::vector<std::pair<YAML::Node, int>> stack;
  stack.emplace_back(doc, 0);
  size_t count = 0;
  while (!stack.empty()) {
    auto [node, depth] = std::move(stack.back());
    stack.pop_back();
    if (++count > kMaxNodesPerDocument) {
      *where = markOf(node);
      return "document too large: more than " + std::to_string(kMaxNodesPerDocument) +
             " nodes (counting alias expansions)";
    }
    if (depth > kMaxDepth) {
      *where = markOf(node);
      return "document nested too deeply: more than " + std::to_string(kMaxDepth) + " levels";
    }
    if (node.IsMap()) {
      for (auto it = node.begin(); it != node.end(); ++it) {
        stack.emplace_back(it->first, depth + 1);
        stack.emplace_back(it->second, depth + 1);
      }
    } else if (node.IsSequence()) {
      for (auto it = node.begin(); it != node.end(); ++it) stack.emplace_back(*it, depth + 1);
    }
  }
  return "";
}

void appendJsonString(std::string_view text, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      // A run of characters written as they are.
      size_t run = i + 1;
      while (run < text.size()) {
        unsigned char d = static_cast<unsigned char>(text[run]);
        if (d < 0x20 || d >= 0x80 || d == '"' || d == '\\') break;
        ++run;
      }
      out->append(text.data() + i, run - i);
      i = run;
    } else if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
      ++i;
    } else if (c < 0x20) {
      out->append("\\u00");
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 0xf]);
      ++i;
    } else if (c < 0x80) {
      out->push_back(static_cast<char>(c));
      ++i;
    } else {
      // A well-formed UTF-8 sequence is copied; anything else becomes U+FFFD.
      size_t len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
      bool ok = len > 0 && i + len <= text.size();
      for (size_t k = 1; ok && k < len; ++k)
        ok = (static_cast<unsigned char>(text[i + k]) & 0xc0) == 0x80;
      if (ok && len == 3) {
        unsigned char c1 = static_cast<unsigned char>(text[i + 1]);
        ok = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0);  // overlong, surrogates
      } else if (ok && len == 4) {
        unsigned char c1 = static_cast<unsigned char>(text[i + 1]);
        ok = !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 >= 0x90);
      }
      if (ok) {
        out->append(text.substr(i, len));
        i += len;
      } else {
        out->append("\xef\xbf\xbd");
        ++i;
      }
    }
  }
  out->push_back('"');
}

namespace {

void appendJsonLimited(const YAML::Node& node, std::string* out, int depth, size_t* budget) {
  if (depth > kMaxDepth || *budget == 0) {
    out->append("null");
    return;
  }
  --*budget;
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      out->push_back('{');
      bool first = true;
      for (auto it = node.begin(); it != node.end(); ++it) {
        if (!first) out->push_back(',');
        first = false;
        if (it->first.IsScalar()) {
          appendJsonString(it->first.Scalar(), out);
        } else {
          std::string key;
          appendJsonLimited(it->first, &key, depth + 1, budget);
          appendJsonString(key, out);
        }
        out->push_back(':');
        appendJsonLimited(it->second, out, depth + 1, budget);
      }
      out->push_back('}');
      return;
    }
    case YAML::NodeType::Sequence: {
      out->push_back('[');
      bool first = true;
      for (auto it = node.begin(); it != node.end(); ++it) {
        if (!first) out->push_back(',');
        first = false;
        appendJsonLimited(*it, out, depth + 1, budget);
      }
      out->push_back(']');
      return;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      if (isPlain(node)) {
        std::optional<int64_t> integer = looksInteger(s) ? toInt64(s) : std::nullopt;
        double real = looksFloat(s) ? std::strtod(s.c_str(), nullptr) : NAN;
        if (s == "true" || s == "True" || s == "TRUE") {
          out->append("true");
        } else if (s == "false" || s == "False" || s == "FALSE") {
          out->append("false");
        } else if (integer) {
          out->append(std::to_string(*integer));
        } else if (std::isfinite(real)) {
          char buf[32];
          std::snprintf(buf, sizeof buf, "%.17g", real);
          out->append(buf);
        } else {
          appendJsonString(s, out);
        }
        return;
      }
      appendJsonString(s, out);
      return;
    }
    default:
      out->append("null");
  }
}

}  // namespace

void appendJson(const YAML::Node& node, std::string* out) {
  size_t budget = kMaxNodesPerDocument;
  appendJsonLimited(node, out, 0, &budget);
}

}  // namespace portico::config
