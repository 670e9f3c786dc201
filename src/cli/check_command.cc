// `portico check -c PATH [-o text|json]`. See docs/cli.md for the output formats; they are
// meant for scripts and CI, so keep them stable.
#include "cli/check_command.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/compiler.h"
#include "config/diagnostic.h"
#include "config/loader.h"
#include "config/snapshot.h"
#include "config/stats_ids.h"

namespace portico::cli {

namespace {

// ordered_json: keys keep the order of the config dump and of this file.
using json = nlohmann::ordered_json;

constexpr int kExitValid = 0;
constexpr int kExitInvalid = 1;
constexpr int kExitUnreadable = 2;
constexpr int kExitUsage = 64;

enum class Format { kText, kJson };

struct Options {
  std::string config_path;
  Format format = Format::kText;
};

void usage() {
  std::fprintf(stderr,
               "usage: portico check -c PATH [-o text|json]\n"
               "  -c, --config PATH     YAML file or folder of YAML files to validate\n"
               "  -o, --output FORMAT   text (default): diagnostics on stderr, one status line\n"
               "                        per resource and a summary on stdout;\n"
               "                        json: one JSON document on stdout\n"
               "exit codes: 0 valid (warnings allowed), 1 invalid, 2 unreadable, 64 usage\n");
}

const char* severityName(config::Severity s) {
  return s == config::Severity::kError ? "error" : "warning";
}

std::string plural(size_t n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// A condition of a resource, flattened from status.conditions, status.listeners[],
// status.parents[] or status.ancestors[]; `scope` names the listener/parent/ancestor.
struct Scoped {
  std::string scope;  // "" for status.conditions
  json conditions;    // array of {type, status, reason, message, ...}
  json extra;         // object merged into each JSON condition: {"listener": ...} etc.
};

std::string refName(const json& ref) {
  std::string out = str(ref, "kind") + " " + str(ref, "namespace") + "/" + str(ref, "name");
  if (std::string section = str(ref, "sectionName"); !section.empty()) out += "/" + section;
  return out;
}

std::vector<Scoped> scopedConditions(const json& status) {
  std::vector<Scoped> out;
  if (!status.is_object()) return out;
  if (auto it = status.find("conditions"); it != status.end() && it->is_array())
    out.push_back({"", *it, json::object()});
  if (auto it = status.find("listeners"); it != status.end() && it->is_array()) {
    for (const json& l : *it) {
      std::string name = str(l, "name");
      out.push_back(
          {"listener " + name, l.value("conditions", json::array()), json{{"listener", name}}});
    }
  }
  if (auto it = status.find("parents"); it != status.end() && it->is_array()) {
    for (const json& p : *it) {
      json ref = p.value("parentRef", json::object());
      out.push_back({"parent " + refName(ref), p.value("conditions", json::array()),
                     json{{"parentRef", ref}}});
    }
  }
  if (auto it = status.find("ancestors"); it != status.end() && it->is_array()) {
    for (const json& a : *it) {
      json ref = a.value("ancestorRef", json::object());
      out.push_back({"ancestor " + refName(ref), a.value("conditions", json::array()),
                     json{{"ancestorRef", ref}}});
    }
  }
  return out;
}

// "Accepted=True ResolvedRefs=False (BackendNotFound: ...)": the reason and message are shown
// when the reason differs from the type (the positive reasons equal their type).
std::string conditionsText(const json& conditions) {
  std::string out;
  for (const json& c : conditions) {
    if (!out.empty()) out += ' ';
    std::string type = str(c, "type");
    std::string reason = str(c, "reason");
    std::string message = str(c, "message");
    out += type + "=" + str(c, "status");
    if (!reason.empty() && reason != type) {
      out += " (" + reason;
      if (!message.empty()) out += ": " + message;
      out += ")";
    }
  }
  return out;
}

json diagnosticJson(const config::Diagnostic& d) {
  return {{"file", d.file},      {"line", d.line},
          {"column", d.col},     {"severity", severityName(d.severity)},
          {"kind", d.kind},      {"namespace", d.ns},
          {"name", d.name},      {"fieldPath", d.field_path},
          {"message", d.message}};
}

int run(const Options& o) {
  config::LoadResult loaded = config::loadPath(o.config_path);
  std::vector<config::Diagnostic> diagnostics = std::move(loaded.diagnostics);
  bool unreadable = loaded.outcome == config::LoadOutcome::kUnreadable;
  json resources = json::array();
  if (!unreadable) {
    config::StatsIds ids;
    config::CompileResult compiled =
        config::compile(loaded.resources, ids, /*version=*/1);  // as gateway startup
    diagnostics.insert(diagnostics.end(), compiled.diagnostics.begin(), compiled.diagnostics.end());
    json dump = json::parse(config::renderConfigDump(*compiled.snapshot), nullptr,
                            /*allow_exceptions=*/false);
    if (dump.is_object() && dump.contains("resources") && dump["resources"].is_array())
      resources = std::move(dump["resources"]);
    // `portico gateway` refuses to start without a listener: so does check (reported only when
    // nothing else is wrong, since an invalid Gateway is the usual cause).
    if (compiled.snapshot->ports.empty() && !config::hasErrors(diagnostics) &&
        loaded.outcome == config::LoadOutcome::kOk) {
      config::Diagnostic d;
      d.file = o.config_path;
      d.message = "the configuration defines no usable listener (portico gateway would not start)";
      diagnostics.push_back(std::move(d));
    }
  }
  size_t errors = 0, warnings = 0;
  for (const config::Diagnostic& d : diagnostics) {
    if (d.severity == config::Severity::kError) {
      ++errors;
    } else {
      ++warnings;
    }
  }
  int code = unreadable                                                 ? kExitUnreadable
             : errors > 0 || loaded.outcome != config::LoadOutcome::kOk ? kExitInvalid
                                                                        : kExitValid;
  const char* verdict = code == kExitValid     ? "valid"
                        : code == kExitInvalid ? "invalid"
                                               : "unreadable";

  if (o.format == Format::kJson) {
    json diags = json::array();
    for (const config::Diagnostic& d : diagnostics) diags.push_back(diagnosticJson(d));
    json res = json::array();
    for (const json& r : resources) {
      const json& metadata = r.value("metadata", json::object());
      const json& source = r.value("source", json::object());
      json conditions = json::array();
      for (const Scoped& s : scopedConditions(r.value("status", json::object()))) {
        for (const json& c : s.conditions) {
          json cond = {{"type", str(c, "type")},
                       {"status", str(c, "status")},
                       {"reason", str(c, "reason")},
                       {"message", str(c, "message")}};
          cond.update(s.extra);
          conditions.push_back(std::move(cond));
        }
      }
      json entry = {{"kind", str(r, "kind")},
                    {"namespace", str(metadata, "namespace")},
                    {"name", str(metadata, "name")},
                    {"file", str(source, "file")}};
      if (source.contains("line")) entry["line"] = source["line"];
      entry["conditions"] = std::move(conditions);
      res.push_back(std::move(entry));
    }
    json out = {{"path", o.config_path}, {"valid", code == kExitValid}, {"result", verdict},
                {"errors", errors},      {"warnings", warnings},        {"diagnostics", diags},
                {"resources", res}};
    std::printf("%s\n", out.dump(2, ' ', false, json::error_handler_t::replace).c_str());
    return code;
  }

  for (const config::Diagnostic& d : diagnostics) std::fprintf(stderr, "%s\n", d.format().c_str());
  if (unreadable) {
    std::fprintf(stderr, "portico check: %s: configuration not loaded\n", o.config_path.c_str());
    return code;
  }
  for (const json& r : resources) {
    const json& metadata = r.value("metadata", json::object());
    std::vector<Scoped> scoped = scopedConditions(r.value("status", json::object()));
    std::string line =
        str(r, "kind") + " " + str(metadata, "namespace") + "/" + str(metadata, "name") + ":";
    // A single parent or ancestor is shown inline (the common case); listeners, and several
    // parents or ancestors, go on indented lines below the resource.
    std::vector<std::string> sub;
    bool inline_one = scoped.size() == 1 || (scoped.size() == 2 && scoped[0].scope.empty() &&
                                             scoped[0].conditions.empty());
    for (const Scoped& s : scoped) {
      bool is_listener = s.extra.contains("listener");
      if (s.scope.empty() || (inline_one && !is_listener)) {
        if (!s.conditions.empty()) line += " " + conditionsText(s.conditions);
      } else {
        sub.push_back("  " + s.scope + ": " + conditionsText(s.conditions));
      }
    }
    if (line.back() == ':') line += " -";
    std::printf("%s\n", line.c_str());
    for (const std::string& s : sub) std::printf("%s\n", s.c_str());
  }
  std::string counts = plural(resources.size(), "resource") + ", " + plural(errors, "error") +
                       ", " + plural(warnings, "warning");
  if (code == kExitValid) {
    std::printf("configuration '%s' OK: %s\n", o.config_path.c_str(), counts.c_str());
  } else {
    std::printf("configuration '%s' invalid: %s\n", o.config_path.c_str(), counts.c_str());
  }
  return code;
}

}  // namespace

int checkMain(int argc, char** argv) {
  Options o;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    std::string v;
    bool has_inline = false;
    if (size_t eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_inline = true;
    }
    auto value = [&](std::string* out) {
      if (has_inline) {
        *out = v;
        return true;
      }
      if (i + 1 >= argc) {
        std::fprintf(stderr, "portico check: %s needs a value\n", a.c_str());
        return false;
      }
      *out = argv[++i];
      return true;
    };
    if (a == "-c" || a == "--config") {
      if (!value(&o.config_path)) return kExitUsage;
    } else if (a == "-o" || a == "--output") {
      std::string f;
      if (!value(&f)) return kExitUsage;
      if (f == "text") {
        o.format = Format::kText;
      } else if (f == "json") {
        o.format = Format::kJson;
      } else {
        std::fprintf(stderr, "portico check: --output: '%s' is not text or json\n", f.c_str());
        return kExitUsage;
      }
    } else if (a == "-h" || a == "--help") {
      usage();
      return kExitValid;
    } else {
      std::fprintf(stderr, "portico check: unknown argument '%s'\n", argv[i]);
      usage();
      return kExitUsage;
    }
  }
  if (o.config_path.empty()) {
    std::fprintf(stderr, "portico check: -c PATH is required\n");
    usage();
    return kExitUsage;
  }
  return run(o);
}

}  // namespace portico::cli
