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

}  // namespace
}  // namespace portico::config
