#include "router/explain.h"

#include <gtest/gtest.h>

#include <memory>

namespace portico::router {
namespace {

class ExplainTest : public ::testing::Test {
 protected:
  const config::Rule* rule(const std::string& route, uint32_t index) {
    auto r = std::make_unique<config::Rule>();
    r->route_ns = "default";
    r->route_name = route;
    r->rule_index = index;
    rules_.push_back(std::move(r));
    return rules_.back().get();
  }
  RouteSpec route(const std::string& name, std::vector<std::vector<MatchSpec>> rules,
                  std::vector<std::string> hostnames = {}) {
    RouteSpec spec;
    spec.ns = "default";
    spec.name = name;
    spec.created_us = 0;
    spec.hostnames = std::move(hostnames);
    for (uint32_t i = 0; i < rules.size(); ++i)
      spec.rules.push_back(RuleSpec{rule(name, i), std::move(rules[i])});
    return spec;
  }
  static MatchSpec m(PathType type, std::string path, std::string method = "") {
    MatchSpec spec;
    spec.path_type = type;
    spec.path = std::move(path);
    spec.method = std::move(method);
    return spec;
  }

  std::unique_ptr<RouteTable> table() {
    MatchSpec hdr = m(PathType::kPathPrefix, "/api");
    hdr.headers.push_back(StringMatch{"x-env", "prod", false, nullptr});
    MatchSpec qry = m(PathType::kPathPrefix, "/api");
    qry.query_params.push_back(StringMatch{"v", "[0-9]+", true, nullptr});
    std::vector<ListenerSpec> listeners;
    listeners.push_back(ListenerSpec{
        "infra/gw/a",
        "*.example.com",
        {route("exact", {{m(PathType::kExact, "/b")}}),
         route("post", {{m(PathType::kPathPrefix, "/api", "POST")}}), route("header", {{hdr}}),
         route("query", {{qry}}), route("fallback", {{m(PathType::kPathPrefix, "/api")}}),
         route("elsewhere", {{m(PathType::kPathPrefix, "/")}}, {"other.example.com"})}});
    listeners.push_back(ListenerSpec{"infra/gw/b", "", {}});
    listeners.push_back(ListenerSpec{"infra/gw/c", "x.org", {}});
    return std::make_unique<RouteTable>(std::move(listeners));
  }

  std::vector<std::unique_ptr<config::Rule>> rules_;
};

TEST_F(ExplainTest, WinnerAndNearMissesWithReasons) {
  std::unique_ptr<RouteTable> t = table();
  http1::Header h{"X-Env", "dev"};
  RouteInput in;
  in.host = "Www.Example.com:8080";
  in.method = "GET";
  in.path = "/api/x";
  in.query = "v=abc";
  in.headers = &h;
  in.header_count = 1;
  Explanation e = explain(*t, in);
  EXPECT_EQ(e.listener, "infra/gw/a");
  ASSERT_EQ(e.listeners.size(), 3u);
  EXPECT_TRUE(e.listeners[0].chosen);
  EXPECT_EQ(e.listeners[0].reason,
            "selected: most specific wildcard hostname covering \"www.example.com\"");
  EXPECT_EQ(e.listeners[1].reason, "hostname \"\" matches, but infra/gw/a is more specific");
  EXPECT_EQ(e.listeners[2].reason, "hostname \"x.org\" does not match host \"www.example.com\"");
  ASSERT_NE(e.rule, nullptr);
  EXPECT_EQ(e.rule, t->match(in).rule);
  EXPECT_EQ(e.matched_route, "default/fallback");
  EXPECT_EQ(e.rule_index, 0);
  EXPECT_EQ(e.match_index, 0);
  EXPECT_EQ(e.why, "matches PathPrefix /api");
  std::vector<std::string> reasons;
  for (const NearMiss& n : e.near_misses) reasons.push_back(n.route + ": " + n.reason);
  EXPECT_EQ(reasons, (std::vector<std::string>{
                         "default/exact: path /api/x does not match Exact /b",
                         "default/post: method GET, want POST",
                         "default/header: header x-env: got 'dev', want 'prod'",
                         "default/query: query param v: got 'abc', want RegularExpression "
                         "'[0-9]+'",
                         "default/elsewhere: hostname \"www.example.com\" not in route hostnames "
                         "[other.example.com]",
                     }));
  EXPECT_EQ(e.near_misses.back().rule_index, -1);

  std::string text = toText(e);
  EXPECT_NE(text.find("  * infra/gw/a (hostname \"*.example.com\"): selected"), std::string::npos)
      << text;
  EXPECT_NE(text.find("result: default/fallback rule 0 match 0 (route hostname any): matches "
                      "PathPrefix /api\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  default/post rule 0 match 0: method GET, want POST\n"), std::string::npos)
      << text;

  nlohmann::json j = toJson(e);
  EXPECT_EQ(j["listener"], "infra/gw/a");
  EXPECT_EQ(j["match"]["route"], "default/fallback");
  EXPECT_EQ(j["near_misses"].size(), 5u);
  EXPECT_EQ(j["near_misses"][2]["reason"], "header x-env: got 'dev', want 'prod'");
  EXPECT_EQ(j["request"]["host"], "www.example.com");
}

TEST_F(ExplainTest, NothingMatchesListsEveryCandidate) {
  std::unique_ptr<RouteTable> t = table();
  RouteInput in;
  in.host = "a.example.com";
  in.method = "POST";
  in.path = "/nope";
  Explanation e = explain(*t, in);
  EXPECT_EQ(e.rule, nullptr);
  EXPECT_EQ(e.near_misses.size(), 6u);
  EXPECT_EQ(e.near_misses[1].reason, "path /nope does not match PathPrefix /api");
  EXPECT_NE(toText(e).find("result: 404, no route of infra/gw/a matches"), std::string::npos);
  EXPECT_TRUE(toJson(e)["match"].is_null());
}

TEST_F(ExplainTest, HeaderAbsentAndNoListener) {
  std::unique_ptr<RouteTable> t = table();
  RouteInput in;
  in.host = "www.example.com";
  in.method = "GET";
  in.path = "/api";
  in.query = "v=1";
  Explanation e = explain(*t, in);
  EXPECT_EQ(e.matched_route, "default/query");
  ASSERT_EQ(e.near_misses.size(), 4u);
  EXPECT_EQ(e.near_misses[2].reason, "header x-env: absent, want 'prod'");

  std::vector<ListenerSpec> only;
  only.push_back(ListenerSpec{"infra/gw/c", "x.org", {}});
  RouteTable single(std::move(only));
  Explanation none = explain(single, in);
  EXPECT_TRUE(none.listener.empty());
  EXPECT_NE(toText(none).find("result: 404, no listener accepts host \"www.example.com\""),
            std::string::npos);
  EXPECT_TRUE(toJson(none)["listener"].is_null());
}

}  // namespace
}  // namespace portico::router
