#include "stats/prometheus.h"

#include <cstdio>
#include <string_view>

namespace portico::stats {

namespace {

const char* const kClasses[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

void appendEscaped(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, std::string_view name, std::string_view labels, uint64_t v) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out += std::to_string(v);
  out += '\n';
}

std::string label(std::string_view key, std::string_view value) {
  std::string s(key);
  s += "=\"";
  appendEscaped(s, value);
  s += '"';
  return s;
}

// Cumulative histogram lines for `name` with extra `labels` (may be empty).
void histogram(std::string& out, std::string_view name, const std::string& labels,
               const std::array<uint64_t, Histogram::kBoundsUs.size() + 1>& buckets,
               uint64_t sum_us) {
  uint64_t cumulative = 0;
  std::string prefix = labels.empty() ? "" : labels + ",";
  for (size_t i = 0; i < buckets.size(); ++i) {
    cumulative += buckets[i];
    char le[32];
    if (i < Histogram::kBoundsUs.size()) {
      std::snprintf(le, sizeof le, "%g", static_cast<double>(Histogram::kBoundsUs[i]) / 1e6);
    } else {
      std::snprintf(le, sizeof le, "+Inf");
    }
    sample(out, std::string(name) + "_bucket", prefix + "le=\"" + le + "\"", cumulative);
  }
  char sum[48];
  std::snprintf(sum, sizeof sum, "%.6f", static_cast<double>(sum_us) / 1e6);
  out += std::string(name) + "_sum";
  if (!labels.empty()) out += "{" + labels + "}";
  out += ' ';
  out += sum;
  out += '\n';
  sample(out, std::string(name) + "_count", labels, cumulative);
}

}  // namespace

std::string renderPrometheus(const std::vector<const Shard*>& shards,
                             const ExpositionNames& names) {
  std::string out;
  out.reserve(8192);
  auto global = [&](auto member) {
    uint64_t v = 0;
    for (const Shard* s : shards) v += (s->global.*member).get();
    return v;
  };
  family(out, "portico_downstream_connections_total", "counter", "Client connections accepted.");
  sample(out, "portico_downstream_connections_total", "",
         global(&GlobalStats::downstream_connections_total));
  family(out, "portico_downstream_connections_active", "gauge", "Client connections open now.");
  sample(out, "portico_downstream_connections_active", "",
         global(&GlobalStats::downstream_connections_active));
  family(out, "portico_downstream_requests_total", "counter",
         "Requests received from clients, including rejected ones.");
  sample(out, "portico_downstream_requests_total", "", global(&GlobalStats::downstream_requests));
  family(out, "portico_downstream_responses_total", "counter",
         "Responses sent to clients by status class.");
  for (size_t c = 0; c < 5; ++c) {
    uint64_t v = 0;
    for (const Shard* s : shards) v += s->global.downstream_responses[c].get();
    sample(out, "portico_downstream_responses_total", label("code_class", kClasses[c]), v);
  }
  family(out, "portico_downstream_bad_requests_total", "counter",
         "Requests rejected as malformed by the HTTP/1 parser.");
  sample(out, "portico_downstream_bad_requests_total", "", global(&GlobalStats::bad_requests));
  family(out, "portico_downstream_timeouts_total", "counter",
         "Client connections closed by the request header or body timeout.");
  sample(out, "portico_downstream_timeouts_total", "", global(&GlobalStats::header_timeouts));
  family(out, "portico_no_route_total", "counter", "Requests answered 404 for lack of a route.");
  sample(out, "portico_no_route_total", "", global(&GlobalStats::no_route));
  family(out, "portico_security_local_answers_total", "counter",
         "Requests a SecurityPolicy answered itself (401, 403, ext-authz denials, CORS "
         "preflights).");
  sample(out, "portico_security_local_answers_total", "",
         global(&GlobalStats::security_local_answers));
  family(out, "portico_upstream_retries_total", "counter",
         "Requests retried on a fresh connection after a stale pooled one failed.");
  sample(out, "portico_upstream_retries_total", "", global(&GlobalStats::upstream_retries));
  family(out, "portico_downstream_upgrades_total", "counter",
         "Client connections switched to another protocol (WebSocket) after an upstream 101.");
  sample(out, "portico_downstream_upgrades_total", "", global(&GlobalStats::downstream_upgrades));
  family(out, "portico_http2_connections_total", "counter",
         "Client connections that spoke HTTP/2 (h2c prior knowledge or ALPN h2).");
  sample(out, "portico_http2_connections_total", "", global(&GlobalStats::http2_connections));
  family(out, "portico_http2_streams_total", "counter", "HTTP/2 requests opened by clients.");
  sample(out, "portico_http2_streams_total", "", global(&GlobalStats::http2_streams));
  family(out, "portico_http2_abuse_closes_total", "counter",
         "HTTP/2 connections closed for abuse: rapid reset, control-frame floods, "
         "CONTINUATION floods, protocol errors.");
  sample(out, "portico_http2_abuse_closes_total", "", global(&GlobalStats::http2_abuse_closes));
  family(out, "portico_downstream_tunnels_active", "gauge",
         "Upgraded (WebSocket) connections open now.");
  sample(out, "portico_downstream_tunnels_active", "",
         global(&GlobalStats::downstream_tunnels_active));
  family(out, "portico_mirror_requests_total", "counter",
         "RequestMirror copies started, and those dropped (connect error, reset, timeout, or "
         "behind the real request by more than 1 MiB).");
  sample(out, "portico_mirror_requests_total", label("result", "started"),
         global(&GlobalStats::mirror_requests));
  sample(out, "portico_mirror_requests_total", label("result", "failed"),
         global(&GlobalStats::mirror_failures));
  family(out, "portico_ext_authz_total", "counter",
         "External authorization verdicts (SecurityPolicy extAuth), cache hits included: "
         "allowed, denied, or error (timeout, unreachable, 5xx, malformed answer).");
  sample(out, "portico_ext_authz_total", label("result", "allowed"),
         global(&GlobalStats::ext_authz_allowed));
  sample(out, "portico_ext_authz_total", label("result", "denied"),
         global(&GlobalStats::ext_authz_denied));
  sample(out, "portico_ext_authz_total", label("result", "error"),
         global(&GlobalStats::ext_authz_errors));

  // Per route.
  const auto& routes = *names.routes;
  family(out, "portico_route_requests_total", "counter", "Requests matched to a route.");
  for (uint32_t id = 0; id < routes.size(); ++id) {
    uint64_t v = 0;
    for (const Shard* s : shards)
      if (const RouteStats* r = s->routes.find(id)) v += r->requests.get();
    sample(out, "portico_route_requests_total", label("route", routes[id]), v);
  }
  family(out, "portico_route_responses_total", "counter", "Responses by route and status class.");
  for (uint32_t id = 0; id < routes.size(); ++id) {
    for (size_t c = 0; c < 5; ++c) {
      uint64_t v = 0;
      for (const Shard* s : shards)
        if (const RouteStats* r = s->routes.find(id)) v += r->responses[c].get();
      sample(out, "portico_route_responses_total",
             label("route", routes[id]) + "," + label("code_class", kClasses[c]), v);
    }
  }
  family(out, "portico_request_duration_seconds", "histogram",
         "Time from the request head to the end of the response, all routes.");
  {
    std::array<uint64_t, Histogram::kBoundsUs.size() + 1> b{};
    uint64_t sum = 0;
    for (const Shard* s : shards) {
      for (size_t i = 0; i < b.size(); ++i) b[i] += s->global.latency.bucket(i);
      sum += s->global.latency.sumUs();
    }
    histogram(out, "portico_request_duration_seconds", "", b, sum);
  }
  family(out, "portico_route_request_duration_seconds", "histogram",
         "Time from the request head to the end of the response, by route.");
  for (uint32_t id = 0; id < routes.size(); ++id) {
    std::array<uint64_t, Histogram::kBoundsUs.size() + 1> b{};
    uint64_t sum = 0;
    for (const Shard* s : shards) {
      const RouteStats* r = s->routes.find(id);
      if (r == nullptr) continue;
      for (size_t i = 0; i < b.size(); ++i) b[i] += r->latency.bucket(i);
      sum += r->latency.sumUs();
    }
    histogram(out, "portico_route_request_duration_seconds", label("route", routes[id]), b, sum);
  }

  // Per backend.
  const auto& backends = *names.backends;
  struct BackendCounter {
    const char* name;
    const char* help;
    const char* type;
    Counter BackendStats::*member;
  };
  const BackendCounter counters[] = {
      {"portico_backend_requests_total", "Requests sent to a backend.", "counter",
       &BackendStats::requests},
      {"portico_backend_connect_failures_total", "Upstream connections refused or failed.",
       "counter", &BackendStats::connect_failures},
      {"portico_backend_connect_timeouts_total", "Upstream connects that timed out.", "counter",
       &BackendStats::connect_timeouts},
      {"portico_backend_resets_total",
       "Upstream connections reset or sending garbage before a complete response.", "counter",
       &BackendStats::resets},
      {"portico_backend_response_timeouts_total", "Upstream responses that timed out.", "counter",
       &BackendStats::response_timeouts},
      {"portico_backend_connections_total", "Upstream connections opened.", "counter",
       &BackendStats::connections_total},
      {"portico_backend_connections_active", "Upstream connections open now.", "gauge",
       &BackendStats::connections_active},
      {"portico_backend_retries_total", "Retry attempts (TrafficPolicy retry).", "counter",
       &BackendStats::retries},
      {"portico_backend_retries_denied_total",
       "Retries not attempted because the retry budget was used up.", "counter",
       &BackendStats::retries_denied},
      {"portico_backend_overflows_total",
       "Requests answered 503 or retries not attempted because a circuit breaker was full.",
       "counter", &BackendStats::overflows},
  };
  for (const auto& bc : counters) {
    family(out, bc.name, bc.type, bc.help);
    for (uint32_t id = 0; id < backends.size(); ++id) {
      uint64_t v = 0;
      for (const Shard* s : shards)
        if (const BackendStats* b = s->backends.find(id)) v += (b->*bc.member).get();
      sample(out, bc.name, label("backend", backends[id]), v);
    }
  }
  family(out, "portico_backend_responses_total", "counter",
         "Responses from a backend by status class.");
  for (uint32_t id = 0; id < backends.size(); ++id) {
    for (size_t c = 0; c < 5; ++c) {
      uint64_t v = 0;
      for (const Shard* s : shards)
        if (const BackendStats* b = s->backends.find(id)) v += b->responses[c].get();
      sample(out, "portico_backend_responses_total",
             label("backend", backends[id]) + "," + label("code_class", kClasses[c]), v);
    }
  }
  return out;
}

}  // namespace portico::stats
