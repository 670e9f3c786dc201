#include "proxy/h2_stream.h"

#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>

#include "net/socket.h"
#include "proxy/ext_authz.h"
#include "proxy/h2_fields.h"
#include "proxy/http_util.h"
#include "proxy/rewrite.h"
#include "proxy/worker.h"
#include "router/route_table.h"
#include "upstream/load_balancer.h"

namespace portico::proxy {

using namespace h2_fields;  // NOLINT: the stream path's own helpers

H2Stream::H2Stream(StreamDownstream& conn, int32_t id) : conn_(conn), id_(id) {
  timer_.set(&H2Stream::onTimer, this);
}

H2Stream::~H2Stream() {
  for (Field& f : fields_) {
    if (f.name_buf != nullptr) nghttp2_rcbuf_decref(f.name_buf);
    if (f.value_buf != nullptr) nghttp2_rcbuf_decref(f.value_buf);
  }
  if (authz_ != nullptr) authz_->cancel();
  if (authz_snapshot_ != nullptr) conn_.worker().releaseSnapshot(authz_snapshot_);
  if (snapshot_ != nullptr) conn_.worker().releaseSnapshot(snapshot_);
}

bool H2Stream::addHeader(nghttp2_rcbuf* name, nghttp2_rcbuf* value, uint32_t limit) {
  header_bytes_ += static_cast<uint32_t>(http2::view(name).size() + http2::view(value).size() + 32);
  if (header_bytes_ > limit) return false;
  nghttp2_rcbuf_incref(name);
  nghttp2_rcbuf_incref(value);
  fields_.push_back({http2::view(name), http2::view(value), name, value});
  return true;
}

void H2Stream::setHttp1Head(const http1::RequestHead& head, std::string_view authority,
                            std::string_view target) {
  using T = http1::HeaderTag;
  // One arena, sized first, so the views into it stay valid.
  // Pseudo-header names, "http", "te"/"trailers" and the values.
  size_t size = head.method.size() + authority.size() + target.size() + 64;
  for (uint32_t i = 0; i < head.header_count; ++i) {
    size += head.headers[i].name.size() + head.headers[i].value.size();
  }
  head_arena_.reserve(size);
  auto add = [&](std::string_view n, std::string_view v, bool lower) {
    size_t at = head_arena_.size();
    if (lower) {
      appendLower(head_arena_, n);
    } else {
      head_arena_.append(n);
    }
    std::string_view name(head_arena_.data() + at, n.size());
    at = head_arena_.size();
    head_arena_.append(v);
    fields_.push_back(
        {name, std::string_view(head_arena_.data() + at, v.size()), nullptr, nullptr});
  };
  const char* base = head_arena_.data();
  add(":method", head.method, false);
  add(":scheme", "http", false);
  add(":authority", authority, false);
  add(":path", target, false);
  for (uint32_t i = 0; i < head.header_count; ++i) {
    const http1::Header& h = head.headers[i];
    if (h.tag == T::kHost || h.tag == T::kExpect) continue;
    if (h.tag == T::kTe) {
      if (equalsIgnoreCase(h.value, "trailers")) add("te", "trailers", false);
      continue;
    }
    if (isHopByHop(h.tag)) continue;
    if (head.info.connection_other_tokens &&
        nominatedByConnection(head.headers, head.header_count, h.name)) {
      continue;
    }
    add(h.name, h.value, true);
  }
  assert(head_arena_.data() == base && "the views into head_arena_ must stay valid");
  (void)base;
  if (head.info.body == http1::BodyKind::kContentLength) {
    // Re-added from the parsed value (the field itself is hop-by-hop for the parser).
    content_length_text_ = std::to_string(head.info.content_length);
    fields_.push_back({"content-length", content_length_text_, nullptr, nullptr});
  }
}

void H2Stream::headersDone(bool end_stream) {
  if (headers_done_ || closed_) return;
  headers_done_ = true;
  timer_.cancel();
  req_end_ = end_stream;
  headers_.reserve(fields_.size());
  for (const Field& f : fields_) {
    std::string_view n = f.name;
    std::string_view v = f.value;
    if (!n.empty() && n[0] == ':') {
      if (n == ":method")
        method_ = v;
      else if (n == ":scheme")
        scheme_ = v;
      else if (n == ":authority")
        authority_ = v;
      else if (n == ":path")
        path_ = v;
      continue;
    }
    http1::Header h{n, v, tagOf(n)};
    if (h.tag == http1::HeaderTag::kHost && authority_.empty()) authority_ = v;
    if (h.tag == http1::HeaderTag::kContentLength) req_has_length_ = true;
    if (n == "content-type") {
      std::string_view suffix;
      if (http2::isGrpcContentType(v)) {
        grpc_ = true;
      } else if (int mode = http2::grpcWebMode(v, &suffix)) {
        grpc_ = true;
        grpc_web_ = static_cast<uint8_t>(mode);
        web_suffix_.assign(suffix);
      }
    }
    headers_.push_back(h);
  }
  route();
}

void H2Stream::route() {
  Worker& w = conn_.worker();
  stats::Shard& st = w.stats();
  if (!bridged_ && !resumed_) st.global.downstream_requests.inc();
  if (!resumed_) start_us_ = net::EventLoop::monotonicUs();
  snapshot_ = w.acquireSnapshot();
  is_head_ = method_ == "HEAD";
  if (method_ == "CONNECT") {
    respondLocal(501, "CONNECT is not supported\n");
    return;
  }
  size_t q = path_.find('?');
  router::RouteInput in;
  in.host = authority_;
  in.path = path_.substr(0, q);
  in.query = q == std::string_view::npos ? std::string_view() : path_.substr(q + 1);
  in.method = method_;
  in.headers = headers_.data();
  in.header_count = static_cast<uint32_t>(headers_.size());

  const config::Port* port = conn_.findPort(*snapshot_->snapshot);
  if (port == nullptr) {
    respondLocal(404, "no listener on this port\n");
    return;
  }
  router::RouteDecision d = port->routes->match(in);
  if (!d.listener.empty() && conn_.misdirected(*port, d.listener)) {
    respondLocal(421, "misdirected request: this connection was not made for this host\n");
    return;
  }
  if (d.listener.empty()) {
    st.global.no_route.inc();
    respondLocal(404, "no listener on port " + std::to_string(conn_.localPort()) +
                          " accepts host '" + std::string(authority_) + "'\n");
    return;
  }
  if (d.rule == nullptr) {
    st.global.no_route.inc();
    respondLocal(404, "no route matches on listener " + std::string(d.listener) + "\n");
    return;
  }
  rule_ = d.rule;
  if (!bridged_ && !resumed_) st.routes.at(rule_->route_stats_id).requests.inc();
  if (!bridged_) {
    switch (checkSecurity(in, *port)) {
      case SecurityStep::kAnswered:
      case SecurityStep::kSuspended:
        return;
      case SecurityStep::kContinue:
        break;
    }
    q = path_.find('?');
  }
  if (!rule_->filterError().empty()) {
    respondLocal(500, rule_->filterError());
    return;
  }
  if (const config::DirectResponse* dr = rule_->directResponse()) {
    bool grpc = grpc_;
    grpc_ = false;  // configured answers go out as written
    respondLocal(dr->status_code, dr->body, dr->content_type, {}, {}, -1, /*overridable=*/false);
    grpc_ = grpc;
    return;
  }
  if (rule_->redirect() != nullptr) {
    Buffer location;
    appendRedirectLocation(*rule_->redirect(), authority_, conn_.localPort(), in.path, in.query,
                           rule_->rewritePrefix(), location, conn_.tls() ? "https" : "http");
    respondLocal(rule_->redirect()->status_code, "", {}, location.view(), {}, -1,
                 /*overridable=*/false);
    return;
  }
  const config::WeightedBackend* wb = router::pickBackend(*rule_, w.random());
  if (wb == nullptr) {
    respondLocal(500, "no backend with a non-zero weight\n");
    return;
  }
  if (wb->backend == nullptr) {
    respondLocal(500, "backend reference not resolved\n");
    return;
  }
  target_ = wb;
  backend_ = wb->backend;
  st.backends.at(backend_->stats_id).requests.inc();
  if (backend_->endpoints.empty()) {
    respondLocal(503, "no endpoints for backend\n");
    return;
  }
  if (!upstream::tryAcquire(w.shared().load(backend_->stats_id).requests,
                            backend_->circuit_breaker.max_parallel_requests)) {
    st.backends.at(backend_->stats_id).overflows.inc();
    respondLocal(503, "backend circuit breaker open: maxParallelRequests\n", "text/plain", {},
                 "maxParallelRequests");
    return;
  }
  cb_request_ = true;
  lb_hash_ = backend_->lb.hash_on == config::HashOn::kNone
                 ? 0
                 : requestHash(*backend_, in, conn_.peerFamily(), conn_.peerAddr(), w.random(),
                               w.random());
  if (!pickEndpoint()) {
    respondLocal(503, "no endpoints for backend\n");
    return;
  }
  // The upstream request target: the URLRewrite filter of the chosen backendRef, if any.
  up_path_ = path_;
  up_authority_ = authority_;
  if (const config::UrlRewrite* rw = wb->urlRewrite()) {
    if (!rw->hostname.empty()) up_authority_ = rw->hostname;
    if (rw->path.kind != config::PathModifierKind::kNone) {
      Buffer p;
      appendModifiedPath(rw->path, in.path, rule_->rewritePrefix(), p);
      if (q != std::string_view::npos) p.append(path_.substr(q));
      rewritten_path_.assign(p.view());
      up_path_ = rewritten_path_;
    }
  }
  // The deadline: a Gateway policy's override, the rule's, the Gateway's; a gRPC client's
  // grpc-timeout when shorter (then it bounds the whole response, not only its head).
  const config::PortSettings& ps = port->settings;
  uint32_t request_ms = ps.overrides.request_timeout_ms != 0 ? ps.overrides.request_timeout_ms
                        : rule_->request_timeout_ms != 0     ? rule_->request_timeout_ms
                                                             : ps.request_timeout_ms;
  uint64_t ms = request_ms >= config::kTimeoutDisabledMs ? 0 : request_ms;
  if (grpc_) {
    for (const http1::Header& h : headers_) {
      if (h.name != "grpc-timeout") continue;
      uint64_t g = http2::parseGrpcTimeoutMs(h.value);
      if (g != 0 && (ms == 0 || g < ms)) {
        ms = g;
        deadline_whole_ = true;
      }
    }
  }
  deadline_ms_ = ms == 0 ? 0 : w.loop().nowMs() + ms;
  retry_ = ps.overrides.retry ? ps.overrides.retry.get()
           : rule_->retry()   ? rule_->retry()
                              : ps.retry.get();
  if (retry_ != nullptr && retry_->num_retries == 0) retry_ = nullptr;
  if (backend_->protocol == config::BackendProtocol::kHttp1) {
    startHttp1();
  } else {
    startHttp2();
  }
}

bool H2Stream::pickEndpoint() {
  Worker& w = conn_.worker();
  upstream::LbWorkerState* state = snapshot_->lb[backend_->index].get();
  int i = upstream::pick(*backend_->balancer, *state, w.shared().health, lb_hash_, w.random(), -1);
  if (i < 0) return false;
  upstream::onRequestStart(*state, i);
  lb_index_ = i;
  endpoint_ = &backend_->endpoints[static_cast<size_t>(i)];
  return true;
}

uint32_t H2Stream::remainingMs() const {
  if (deadline_ms_ == 0) return config::kTimeoutDisabledMs;
  uint64_t now = conn_.worker().loop().nowMs();
  return deadline_ms_ > now ? static_cast<uint32_t>(deadline_ms_ - now) : 1;
}

// ---- Responses generated here ----

void H2Stream::respondLocal(int status, std::string_view body, std::string_view content_type,
                            std::string_view location, std::string_view overloaded, int grpc_status,
                            bool overridable) {
  upstream_done_ = true;
  std::vector<nghttp2_nv>& nva = t_nv;
  nva.clear();
  char status_buf[8];
  if (grpc_) {
    // Trailers-only gRPC response: HTTP 200, the status in grpc-status / grpc-message.
    int code = grpc_status >= 0 ? grpc_status : http2::grpcStatusForHttp(status);
    std::string msg(body);
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    std::string encoded = http2::percentEncodeGrpcMessage(msg);
    std::string code_text = std::to_string(code);
    nva.push_back(http2::nv(":status", "200"));
    std::string ct = grpc_web_ == 0   ? "application/grpc"
                     : grpc_web_ == 1 ? "application/grpc-web" + web_suffix_
                                      : "application/grpc-web-text" + web_suffix_;
    nva.push_back(http2::nv("content-type", ct));
    nva.push_back(http2::nv("grpc-status", code_text));
    if (!encoded.empty()) nva.push_back(http2::nv("grpc-message", encoded));
    if (!overloaded.empty()) nva.push_back(http2::nv("x-portico-overloaded", overloaded));
    linesToNv(local_extra_, nva);
    countResponse(200);
    resp_started_ = true;
    resp_end_ = true;
    conn_.submitResponse(this, nva.data(), nva.size(), true);
    return;
  }
  // The Gateway's responseOverride pages replace Portico's own answers (not configured direct
  // responses or redirects).
  if (overridable && snapshot_ != nullptr) {
    if (const config::Port* port = conn_.findPort(*snapshot_->snapshot)) {
      for (const config::ResponseOverride& ro : port->settings.response_overrides) {
        if (!ro.matches(status)) continue;
        if (ro.response.status_code != 0) status = ro.response.status_code;
        body = ro.response.body;
        content_type = ro.response.content_type;
        break;
      }
    }
  }
  int n = std::snprintf(status_buf, sizeof status_buf, "%d", status);
  std::string length = std::to_string(body.size());
  nva.push_back(http2::nv(":status", std::string_view(status_buf, static_cast<size_t>(n))));
  if (!content_type.empty()) nva.push_back(http2::nv("content-type", content_type));
  nva.push_back(http2::nv("content-length", length));
  if (!location.empty()) {
    // "location: <url>\r\n" as built for HTTP/1.1.
    std::string_view v = location;
    if (v.substr(0, 10) == "location: ") v.remove_prefix(10);
    while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.remove_suffix(1);
    nva.push_back(http2::nv("location", v));
  }
  if (!overloaded.empty()) nva.push_back(http2::nv("x-portico-overloaded", overloaded));
  linesToNv(local_extra_, nva);
  countResponse(status);
  resp_started_ = true;
  resp_end_ = true;
  bool bodiless = body.empty() || is_head_;
  if (!bodiless) resp_.append(body);
  conn_.submitResponse(this, nva.data(), nva.size(), bodiless);
}

void H2Stream::countResponse(int status) {
  stats::Shard& st = conn_.worker().stats();
  size_t cls = stats::statusClass(status);
  st.global.downstream_responses[cls].inc();
  if (rule_ != nullptr) st.routes.at(rule_->route_stats_id).responses[cls].inc();
  if (backend_ != nullptr && endpoint_ != nullptr) {
    st.backends.at(backend_->stats_id).responses[cls].inc();
  }
}

void H2Stream::upstreamFailed(int status, std::string_view why, int grpc_status, bool not_sent) {
  Worker& w = conn_.worker();
  if (backend_ != nullptr && endpoint_ != nullptr && backend_->passive_health) {
    w.recordOutcome(*snapshot_, *backend_, *endpoint_, true, true);
  }
  releaseUpstream(false);
  if (h2_ != nullptr && up_stream_ >= 0) h2_->cancel(up_stream_, NGHTTP2_CANCEL);
  h2_ = nullptr;
  up_stream_ = -1;
  timer_.cancel();
  if (not_sent && retryElsewhere()) return;
  if (!resp_started_) {
    respondLocal(status, why, "text/plain", {}, {}, grpc_status);
    return;
  }
  upstream_done_ = true;
  conn_.resetStream(this, NGHTTP2_INTERNAL_ERROR);
}

bool H2Stream::retryElsewhere() {
  // The request never reached the upstream (connect failure, refused stream): the retry
  // policy's connect-failure trigger sends it to another endpoint at once. Nothing else is
  // retried on this path yet.
  if (retry_ == nullptr || !retry_->retriesConnectFailure() || closed_ || resp_started_ ||
      attempts_ >= retry_->num_retries || body_sent_ != 0 || body_read_ != 0) {
    return false;
  }
  Worker& w = conn_.worker();
  upstream::LbWorkerState* state = snapshot_->lb[backend_->index].get();
  int avoid = lb_index_;
  if (lb_index_ >= 0) {
    upstream::onRequestEnd(*state, lb_index_);
    lb_index_ = -1;
  }
  int i =
      upstream::pick(*backend_->balancer, *state, w.shared().health, lb_hash_, w.random(), avoid);
  if (i < 0) return false;
  upstream::onRequestStart(*state, i);
  lb_index_ = i;
  endpoint_ = &backend_->endpoints[static_cast<size_t>(i)];
  ++attempts_;
  w.stats().backends.at(backend_->stats_id).retries.inc();
  up_head_done_ = false;
  resp_arena_.clear();
  resp_fields_.clear();
  if (backend_->protocol == config::BackendProtocol::kHttp1) {
    startHttp1();
  } else {
    startHttp2();
  }
  return true;
}

void H2Stream::armHeaderTimeout(uint32_t ms) {
  conn_.worker().loop().timers().schedule(&timer_, ms);
}

void H2Stream::onTimer(void* ctx) {
  auto* self = static_cast<H2Stream*>(ctx);
  if (self->closed_) return;
  if (!self->headers_done_) {
    // The header block did not complete in time (slow or stalled client).
    self->conn_.worker().stats().global.header_timeouts.inc();
    self->upstream_done_ = true;
    self->conn_.resetStream(self, NGHTTP2_CANCEL);
    return;
  }
  if (self->idle_mode_) {
    // Nothing moved for the idle timeout after the response began: give up on the stream.
    self->releaseUpstream(false);
    if (self->h2_ != nullptr && self->up_stream_ >= 0) {
      self->h2_->cancel(self->up_stream_, NGHTTP2_CANCEL);
    }
    self->h2_ = nullptr;
    self->up_stream_ = -1;
    self->upstream_done_ = true;
    self->conn_.resetStream(self, NGHTTP2_CANCEL);
    return;
  }
  stats::BackendStats& bs = self->conn_.worker().stats().backends.at(self->backend_->stats_id);
  if (self->up_ != nullptr && self->up_->connecting) {
    bs.connect_timeouts.inc();
    self->upstreamFailed(503, "upstream connect timeout\n", -1, /*not_sent=*/true);
    return;
  }
  bs.response_timeouts.inc();
  if (!self->resp_started_) {
    self->upstreamFailed(504, "upstream request timeout\n", http2::kGrpcDeadlineExceeded);
    return;
  }
  // The deadline of a gRPC call passed while its response streams: end it with
  // DEADLINE_EXCEEDED in the trailers.
  self->releaseUpstream(false);
  if (self->h2_ != nullptr && self->up_stream_ >= 0)
    self->h2_->cancel(self->up_stream_, NGHTTP2_CANCEL);
  self->h2_ = nullptr;
  self->up_stream_ = -1;
  self->upstream_done_ = true;
  if (self->grpc_) {
    self->trailers_arena_.clear();
    self->trailers_.clear();
    FieldList t{self->trailers_arena_, self->trailers_};
    t.add("grpc-status", "4");
    t.add("grpc-message", "Deadline Exceeded");
    self->resp_end_ = true;
    if (self->resp_deferred_) {
      self->resp_deferred_ = false;
      self->conn_.resumeResponse(self);
    }
  } else {
    self->conn_.resetStream(self, NGHTTP2_CANCEL);
  }
}

// ---- Downstream request body ----

void H2Stream::requestData(const uint8_t* data, size_t len) {
  std::string_view d(reinterpret_cast<const char*>(data), len);
  if (authz_ != nullptr) {
    // Waiting for the external authorization service: kept (at most the stream's window, the
    // client's window is not given back) and passed on once the request goes upstream.
    held_body_.append(d);
    return;
  }
  if (closed_ || upstream_done_ || (h2_ == nullptr && up_ == nullptr)) {
    conn_.consumeRequest(this, len);  // nobody takes it: give the window back
    return;
  }
  if (h2_ != nullptr) {
    if (grpc_web_ == 2) {
      // grpc-web-text: the body is base64; the upstream gets the bytes.
      std::string decoded;
      if (!http2::base64Decode(b64_carry_, d, decoded)) {
        upstreamFailed(400, "invalid base64 in a grpc-web-text request body\n");
        conn_.consumeRequest(this, len);
        return;
      }
      req_buf_.append(decoded);
      text_credit_ += len;
    } else {
      req_buf_.append(d);
    }
    h2_->resume(up_stream_);
    h2_->flush();
    return;
  }
  forwardBodyHttp1(d);
}

void H2Stream::requestEnd() {
  if (authz_ != nullptr) {
    held_end_ = true;  // passed on after the held body, once the request goes upstream
    return;
  }
  if (req_end_) return;
  req_end_ = true;
  if (closed_ || upstream_done_) return;
  if (h2_ != nullptr) {
    h2_->resume(up_stream_);
    h2_->flush();
    return;
  }
  if (up_ != nullptr && req_chunked_) {
    up_->out.append("0\r\n\r\n");
    if (!up_->connecting) flushHttp1();
  }
}

ssize_t H2Stream::onH2ReadBody(uint8_t* buf, size_t len, bool* eof) {
  size_t n = std::min(len, req_buf_.size());
  if (n > 0) {
    std::memcpy(buf, req_buf_.data(), n);
    req_buf_.consume(n);
    body_read_ += n;
    if (grpc_web_ == 2) {
      // Credit the client for the base64 it sent, in proportion.
      size_t credit = req_buf_.empty() ? text_credit_ : std::min(text_credit_, n * 4 / 3);
      text_credit_ -= credit;
      conn_.consumeRequest(this, credit);
    } else {
      conn_.consumeRequest(this, n);
    }
  }
  if (req_buf_.empty()) {
    req_buf_.release();
    if (req_end_) {
      *eof = true;
      return static_cast<ssize_t>(n);
    }
    if (n == 0) return -1;
  }
  return static_cast<ssize_t>(n);
}

// ---- Downstream response body ----

ssize_t H2Stream::readResponse(uint8_t* buf, size_t len, uint32_t* flags) {
  if (up_ != nullptr && up_head_done_ && !resp_end_ && resp_.size() < len) pumpHttp1Body();
  size_t n = std::min(len, resp_.size());
  if (n > 0) {
    std::memcpy(buf, resp_.data(), n);
    resp_.consume(n);
    if (idle_mode_) conn_.worker().loop().timers().schedule(&timer_, idle_ms_);
    if (h2_ != nullptr) creditUpstream(n);
    if (up_ != nullptr && resp_.size() <= kHighWater) flushHttp1();  // reads again
  }
  if (resp_.empty()) {
    resp_.release();
    if (resp_end_) {
      if (!trailers_.empty()) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        std::vector<nghttp2_nv>& nva = t_nv;
        nva.clear();
        toNv(trailers_arena_, trailers_, nva);
        conn_.submitTrailers(this, nva.data(), nva.size());
      } else {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
      }
      return static_cast<ssize_t>(n);
    }
    if (n == 0) {
      resp_deferred_ = true;
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  return static_cast<ssize_t>(n);
}

// ---- End ----

void H2Stream::closed(uint32_t error) {
  if (closed_) return;
  closed_ = true;
  timer_.cancel();
  if (authz_ != nullptr) {
    authz_->cancel();
    authz_ = nullptr;
  }
  Worker& w = conn_.worker();
  if (h2_ != nullptr && up_stream_ >= 0) {
    h2_->cancel(up_stream_, NGHTTP2_CANCEL);  // the client went away: so does the upstream
  }
  h2_ = nullptr;
  releaseUpstream(false);
  if (resp_started_) {
    uint64_t us = net::EventLoop::monotonicUs() - start_us_;
    w.stats().global.latency.record(us);
    if (rule_ != nullptr) w.stats().routes.at(rule_->route_stats_id).latency.record(us);
  }
  if (backend_ != nullptr) {
    if (cb_request_) upstream::release(w.shared().load(backend_->stats_id).requests);
    cb_request_ = false;
    if (lb_index_ >= 0 && snapshot_ != nullptr) {
      upstream::onRequestEnd(*snapshot_->lb[backend_->index], lb_index_);
      lb_index_ = -1;
    }
  }
  resp_.clear();
  resp_.release();
  req_buf_.clear();
  req_buf_.release();
}

}  // namespace portico::proxy
