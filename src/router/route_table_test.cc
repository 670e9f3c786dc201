#include "router/route_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <random>

#include "router/explain.h"

namespace portico::router {
namespace {

// Builds route tables from specs; owns the Rules they point at.
class RouteTableTest : public ::testing::Test {
 protected:
  // A rule tagged "name#index" so that results are easy to compare.
  const config::Rule* rule(const std::string& route, uint32_t index = 0) {
    auto r = std::make_unique<config::Rule>();
    r->route_name = route;
    r->rule_index = index;
    rules_.push_back(std::move(r));
    return rules_.back().get();
  }

  static MatchSpec pathMatch(PathType type, std::string path) {
    MatchSpec m;
    m.path_type = type;
    m.path = std::move(path);
    return m;
  }
  static MatchSpec prefix(std::string path) {
    return pathMatch(PathType::kPathPrefix, std::move(path));
  }
  static MatchSpec exact(std::string path) { return pathMatch(PathType::kExact, std::move(path)); }
  static MatchSpec regex(std::string path) {
    return pathMatch(PathType::kRegularExpression, std::move(path));
  }
  static MatchSpec method(MatchSpec m, std::string method) {
    m.method = std::move(method);
    return m;
  }
  static MatchSpec header(MatchSpec m, std::string name, std::string value, bool is_regex = false) {
    m.headers.push_back(StringMatch{std::move(name), std::move(value), is_regex, nullptr});
    return m;
  }
  static MatchSpec query(MatchSpec m, std::string name, std::string value, bool is_regex = false) {
    m.query_params.push_back(StringMatch{std::move(name), std::move(value), is_regex, nullptr});
    return m;
  }

  // Like match() with a method, "path?query" and headers.
  static std::string request(const RouteTable& table, std::string_view method,
                             std::string_view target,
                             std::vector<std::pair<std::string, std::string>> headers = {}) {
    std::vector<http1::Header> storage;
    for (const auto& [name, value] : headers) storage.push_back(http1::Header{name, value});
    RouteInput in;
    in.host = "h";
    in.method = method;
    size_t q = target.find('?');
    in.path = target.substr(0, q);
    in.query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
    in.headers = storage.data();
    in.header_count = static_cast<uint32_t>(storage.size());
    RouteDecision d = table.match(in);
    if (d.listener.empty()) return "no-listener";
    if (d.rule == nullptr) return "404";
    return d.rule->route_name + "#" + std::to_string(d.rule->rule_index);
  }

  // A route with one rule per match list.
  RouteSpec route(const std::string& name, std::vector<std::vector<MatchSpec>> rules,
                  std::vector<std::string> hostnames = {}, int64_t created = 0,
                  const std::string& ns = "default") {
    RouteSpec spec;
    spec.ns = ns;
    spec.name = name;
    spec.created_us = created;
    spec.hostnames = std::move(hostnames);
    for (uint32_t i = 0; i < rules.size(); ++i)
      spec.rules.push_back(RuleSpec{rule(ns + "/" + name, i), std::move(rules[i])});
    return spec;
  }

  // "ns/name#rule" of the match, "404" when the listener has no route, "no-listener".
  static std::string match(const RouteTable& table, std::string_view host, std::string_view path) {
    RouteInput in;
    in.host = host;
    in.path = path;
    in.method = "GET";
    RouteDecision d = table.match(in);
    if (d.listener.empty()) return "no-listener";
    if (d.rule == nullptr) return "404";
    return d.rule->route_name + "#" + std::to_string(d.rule->rule_index);
  }

  static std::string listenerOf(const RouteTable& table, std::string_view host) {
    RouteInput in;
    in.host = host;
    in.path = "/";
    return std::string(table.match(in).listener);
  }

  std::vector<std::unique_ptr<config::Rule>> rules_;
};

TEST_F(RouteTableTest, PathPrefixMatchesWholeSegments) {
  RouteTable table({ListenerSpec{"default/gw/http", "", {route("foo", {{prefix("/foo")}})}}});
  EXPECT_EQ(match(table, "h", "/foo"), "default/foo#0");
  EXPECT_EQ(match(table, "h", "/foo/"), "default/foo#0");
  EXPECT_EQ(match(table, "h", "/foo/bar"), "default/foo#0");
  EXPECT_EQ(match(table, "h", "/foobar"), "404");
  EXPECT_EQ(match(table, "h", "/fo"), "404");
  EXPECT_EQ(match(table, "h", "/"), "404");
  EXPECT_EQ(match(table, "h", "/FOO"), "404");
}

TEST_F(RouteTableTest, PathPrefixIgnoresTrailingSlashOfValue) {
  RouteTable table({ListenerSpec{"default/gw/http", "", {route("foo", {{prefix("/foo/")}})}}});
  EXPECT_EQ(match(table, "h", "/foo"), "default/foo#0");
  EXPECT_EQ(match(table, "h", "/foo/"), "default/foo#0");
  EXPECT_EQ(match(table, "h", "/foo/x"), "default/foo#0");
  EXPECT_EQ(match(table, "h", "/foox"), "404");
}

TEST_F(RouteTableTest, RootPrefixMatchesEverything) {
  RouteTable table({ListenerSpec{"default/gw/http", "", {route("all", {{prefix("/")}})}}});
  EXPECT_EQ(match(table, "h", "/"), "default/all#0");
  EXPECT_EQ(match(table, "h", "/anything/at/all"), "default/all#0");
  EXPECT_EQ(match(table, "h", ""), "default/all#0");
}

TEST_F(RouteTableTest, ExactIsExactAndCaseSensitive) {
  RouteTable table({ListenerSpec{"default/gw/http", "", {route("abc", {{exact("/abc")}})}}});
  EXPECT_EQ(match(table, "h", "/abc"), "default/abc#0");
  EXPECT_EQ(match(table, "h", "/abc/"), "404");
  EXPECT_EQ(match(table, "h", "/ABC"), "404");
  EXPECT_EQ(match(table, "h", "/abc/d"), "404");
}

TEST_F(RouteTableTest, ExactBeatsPrefixAndLongestPrefixWins) {
  RouteTable table({ListenerSpec{
      "default/gw/http",
      "",
      {route("short", {{prefix("/api")}}, {}, 1), route("long", {{prefix("/api/v1")}}, {}, 2),
       route("exact", {{exact("/api/v1/x")}}, {}, 3), route("root", {{prefix("/")}}, {}, 0)}}});
  EXPECT_EQ(match(table, "h", "/api/v1/x"), "default/exact#0");
  EXPECT_EQ(match(table, "h", "/api/v1/y"), "default/long#0");
  EXPECT_EQ(match(table, "h", "/api/v2"), "default/short#0");
  EXPECT_EQ(match(table, "h", "/other"), "default/root#0");
}

TEST_F(RouteTableTest, TiesGoToOldestRouteThenNameThenRuleOrder) {
  RouteTable by_age({ListenerSpec{
      "l", "", {route("b", {{prefix("/x")}}, {}, 100), route("a", {{prefix("/x")}}, {}, 200)}}});
  EXPECT_EQ(match(by_age, "h", "/x"), "default/b#0");

  RouteTable by_name(
      {ListenerSpec{"l",
                    "",
                    {route("b", {{prefix("/x")}}, {}, 5), route("a", {{prefix("/x")}}, {}, 5, "zz"),
                     route("a", {{prefix("/x")}}, {}, 5)}}});
  EXPECT_EQ(match(by_name, "h", "/x"), "default/a#0");

  // Within a route: path precedence applies across rules, then the first rule.
  RouteTable by_rule(
      {ListenerSpec{"l", "", {route("r", {{prefix("/x")}, {prefix("/x")}, {prefix("/x/y")}})}}});
  EXPECT_EQ(match(by_rule, "h", "/x"), "default/r#0");
  EXPECT_EQ(match(by_rule, "h", "/x/y"), "default/r#2");
}

TEST_F(RouteTableTest, ListenerChosenByHost) {
  RouteTable table({
      ListenerSpec{"ns/gw/any", "", {route("any", {{prefix("/")}})}},
      ListenerSpec{"ns/gw/wild", "*.example.com", {route("wild", {{prefix("/")}})}},
      ListenerSpec{"ns/gw/deep", "*.a.example.com", {route("deep", {{prefix("/")}})}},
      ListenerSpec{"ns/gw/exact", "foo.example.com", {route("exact", {{prefix("/")}})}},
  });
  EXPECT_EQ(listenerOf(table, "foo.example.com"), "ns/gw/exact");
  EXPECT_EQ(listenerOf(table, "FOO.Example.COM:8080"), "ns/gw/exact");
  EXPECT_EQ(listenerOf(table, "foo.example.com."), "ns/gw/exact");
  EXPECT_EQ(listenerOf(table, "bar.example.com"), "ns/gw/wild");
  EXPECT_EQ(listenerOf(table, "x.y.example.com"), "ns/gw/wild");
  EXPECT_EQ(listenerOf(table, "x.a.example.com"), "ns/gw/deep");
  EXPECT_EQ(listenerOf(table, "a.example.com"), "ns/gw/wild");
  EXPECT_EQ(listenerOf(table, "example.com"), "ns/gw/any");
  EXPECT_EQ(listenerOf(table, "10.0.0.1:80"), "ns/gw/any");
  EXPECT_EQ(listenerOf(table, "[::1]:80"), "ns/gw/any");
  EXPECT_EQ(listenerOf(table, ""), "ns/gw/any");
  EXPECT_EQ(listenerOf(table, std::string(300, 'a')), "ns/gw/any");
}

TEST_F(RouteTableTest, NoListenerForHost) {
  RouteTable table({ListenerSpec{"ns/gw/a", "a.example.com", {route("a", {{prefix("/")}})}}});
  EXPECT_EQ(match(table, "a.example.com", "/"), "default/a#0");
  EXPECT_EQ(match(table, "b.example.com", "/"), "no-listener");
  EXPECT_EQ(match(table, "", "/"), "no-listener");
}

TEST_F(RouteTableTest, ListenerWithoutMatchingRouteGives404WithListenerName) {
  RouteTable table({ListenerSpec{"ns/gw/http", "", {route("a", {{prefix("/a")}})}}});
  RouteInput in;
  in.host = "h";
  in.path = "/b";
  RouteDecision d = table.match(in);
  EXPECT_EQ(d.listener, "ns/gw/http");
  EXPECT_EQ(d.rule, nullptr);
}

TEST_F(RouteTableTest, RouteHostnamesMostSpecificFirstWithFallback) {
  RouteTable table({ListenerSpec{"l",
                                 "",
                                 {route("exact", {{prefix("/only-exact")}}, {"foo.example.com"}),
                                  route("wild", {{prefix("/")}}, {"*.example.com"}),
                                  route("deep", {{prefix("/deep")}}, {"*.a.example.com"}),
                                  route("any", {{prefix("/api/long/path")}})}}});
  // The exact hostname group first, even against a longer path elsewhere.
  EXPECT_EQ(match(table, "foo.example.com", "/only-exact/x"), "default/exact#0");
  // No match in the exact group: wildcard groups, then routes without hostname.
  EXPECT_EQ(match(table, "foo.example.com", "/api/long/path"), "default/wild#0");
  EXPECT_EQ(match(table, "x.a.example.com", "/deep"), "default/deep#0");
  EXPECT_EQ(match(table, "x.a.example.com", "/other"), "default/wild#0");
  EXPECT_EQ(match(table, "bar.example.com", "/only-exact"), "default/wild#0");
  EXPECT_EQ(match(table, "other.org", "/api/long/path/x"), "default/any#0");
  EXPECT_EQ(match(table, "other.org", "/"), "404");
}

TEST_F(RouteTableTest, CandidatesExposedForExplain) {
  RouteTable table({ListenerSpec{"l", "", {route("r", {{prefix("/a"), exact("/b")}})}}});
  const RouteTable::Listener* l = table.listenerFor("host");
  ASSERT_NE(l, nullptr);
  const std::vector<uint32_t>* candidates = table.candidatesFor(*l, "host");
  ASSERT_NE(candidates, nullptr);
  ASSERT_EQ(candidates->size(), 2u);
  EXPECT_EQ(l->entries[(*candidates)[0]].match.path, "/b");  // Exact first
  EXPECT_EQ(l->entries[(*candidates)[1]].match.path, "/a");
}

TEST_F(RouteTableTest, IndexedListsAgreeWithLinearScan) {
  // Many routes on one host: lists beyond kIndexThreshold use the path index. Compare every
  // answer with a plain scan of all entries in precedence order.
  std::mt19937 rng(7);
  const char* segments[] = {"a", "b", "ab", "c"};
  auto randomPath = [&](size_t max_segments) {
    std::string path;
    size_t n = rng() % (max_segments + 1);
    for (size_t i = 0; i < n; ++i) path += std::string("/") + segments[rng() % 4];
    if (path.empty() || rng() % 5 == 0) path += "/";
    return path;
  };
  std::vector<RouteSpec> routes;
  for (int i = 0; i < 60; ++i) {
    std::vector<MatchSpec> matches;
    for (int m = 0; m < 2; ++m) {
      MatchSpec spec = rng() % 3 == 0 ? exact(randomPath(3)) : prefix(randomPath(3));
      if (rng() % 6 == 0) spec = regex(randomPath(2) + (rng() % 2 ? "(/.*)?" : "/[ab]+"));
      if (rng() % 4 == 0) spec.method = "POST";
      if (rng() % 5 == 0) spec = header(std::move(spec), "x-k", rng() % 2 ? "1" : "2");
      matches.push_back(std::move(spec));
    }
    routes.push_back(route("r" + std::to_string(i), {matches}, {}, rng() % 5));
  }
  RouteTable table({ListenerSpec{"l", "", routes}});
  const RouteTable::Listener& l = table.listeners()[0];
  ASSERT_TRUE(l.candidates[0].indexed);
  std::vector<uint32_t> order(l.entries.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return precedes(l.entries[a], l.entries[b], l.spec.routes);
  });
  for (int i = 0; i < 2000; ++i) {
    std::string path = randomPath(5);
    http1::Header h{"X-K", rng() % 2 ? "1" : "2"};
    RouteInput in;
    in.host = "h";
    in.path = path;
    in.method = rng() % 2 ? "GET" : "POST";
    in.headers = &h;
    in.header_count = rng() % 2;
    const config::Rule* expected = nullptr;
    for (uint32_t e : order) {
      if (l.entries[e].accepts(in)) {
        expected = l.entries[e].rule;
        break;
      }
    }
    ASSERT_EQ(table.match(in).rule, expected) << path;
    ASSERT_EQ(explain(table, in).rule, expected) << path;
  }
}

TEST_F(RouteTableTest, RegularExpressionPathIsAFullMatch) {
  RouteTable table({ListenerSpec{"l", "", {route("re", {{regex("/a/[0-9]+")}})}}});
  EXPECT_EQ(request(table, "GET", "/a/12"), "default/re#0");
  EXPECT_EQ(request(table, "GET", "/a/12?x=1"), "default/re#0");  // query is not in the path
  EXPECT_EQ(request(table, "GET", "/a/12/x"), "404");
  EXPECT_EQ(request(table, "GET", "/x/a/12"), "404");
  EXPECT_EQ(request(table, "GET", "/a/"), "404");
}

TEST_F(RouteTableTest, InvalidRegexNeverMatches) {
  RouteTable table({ListenerSpec{
      "l", "", {route("bad", {{regex("/a(")}, {header(prefix("/"), "x", "(", true)}})}}});
  EXPECT_EQ(request(table, "GET", "/a("), "404");
  EXPECT_EQ(request(table, "GET", "/", {{"x", "("}}), "404");
}

TEST_F(RouteTableTest, MethodMatch) {
  RouteTable table({ListenerSpec{"l", "", {route("m", {{method(prefix("/"), "POST")}})}}});
  EXPECT_EQ(request(table, "POST", "/x"), "default/m#0");
  EXPECT_EQ(request(table, "GET", "/x"), "404");
  EXPECT_EQ(request(table, "post", "/x"), "404");  // methods are case-sensitive
}

TEST_F(RouteTableTest, HeaderMatches) {
  RouteTable table(
      {ListenerSpec{"l",
                    "",
                    {route("exact", {{header(exact("/e"), "X-Env", "prod")}}),
                     route("re", {{header(exact("/r"), "x-ver", "v[0-9]+", true)}}),
                     route("dup", {{header(header(exact("/d"), "x-env", "prod"), "X-ENV", "dev")}}),
                     route("two", {{header(header(exact("/t"), "a", "1"), "b", "2")}})}}});
  EXPECT_EQ(request(table, "GET", "/e", {{"x-env", "prod"}}), "default/exact#0");
  EXPECT_EQ(request(table, "GET", "/e", {{"X-ENV", "prod"}}),
            "default/exact#0");                                        // names: any case
  EXPECT_EQ(request(table, "GET", "/e", {{"x-env", "Prod"}}), "404");  // values: case-sensitive
  EXPECT_EQ(request(table, "GET", "/e", {}), "404");
  // Repeated request header: the first value is compared.
  EXPECT_EQ(request(table, "GET", "/e", {{"x-env", "prod"}, {"x-env", "dev"}}), "default/exact#0");
  EXPECT_EQ(request(table, "GET", "/e", {{"x-env", "dev"}, {"x-env", "prod"}}), "404");
  EXPECT_EQ(request(table, "GET", "/r", {{"x-ver", "v12"}}), "default/re#0");
  EXPECT_EQ(request(table, "GET", "/r", {{"x-ver", "v12a"}}), "404");  // full match
  // The same name twice in a match: only the first entry counts.
  EXPECT_EQ(request(table, "GET", "/d", {{"x-env", "prod"}}), "default/dup#0");
  EXPECT_EQ(request(table, "GET", "/d", {{"x-env", "dev"}}), "404");
  EXPECT_EQ(table.listeners()[0].entries[2].match.headers.size(), 1u);
  // Conditions of one match are AND-ed.
  EXPECT_EQ(request(table, "GET", "/t", {{"a", "1"}, {"b", "2"}}), "default/two#0");
  EXPECT_EQ(request(table, "GET", "/t", {{"a", "1"}}), "404");
}

TEST_F(RouteTableTest, QueryParamMatches) {
  RouteTable table({ListenerSpec{"l",
                                 "",
                                 {route("exact", {{query(exact("/e"), "v", "2")}}),
                                  route("re", {{query(exact("/r"), "v", "2[0-9]", true)}}),
                                  route("raw", {{query(exact("/p"), "q", "a%20b")}})}}});
  EXPECT_EQ(request(table, "GET", "/e?v=2"), "default/exact#0");
  EXPECT_EQ(request(table, "GET", "/e?a=1&v=2&b"), "default/exact#0");
  EXPECT_EQ(request(table, "GET", "/e?V=2"), "404");      // names are case-sensitive
  EXPECT_EQ(request(table, "GET", "/e?v=1&v=2"), "404");  // first value of a repeated param
  EXPECT_EQ(request(table, "GET", "/e?v=2&v=1"), "default/exact#0");
  EXPECT_EQ(request(table, "GET", "/e?vv=2"), "404");
  EXPECT_EQ(request(table, "GET", "/e"), "404");
  EXPECT_EQ(request(table, "GET", "/r?v=23"), "default/re#0");
  EXPECT_EQ(request(table, "GET", "/r?v=234"), "404");
  EXPECT_EQ(request(table, "GET", "/p?q=a%20b"), "default/raw#0");  // not percent-decoded
}

TEST_F(RouteTableTest, MatchesOfARuleAreOred) {
  RouteTable table({ListenerSpec{
      "l", "", {route("or", {{method(exact("/a"), "POST"), header(prefix("/b"), "k", "v")}})}}});
  EXPECT_EQ(request(table, "POST", "/a"), "default/or#0");
  EXPECT_EQ(request(table, "GET", "/a"), "404");
  EXPECT_EQ(request(table, "GET", "/b/c", {{"k", "v"}}), "default/or#0");
  EXPECT_EQ(request(table, "POST", "/b/c"), "404");
}

TEST_F(RouteTableTest, PrecedenceTable) {
  // Every route is as old as the others and named so that alphabetical order would pick the
  // wrong one ("a-..." routes are the least specific).
  RouteTable table({ListenerSpec{
      "l",
      "",
      {route("a-prefix", {{prefix("/api")}}), route("b-prefix-long", {{prefix("/api/v1")}}),
       route("c-query", {{query(prefix("/api"), "v", "2")}}),
       route("d-header", {{header(prefix("/api"), "x-env", "prod")}}),
       route("e-two-headers",
             {{header(header(prefix("/api"), "x-env", "prod"), "x-tier", "gold")}}),
       route("f-method", {{method(prefix("/api"), "POST")}}),
       route("g-regex", {{regex("/api/[0-9]+")}}),
       route("h-regex-long", {{regex("/api/[0-9]+/items")}}),
       route("i-exact", {{exact("/api/v1")}}),
       route("j-header-query", {{query(header(prefix("/api"), "x-env", "prod"), "v", "2")}})}}});
  struct Case {
    std::string method, target;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string want;
  };
  std::vector<Case> cases = {
      {"GET", "/api/v1", {}, "default/i-exact#0"},            // Exact over everything
      {"GET", "/api/7/items", {}, "default/h-regex-long#0"},  // longer regex first
      {"GET", "/api/7", {}, "default/g-regex#0"},             // regex before PathPrefix
      {"GET", "/api/v1/x", {{"x-env", "prod"}}, "default/b-prefix-long#0"},  // longest prefix
      {"POST", "/api/x?v=2", {{"x-env", "prod"}, {"x-tier", "gold"}}, "default/f-method#0"},
      {"GET", "/api/x?v=2", {{"x-env", "prod"}, {"x-tier", "gold"}}, "default/e-two-headers#0"},
      // Same header count: more query params wins.
      {"GET", "/api/x?v=2", {{"x-env", "prod"}}, "default/j-header-query#0"},
      {"GET", "/api/x", {{"X-Env", "prod"}}, "default/d-header#0"},
      {"GET", "/api/x?v=2", {}, "default/c-query#0"},
      {"GET", "/api/x?v=3", {{"x-env", "dev"}}, "default/a-prefix#0"},
      {"GET", "/other", {}, "404"},
  };
  for (const Case& c : cases)
    EXPECT_EQ(request(table, c.method, c.target, c.headers), c.want) << c.method << " " << c.target;
}

TEST_F(RouteTableTest, EqualConditionsTieOnAgeThenNameThenRuleOrder) {
  RouteTable table({ListenerSpec{
      "l",
      "",
      {route("young", {{header(prefix("/"), "k", "v")}}, {}, 20),
       route("old-b", {{header(prefix("/"), "k", "v")}}, {}, 10),
       route("old-a", {{method(prefix("/"), "GET")}, {header(prefix("/"), "k", "v")}}, {}, 10)}}});
  // old-a rule 0 (method) outranks every header match; for POST, old-a rule 1 and old-b tie on
  // conditions and age: "default/old-a" sorts first.
  EXPECT_EQ(request(table, "GET", "/", {{"k", "v"}}), "default/old-a#0");
  EXPECT_EQ(request(table, "POST", "/", {{"k", "v"}}), "default/old-a#1");
  EXPECT_EQ(request(table, "POST", "/", {}), "404");
}

void setBackends(config::Rule& rule,
                 std::initializer_list<std::pair<const config::Backend*, uint32_t>> list) {
  rule.backends.clear();
  for (const auto& [backend, weight] : list) {
    config::WeightedBackend wb;
    wb.backend = backend;
    wb.weight = weight;
    rule.backends.push_back(std::move(wb));
  }
}

TEST(RouterPickBackendTest, ProportionalToWeights) {
  config::Backend a, b, c;
  config::Rule rule;
  setBackends(rule, {{&a, 1}, {&b, 3}, {&c, 0}, {nullptr, 4}});
  rule.total_weight = 8;
  std::map<const config::Backend*, int> counts;
  std::mt19937 rng(42);
  const int kDraws = 80'000;
  for (int i = 0; i < kDraws; ++i) {
    const config::WeightedBackend* wb = pickBackend(rule, static_cast<uint32_t>(rng()));
    ASSERT_NE(wb, nullptr);
    ++counts[wb->backend];
  }
  EXPECT_NEAR(counts[&a], kDraws / 8, kDraws / 100);
  EXPECT_NEAR(counts[&b], kDraws * 3 / 8, kDraws / 100);
  EXPECT_EQ(counts[&c], 0);                                // weight 0: never chosen
  EXPECT_NEAR(counts[nullptr], kDraws / 2, kDraws / 100);  // unresolved share answers 500
}

TEST(RouterPickBackendTest, EdgesOfTheRandomRange) {
  config::Backend a, b;
  config::Rule rule;
  setBackends(rule, {{&a, 0}, {&a, 1}, {&b, 1}, {&b, 0}});
  rule.total_weight = 2;
  EXPECT_EQ(pickBackend(rule, 0), &rule.backends[1]);
  EXPECT_EQ(pickBackend(rule, 0x7fffffff), &rule.backends[1]);
  EXPECT_EQ(pickBackend(rule, 0x80000000), &rule.backends[2]);
  EXPECT_EQ(pickBackend(rule, 0xffffffff), &rule.backends[2]);
}

TEST(RouterPickBackendTest, ZeroTotalWeightGivesNull) {
  config::Backend a;
  config::Rule rule;
  EXPECT_EQ(pickBackend(rule, 123), nullptr);
  setBackends(rule, {{&a, 0}});
  rule.total_weight = 0;
  EXPECT_EQ(pickBackend(rule, 0), nullptr);
  EXPECT_EQ(pickBackend(rule, 0xffffffff), nullptr);
}

}  // namespace
}  // namespace portico::router
