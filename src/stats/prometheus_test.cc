#include "stats/prometheus.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace portico::stats {
namespace {

TEST(Prometheus, MergesShardsAndRendersCumulativeHistograms) {
  Shard a, b;
  a.global.downstream_requests.inc(3);
  b.global.downstream_requests.inc(4);
  a.routes.at(1).requests.inc(2);
  b.routes.at(1).responses[statusClass(204)].inc();
  a.global.latency.record(100);       // first bucket (<= 250us)
  b.global.latency.record(2000);      // <= 2.5ms
  b.global.latency.record(99999999);  // +Inf
  a.backends.at(0).connect_failures.inc();
  std::vector<std::string> routes = {"ns/zero", "ns/\"quoted\"\\"};
  std::vector<std::string> backends = {"ns/api"};
  std::string text = renderPrometheus({&a, &b}, ExpositionNames{&routes, &backends});
  EXPECT_NE(text.find("portico_downstream_requests_total 7\n"), std::string::npos);
  EXPECT_NE(text.find("portico_route_requests_total{route=\"ns/\\\"quoted\\\"\\\\\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("portico_route_responses_total{route=\"ns/\\\"quoted\\\"\\\\\","
                      "code_class=\"2xx\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("portico_request_duration_seconds_bucket{le=\"0.00025\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("portico_request_duration_seconds_bucket{le=\"0.0025\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("portico_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("portico_request_duration_seconds_count 3\n"), std::string::npos);
  EXPECT_NE(text.find("portico_backend_connect_failures_total{backend=\"ns/api\"} 1\n"),
            std::string::npos);
  // Every family has HELP and TYPE, and the text ends with a newline.
  EXPECT_EQ(text.back(), '\n');
  size_t helps = 0, types = 0;
  for (size_t p = 0; (p = text.find("# HELP ", p)) != std::string::npos; ++p) ++helps;
  for (size_t p = 0; (p = text.find("# TYPE ", p)) != std::string::npos; ++p) ++types;
  EXPECT_EQ(helps, types);
  EXPECT_GT(helps, 10u);
}

TEST(SegmentedArray, UntouchedIdsReadAsAbsent) {
  SegmentedArray<Counter> arr;
  EXPECT_EQ(arr.find(5), nullptr);
  arr.at(600).inc();
  EXPECT_EQ(arr.find(5), nullptr);  // other segment
  ASSERT_NE(arr.find(600), nullptr);
  EXPECT_EQ(arr.find(600)->get(), 1u);
  EXPECT_NE(arr.find(601), nullptr);  // same segment: zero
  EXPECT_EQ(arr.find(601)->get(), 0u);
}

}  // namespace
}  // namespace portico::stats
