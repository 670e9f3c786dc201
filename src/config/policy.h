// TrafficPolicy settings in the form the proxy applies them (shared by the decoder's model and
// the compiled snapshot): retries and upstream timeouts of a rule.
#pragma once

#include <cstdint>
#include <vector>

namespace portico::config {

// retry: when and how a failed upstream attempt is tried again (Envoy Gateway's field names).
struct RetryPolicy {
  uint32_t num_retries = 2;  // retries after the first attempt; 0 disables
  // retryOn.triggers
  bool on_5xx = false;                 // any 5xx response, reset, connect failure, timeout
  bool on_gateway_error = false;       // 502/503/504 responses, reset, connect failure, timeout
  bool on_reset = false;               // the connection failed before a response head
  bool on_connect_failure = false;     // connect refused or timed out
  bool on_retriable_4xx = false;       // 409
  std::vector<uint16_t> status_codes;  // retryOn.httpStatusCodes
  uint32_t per_try_timeout_ms = 0;     // perRetry.timeout; 0: only the request timeout
  uint32_t base_interval_ms = 25;      // perRetry.backOff.baseInterval
  uint32_t max_interval_ms = 250;      // perRetry.backOff.maxInterval (default 10 × base)
  // Retry budget: at most budget_percent of the active requests may be retries (at least
  // min_concurrency), per worker, so retries cannot amplify an outage.
  uint32_t budget_percent = 20;
  uint32_t min_concurrency = 3;
  bool retry_non_idempotent = false;  // retry POST/PATCH/... after bytes reached the upstream
  uint32_t buffer_limit = 64 * 1024;  // request bodies longer than this are not retried

  bool retriesStatus(int status) const {
    if (on_5xx && status >= 500 && status <= 599) return true;
    if (on_gateway_error && (status == 502 || status == 503 || status == 504)) return true;
    if (on_retriable_4xx && status == 409) return true;
    for (uint16_t s : status_codes)
      if (s == status) return true;
    return false;
  }
  bool retriesConnectFailure() const {
    return on_connect_failure || on_5xx || on_gateway_error || on_reset;
  }
  bool retriesReset() const { return on_reset || on_5xx || on_gateway_error; }
  bool retriesTimeout() const { return on_5xx || on_gateway_error || on_reset; }
};

}  // namespace portico::config
