#include "proxy/h2_stream.h"

#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>

#include "net/socket.h"
#include "proxy/http_util.h"
#include "proxy/rewrite.h"
#include "proxy/worker.h"
#include "router/route_table.h"
#include "upstream/load_balancer.h"

namespace portico::proxy {

namespace {
// A response that moves no byte for this long is reset (Envoy's stream_idle_timeout default).
constexpr uint32_t kStreamIdleMs = 300'000;
const http1::Limits kUpstreamLimits{64 * 1024, 96 * 1024, Worker::kUpstreamMaxHeaders};
constexpr size_t kHighWater = 256 * 1024;

http1::HeaderTag tagOf(std::string_view n) {
  using T = http1::HeaderTag;
  if (n == "host") return T::kHost;
  if (n == "content-length") return T::kContentLength;
  if (n == "te") return T::kTe;
  if (n == "x-forwarded-for") return T::kXForwardedFor;
  if (n == "x-forwarded-proto") return T::kXForwardedProto;
  return T::kOther;
}

void appendLower(std::string& out, std::string_view s) {
  for (char c : s) out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
}

// Fields as (name, value) offsets into one arena: built while a head is translated.
struct FieldList {
  std::string& arena;
  std::vector<std::pair<uint32_t, uint32_t>>& fields;
  void add(std::string_view name, std::string_view value, bool lower = false) {
    uint32_t n = static_cast<uint32_t>(arena.size());
    if (lower) {
      appendLower(arena, name);
    } else {
      arena.append(name);
    }
    arena.push_back('\0');
    uint32_t v = static_cast<uint32_t>(arena.size());
    arena.append(value);
    arena.push_back('\0');
    fields.emplace_back(n, v);
  }
  // The fields a header modifier sets and adds, parsed back from its HTTP/1 lines.
  void addModifier(const config::HeaderModifier& mod, const http1::Header* headers,
                   uint32_t count) {
    Buffer lines;
    appendModifierHeaders(mod, headers, count, lines);
    std::string_view all = lines.view();
    while (!all.empty()) {
      size_t eol = all.find("\r\n");
      std::string_view line = all.substr(0, eol);
      all = eol == std::string_view::npos ? std::string_view() : all.substr(eol + 2);
      size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      add(line.substr(0, colon), value, /*lower=*/true);
    }
  }
};

// nghttp2_nv views of a field list, after `pseudo` fields already in `out`.
void toNv(const std::string& arena, const std::vector<std::pair<uint32_t, uint32_t>>& fields,
          std::vector<nghttp2_nv>& out) {
  for (auto [n, v] : fields) {
    std::string_view name(arena.data() + n);
    std::string_view value(arena.data() + v);
    out.push_back(http2::nv(name, value));
  }
}

thread_local std::vector<nghttp2_nv> t_nv;
}  // namespace

H2Stream::H2Stream(StreamDownstream& conn, int32_t id) : conn_(conn), id_(id) {
  timer_.set(&H2Stream::onTimer, this);
}

H2Stream::~H2Stream() {
  for (Field& f : fields_) {
    if (f.name_buf != nullptr) nghttp2_rcbuf_decref(f.name_buf);
    if (f.value_buf != nullptr) nghttp2_rcbuf_decref(f.value_buf);
  }
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
  if (!bridged_) st.global.downstream_requests.inc();
  start_us_ = net::EventLoop::monotonicUs();
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
  if (!bridged_) st.routes.at(rule_->route_stats_id).requests.inc();
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

// ---- Upstream HTTP/1.1 ----

void H2Stream::startHttp1(bool fresh_only) {
  Worker& w = conn_.worker();
  const config::Port* port = conn_.findPort(*snapshot_->snapshot);
  uint32_t connect_ms = port ? port->settings.connect_timeout_ms : 2'000;
  if (rule_->connectTimeoutMs() != 0) connect_ms = rule_->connectTimeoutMs();
  if (port && port->settings.overrides.connect_timeout_ms != 0)
    connect_ms = port->settings.overrides.connect_timeout_ms;
  if (!fresh_only) up_ = w.pool().acquire(endpoint_->pool_id, this);
  if (up_ == nullptr) {
    upstream::BackendLoad& load = w.shared().load(backend_->stats_id);
    if (!upstream::tryAcquire(load.connections, backend_->circuit_breaker.max_connections)) {
      w.stats().backends.at(backend_->stats_id).overflows.inc();
      respondLocal(503, "backend circuit breaker open: maxConnections\n", "text/plain", {},
                   "maxConnections");
      return;
    }
    bool in_progress = false;
    Result<int> fd = net::connectTcp(endpoint_->address, &in_progress);
    stats::BackendStats& bs = w.stats().backends.at(backend_->stats_id);
    if (!fd.ok()) {
      upstream::release(load.connections);
      bs.connect_failures.inc();
      w.stats().global.upstream_connect_failures.inc();
      upstreamFailed(503, "upstream connect error: " + fd.status().message() + "\n", -1,
                     /*not_sent=*/true);
      return;
    }
    bs.connections_total.inc();
    up_ =
        new upstream::UpstreamConn(w.loop(), w.pool(), *fd, endpoint_->pool_id, backend_->stats_id,
                                   in_progress, &bs.connections_active, &load.connections);
    up_->owner = this;
    up_->max_requests = backend_->pool.max_requests_per_connection;
    up_->max_idle = backend_->pool.max_idle_per_worker;
    up_->idle_timeout_ms = backend_->pool.idle_timeout_ms;
    if (backend_->tls) up_->startTls(backend_->tls, backend_->tls_server_name);
  }
  req_chunked_ = !req_end_ && !req_has_length_;
  serializeHttp1Head(up_->out);
  uint32_t wait = remainingMs();
  if (up_->connecting) wait = std::min(wait, connect_ms);
  w.loop().timers().schedule(&timer_, wait);
  if (!up_->connecting) flushHttp1();
}

void H2Stream::serializeHttp1Head(Buffer& out) {
  out.append(method_);
  out.append(" ");
  out.append(up_path_);
  out.append(" HTTP/1.1\r\nhost: ");
  out.append(up_authority_.empty() ? std::string_view(endpoint_->authority) : up_authority_);
  out.append("\r\n");
  const config::HeaderModifier* mod = target_->requestHeaders();
  size_t cookies = 0;
  for (const http1::Header& h : headers_) {
    using T = http1::HeaderTag;
    if (h.tag == T::kHost || h.tag == T::kTe || h.tag == T::kXForwardedFor ||
        h.tag == T::kXForwardedProto || h.name == "x-forwarded-client-cert") {
      continue;  // x-forwarded-client-cert is Portico's to set (from a verified certificate)
    }
    if (mod != nullptr && modifierTakesOver(*mod, h.name)) continue;
    if (h.name == "cookie") {
      ++cookies;
      continue;
    }
    out.append(h.name);
    out.append(": ");
    out.append(h.value);
    out.append("\r\n");
  }
  if (cookies != 0) {
    // RFC 9113 §8.2.3: the cookie crumbs of an HTTP/2 request become one field for HTTP/1.1.
    out.append("cookie: ");
    bool first = true;
    for (const http1::Header& h : headers_) {
      if (h.name != "cookie" || (mod != nullptr && modifierTakesOver(*mod, h.name))) continue;
      if (!first) out.append("; ");
      out.append(h.value);
      first = false;
    }
    out.append("\r\n");
  }
  if (mod != nullptr) {
    appendModifierHeaders(*mod, headers_.data(), static_cast<uint32_t>(headers_.size()), out);
  }
  if (req_chunked_) {
    out.append("transfer-encoding: chunked\r\n");
  } else if (!req_has_length_ && (method_ == "POST" || method_ == "PUT" || method_ == "PATCH")) {
    out.append("content-length: 0\r\n");
  }
  appendForwardedFor(out);
  out.append(conn_.tls() ? "x-forwarded-proto: https\r\n" : "x-forwarded-proto: http\r\n");
  std::string xfcc = conn_.clientCertHeader();
  if (!xfcc.empty()) {
    out.append("x-forwarded-client-cert: ");
    out.append(xfcc);
    out.append("\r\n");
  }
  out.append("\r\n");
}

void H2Stream::appendForwardedFor(Buffer& out) {
  out.append("x-forwarded-for: ");
  for (const http1::Header& h : headers_) {
    if (h.tag != http1::HeaderTag::kXForwardedFor) continue;
    out.append(h.value);
    out.append(", ");
  }
  char ip[INET6_ADDRSTRLEN];
  inet_ntop(conn_.peerFamily(), conn_.peerAddr(), ip, sizeof ip);
  out.append(ip, std::strlen(ip));
  out.append("\r\n");
}

void H2Stream::forwardBodyHttp1(std::string_view data) {
  if (req_chunked_) appendChunkHeader(up_->out, data.size());
  up_->out.append(data);
  if (req_chunked_) up_->out.append("\r\n");
  body_sent_ += data.size();
  req_unconsumed_ += static_cast<uint32_t>(data.size());
  if (!up_->connecting) flushHttp1();
}

void H2Stream::flushHttp1() {
  if (up_ == nullptr) return;
  if (!up_->flush()) {
    upstreamFailed(502, "upstream connection reset\n");
    return;
  }
  // Request bytes the upstream took are credited back to the client.
  if (req_unconsumed_ != 0 && up_->out.size() <= kHighWater) {
    uint32_t n = req_unconsumed_;
    req_unconsumed_ = 0;
    conn_.consumeRequest(this, n);
  }
  if (up_ == nullptr) return;
  uint32_t want = resp_.size() > kHighWater ? 0u : static_cast<uint32_t>(EPOLLIN);
  if (!up_->out.empty()) want |= EPOLLOUT;
  up_->setInterest(want);
}

void H2Stream::onUpstreamIo(upstream::UpstreamConn* conn, uint32_t events) {
  if (conn != up_ || closed_) return;
  Worker& w = conn_.worker();
  if (up_->connecting) {
    int err = net::connectError(up_->fd());
    if (err != 0) {
      w.stats().backends.at(backend_->stats_id).connect_failures.inc();
      w.stats().global.upstream_connect_failures.inc();
      upstreamFailed(503, std::string("upstream connect error: ") + std::strerror(err) + "\n", -1,
                     /*not_sent=*/true);
      return;
    }
    up_->connecting = false;
    w.loop().timers().schedule(&timer_, remainingMs());
    flushHttp1();
    return;
  }
  if (events & EPOLLOUT) {
    flushHttp1();
    if (up_ == nullptr || closed_) return;
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) readHttp1();
}

void H2Stream::readHttp1() {
  char* p = up_->in.reserve(16 * 1024);
  ssize_t n = up_->read(p, up_->in.writable());
  if (n > 0) {
    up_->in.commit(static_cast<size_t>(n));
    up_->bytes_received += static_cast<uint64_t>(n);
    processHttp1Response();
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (up_head_done_ && resp_body_.kind() == http1::BodyKind::kUntilClose && n == 0) {
    responseDone();
    return;
  }
  if (!up_head_done_) {
    // A pooled connection the upstream closed meanwhile: once more on a fresh one, when
    // nothing of the request body went out yet.
    if (up_->reused && up_->bytes_received == 0 && body_sent_ == 0 && !retried_fresh_) {
      retried_fresh_ = true;
      releaseUpstream(false);
      startHttp1(/*fresh_only=*/true);
      return;
    }
    upstreamFailed(502, "upstream closed the connection before responding\n");
    return;
  }
  conn_.worker().stats().backends.at(backend_->stats_id).resets.inc();
  conn_.worker().stats().global.upstream_resets.inc();
  upstreamFailed(502, "upstream reset\n");
}

void H2Stream::processHttp1Response() {
  while (up_ != nullptr && !up_head_done_) {
    http1::ResponseHead head;
    head.headers = conn_.worker().headerScratch();
    http1::ParseResult r =
        http1::parseResponseHead(up_->in.view(), kUpstreamLimits, is_head_ ? "HEAD" : "GET", &head);
    if (r.status == http1::ParseStatus::kIncomplete) return;
    if (r.status == http1::ParseStatus::kError) {
      upstreamFailed(502, "upstream sent an invalid response: " +
                              std::string(http1::describe(r.error)) + "\n");
      return;
    }
    if (head.status >= 100 && head.status < 200) {
      up_->in.consume(r.consumed);
      if (head.status == 101) {
        upstreamFailed(502, "upstream switched protocols without an upgrade request\n");
        return;
      }
      continue;
    }
    if (backend_->passive_health) {
      conn_.worker().recordOutcome(*snapshot_, *backend_, *endpoint_, head.status >= 500,
                                   head.status >= 502 && head.status <= 504);
    }
    status_ = head.status;
    responseHeadersFromHttp1(head);
    up_->in.consume(r.consumed);
    up_head_done_ = true;
    up_keep_alive_ = head.info.keep_alive;
    resp_body_.reset(head.info.body, head.info.content_length);
    bool done = resp_body_.done();
    sendResponseHead(done);
    if (done) {
      responseDone();
      return;
    }
  }
  pumpHttp1Body();
  if (resp_deferred_ && (!resp_.empty() || resp_end_)) {
    resp_deferred_ = false;
    conn_.resumeResponse(this);
  }
  if (up_ != nullptr) flushHttp1();  // updates the read interest
}

bool H2Stream::pumpHttp1Body() {
  while (up_ != nullptr && !up_->in.empty() && resp_.size() <= kHighWater) {
    http1::BodyDecoder::Step step = resp_body_.decode(up_->in.view());
    if (step.status == http1::ParseStatus::kError) {
      conn_.worker().stats().backends.at(backend_->stats_id).resets.inc();
      upstreamFailed(502, "upstream sent an invalid body\n");
      return false;
    }
    if (!step.data.empty()) resp_.append(step.data);
    up_->in.consume(step.consumed);
    if (step.status == http1::ParseStatus::kDone) {
      responseDone();
      return true;
    }
    if (step.consumed == 0) break;
  }
  return true;
}

void H2Stream::responseHeadersFromHttp1(const http1::ResponseHead& head) {
  resp_arena_.clear();
  resp_fields_.clear();
  FieldList f{resp_arena_, resp_fields_};
  bool bodiless = head.info.body == http1::BodyKind::kNone;
  const config::HeaderModifier* mod = target_->responseHeaders();
  for (uint32_t i = 0; i < head.header_count; ++i) {
    const http1::Header& h = head.headers[i];
    if (h.tag == http1::HeaderTag::kContentLength) {
      if (bodiless || head.info.body == http1::BodyKind::kContentLength) {
        f.add("content-length", h.value);
      }
      continue;
    }
    if (isHopByHop(h.tag)) continue;
    if (head.info.connection_other_tokens &&
        nominatedByConnection(head.headers, head.header_count, h.name)) {
      continue;
    }
    if (mod != nullptr && modifierTakesOver(*mod, h.name)) continue;
    f.add(h.name, h.value, /*lower=*/true);
  }
  if (mod != nullptr) f.addModifier(*mod, head.headers, head.header_count);
}

void H2Stream::sendResponseHead(bool end_stream) {
  std::vector<nghttp2_nv>& nva = t_nv;
  nva.clear();
  char status_buf[8];
  int n = std::snprintf(status_buf, sizeof status_buf, "%d", status_);
  nva.push_back(http2::nv(":status", std::string_view(status_buf, static_cast<size_t>(n))));
  toNv(resp_arena_, resp_fields_, nva);
  countResponse(status_);
  resp_started_ = true;
  if (!deadline_whole_ && !end_stream) {
    // From here the stream may not stall longer than the stream idle timeout (a client that
    // stops reading, an upstream that stops sending): it is reset then.
    idle_ms_ = kStreamIdleMs;
    idle_mode_ = true;
    conn_.worker().loop().timers().schedule(&timer_, idle_ms_);
  } else if (!deadline_whole_) {
    timer_.cancel();
  }
  if (end_stream) resp_end_ = true;
  conn_.submitResponse(this, nva.data(), nva.size(), end_stream);
}

void H2Stream::responseDone() {
  resp_end_ = true;
  upstream_done_ = true;
  if (!idle_mode_) timer_.cancel();
  if (up_ != nullptr) {
    bool reusable = up_keep_alive_ && req_end_ && req_unconsumed_ == 0 && up_->in.empty() &&
                    up_->out.empty() && resp_body_.kind() != http1::BodyKind::kUntilClose;
    releaseUpstream(reusable);
  }
  if (resp_deferred_) {
    resp_deferred_ = false;
    conn_.resumeResponse(this);
  }
}

void H2Stream::releaseUpstream(bool reusable) {
  if (up_ == nullptr) return;
  upstream::UpstreamConn* c = up_;
  up_ = nullptr;
  if (reusable && !c->closed()) {
    ++c->requests;
    conn_.worker().pool().release(c);
  } else {
    c->close();
  }
}

// ---- Upstream HTTP/2 ----

void H2Stream::startHttp2() {
  Worker& w = conn_.worker();
  std::string error;
  stats::BackendStats& bs = w.stats().backends.at(backend_->stats_id);
  h2_ = w.h2Pool().get(endpoint_->pool_id, endpoint_->address, backend_->tls,
                       backend_->tls_server_name, &bs, &error);
  if (h2_ == nullptr) {
    w.stats().global.upstream_connect_failures.inc();
    upstreamFailed(503, error + "\n", -1, /*not_sent=*/true);
    return;
  }
  // Pseudo-header fields first, then the request's own (filtered), then ours.
  resp_arena_.clear();
  resp_fields_.clear();
  FieldList f{resp_arena_, resp_fields_};
  const config::HeaderModifier* mod = target_->requestHeaders();
  for (const http1::Header& h : headers_) {
    using T = http1::HeaderTag;
    if (h.tag == T::kHost || h.tag == T::kXForwardedFor || h.tag == T::kXForwardedProto ||
        h.name == "x-forwarded-client-cert") {
      continue;
    }
    if (mod != nullptr && modifierTakesOver(*mod, h.name)) continue;
    if (grpc_web_ != 0 &&
        (h.name == "content-type" || h.tag == T::kContentLength || h.tag == T::kTe)) {
      continue;  // gRPC-Web: replaced below
    }
    f.add(h.name, h.value);
  }
  if (grpc_web_ != 0) {
    std::string ct = "application/grpc" + web_suffix_;
    f.add("content-type", ct);
    f.add("te", "trailers");
  }
  if (mod != nullptr) {
    f.addModifier(*mod, headers_.data(), static_cast<uint32_t>(headers_.size()));
  }
  Buffer xff;
  appendForwardedFor(xff);
  std::string_view xff_value = xff.view().substr(17);  // after "x-forwarded-for: "
  xff_value.remove_suffix(2);
  f.add("x-forwarded-for", xff_value);
  f.add("x-forwarded-proto", conn_.tls() ? "https" : "http");
  std::string xfcc = conn_.clientCertHeader();
  if (!xfcc.empty()) f.add("x-forwarded-client-cert", xfcc);
  std::vector<nghttp2_nv>& nva = t_nv;
  nva.clear();
  nva.push_back(http2::nv(":method", method_));
  nva.push_back(http2::nv(":scheme", "http"));
  nva.push_back(http2::nv(":authority", up_authority_.empty()
                                            ? std::string_view(endpoint_->authority)
                                            : up_authority_));
  nva.push_back(http2::nv(":path", up_path_));
  toNv(resp_arena_, resp_fields_, nva);
  // A body follows unless the request ended with nothing left to send (a retry may carry a
  // body that arrived whole while the first attempt failed).
  up_stream_ = h2_->submit(nva.data(), nva.size(), !req_end_ || !req_buf_.empty(), this);
  resp_arena_.clear();
  resp_fields_.clear();
  if (up_stream_ < 0) {
    h2_ = nullptr;
    upstreamFailed(502, "upstream HTTP/2 session refused the request\n");
    return;
  }
  w.loop().timers().schedule(&timer_, remainingMs());
  h2_->flush();
}

void H2Stream::onH2Header(std::string_view name, std::string_view value, bool trailers) {
  if (closed_) return;
  if (up_head_done_) {
    // Trailers (gRPC status).
    FieldList t{trailers_arena_, trailers_};
    t.add(name, value);
    return;
  }
  if (name == ":status") {
    int s = 0;
    for (char c : value) s = s * 10 + (c - '0');
    status_ = s;
    in_interim_ = s >= 100 && s < 200;
    return;
  }
  if (in_interim_ || http2::isConnectionSpecific(name)) return;
  const config::HeaderModifier* mod = target_->responseHeaders();
  if (mod != nullptr && modifierTakesOver(*mod, name)) return;
  FieldList f{resp_arena_, resp_fields_};
  if (grpc_web_ != 0 && name == "content-length") return;  // the body changes
  if (grpc_web_ != 0 && name == "content-type" && http2::isGrpcContentType(value)) {
    std::string ct(grpc_web_ == 1 ? "application/grpc-web" : "application/grpc-web-text");
    ct.append(value.substr(16));  // "+proto"...
    f.add(name, ct);
    return;
  }
  f.add(name, value);
}

void H2Stream::onH2HeadersEnd(bool trailers, bool end_stream) {
  if (closed_) return;
  if (in_interim_) {
    in_interim_ = false;
    resp_arena_.clear();
    resp_fields_.clear();
    return;
  }
  if (!up_head_done_) {
    up_head_done_ = true;
    if (backend_->passive_health) {
      conn_.worker().recordOutcome(*snapshot_, *backend_, *endpoint_, status_ >= 500,
                                   status_ >= 502 && status_ <= 504);
    }
    if (const config::HeaderModifier* mod = target_->responseHeaders()) {
      FieldList f{resp_arena_, resp_fields_};
      f.addModifier(*mod, nullptr, 0);
    }
    if (end_stream) upstreamEnded();
    sendResponseHead(end_stream);
    resp_arena_.clear();
    resp_fields_.clear();
    return;
  }
  // Trailers end the response. gRPC-Web carries them in the body, as a frame whose flag
  // byte has the MSB set, in HTTP/1 field syntax.
  if (grpc_web_ != 0) {
    std::string block;
    for (auto [n, v] : trailers_) {
      block.append(trailers_arena_.data() + n);
      block.push_back(':');
      block.append(trailers_arena_.data() + v);
      block.append("\r\n");
    }
    std::string frame;
    frame.push_back(static_cast<char>(0x80));
    uint32_t len = static_cast<uint32_t>(block.size());
    frame.push_back(static_cast<char>(len >> 24));
    frame.push_back(static_cast<char>((len >> 16) & 0xFF));
    frame.push_back(static_cast<char>((len >> 8) & 0xFF));
    frame.push_back(static_cast<char>(len & 0xFF));
    frame.append(block);
    appendResponseBody(frame, /*credit=*/false);
    trailers_.clear();
    trailers_arena_.clear();
  }
  upstreamEnded();
  if (resp_deferred_) {
    resp_deferred_ = false;
    conn_.resumeResponse(this);
  }
}

void H2Stream::upstreamEnded() {
  resp_end_ = true;
  upstream_done_ = true;
  if (!idle_mode_) timer_.cancel();
  // The client session detached this stream: credit what is still buffered now.
  if (h2_ != nullptr) {
    h2_->consume(up_stream_, text_resp_credit_);
    h2_->flush();
  }
  text_resp_credit_ = 0;
  h2_ = nullptr;
  up_stream_ = -1;
}

void H2Stream::appendResponseBody(std::string_view data, bool credit) {
  if (grpc_web_ == 2) {
    std::string encoded;
    http2::base64Encode(data, encoded);
    resp_.append(encoded);
    if (credit) text_resp_credit_ += data.size();
  } else {
    resp_.append(data);
    if (credit) text_resp_credit_ += data.size();
  }
}

void H2Stream::creditUpstream(size_t sent) {
  if (h2_ == nullptr) {
    text_resp_credit_ = 0;
    return;
  }
  size_t credit = resp_.empty() ? text_resp_credit_
                                : std::min(text_resp_credit_, grpc_web_ == 2 ? sent * 3 / 4 : sent);
  text_resp_credit_ -= credit;
  h2_->consume(up_stream_, credit);
  h2_->flush();
}

void H2Stream::onH2Data(std::string_view data) {
  if (closed_) return;
  appendResponseBody(data, /*credit=*/true);
  if (resp_deferred_) {
    resp_deferred_ = false;
    conn_.resumeResponse(this);
  }
}

void H2Stream::onH2End() {
  if (closed_) return;
  upstreamEnded();
  if (resp_deferred_) {
    resp_deferred_ = false;
    conn_.resumeResponse(this);
  }
}

void H2Stream::onH2Reset(uint32_t error, bool refused, std::string_view why) {
  h2_ = nullptr;
  up_stream_ = -1;
  if (closed_) return;
  std::string reason(why);
  reason.push_back('\n');
  if (!resp_started_) {
    upstreamFailed(refused ? 503 : 502, reason, -1, /*not_sent=*/refused);
    return;
  }
  upstream_done_ = true;
  timer_.cancel();
  conn_.resetStream(this, error == NGHTTP2_CANCEL ? NGHTTP2_CANCEL : NGHTTP2_INTERNAL_ERROR);
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
