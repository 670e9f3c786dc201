#include "config/loader.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "config/testing.h"

namespace portico::config {
namespace {

using testing::formatAll;
using testing::TempDir;

std::string joined(const std::vector<Diagnostic>& diagnostics) {
  std::string out;
  for (const std::string& line : formatAll(diagnostics)) out += line + "\n";
  return out;
}

// Expects exactly these formatted diagnostics, in order.
void expectDiagnostics(const LoadResult& result, const std::vector<std::string>& expected) {
  EXPECT_EQ(formatAll(result.diagnostics), expected) << joined(result.diagnostics);
}

constexpr std::string_view kTwoDocs = R"(# leading comment
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: edge
  namespace: infra
  creationTimestamp: "2024-05-01T10:00:00Z"
  labels: {team: net}
spec:
  listeners: []
---
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata:
  name: api
spec: {}
)";

TEST(LoaderTest, LoadsMultiDocumentFileAndSkipsEmptyDocuments) {
  TempDir dir;
  std::string file = dir.write("all.yaml", kTwoDocs);
  LoadResult result = loadPath(file);
  ASSERT_EQ(result.outcome, LoadOutcome::kOk);
  EXPECT_TRUE(result.diagnostics.empty()) << joined(result.diagnostics);
  ASSERT_EQ(result.resources.size(), 2u);

  const Resource& gw = result.resources[0];
  EXPECT_EQ(gw.file, file);
  EXPECT_EQ(gw.kind, "Gateway");
  EXPECT_EQ(gw.api_version, "gateway.networking.k8s.io/v1");
  EXPECT_EQ(gw.group(), "gateway.networking.k8s.io");
  EXPECT_EQ(gw.version(), "v1");
  EXPECT_EQ(gw.ns, "infra");
  EXPECT_EQ(gw.name, "edge");
  EXPECT_EQ(gw.creation_timestamp, "2024-05-01T10:00:00Z");
  EXPECT_EQ(gw.created_us, int64_t{1714557600} * 1'000'000);
  EXPECT_EQ(gw.labels.at("team"), "net");
  EXPECT_EQ(gw.mark.line + 1, 2);  // the mapping starts after the comment
  ASSERT_TRUE(gw.spec.IsMap());
  EXPECT_EQ(markOf(gw.spec["listeners"]).line + 1, 10);

  const Resource& backend = result.resources[1];
  EXPECT_EQ(backend.ns, "default");
  EXPECT_EQ(backend.created_us, kNoTimestamp);
  EXPECT_EQ(backend.mark.line + 1, 13);
}

TEST(LoaderTest, DirectoryReadsYamlFilesInNameOrder) {
  TempDir dir;
  auto doc = [](std::string_view name) {
    return "apiVersion: portico.dev/v1alpha1\nkind: Backend\nmetadata: {name: " +
           std::string(name) + "}\nspec: {}\n";
  };
  dir.write("b.yaml", doc("b"));
  dir.write("a.yml", doc("a"));
  dir.write("c.txt", doc("c"));
  dir.write(".hidden.yaml", doc("hidden"));
  dir.write("sub/d.yaml", doc("d"));
  LoadResult result = loadPath(dir.path());
  ASSERT_EQ(result.outcome, LoadOutcome::kOk) << joined(result.diagnostics);
  ASSERT_EQ(result.resources.size(), 2u);
  EXPECT_EQ(result.resources[0].name, "a");
  EXPECT_EQ(result.resources[0].file, dir.path() + "/a.yml");
  EXPECT_EQ(result.resources[1].name, "b");
}

TEST(LoaderTest, EmptyDirectoryWarns) {
  TempDir dir;
  LoadResult result = loadPath(dir.path());
  EXPECT_EQ(result.outcome, LoadOutcome::kOk);
  expectDiagnostics(result, {dir.path() + ": warning: no *.yaml or *.yml files in directory"});
}

TEST(LoaderTest, MissingPathIsUnreadable) {
  TempDir dir;
  std::string path = dir.path() + "/nope.yaml";
  LoadResult result = loadPath(path);
  EXPECT_EQ(result.outcome, LoadOutcome::kUnreadable);
  expectDiagnostics(result,
                    {path + ": error: cannot read configuration: No such file or directory"});
}

TEST(LoaderTest, UnreadableFileIsUnreadable) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads files regardless of permissions";
  TempDir dir;
  std::string file = dir.write("secret.yaml", kTwoDocs);
  chmod(file.c_str(), 0);
  LoadResult result = loadPath(dir.path());
  EXPECT_EQ(result.outcome, LoadOutcome::kUnreadable);
  EXPECT_TRUE(result.resources.empty());
  expectDiagnostics(result, {file + ": error: cannot read configuration: Permission denied"});
}

TEST(LoaderTest, DanglingSymlinkInDirectoryIsUnreadable) {
  TempDir dir;
  dir.write("a.yaml", kTwoDocs);
  std::string link = dir.path() + "/b.yaml";
  ASSERT_EQ(symlink((dir.path() + "/missing").c_str(), link.c_str()), 0);
  LoadResult result = loadPath(dir.path());
  EXPECT_EQ(result.outcome, LoadOutcome::kUnreadable);
  EXPECT_TRUE(result.resources.empty());
  expectDiagnostics(result,
                    {link + ": error: cannot read configuration: No such file or directory"});
}

TEST(LoaderTest, SyntaxErrorPointsAtLineAndColumn) {
  TempDir dir;
  std::string good = dir.write("a.yaml", kTwoDocs);
  std::string bad = dir.write("b.yaml",
                              "apiVersion: v1\n"
                              "kind: Gateway\n"
                              "metadata:\n"
                              "  name: a\n"
                              "   extra: 1\n");
  LoadResult result = loadPath(dir.path());
  EXPECT_EQ(result.outcome, LoadOutcome::kSyntaxError);
  EXPECT_EQ(result.resources.size(), 2u);  // a.yaml still loads
  expectDiagnostics(result, {bad + ":5:9: error: invalid YAML: illegal map value"});
}

TEST(LoaderTest, UnclosedFlowSequence) {
  LoadResult result = loadString("a: [1, 2\nb: c\n", "f.yaml");
  EXPECT_EQ(result.outcome, LoadOutcome::kSyntaxError);
  expectDiagnostics(result, {"f.yaml:2:2: error: invalid YAML: end of sequence flow not found"});
}

// yaml-cpp 0.7's LoadAll() never returns on these (jbeder/yaml-cpp#1040).
TEST(LoaderTest, InputsThatHangYamlCppAreSyntaxErrors) {
  for (const char* text : {",", ", {a: b}", "a: b\n---\n,", "- a\n,", "\"a\" ,", "&a ,"}) {
    LoadResult result = loadString(text, "f.yaml");
    EXPECT_EQ(result.outcome, LoadOutcome::kSyntaxError) << text;
    ASSERT_EQ(result.diagnostics.size(), 1u) << text;
    EXPECT_NE(result.diagnostics[0].format().find("invalid YAML"), std::string::npos);
  }
  LoadResult result = loadString("a: b\n---\n,", "f.yaml");
  EXPECT_EQ(result.diagnostics[0].format(),
            "f.yaml:3:1: error: invalid YAML: unexpected token at the start of a document");
}

TEST(LoaderTest, EnvelopeErrors) {
  LoadResult result = loadString(R"(apiVersion: portico.dev/v1alpha1
kind: Backend
metadata:
  name: Bad_Name
  namespace: prod
  nmespace: x
specs: {}
---
- just
- a list
---
apiVersion: portico.dev/v1alpha1
metadata: {name: ok}
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata:
  name: ts
  creationTimestamp: yesterday
  generation: -1
spec: {}
---
apiVersion: portico.dev/v1alpha1
kind: Backend
spec: {}
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {name: fine, uid: 123, resourceVersion: "9"}
spec: {}
status: {anything: true}
)",
                                 "f.yaml");
  EXPECT_EQ(result.outcome, LoadOutcome::kOk);
  ASSERT_EQ(result.resources.size(), 1u);
  EXPECT_EQ(result.resources[0].name, "fine");
  expectDiagnostics(
      result,
      {"f.yaml:4:9: error: Backend prod/Bad_Name: metadata.name: Invalid value: \"Bad_Name\": a "
       "lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
       "'.', and must start and end with an alphanumeric character",
       "f.yaml:6:3: error: Backend prod/Bad_Name: metadata.nmespace: unknown field \"nmespace\"; "
       "did you mean \"namespace\"?",
       "f.yaml:7:1: error: Backend prod/Bad_Name: specs: unknown field \"specs\"; did you mean "
       "\"spec\"?",
       "f.yaml:9:1: error: a resource must be a mapping with apiVersion, kind, metadata and spec",
       "f.yaml:12:1: error: kind: Required value",
       "f.yaml:19:22: error: Backend default/ts: metadata.creationTimestamp: Invalid value: "
       "\"yesterday\": must be an RFC 3339 date-time like \"2024-05-01T10:00:00Z\"",
       "f.yaml:20:15: error: Backend default/ts: metadata.generation: Invalid value: -1: must be "
       "an integer between 0 and 9223372036854775807, inclusive",
       "f.yaml:23:1: error: Backend: metadata: Required value"});
}

TEST(LoaderTest, DuplicateKeysAndNonStringKeys) {
  LoadResult result = loadString(R"(apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {name: a}
spec: {}
spec: {}
)",
                                 "f.yaml");
  expectDiagnostics(result, {"f.yaml:5:1: error: Backend default/a: spec: Duplicate value: field "
                             "\"spec\" appears twice"});
  EXPECT_TRUE(result.resources.empty());
}

TEST(LoaderTest, MappingThatIsNoResourceGetsOneError) {
  LoadResult result = loadString("x-defaults: {port: 80}\nother: 1\n", "f.yaml");
  expectDiagnostics(
      result, {"f.yaml:1:1: error: not a resource: apiVersion, kind and metadata are missing"});
}

TEST(LoaderTest, AliasBombIsRejectedCheaply) {
  std::string text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  std::string prev = "a";
  for (int i = 0; i < 8; ++i) {
    std::string name = "l" + std::to_string(i);
    text += name + ": &" + name + " [";
    for (int j = 0; j < 10; ++j) text += (j ? ", *" : "*") + prev;
    text += "]\n";
    prev = name;
  }
  LoadResult result = loadString(text, "bomb.yaml");
  ASSERT_EQ(result.diagnostics.size(), 1u);
  EXPECT_NE(result.diagnostics[0].message.find("document too large"), std::string::npos)
      << result.diagnostics[0].format();
  EXPECT_TRUE(result.resources.empty());
}

TEST(LoaderTest, DeepNestingIsRejected) {
  std::string text = "kind: " + std::string(100, '[') + std::string(100, ']') + "\n";
  LoadResult result = loadString(text, "deep.yaml");
  ASSERT_EQ(result.diagnostics.size(), 1u);
  EXPECT_NE(result.diagnostics[0].message.find("nested too deeply"), std::string::npos)
      << result.diagnostics[0].format();
}

TEST(LoaderTest, DiagnosticFormatOmitsUnknownParts) {
  Diagnostic d;
  d.message = "m";
  EXPECT_EQ(d.format(), "error: m");
  d.file = "f.yaml";
  EXPECT_EQ(d.format(), "f.yaml: error: m");
  d.line = 3;
  d.col = 4;
  d.kind = "HTTPRoute";
  EXPECT_EQ(d.format(), "f.yaml:3:4: error: HTTPRoute: m");
  d.ns = "default";
  d.name = "r";
  d.field_path = "spec.rules[0]";
  d.severity = Severity::kWarning;
  EXPECT_EQ(d.format(), "f.yaml:3:4: warning: HTTPRoute default/r: spec.rules[0]: m");
}

// ---- Incremental reloads (Loader) ------------------------------------------------------

std::string backendDoc(std::string_view name, std::string_view extra = "") {
  return "apiVersion: portico.dev/v1alpha1\nkind: Backend\nmetadata: {name: " + std::string(name) +
         "}\nspec:\n  endpoints: [{address: 10.0.0.1, port: 80}]\n" + std::string(extra);
}

std::string routeDoc(std::string_view name, std::string_view backend) {
  return "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: " +
         std::string(name) + "}\nspec:\n  parentRefs: [{name: g}]\n  rules:\n" +
         "  - backendRefs: [{name: " + std::string(backend) +
         ", kind: Backend, group: " + "portico.dev}]\n";
}

// Every diagnostic of loading and compiling `file` with a fresh loader.
std::vector<std::string> freshDiagnostics(const std::string& file) {
  LoadResult load = loadPath(file);
  StatsIds ids;
  CompileResult compiled = compile(load.resources, ids, 1);
  std::vector<std::string> out = formatAll(load.diagnostics);
  for (const std::string& d : formatAll(compiled.diagnostics)) out.push_back(d);
  return out;
}

TEST(LoaderTest, ReloadReusesUnchangedDocumentsWithoutParsingThem) {
  TempDir dir;
  std::string file =
      dir.write("c.yaml", backendDoc("a") + "---\n" + backendDoc("b") + "---\n" + backendDoc("c"));
  Loader loader;
  LoadResult first = loader.load(file);
  ASSERT_EQ(first.resources.size(), 3u);
  EXPECT_EQ(loader.parsedDocuments(), 3u);
  EXPECT_EQ(loader.reusedDocuments(), 0u);

  // Same line count: only the second document's text changes.
  dir.write("c.yaml", backendDoc("a") + "---\n" + backendDoc("x") + "---\n" + backendDoc("c"));
  LoadResult second = loader.load(file);
  ASSERT_EQ(second.resources.size(), 3u);
  EXPECT_EQ(loader.parsedDocuments(), 1u);
  EXPECT_EQ(loader.reusedDocuments(), 2u);
  EXPECT_EQ(second.resources[1].name, "x");
  // The unchanged documents are the very same parsed YAML (and decoded spec), not re-parsed.
  EXPECT_TRUE(second.resources[0].document.is(first.resources[0].document));
  EXPECT_TRUE(second.resources[2].document.is(first.resources[2].document));
  EXPECT_EQ(second.resources[2].decoded, first.resources[2].decoded);
  EXPECT_FALSE(second.resources[1].document.is(first.resources[1].document));
  EXPECT_EQ(second.resources[2].mark.line + 1, 13);

  // Nothing changed: nothing parsed.
  loader.load(file);
  EXPECT_EQ(loader.parsedDocuments(), 0u);
  EXPECT_EQ(loader.reusedDocuments(), 3u);
}

TEST(LoaderTest, DocumentAfterAChangedOneReportsItsNewLines) {
  TempDir dir;
  // The route has compiler warnings (found after decoding, at marks the decoder kept); the
  // last document has an envelope error (loader).
  const std::string kMissingBackend =
      "warning: HTTPRoute default/r: spec.rules[0].backendRefs[0]: ResolvedRefs=False/"
      "BackendNotFound: Backend default/missing not found; its share of the traffic answers 500";
  const std::string kNoGateway =
      "warning: HTTPRoute default/r: spec.parentRefs[0]: Accepted=False/NoMatchingParent: "
      "Gateway default/g not found";
  std::string route = routeDoc("r", "missing");
  // A decoder error (reused from the decoded spec on reload) in the last document.
  const std::string kDecodeError =
      "apiVersion: portico.dev/v1alpha1\nkind: Backend\nmetadata: {name: c}\nspec:\n"
      "  endpoints: [{address: \"db internal\", port: 1}]\n";
  std::string file =
      dir.write("c.yaml", backendDoc("a") + "---\n" + route + "---\n" +
                              backendDoc("b", "bogus: 1\n") + "---\n" + kDecodeError);
  Loader loader;
  StatsIds ids;
  LoadResult load = loader.load(file);
  CompileResult compiled = compile(load.resources, ids, 1);
  std::vector<std::string> before = formatAll(load.diagnostics);
  for (const std::string& d : formatAll(compiled.diagnostics)) before.push_back(d);
  EXPECT_EQ(before, freshDiagnostics(file));
  ASSERT_EQ(before.size(), 4u);
  EXPECT_EQ(before[1].substr(0, file.size() + 8), file + ":26:25: ");
  EXPECT_EQ(before[0], file + ":20:1: error: Backend default/b: bogus: unknown field \"bogus\"");
  EXPECT_EQ(before[2], file + ":13:19: " + kMissingBackend);
  EXPECT_EQ(before[3], file + ":11:16: " + kNoGateway);

  // The first document grows by three lines; the others are reused and move down.
  dir.write("c.yaml", backendDoc("a", "# one\n# two\n# three\n") + "---\n" + route + "---\n" +
                          backendDoc("b", "bogus: 1\n") + "---\n" + kDecodeError);
  load = loader.load(file);
  EXPECT_EQ(loader.parsedDocuments(), 1u);
  EXPECT_EQ(loader.reusedDocuments(), 3u);
  compiled = compile(load.resources, ids, 2);
  std::vector<std::string> after = formatAll(load.diagnostics);
  for (const std::string& d : formatAll(compiled.diagnostics)) after.push_back(d);
  EXPECT_EQ(after, freshDiagnostics(file));
  ASSERT_EQ(after.size(), 4u);
  EXPECT_EQ(after[1].substr(0, file.size() + 8), file + ":29:25: ");
  EXPECT_EQ(after[0], file + ":23:1: error: Backend default/b: bogus: unknown field \"bogus\"");
  EXPECT_EQ(after[2], file + ":16:19: " + kMissingBackend);
  EXPECT_EQ(after[3], file + ":14:16: " + kNoGateway);
  EXPECT_EQ(load.resources[1].mark.line + 1, 10);
  EXPECT_EQ(markOf(load.resources[1].spec).line + load.resources[1].line_offset + 1, 14);
}

TEST(LoaderTest, SyntaxErrorInALaterDocumentHasItsFileLine) {
  Loader loader;
  LoadResult result = loader.loadText(backendDoc("a") + "---\n" + "a: [1, 2\nb: c\n", "f.yaml");
  EXPECT_EQ(result.outcome, LoadOutcome::kSyntaxError);
  EXPECT_TRUE(result.resources.empty());  // the whole file is unusable
  expectDiagnostics(result, {"f.yaml:8:2: error: invalid YAML: end of sequence flow not found"});
}

TEST(LoaderTest, SplitsDocumentsOnlyAtDocumentStartLines) {
  std::string text =
      "a: |\n"
      "  ---\n"    // inside a block scalar: indented, not a marker
      "---x: 1\n"  // not a marker (no space after ---)
      "--- \n"     // marker (1)
      "b: 1\n"
      "---\t# c\n"   // marker (2)
      "%YAML 1.2\n"  // a directive: kept with the next document
      "---\n"
      "c: 1\n"
      "--- {d: 1}\n";  // marker (3)
  std::vector<std::pair<size_t, int>> starts = splitDocuments(text);
  std::vector<int> lines;
  for (const auto& [offset, line] : starts) lines.push_back(line);
  EXPECT_EQ(lines, (std::vector<int>{0, 3, 5, 9}));
  EXPECT_EQ(text.substr(starts[1].first, 4), "--- ");
  LoadResult result = loadString(text, "f.yaml");
  EXPECT_EQ(result.outcome, LoadOutcome::kOk) << joined(result.diagnostics);
}

TEST(LoaderTest, SplitsWithoutDirectivesAtTheSameLines) {
  // The loader's fast path (no "%" line): only "\n---" followed by the end, a space, a tab,
  // "\r" or a newline starts a document.
  std::string text =
      "a: |\n"
      "  ---\n"    // indented: not a marker
      "---x: 1\n"  // not a marker
      "----\n"     // not a marker
      "---\r\n"    // marker (1)
      "b: 1\n"
      "---\n"  // marker (2)
      "---\n"  // marker (3): an empty document
      "c: 1\n"
      "--- {d: 1}\n"  // marker (4)
      "---";          // marker (5) at the end
  std::vector<std::pair<size_t, int>> starts = splitDocuments(text);
  std::vector<int> lines;
  for (const auto& [offset, line] : starts) lines.push_back(line);
  EXPECT_EQ(lines, (std::vector<int>{0, 4, 6, 7, 9, 10}));
  for (size_t i = 1; i < starts.size(); ++i) EXPECT_EQ(text.substr(starts[i].first, 3), "---");
}

TEST(LoaderTest, LinesFollowDocumentsThatChangeSize) {
  // A reload reuses the later documents; their lines move with the changed one's.
  Loader loader;
  std::string one = backendDoc("a") + "---\n" + backendDoc("b") + "---\n" + backendDoc("c");
  LoadResult first = loader.loadText(one, "f.yaml");
  ASSERT_EQ(first.resources.size(), 3u);
  std::string two =
      backendDoc("a") + "# one more line\n---\n" + backendDoc("b") + "---\n" + backendDoc("c");
  LoadResult second = loader.loadText(two, "f.yaml");
  ASSERT_EQ(second.resources.size(), 3u);
  EXPECT_EQ(loader.parsedDocuments(), 1u);
  LoadResult fresh = loadString(two, "f.yaml");
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(second.resources[i].line_offset, fresh.resources[i].line_offset) << i;
    EXPECT_EQ(second.resources[i].mark.line, fresh.resources[i].mark.line) << i;
  }
  EXPECT_EQ(second.resources[2].line_offset, first.resources[2].line_offset + 1);
}

TEST(LoaderQuotesTest, UnclosedQuoteIsASyntaxError) {
  // yaml-cpp alone would read the rest of the input into the name.
  LoadResult r = loadString(
      "apiVersion: portico.dev/v1alpha1\nkind: Backend\nmetadata:\n  name: \"b\nspec:\n"
      "  endpoints: []\n",
      "q.yaml");
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0].format(),
            "q.yaml:4:9: error: invalid YAML: quoted scalar without its closing quote");
  EXPECT_TRUE(r.resources.empty());
  r = loadString("a: b\nc: 'y\n---\nd: e\n", "q.yaml");
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0].line, 2);
  EXPECT_EQ(r.diagnostics[0].col, 4);
}

TEST(LoaderQuotesTest, QuotesThatAreNotScalarsAreLeftAlone) {
  // Apostrophes in plain scalars, comments and block scalars; escapes; doubled quotes;
  // quoted scalars over several lines.
  LoadResult r = loadString(
      "apiVersion: portico.dev/v1alpha1  # it's a comment with \"quotes\n"
      "kind: HTTPRouteFilter\n"
      "metadata: {name: \"f\", annotations: {a: it's, b: 'don''t', c: \"say \\\"hi\\\"\"}}\n"
      "spec:\n"
      "  directResponse:\n"
      "    body:\n"
      "      type: Inline\n"
      "      inline: |\n"
      "        \"unclosed in a block scalar\n"
      "        'and another\n"
      "    contentType: \"text/\n"
      "      plain\"\n",
      "ok.yaml");
  EXPECT_TRUE(r.diagnostics.empty()) << r.diagnostics[0].format();
  ASSERT_EQ(r.resources.size(), 1u);
  EXPECT_EQ(r.resources[0].annotations.at("a"), "it's");
  EXPECT_EQ(r.resources[0].annotations.at("b"), "don't");
}

}  // namespace
}  // namespace portico::config
