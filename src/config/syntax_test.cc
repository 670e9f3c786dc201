#include "config/syntax.h"

#include <gtest/gtest.h>

namespace portico::config {
namespace {

TEST(ConfigSyntaxTest, Durations) {
  EXPECT_EQ(parseDurationMs("0s"), 0u);
  EXPECT_EQ(parseDurationMs("500ms"), 500u);
  EXPECT_EQ(parseDurationMs("10s"), 10'000u);
  EXPECT_EQ(parseDurationMs("1h30m"), 5'400'000u);
  EXPECT_EQ(parseDurationMs("1h1m1s1ms"), 3'661'001u);
  EXPECT_EQ(parseDurationMs("99999h"), 99999ull * 3'600'000);
  for (const char* bad :
       {"", "1", "1.5s", "s", "100000s", "1h1m1s1ms1ms", "1us", "-1s", "1S", " 1s", "1d"}) {
    EXPECT_FALSE(parseDurationMs(bad).has_value()) << bad;
  }
}

TEST(ConfigSyntaxTest, Hostnames) {
  EXPECT_EQ(checkHostname("example.com", true), "");
  EXPECT_EQ(checkHostname("*.example.com", true), "");
  EXPECT_EQ(checkHostname("a-b.c0", false), "");
  EXPECT_NE(checkHostname("*.example.com", false), "");
  EXPECT_NE(checkHostname("Example.com", true), "");
  EXPECT_NE(checkHostname("10.0.0.1", true), "");
  EXPECT_NE(checkHostname("a.*.com", true), "");
  EXPECT_NE(checkHostname("*", true), "");
  EXPECT_NE(checkHostname("-a.com", true), "");
  EXPECT_NE(checkHostname("a..com", true), "");
  EXPECT_NE(checkHostname("", true), "");
  EXPECT_NE(checkHostname(std::string(254, 'a'), true), "");
}

TEST(ConfigSyntaxTest, PathValues) {
  for (const char* ok : {"/", "/api", "/api/", "/a-b_c.d~e/%20", "/x:y@z"})
    EXPECT_EQ(checkPathValue(ok), "") << ok;
  for (const char* bad : {"", "api", "/a//b", "/a/./b", "/a/../b", "/a/..", "/a/.", "/a%2fb",
                          "/a%2F", "/a#b", "/a b", "/a%zz", "/a%2"})
    EXPECT_NE(checkPathValue(bad), "") << bad;
}

TEST(ConfigSyntaxTest, Names) {
  EXPECT_EQ(checkDnsLabel("prod-1"), "");
  EXPECT_NE(checkDnsLabel("prod.1"), "");
  EXPECT_NE(checkDnsLabel(std::string(64, 'a')), "");
  EXPECT_EQ(checkDnsSubdomain("a.b-c"), "");
  EXPECT_NE(checkDnsSubdomain("A"), "");
  EXPECT_NE(checkDnsSubdomain("a_b"), "");
  EXPECT_EQ(checkHeaderName("X-Request-Id"), "");
  EXPECT_NE(checkHeaderName("bad header"), "");
}

TEST(ConfigSyntaxTest, HostnameIntersection) {
  EXPECT_EQ(intersectHostnames("a.example.com", ""), "a.example.com");
  EXPECT_EQ(intersectHostnames("a.example.com", "a.example.com"), "a.example.com");
  EXPECT_EQ(intersectHostnames("a.example.com", "b.example.com"), std::nullopt);
  EXPECT_EQ(intersectHostnames("a.example.com", "*.example.com"), "a.example.com");
  EXPECT_EQ(intersectHostnames("a.b.example.com", "*.example.com"), "a.b.example.com");
  EXPECT_EQ(intersectHostnames("example.com", "*.example.com"), std::nullopt);
  EXPECT_EQ(intersectHostnames("*.example.com", "a.example.com"), "a.example.com");
  EXPECT_EQ(intersectHostnames("*.example.com", "*.example.com"), "*.example.com");
  EXPECT_EQ(intersectHostnames("*.a.example.com", "*.example.com"), "*.a.example.com");
  EXPECT_EQ(intersectHostnames("*.example.com", "*.a.example.com"), "*.a.example.com");
  EXPECT_EQ(intersectHostnames("*.example.com", "*.example.org"), std::nullopt);
  EXPECT_EQ(intersectHostnames("*.xample.com", "*.example.com"), std::nullopt);
}

TEST(ConfigSyntaxTest, WildcardMatches) {
  EXPECT_TRUE(wildcardMatches("*.example.com", "a.example.com"));
  EXPECT_TRUE(wildcardMatches("*.example.com", "a.b.example.com"));
  EXPECT_FALSE(wildcardMatches("*.example.com", "example.com"));
  EXPECT_FALSE(wildcardMatches("*.example.com", "aexample.com"));
  EXPECT_FALSE(wildcardMatches("*.example.com", ".example.com"));
}

TEST(ConfigSyntaxTest, Rfc3339) {
  EXPECT_EQ(parseRfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parseRfc3339("2024-05-01T10:00:00Z"), int64_t{1714557600} * 1'000'000);
  EXPECT_EQ(parseRfc3339("2024-05-01T12:00:00+02:00"), int64_t{1714557600} * 1'000'000);
  EXPECT_EQ(parseRfc3339("2024-05-01T10:00:00.25Z"), int64_t{1714557600} * 1'000'000 + 250'000);
  EXPECT_EQ(parseRfc3339("9999-12-31T23:59:59Z").has_value(), true);
  for (const char* bad : {"", "2024-05-01", "2024-13-01T00:00:00Z", "2024-05-01T10:00:00",
                          "2024-05-01T10:00:00.Z", "2024-05-01T25:00:00Z", "2024-05-01T10:00:00Zx"})
    EXPECT_FALSE(parseRfc3339(bad).has_value()) << bad;
}

}  // namespace
}  // namespace portico::config
