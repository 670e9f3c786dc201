// Backend settings in the form both the decoder's model and the compiled snapshot use: load
// balancing, health checks, circuit breakers and the connection pool of a Backend.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace portico::config {

enum class LbKind : uint8_t { kRoundRobin, kLeastRequest, kRandom, kRingHash, kMaglev };
enum class HashOn : uint8_t { kNone, kHeader, kCookie, kSourceIp, kQueryParameter };
// spec.protocol of a Backend: how Portico speaks to its endpoints. kGrpc implies HTTP/2.
enum class BackendProtocol : uint8_t { kHttp1, kHttp2, kGrpc };
// "http1", "http2", "grpc".
inline const char* backendProtocolName(BackendProtocol p) {
  return p == BackendProtocol::kHttp1 ? "http1" : p == BackendProtocol::kHttp2 ? "http2" : "grpc";
}

struct LoadBalancerSettings {
  LbKind type = LbKind::kRoundRobin;
  HashOn hash_on = HashOn::kNone;
  std::string hash_name;  // header (lowercase), cookie or query parameter name
  uint32_t ring_min_size = 1024;
  uint32_t maglev_table_size = 65537;
  uint32_t panic_threshold_percent = 50;
};

struct ActiveHealthSettings {
  bool http = true;          // type HTTP, else TCP (or GRPC when `grpc`)
  bool grpc = false;         // type GRPC: grpc.health.v1.Health/Check over HTTP/2
  std::string grpc_service;  // the HealthCheckRequest service ("" = the whole server)
  std::string path = "/";
  std::string host;
  std::vector<std::pair<uint16_t, uint16_t>> expected_statuses;  // empty: 200-299
  uint32_t interval_ms = 5'000;
  uint32_t timeout_ms = 1'000;
  uint32_t healthy_threshold = 1;
  uint32_t unhealthy_threshold = 3;
  uint32_t jitter_ms = 0;
};

struct PassiveHealthSettings {
  uint32_t consecutive_5xx = 5;             // 0 disables
  uint32_t consecutive_gateway_errors = 0;  // 502/503/504 and connect/reset failures; 0 off
  uint32_t base_ejection_ms = 30'000;
  uint32_t max_ejection_percent = 10;
};

struct CircuitBreakerSettings {
  uint32_t max_connections = 1024;
  uint32_t max_pending_requests = 1024;
  uint32_t max_parallel_requests = 1024;
  uint32_t max_parallel_retries = 1024;
};

struct ConnectionPoolSettings {
  uint32_t max_requests_per_connection = 0;  // 0 = unlimited
  uint32_t idle_timeout_ms = 0;              // 0 = the pool's default (30s)
  uint32_t max_idle_per_worker = 0;          // 0 = the pool's default (512 per endpoint)
};

}  // namespace portico::config
