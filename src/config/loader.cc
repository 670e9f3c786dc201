#include "config/loader.h"

#include <yaml-cpp/eventhandler.h>

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

// Event sink for the pre-pass of checkParserProgress(): records where documents start.
class DocumentStarts : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { start_ = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
  const YAML::Mark& start() const { return start_; }

 private:
  YAML::Mark start_;
};

constexpr size_t kMaxDocumentsPerFile = 1'000'000;

// yaml-cpp 0.7's LoadAll() loops forever, allocating, when a document starts with a token
// the parser does not consume (",", or "!tag ," ...; jbeder/yaml-cpp#1040, fixed upstream
// by #1319). This pass runs the parser without building nodes and reports such input as a
// syntax error; it throws YAML::ParserException like LoadAll for other syntax errors.
void checkParserProgress(const std::string& text) {
  std::istringstream stream(text);
  YAML::Parser parser(stream);
  DocumentStarts events;
  int previous_pos = -1;
  size_t documents = 0;
  while (parser.HandleNextDocument(events)) {
    if (events.start().pos == previous_pos)
      throw YAML::ParserException(events.start(), "unexpected token at the start of a document");
    previous_pos = events.start().pos;
    if (++documents > kMaxDocumentsPerFile)
      throw YAML::ParserException(events.start(), "too many documents");
  }
}

// Appends the resources of one file's text to *result.
void loadText(std::string_view text, const std::string& file, LoadResult* result) {
  std::vector<YAML::Node> documents;
  try {
    std::string copy(text);
    checkParserProgress(copy);
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
