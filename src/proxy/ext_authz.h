// ExtAuthzCall: one check of a request against a SecurityPolicy's external authorization
// service (extAuth.http), on the worker, over the worker's upstream connection pool.
//
// The call sends `<method> <cfg.path><request path>[?query] HTTP/1.1` with the original
// authority as Host, the request headers of cfg.headers_to_service (all when empty; hop-by-hop
// fields and Content-Length never), X-Forwarded-For (the client address appended),
// X-Forwarded-Proto and X-Forwarded-Host, and the request body the caller passes with a
// Content-Length (the caller buffers at most cfg.max_body_bytes; more is cut there, and with
// max_body_bytes 0 no body is sent). The answer is read whole (body bounded, 64 KiB):
//  - 2xx: allow; the answer's headers named in cfg.headers_to_backend go to the upstream
//    request (ExtAuthzVerdict::upstream_headers);
//  - 5xx, a malformed answer, an unreachable service (connect failure, reset before the
//    answer) or no answer within cfg.timeout_ms: an error — allow when cfg.fail_open, else
//    deny 403 — with reason ext_authz_error / ext_authz_unreachable / ext_authz_timeout;
//  - any other status: deny, with the service's status, body, content type and headers for
//    the client.
// A pooled connection that fails before any byte of the answer is retried once on a fresh one.
//
// Endpoint: the backend's endpoints in round robin, skipping unhealthy ones while a healthy
// one exists. A TLS Backend (`backend->tls`) speaks TLS as the proxy does.
//
// Cache (cfg.cache_ttl_ms > 0): per worker, at most cfg.cache_max_entries (default 1000) per
// ExtAuthz config, least recently used evicted, keyed by the request exactly as it would be
// sent (method, path, query, the header fields sent, including X-Forwarded-For, and the body).
// Allow verdicts and 4xx denies are cached; errors never. A hit sends nothing and is delivered
// like a fresh verdict: asynchronously, at the end of the current loop iteration. The worker
// clears the cache when it installs a new snapshot (config addresses may then be reused).
//
// Delivery: `done(ctx, verdict)` runs on the loop, never inside start(), exactly once unless
// cancel() was called first. `verdict` may be moved from. After done() returns, the call frees
// itself; the caller must drop its pointer when done() runs or when it calls cancel().
// Lifetimes: start() copies what it needs from `req` and `body` (they may go away after it);
// `cfg` (and its backend) must stay valid until done() runs or cancel() is called — the
// request's pinned snapshot guarantees that.
//
// Stats: portico_ext_authz_total{result="allowed|denied|error"} (one per verdict, cache hits
// included; an error is counted as error whatever fail_open decides).
//
// Loop-thread only. The worker keeps live calls in a list and aborts them at exit.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "http1/parser.h"
#include "net/event_loop.h"
#include "security/evaluator.h"
#include "security/policy.h"
#include "upstream/upstream_conn.h"

namespace portico::config {
struct Endpoint;
}

namespace portico::proxy {

class Worker;

struct ExtAuthzVerdict {
  enum class Kind : uint8_t { kAllow, kDeny };
  Kind kind = Kind::kDeny;
  int status = 403;            // deny: the service's status; errors: 403
  std::string body;            // deny: the service's body (at most 64 KiB)
  std::string content_type;    // deny: the service's content-type ("" = none)
  std::string client_headers;  // deny: the service's other response headers, as lines
                               // "name: value\r\n" (hop-by-hop, content-length,
                               // transfer-encoding, connection, content-type dropped)
  std::vector<security::HeaderAdd> upstream_headers;  // allow: cfg.headers_to_backend found
  // "ext_authz_allowed", "ext_authz_denied", "ext_authz_timeout", "ext_authz_unreachable",
  // "ext_authz_error" (5xx, malformed answer). Points to a static string.
  std::string_view reason;
};

// Per-worker verdict cache (see the top of this file). Owned by the Worker.
class ExtAuthzCache {
 public:
  ExtAuthzCache();
  ~ExtAuthzCache();
  ExtAuthzCache(const ExtAuthzCache&) = delete;
  ExtAuthzCache& operator=(const ExtAuthzCache&) = delete;

  // A live entry for `key` under `cfg`, or nullptr.
  const ExtAuthzVerdict* find(const security::ExtAuthz& cfg, const std::string& key,
                              uint64_t now_ms);
  void insert(const security::ExtAuthz& cfg, const std::string& key, const ExtAuthzVerdict& v,
              uint64_t now_ms);
  void clear();
  size_t size() const;

 private:
  struct Impl;
  Impl* impl_;
};

class ExtAuthzCall final : public upstream::UpstreamOwner,
                           public net::Deferred,
                           public net::Flushable {
 public:
  using Done = void (*)(void* ctx, ExtAuthzVerdict& verdict);
  static constexpr size_t kMaxAnswerBody = 64 * 1024;
  static constexpr uint32_t kDefaultCacheEntries = 1000;

  // Starts a check of `req` against cfg.backend (see the top of this file). `tls`: the client
  // spoke TLS (X-Forwarded-Proto). `body` (its first cfg.max_body_bytes) is sent when
  // non-empty. Never returns nullptr.
  static ExtAuthzCall* start(Worker& worker, const security::ExtAuthz& cfg,
                             const security::Request& req, bool tls, std::string_view body,
                             Done done, void* ctx);

  // The request went away: done is never called; the call frees itself (after closing its
  // connection, whose answer is still pending).
  void cancel();
  // Worker exit: like cancel().
  void abort() { cancel(); }

  void onUpstreamIo(upstream::UpstreamConn* conn, uint32_t events) override;
  void flushDeferred() override;

  ExtAuthzCall* prev = nullptr;  // Worker's intrusive list
  ExtAuthzCall* next = nullptr;

 private:
  ExtAuthzCall(Worker& worker, const security::ExtAuthz& cfg, Done done, void* ctx);
  ~ExtAuthzCall() override;

  const config::Endpoint* chooseEndpoint();
  bool connect(bool fresh_only);
  void send();
  void flush();
  void readAnswer();
  void onAnswer();
  // A failure of the exchange before a complete answer: retried once on a fresh connection
  // when the pooled one failed before any answer byte, else an error verdict.
  void fail(std::string_view reason);
  void error(std::string_view reason);
  // Ends the exchange with `verdict` (the connection pooled when `reusable`) and queues the
  // delivery.
  void complete(ExtAuthzVerdict verdict, bool reusable);
  void releaseConn(bool reusable);
  void unlist();
  static void onTimer(void* ctx);

  Worker& worker_;
  const security::ExtAuthz& cfg_;
  Done done_;
  void* ctx_;
  const config::Endpoint* endpoint_ = nullptr;
  upstream::UpstreamConn* up_ = nullptr;
  net::Timer timer_;
  std::string request_;    // serialized request (head and body), kept for the one retry
  std::string cache_key_;  // "" when not cached
  std::string method_;     // for the answer's framing (HEAD)
  http1::BodyDecoder body_decoder_;
  int status_ = 0;
  bool keep_alive_ = false;
  bool head_done_ = false;
  bool got_bytes_ = false;
  bool retried_ = false;
  bool completed_ = false;
  bool cancelled_ = false;
  bool listed_ = false;
  std::string answer_body_;
  std::string content_type_;
  std::string client_headers_;
  std::vector<security::HeaderAdd> upstream_headers_;
  ExtAuthzVerdict verdict_;
};

}  // namespace portico::proxy
