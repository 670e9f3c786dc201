#include "config/loader.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace portico::config {
namespace {

Diagnostic fileDiagnostic(const std::string& file, std::string message, int line = 0, int col = 0,
                          Severity severity = Severity::kError) {
  Diagnostic d;
  d.file = file;
  d.line = line;
  d.col = col;
  d.severity = severity;
  d.message = std::move(message);
  return d;
}

// Appends the resources of one file's text to *result.
void loadText(std::string_view text, const std::string& file, LoadResult* result) {
  std::vector<YAML::Node> documents;
  try {
    std::string copy(text);  // yaml-cpp needs a NUL-free stream; a std::string is fine
    std::istringstream stream(copy);
    documents = YAML::LoadAll(stream);
  } catch (const YAML::Exception& e) {
    int line = e.mark.is_null() ? 0 : e.mark.line + 1;
    int col = e.mark.is_null() ? 0 : e.mark.column + 1;
    result->diagnostics.push_back(fileDiagnostic(file, "invalid YAML: " + e.msg, line, col));
    result->outcome = LoadOutcome::kSyntaxError;
    return;
  } catch (const std::exception& e) {
    result->diagnostics.push_back(fileDiagnostic(file, std::string("invalid YAML: ") + e.what()));
    result->outcome = LoadOutcome::kSyntaxError;
    return;
  }
  for (const YAML::Node& doc : documents) {
    if (isAbsent(doc)) continue;  // "---" followed by nothing
    try {
      YAML::Mark where;
      std::string problem = checkDocumentLimits(doc, &where);
      if (!problem.empty()) {
        int line = where.is_null() ? 0 : where.line + 1;
        int col = where.is_null() ? 0 : where.column + 1;
        result->diagnostics.push_back(fileDiagnostic(file, problem, line, col));
        continue;
      }
      if (std::optional<Resource> res = decodeResource(doc, file, &result->diagnostics))
        result->resources.push_back(std::move(*res));
    } catch (const std::exception& e) {
      // yaml-cpp node access throws only on misuse; keep the gateway alive regardless.
      YAML::Mark m = markOf(doc);
      result->diagnostics.push_back(
          fileDiagnostic(file, std::string("cannot decode document: ") + e.what(),
                         m.is_null() ? 0 : m.line + 1, m.is_null() ? 0 : m.column + 1));
    }
  }
}

// Reads a whole file; on failure returns false with a message.
bool readFile(const std::string& path, std::string* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = std::strerror(errno);
    return false;
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) {
    *error = "read error";
    return false;
  }
  *out = buf.str();
  return true;
}

bool isYamlName(const std::filesystem::path& p) {
  std::string name = p.filename().string();
  if (name.empty() || name[0] == '.') return false;
  std::string ext = p.extension().string();
  return ext == ".yaml" || ext == ".yml";
}

}  // namespace

LoadResult loadString(std::string_view text, const std::string& file) {
  LoadResult result;
  loadText(text, file, &result);
  return result;
}

LoadResult loadPath(const std::string& path) {
  LoadResult result;
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    result.outcome = LoadOutcome::kUnreadable;
    result.diagnostics.push_back(
        fileDiagnostic(path, "cannot read configuration: " +
                                 (ec ? ec.message() : std::string("no such file or directory"))));
    return result;
  }
  std::vector<std::string> files;
  if (fs::is_directory(status)) {
    fs::directory_iterator it(path, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      std::error_code type_ec;
      if (isYamlName(it->path()) && !it->is_directory(type_ec))
        files.push_back(it->path().string());
    }
    if (ec) {
      result.outcome = LoadOutcome::kUnreadable;
      result.diagnostics.push_back(
          fileDiagnostic(path, "cannot read configuration directory: " + ec.message()));
      return result;
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) {
      result.diagnostics.push_back(
          fileDiagnostic(path, "no *.yaml or *.yml files in directory", 0, 0, Severity::kWarning));
    }
  } else {
    files.push_back(path);
  }
  for (const std::string& file : files) {
    std::string text, error;
    if (!readFile(file, &text, &error)) {
      result.outcome = LoadOutcome::kUnreadable;
      result.resources.clear();
      result.diagnostics.push_back(fileDiagnostic(file, "cannot read configuration: " + error));
      return result;
    }
    LoadOutcome before = result.outcome;
    loadText(text, file, &result);
    if (before == LoadOutcome::kSyntaxError) result.outcome = before;
  }
  return result;
}

}  // namespace portico::config
