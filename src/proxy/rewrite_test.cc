#include "proxy/rewrite.h"

#include <gtest/gtest.h>

#include <string>

namespace portico::proxy {
namespace {

std::string replaced(std::string_view path, std::string_view prefix, std::string_view repl) {
  Buffer b;
  appendPrefixReplaced(path, prefix, repl, b);
  return std::string(b.view());
}

// The HTTPPathModifier ReplacePrefixMatch table (prefix given without trailing '/').
TEST(Rewrite, ReplacePrefixMatchTable) {
  EXPECT_EQ(replaced("/foo/bar", "/foo", "/xyz"), "/xyz/bar");
  EXPECT_EQ(replaced("/foo/bar", "/foo", "/xyz/"), "/xyz/bar");
  EXPECT_EQ(replaced("/foo/bar", "/foo", ""), "/bar");
  EXPECT_EQ(replaced("/foo/bar", "/foo", "/"), "/bar");
  EXPECT_EQ(replaced("/foo", "/foo", "/xyz"), "/xyz");
  EXPECT_EQ(replaced("/foo", "/foo", ""), "/");
  EXPECT_EQ(replaced("/foo", "/foo", "/"), "/");
  EXPECT_EQ(replaced("/foo/", "/foo", "/xyz"), "/xyz/");
  EXPECT_EQ(replaced("/foo/", "/foo", ""), "/");
  // PathPrefix "/" (prefix ""): the replacement is prepended.
  EXPECT_EQ(replaced("/a/b", "", "/xyz"), "/xyz/a/b");
  EXPECT_EQ(replaced("/", "", "/xyz"), "/xyz/");
  EXPECT_EQ(replaced("/", "", "/"), "/");
  // Not under the prefix: unchanged (defensive).
  EXPECT_EQ(replaced("/other", "/foo", "/xyz"), "/other");
}

TEST(Rewrite, ModifiedPath) {
  config::PathModifier none;
  config::PathModifier full{config::PathModifierKind::kReplaceFullPath, "/new"};
  config::PathModifier prefix{config::PathModifierKind::kReplacePrefixMatch, "/v2"};
  Buffer a, b, c;
  appendModifiedPath(none, "/api/x", "/api", a);
  appendModifiedPath(full, "/api/x", "/api", b);
  appendModifiedPath(prefix, "/api/x", "/api", c);
  EXPECT_EQ(a.view(), "/api/x");
  EXPECT_EQ(b.view(), "/new");
  EXPECT_EQ(c.view(), "/v2/x");
}

TEST(Rewrite, HostWithoutPort) {
  EXPECT_EQ(hostWithoutPort("a.example.com:8080"), "a.example.com");
  EXPECT_EQ(hostWithoutPort("a.example.com"), "a.example.com");
  EXPECT_EQ(hostWithoutPort("[::1]:80"), "[::1]");
  EXPECT_EQ(hostWithoutPort("[::1]"), "[::1]");
}

std::string location(const config::Redirect& r, std::string_view host, uint16_t listener_port,
                     std::string_view path, std::string_view query = "",
                     std::string_view prefix = "") {
  Buffer b;
  appendRedirectLocation(r, host, listener_port, path, query, prefix, b);
  return std::string(b.view());
}

TEST(Rewrite, RedirectLocation) {
  config::Redirect r;
  // Nothing set: same host, listener port, same path and query.
  EXPECT_EQ(location(r, "a.test:8080", 8080, "/p", "q=1"), "http://a.test:8080/p?q=1");
  EXPECT_EQ(location(r, "a.test", 80, "/p"), "http://a.test/p");
  // Scheme set, no port: its default port, omitted.
  r.scheme = "https";
  EXPECT_EQ(location(r, "a.test:8080", 8080, "/p"), "https://a.test/p");
  r.scheme = "http";
  EXPECT_EQ(location(r, "a.test:8080", 8080, "/p"), "http://a.test/p");
  // Explicit port: kept unless it is the scheme's default.
  r.scheme = "https";
  r.port = 8443;
  EXPECT_EQ(location(r, "a.test:8080", 8080, "/p"), "https://a.test:8443/p");
  r.port = 443;
  EXPECT_EQ(location(r, "a.test:8080", 8080, "/p"), "https://a.test/p");
  r.scheme.clear();
  r.port = 443;
  EXPECT_EQ(location(r, "a.test:8080", 8080, "/p"), "http://a.test:443/p");
  // Hostname and paths.
  config::Redirect h;
  h.hostname = "new.example.com";
  h.path = {config::PathModifierKind::kReplaceFullPath, "/new"};
  EXPECT_EQ(location(h, "old.test:9000", 9000, "/old", "x=1"),
            "http://new.example.com:9000/new?x=1");
  h.path = {config::PathModifierKind::kReplacePrefixMatch, "/v2"};
  EXPECT_EQ(location(h, "old.test", 9000, "/v1/items", "", "/v1"),
            "http://new.example.com:9000/v2/items");
  EXPECT_EQ(location(h, "[::1]:9000", 9000, "/v1", "", "/v1"), "http://new.example.com:9000/v2");
}

}  // namespace
}  // namespace portico::proxy
