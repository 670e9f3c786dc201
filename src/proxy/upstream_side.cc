// The upstream half of DownstreamConn: connecting, sending the request, parsing and streaming
// the response, failures (503/502/504), the one retry of a stale pooled connection, and
// returning connections to the pool.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "net/socket.h"
#include "proxy/downstream_conn.h"
#include "proxy/http_util.h"
#include "proxy/worker.h"
#include "upstream/load_balancer.h"

namespace portico::proxy {

namespace {
// Limits for heads sent by upstreams: generous, but bounded.
const http1::Limits kUpstreamLimits{64 * 1024, 96 * 1024, Worker::kUpstreamMaxHeaders};
}  // namespace

uint32_t DownstreamConn::responseTimeoutMs() {
  // One attempt waits for its response head at most timeouts.backendRequest (or the retry
  // policy's per-try timeout), and never beyond the request's deadline (504 either way).
  uint32_t ms = config::kTimeoutDisabledMs;
  if (deadline_ms_ != 0) {
    uint64_t now = worker_.loop().nowMs();
    ms = deadline_ms_ > now ? static_cast<uint32_t>(deadline_ms_ - now) : 1;
  }
  uint32_t per_try = 0;
  if (rule_ != nullptr) per_try = rule_->backend_request_timeout_ms;
  if (per_try == 0 && retry_ != nullptr) per_try = retry_->per_try_timeout_ms;
  if (per_try != 0 && per_try < ms) ms = per_try;
  return ms;
}

bool DownstreamConn::pickEndpoint(const config::Endpoint* avoid) {
  const std::vector<config::Endpoint>& eps = backend_->endpoints;
  upstream::LbWorkerState* state = snapshot_->lb[backend_->index].get();
  if (lb_index_ >= 0) {
    upstream::onRequestEnd(*state, lb_index_);
    lb_index_ = -1;
  }
  int avoid_index = avoid != nullptr ? static_cast<int>(avoid - eps.data()) : -1;
  int i = upstream::pick(*backend_->balancer, *state, worker_.shared().health, lb_hash_,
                         worker_.random(), avoid_index);
  if (i < 0) return false;
  upstream::onRequestStart(*state, i);
  lb_index_ = i;
  endpoint_ = &eps[static_cast<size_t>(i)];
  return true;
}

void DownstreamConn::overflow(std::string_view limit) {
  stats::BackendStats& bs = worker_.stats().backends.at(backend_->stats_id);
  bs.overflows.inc();
  scratch_.clear();
  scratch_.append("x-portico-overloaded: ");
  scratch_.append(limit);
  scratch_.append("\r\n");
  std::string body = "backend circuit breaker open: " + std::string(limit) + "\n";
  releaseUpstream(false);
  respondLocal(503, body, !req_done_, scratch_.view());
  scratch_.clear();
  scratch_.release();
}

void DownstreamConn::recordOutcome(bool server_error, bool gateway_error) {
  if (backend_ == nullptr || endpoint_ == nullptr || !backend_->passive_health) return;
  worker_.recordOutcome(*snapshot_, *backend_, *endpoint_, server_error, gateway_error);
}

void DownstreamConn::releaseBreakerUnits() {
  if (backend_ == nullptr) return;
  upstream::BackendLoad& load = worker_.shared().load(backend_->stats_id);
  if (cb_request_) upstream::release(load.requests);
  if (cb_retry_) upstream::release(load.retries);
  if (cb_pending_) upstream::release(load.pending);
  cb_request_ = cb_retry_ = cb_pending_ = false;
}

bool DownstreamConn::connectUpstream() {
  const config::Port* port = findPort();
  uint32_t connect_ms = port ? port->settings.connect_timeout_ms : 2'000;
  if (rule_ != nullptr && rule_->connectTimeoutMs() != 0) connect_ms = rule_->connectTimeoutMs();
  if (port && port->settings.overrides.connect_timeout_ms != 0)
    connect_ms = port->settings.overrides.connect_timeout_ms;
  uint32_t request_ms = responseTimeoutMs();
  // An upgrade always gets a fresh connection: it is never returned to the pool.
  up_ = req_upgrade_ ? nullptr : worker_.pool().acquire(endpoint_->pool_id, this);
  if (up_ != nullptr) {
    armUpTimer(UpTimer::kResponse, request_ms);
    return true;
  }
  upstream::BackendLoad& load = worker_.shared().load(backend_->stats_id);
  const config::CircuitBreakerSettings& cb = backend_->circuit_breaker;
  if (!upstream::tryAcquire(load.connections, cb.max_connections)) {
    overflow("maxConnections");
    return false;
  }
  bool in_progress = false;
  Result<int> fd = net::connectTcp(endpoint_->address, &in_progress);
  stats::BackendStats& bs = worker_.stats().backends.at(backend_->stats_id);
  if (!fd.ok()) {
    upstream::release(load.connections);
    bs.connect_failures.inc();
    worker_.stats().global.upstream_connect_failures.inc();
    upstreamFailed(503, "upstream connect error: " + fd.status().message() + "\n",
                   Failure::kConnect);
    return false;
  }
  bs.connections_total.inc();
  up_ = new upstream::UpstreamConn(worker_.loop(), worker_.pool(), *fd, endpoint_->pool_id,
                                   backend_->stats_id, in_progress, &bs.connections_active,
                                   &load.connections);
  up_->owner = this;
  if (backend_->tls) up_->startTls(backend_->tls, backend_->tls_server_name);
  up_->max_requests = backend_->pool.max_requests_per_connection;
  up_->max_idle = backend_->pool.max_idle_per_worker;
  up_->idle_timeout_ms = backend_->pool.idle_timeout_ms;
  if (in_progress) {
    if (!upstream::tryAcquire(load.pending, cb.max_pending_requests)) {
      overflow("maxPendingRequests");
      return false;
    }
    cb_pending_ = true;
  }
  armUpTimer(in_progress ? UpTimer::kConnect : UpTimer::kResponse,
             in_progress ? connect_ms : request_ms);
  return true;
}

void DownstreamConn::armUpTimer(UpTimer kind, uint32_t ms) {
  up_timer_kind_ = kind;
  worker_.loop().timers().schedule(&up_timer_, ms);
}

void DownstreamConn::flushUpstream() {
  if (up_ == nullptr) return;
  if (!up_->flush()) {
    upstreamFailed(502, "upstream connection reset\n", Failure::kReset);
    return;
  }
  updateInterest();
}

void DownstreamConn::onUpstreamIo(upstream::UpstreamConn* conn, uint32_t events) {
  if (conn != up_ || phase_ == Phase::kClosed) return;
  if (up_->connecting) {
    int err = net::connectError(up_->fd());
    if (err != 0) {
      worker_.stats().backends.at(backend_->stats_id).connect_failures.inc();
      worker_.stats().global.upstream_connect_failures.inc();
      upstreamFailed(503, std::string("upstream connect error: ") + std::strerror(err) + "\n",
                     Failure::kConnect);
      return;
    }
    up_->connecting = false;
    if (cb_pending_) {
      upstream::release(worker_.shared().load(backend_->stats_id).pending);
      cb_pending_ = false;
    }
    armUpTimer(UpTimer::kResponse, responseTimeoutMs());
    if (!req_done_ && !in_.empty()) {
      forwardRequestBody();  // flushes
    } else {
      flushUpstream();
    }
    return;
  }
  if (events & EPOLLOUT) {
    if (!up_->flush()) {
      upstreamFailed(502, "upstream connection reset\n", Failure::kReset);
      return;
    }
    // Upstream took our bytes: more request body may flow.
    if (!req_done_ && up_->out.size() <= kHighWater && !in_.empty()) forwardRequestBody();
    if (phase_ == Phase::kClosed) return;
    if (phase_ == Phase::kTunnel) {
      tunnelStep();  // may pass a half-close on now that the output drained
      if (phase_ == Phase::kClosed) return;
    } else {
      updateInterest();
    }
  }
  if (up_ != nullptr && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) readUpstream();
}

void DownstreamConn::readUpstream() {
  char* p = up_->in.reserve(kReadSize);
  ssize_t n = up_->read(p, up_->in.writable());
  if (n > 0) {
    up_->in.commit(static_cast<size_t>(n));
    up_->bytes_received += static_cast<uint64_t>(n);
    processResponse();
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (phase_ == Phase::kTunnel) {
    if (n == 0) {
      onTunnelUpstreamEof();
    } else {
      close();
    }
    return;
  }
  // EOF or reset.
  if (resp_head_done_ && resp_body_.kind() == http1::BodyKind::kUntilClose && n == 0) {
    responseComplete();
    return;
  }
  if (!resp_head_done_) {
    if (up_->bytes_received == 0 && retryOnFreshConnection()) return;
    upstreamFailed(502, "upstream closed the connection before responding\n", Failure::kReset);
    return;
  }
  // Truncated response: the client must see the failure, not a short body.
  worker_.stats().backends.at(backend_->stats_id).resets.inc();
  worker_.stats().global.upstream_resets.inc();
  close();
}

void DownstreamConn::processResponse() {
  if (up_ == nullptr) return;
  if (phase_ == Phase::kTunnel) {
    tunnelStep();
    return;
  }
  while (!resp_head_done_) {
    http1::ResponseHead head;
    head.headers = worker_.headerScratch();
    http1::ParseResult r = http1::parseResponseHead(up_->in.view(), kUpstreamLimits,
                                                    req_is_head_ ? "HEAD" : "GET", &head);
    if (r.status == http1::ParseStatus::kIncomplete) return;
    if (r.status == http1::ParseStatus::kError) {
      upstreamFailed(
          502, "upstream sent an invalid response: " + std::string(http1::describe(r.error)) + "\n",
          Failure::kReset);
      return;
    }
    if (head.status == 101 && req_upgrade_ && head.info.upgrade) {
      startTunnel(head, r.consumed);
      return;
    }
    if (head.status >= 100 && head.status < 200) {
      // Interim responses (we never ask for 100-continue upstream): skip them.
      up_->in.consume(r.consumed);
      if (head.status == 101) {
        upstreamFailed(502, "upstream switched protocols without an upgrade request\n",
                       Failure::kReset);
        return;
      }
      continue;
    }
    recordOutcome(head.status >= 500, head.status >= 502 && head.status <= 504);
    if (retry_ != nullptr && retry_->retriesStatus(head.status)) {
      uint32_t retry_after_ms = 0;
      for (uint32_t i = 0; i < head.header_count; ++i) {
        if (!equalsIgnoreCase(head.headers[i].name, "retry-after")) continue;
        // Delay-seconds only; an HTTP-date is ignored (the backoff applies).
        uint64_t secs = 0;
        std::string_view v = head.headers[i].value;
        bool digits = !v.empty() && v.size() <= 6;
        for (char c : v) digits = digits && c >= '0' && c <= '9';
        if (digits) {
          for (char c : v) secs = secs * 10 + static_cast<uint64_t>(c - '0');
          retry_after_ms = static_cast<uint32_t>(secs * 1000);
        }
      }
      if (maybeRetry(Failure::kStatus, head.status, retry_after_ms)) return;
    }
    resp_status_ = head.status;
    writeResponseHead(head);
    up_->in.consume(r.consumed);
    resp_head_done_ = true;
    resp_body_.reset(head.info.body, head.info.content_length);
    up_keep_alive_ = head.info.keep_alive;
    const config::Port* port = findPort();
    armUpTimer(UpTimer::kBodyGap, port ? port->settings.idle_timeout_ms : 60'000);
    if (resp_body_.done()) {  // no body, or Content-Length: 0
      responseComplete();
      return;
    }
  }
  bool progressed = false;
  while (up_ != nullptr && !up_->in.empty() && out_.size() <= kHighWater) {
    http1::BodyDecoder::Step step = resp_body_.decode(up_->in.view());
    if (step.status == http1::ParseStatus::kError) {
      worker_.stats().backends.at(backend_->stats_id).resets.inc();
      worker_.stats().global.upstream_resets.inc();
      close();  // the head is out: the only honest signal left is closing
      return;
    }
    if (!step.data.empty()) {
      if (resp_chunked_out_) appendChunkHeader(out_, step.data.size());
      out_.append(step.data);
      if (resp_chunked_out_) out_.append("\r\n");
    }
    up_->in.consume(step.consumed);
    progressed = true;
    if (step.status == http1::ParseStatus::kDone) {
      responseComplete();
      return;
    }
    if (step.consumed == 0) break;
  }
  if (progressed && up_ != nullptr) {
    const config::Port* port = findPort();
    armUpTimer(UpTimer::kBodyGap, port ? port->settings.idle_timeout_ms : 60'000);
  }
  flushOut();
}

void DownstreamConn::writeResponseHead(const http1::ResponseHead& head) {
  using http1::BodyKind;
  using http1::HeaderTag;
  bool client11 = req_version_minor_ >= 1;
  bool bodiless = head.info.body == BodyKind::kNone;
  bool stream_to_close = false;
  if (head.info.body == BodyKind::kChunked || head.info.body == BodyKind::kUntilClose) {
    if (client11) {
      resp_chunked_out_ = true;
    } else {
      stream_to_close = true;  // HTTP/1.0 clients read to EOF
    }
  }
  resp_close_ = stream_to_close || client_eof_ || !req_keep_alive_ || !req_done_ || draining_ ||
                worker_.draining();
  out_.append("HTTP/1.1 ");
  appendDecimal(out_, static_cast<uint64_t>(head.status));
  out_.append(" ");
  out_.append(head.reason.empty() ? reasonPhrase(head.status) : head.reason);
  out_.append("\r\n");
  const config::HeaderModifier* mod = target_->responseHeaders();
  for (uint32_t i = 0; i < head.header_count; ++i) {
    const http1::Header& h = head.headers[i];
    if (h.tag == HeaderTag::kContentLength && bodiless) {
      // HEAD / 304 responses keep the Content-Length of the representation.
    } else if (isHopByHop(h.tag)) {
      continue;
    } else if (head.info.connection_other_tokens &&
               nominatedByConnection(head.headers, head.header_count, h.name)) {
      continue;
    } else if (mod != nullptr && modifierTakesOver(*mod, h.name)) {
      continue;
    } else if (!cors_resp_.empty() && isCorsResponseHeader(h.name)) {
      continue;  // the gateway's CORS policy answers for the origin
    }
    out_.append(h.name);
    out_.append(": ");
    out_.append(h.value);
    out_.append("\r\n");
  }
  if (mod != nullptr) appendModifierHeaders(*mod, head.headers, head.header_count, out_);
  out_.append(cors_resp_);
  if (head.info.body == BodyKind::kContentLength) {
    out_.append("content-length: ");
    appendDecimal(out_, head.info.content_length);
    out_.append("\r\n");
  } else if (resp_chunked_out_) {
    out_.append("transfer-encoding: chunked\r\n");
  }
  if (resp_close_) {
    out_.append("connection: close\r\n");
  } else if (!client11) {
    out_.append("connection: keep-alive\r\n");
  }
  out_.append("\r\n");
  stats::Shard& st = worker_.stats();
  size_t cls = stats::statusClass(head.status);
  st.global.downstream_responses[cls].inc();
  st.routes.at(rule_->route_stats_id).responses[cls].inc();
  st.backends.at(backend_->stats_id).responses[cls].inc();
}

void DownstreamConn::responseComplete() {
  if (resp_chunked_out_) out_.append("0\r\n\r\n");
  uint64_t us = net::EventLoop::monotonicUs() - start_us_;
  stats::Shard& st = worker_.stats();
  st.global.latency.record(us);
  st.routes.at(rule_->route_stats_id).latency.record(us);
  bool reusable = up_keep_alive_ && req_done_ && up_->in.empty() && !req_upgrade_ &&
                  resp_body_.kind() != http1::BodyKind::kUntilClose;
  releaseUpstream(reusable);
  if (!req_done_) resp_close_ = true;  // unread request body: the framing is lost
  finishExchange();
  if (phase_ == Phase::kHead && !in_.empty() && out_.size() <= kHighWater) process();
}

void DownstreamConn::releaseUpstream(bool reusable) {
  up_timer_.cancel();
  up_timer_kind_ = UpTimer::kNone;
  if (lb_index_ >= 0 && snapshot_ != nullptr && backend_ != nullptr) {
    upstream::onRequestEnd(*snapshot_->lb[backend_->index], lb_index_);
    lb_index_ = -1;
  }
  if (cb_pending_) {
    upstream::release(worker_.shared().load(backend_->stats_id).pending);
    cb_pending_ = false;
  }
  if (up_ == nullptr) return;
  upstream::UpstreamConn* c = up_;
  up_ = nullptr;
  if (reusable && !c->closed()) {
    ++c->requests;
    // Idle timeout in the pool: a Gateway policy's override, the rule's policy
    // (timeout.http.connectionIdleTimeout), a Gateway policy's default, the Backend's.
    const config::Port* port = findPort();
    uint32_t idle = 0;
    if (port != nullptr) idle = port->settings.overrides.upstream_idle_ms;
    if (idle == 0 && rule_ != nullptr) idle = rule_->upstreamIdleMs();
    if (idle == 0 && port != nullptr) idle = port->settings.upstream_idle_ms;
    if (idle == 0 && backend_ != nullptr) idle = backend_->pool.idle_timeout_ms;
    c->idle_timeout_ms = idle;  // 0: the pool's default
    worker_.pool().release(c);
  } else {
    c->close();
  }
}

bool DownstreamConn::retryOnFreshConnection() {
  // Only a reused connection can be stale, only once, and only when the request can be sent
  // again whole: no body, and its head kept in req_head_.
  if (up_ == nullptr || !up_->reused || retried_ || !req_bodyless_ || req_head_.empty()) {
    return false;
  }
  retried_ = true;
  worker_.stats().global.upstream_retries.inc();
  releaseUpstream(false);
  if (!connectUpstream()) return true;  // connectUpstream answered the client
  up_->out.append(req_head_.view());
  if (!up_->connecting) flushUpstream();
  return true;
}

void DownstreamConn::upstreamFailed(int status, std::string_view why, Failure failure) {
  if (phase_ == Phase::kTunnel) {  // no HTTP left to answer with
    close();
    return;
  }
  bool reset = failure == Failure::kReset;
  if (reset && backend_ != nullptr) {
    worker_.stats().backends.at(backend_->stats_id).resets.inc();
    worker_.stats().global.upstream_resets.inc();
  }
  if (up_ != nullptr && reset && !resp_head_done_ && up_->bytes_received == 0 &&
      retryOnFreshConnection()) {
    return;
  }
  if (failure != Failure::kStatus) recordOutcome(true, true);
  if (!resp_head_done_ && maybeRetry(failure, status, 0)) return;
  releaseUpstream(false);
  if (resp_head_done_) {
    close();
    return;
  }
  // Unread request body, if any, makes the connection unusable.
  respondLocal(status, why, !req_done_);
}

bool DownstreamConn::maybeRetry(Failure why, int status, uint32_t retry_after_ms) {
  const config::RetryPolicy* p = retry_;
  if (p == nullptr || attempts_ >= p->num_retries || resp_head_done_) return false;
  if (req_upgrade_ && why != Failure::kConnect) return false;  // never after bytes were sent
  bool wanted = false;
  switch (why) {
    case Failure::kConnect:
      wanted = p->retriesConnectFailure();
      break;
    case Failure::kReset:
      wanted = p->retriesReset();
      break;
    case Failure::kTimeout:
      wanted = p->retriesTimeout();
      break;
    case Failure::kStatus:
      wanted = p->retriesStatus(status);
      break;
  }
  if (!wanted) return false;
  // The whole request must be sendable again: a body beyond the buffer limit is not.
  if (!req_bodyless_ && !body_replayable_) return false;
  bool reached = why != Failure::kConnect && up_ != nullptr && up_->bytes_sent > 0;
  if (reached && !p->retry_non_idempotent && !req_idempotent_) return false;
  stats::BackendStats& bs = worker_.stats().backends.at(backend_->stats_id);
  // Retry budget (per worker): retries at most budget_percent of the active requests.
  uint32_t allowed = std::max<uint32_t>(
      p->min_concurrency,
      static_cast<uint32_t>(uint64_t{p->budget_percent} * worker_.active_requests / 100));
  if (!counted_retry_ && worker_.active_retries >= allowed) {
    bs.retries_denied.inc();
    return false;
  }
  if (!cb_retry_) {
    upstream::BackendLoad& load = worker_.shared().load(backend_->stats_id);
    if (!upstream::tryAcquire(load.retries, backend_->circuit_breaker.max_parallel_retries)) {
      bs.retries_denied.inc();
      bs.overflows.inc();
      return false;
    }
    cb_retry_ = true;
  }
  // Fully jittered exponential backoff: 0 .. base * (2^(n+1) - 1), at most maxInterval;
  // an upstream's Retry-After (seconds) replaces it.
  uint64_t window = uint64_t{p->base_interval_ms} * ((uint64_t{2} << attempts_) - 1);
  if (window > p->max_interval_ms) window = p->max_interval_ms;
  uint64_t delay = window == 0 ? 0 : worker_.random() % (window + 1);
  if (retry_after_ms != 0) delay = retry_after_ms;
  if (deadline_ms_ != 0 && worker_.loop().nowMs() + delay >= deadline_ms_) return false;
  releaseUpstream(false);
  ++attempts_;
  bs.retries.inc();
  if (!counted_retry_) {
    counted_retry_ = true;
    ++worker_.active_retries;
  }
  prev_endpoint_ = endpoint_;
  armUpTimer(UpTimer::kBackoff, static_cast<uint32_t>(delay));
  updateInterest();
  return true;
}

void DownstreamConn::startAttempt() {
  if (!pickEndpoint(prev_endpoint_)) {
    respondLocal(503, "no healthy endpoint\n", !req_done_);
    return;
  }
  if (!connectUpstream()) return;  // answered the client, or retried again
  up_->out.append(req_head_.view());
  if (extras_) up_->out.append(extras_->body_copy.view());
  if (up_->connecting) return;
  if (!req_done_ && !in_.empty()) {
    forwardRequestBody();  // flushes
  } else {
    flushUpstream();
  }
}

void DownstreamConn::onUpTimer(void* ctx) {
  auto* self = static_cast<DownstreamConn*>(ctx);
  if (self->phase_ != Phase::kProxy) return;
  stats::BackendStats* bs =
      self->backend_ ? &self->worker_.stats().backends.at(self->backend_->stats_id) : nullptr;
  switch (self->up_timer_kind_) {
    case UpTimer::kConnect:
      if (bs) bs->connect_timeouts.inc();
      self->worker_.stats().global.upstream_connect_failures.inc();
      self->upstreamFailed(503, "upstream connect timeout\n", Failure::kConnect);
      break;
    case UpTimer::kResponse:
      if (bs) bs->response_timeouts.inc();
      self->upstreamFailed(504, "upstream response timeout\n", Failure::kTimeout);
      break;
    case UpTimer::kBackoff:
      self->up_timer_kind_ = UpTimer::kNone;
      self->startAttempt();
      break;
    case UpTimer::kBodyGap:
      if (bs) bs->response_timeouts.inc();
      self->close();
      break;
    case UpTimer::kNone:
      break;
  }
}

}  // namespace portico::proxy
