// The downstream half of DownstreamConn: reading, head parsing, routing, request bodies,
// writing responses, keep-alive and closing. The upstream half is in upstream_side.cc.
#include "proxy/downstream_conn.h"

#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "http2/h2.h"
#include "proxy/ext_authz.h"
#include "proxy/h1_bridge.h"
#include "proxy/h2_downstream.h"
#include "proxy/http_util.h"
#include "proxy/mirror.h"
#include "proxy/rewrite.h"
#include "proxy/security_stage.h"
#include "proxy/worker.h"
#include "router/route_table.h"
#include "router/router.h"
#include "upstream/load_balancer.h"

namespace portico::proxy {

namespace {
constexpr uint32_t kLingerMs = 1000;

// x-forwarded-client-cert, which clients may not send (Envoy's SANITIZE).
bool isClientCertHeader(std::string_view name) {
  constexpr std::string_view kName = "x-forwarded-client-cert";
  if (name.size() != kName.size()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kName[i]) return false;
  }
  return true;
}
constexpr size_t kMaxPipelined = 64 * 1024;  // unparsed input kept while a request is in flight
}  // namespace

DownstreamConn::DownstreamConn(Worker& worker, net::Transport transport, const sockaddr* peer,
                               uint16_t local_port)
    : worker_(worker),
      fd_(transport.fd()),
      transport_(std::move(transport)),
      local_port_(local_port) {
  peer_family_ = static_cast<uint8_t>(peer->sa_family);
  if (peer->sa_family == AF_INET) {
    std::memcpy(peer_addr_, &reinterpret_cast<const sockaddr_in*>(peer)->sin_addr, 4);
  } else {
    std::memcpy(peer_addr_, &reinterpret_cast<const sockaddr_in6*>(peer)->sin6_addr, 16);
  }
  timer_.set(&DownstreamConn::onTimer, this);
  up_timer_.set(&DownstreamConn::onUpTimer, this);
}

DownstreamConn::~DownstreamConn() = default;  // transport_ closes the socket

void DownstreamConn::start() {
  interest_ = EPOLLIN;
  worker_.loop().add(fd_, interest_, this);
  worker_.addConnection(this);
  const config::Port* port = findPort();
  // TLS: the handshake and the first request head must arrive within the header timeout.
  uint32_t first_ms = port ? (transport_.isTls() ? port->settings.header_timeout_ms
                                                 : port->settings.idle_timeout_ms)
                           : 60'000;
  worker_.loop().timers().schedule(&timer_, first_ms);
}

const config::Port* DownstreamConn::findPort() {
  const config::Snapshot& snap = snapshot_ ? *snapshot_->snapshot : worker_.currentSnapshot();
  return port_cache_.find(snap, local_port_, fd_);
}

void DownstreamConn::onIo(uint32_t events) {
  if (phase_ == Phase::kClosed) return;
  if (events & EPOLLOUT) {
    if (!flushOut()) return;
  }
  // A TLS read (the handshake) may wait for the socket to be writable.
  if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) || transport_.wantsWrite()) readDownstream();
  if (phase_ != Phase::kClosed) updateInterest();
}

void DownstreamConn::readDownstream() {
  if (phase_ == Phase::kLinger) {
    char sink[4096];
    ssize_t n = transport_.read(sink, sizeof sink);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) close();
    return;
  }
  char* p = in_.reserve(kReadSize);
  ssize_t n = transport_.read(p, in_.writable());
  if (n > 0) {
    in_.commit(static_cast<size_t>(n));
    process();
    if (in_.empty()) in_.release();  // idle connections hold no buffer
    return;
  }
  if (n == 0) {
    onDownstreamEof();
    return;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
  close();
}

void DownstreamConn::onDownstreamEof() {
  // A client that half-closes after a complete request still gets its response (then the
  // connection closes); anywhere else EOF ends the connection.
  if (phase_ == Phase::kTunnel) {
    // EPOLLHUP (reported whatever the interest): the client is gone both ways; bytes the
    // upstream has not taken yet are dropped.
    if (client_eof_ && down_shut_) {
      close();
      return;
    }
    client_eof_ = true;
    tunnelStep();
    return;
  }
  if (phase_ == Phase::kProxy && req_done_ && !client_eof_) {
    client_eof_ = true;
    resp_close_ = true;
    updateInterest();
    return;
  }
  close();
}

void DownstreamConn::process() {
  if (phase_ == Phase::kTunnel) {
    tunnelStep();
    return;
  }
  if (resp_close_ && phase_ == Phase::kHead) {
    in_.clear();  // closing after the pending response: later requests are not read
    return;
  }
  while (phase_ == Phase::kHead) {
    if (authz_ != nullptr) return;  // the request waits for its external authorization
    if (in_.empty()) {
      in_.release();
      return;
    }
    if (out_.size() > kHighWater) return;  // client does not read its pipelined responses
    if (!head_started_) {
      head_started_ = true;
      const config::Port* port = findPort();
      worker_.loop().timers().schedule(&timer_, port ? port->settings.header_timeout_ms : 10'000);
    }
    if (first_request_ && in_.view()[0] == 'P' && handOffToHttp2()) return;
    const config::Port* port = findPort();
    http1::Limits limits = port ? port->settings.limits : http1::Limits{};
    http1::RequestHead head;
    head.headers = worker_.headerScratch();
    http1::ParseResult r = http1::parseRequestHead(in_.view(), limits, &head);
    if (r.status == http1::ParseStatus::kIncomplete) return;
    if (r.status == http1::ParseStatus::kError) {
      worker_.stats().global.bad_requests.inc();
      worker_.stats().global.downstream_requests.inc();
      std::string body = std::string(http1::describe(r.error)) + "\n";
      respondLocal(http1::statusFor(r.error), body, true);
      return;
    }
    if (!startRequest(head, r.consumed)) break;
  }
  if (phase_ == Phase::kProxy && !req_done_) forwardRequestBody();
}

void DownstreamConn::feedMirrors(std::string_view framed) {
  if (!extras_) return;
  for (uint8_t i = 0; i < extras_->mirror_count; ++i) extras_->mirrors[i]->feed(framed);
}

void DownstreamConn::keepForRetry(std::string_view framed) {
  if (retry_ == nullptr || !body_replayable_) return;
  Buffer& copy = extras().body_copy;
  if (copy.size() + framed.size() > retry_->buffer_limit) {
    body_replayable_ = false;  // too long to send again: this request is not retried
    copy.clear();
    copy.release();
    return;
  }
  copy.append(framed);
}

void DownstreamConn::endMirrors(bool complete) {
  if (!extras_) return;
  for (uint8_t i = 0; i < extras_->mirror_count; ++i) extras_->mirrors[i]->end(complete);
  extras_->mirror_count = 0;
}

void DownstreamConn::resetRequestState() {
  head_started_ = false;
  req_keep_alive_ = true;
  req_is_head_ = false;
  req_chunked_out_ = false;
  req_done_ = true;
  req_bodyless_ = true;
  resp_head_done_ = false;
  resp_chunked_out_ = false;
  resp_close_ = false;
  retried_ = false;
  req_upgrade_ = false;
  resp_status_ = 0;
  endMirrors(req_done_);
  releaseBreakerUnits();
  if (lb_index_ >= 0 && snapshot_ != nullptr && backend_ != nullptr) {
    upstream::onRequestEnd(*snapshot_->lb[backend_->index], lb_index_);
    lb_index_ = -1;
  }
  if (counted_active_) --worker_.active_requests;
  if (counted_retry_) --worker_.active_retries;
  counted_active_ = counted_retry_ = false;
  retry_ = nullptr;
  deadline_ms_ = 0;
  attempts_ = 0;
  prev_endpoint_ = nullptr;
  body_replayable_ = true;
  if (extras_) {
    extras_->body_copy.clear();
    extras_->body_copy.release();
  }
  rule_ = nullptr;
  target_ = nullptr;
  backend_ = nullptr;
  endpoint_ = nullptr;
  resumed_ = false;
  authz_verdict_.reset();
  authz_pass_ = 0;
  sec_target_.clear();
  cors_resp_.clear();
  req_head_.clear();
  req_head_.release();
  if (snapshot_ != nullptr) {
    worker_.releaseSnapshot(snapshot_);
    snapshot_ = nullptr;
  }
}

bool DownstreamConn::handOffToHttp2() {
  // h2c with prior knowledge (RFC 9113 §3.3): the connection preface instead of a request.
  std::string_view got = in_.view();
  std::string_view preface = http2::kPreface;
  if (got.size() < preface.size()) {
    if (preface.substr(0, got.size()) != got) return false;
    return true;  // wait for the rest of the preface
  }
  if (got.substr(0, preface.size()) != preface) return false;
  worker_.loop().remove(fd_);
  fd_ = -1;  // the socket (and its TLS session) now belong to the HTTP/2 connection
  auto* h2 =
      new H2DownstreamConn(worker_, std::move(transport_), peer_family_, peer_addr_, local_port_);
  std::string received(got);
  close();
  h2->start(received, /*fresh=*/false);
  return true;
}

bool DownstreamConn::startRequest(http1::RequestHead& head, size_t head_len) {
  first_request_ = false;
  stats::Shard& st = worker_.stats();
  if (!resumed_) st.global.downstream_requests.inc();
  start_us_ = net::EventLoop::monotonicUs();
  snapshot_ = worker_.acquireSnapshot();
  phase_ = Phase::kProxy;
  req_version_minor_ = head.info.version_minor;
  req_keep_alive_ = head.info.keep_alive;
  req_is_head_ = head.method == "HEAD";
  req_idempotent_ = isIdempotent(head.method);
  req_bodyless_ =
      head.info.body == http1::BodyKind::kNone ||
      (head.info.body == http1::BodyKind::kContentLength && head.info.content_length == 0);
  bool expect_continue = head.info.expect_continue && !req_bodyless_;
  req_upgrade_ = wantsUpgrade(head);
  if (req_upgrade_ && !req_bodyless_) {
    // The bytes after the head would be request body, then tunnel data: ambiguous.
    in_.consume(head_len);
    respondLocal(400, "an upgrade request cannot have a body\n", true);
    return false;
  }

  // The target: origin-form, or absolute-form whose authority replaces Host (RFC 9112 §3.2.2).
  std::string_view target = head.target;
  std::string_view authority = head.host;
  bool absolute = false;
  if (!target.empty() && target[0] != '/') {
    size_t scheme_end = target.find("://");
    if (target == "*" || head.method == "CONNECT" || scheme_end == std::string_view::npos) {
      in_.consume(head_len);
      respondLocal(head.method == "CONNECT" ? 501 : 400,
                   head.method == "CONNECT" ? "CONNECT is not supported\n"
                                            : "unsupported request-target form\n",
                   true);
      return false;
    }
    std::string_view rest = target.substr(scheme_end + 3);
    size_t slash = rest.find_first_of("/?");
    authority = rest.substr(0, slash);
    target = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
    absolute = true;
  }
  size_t q = target.find('?');
  router::RouteInput in;
  in.host = authority;
  in.path = target.substr(0, q);
  in.query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  in.method = head.method;
  in.headers = head.headers;
  in.header_count = head.header_count;

  const config::Port* port = findPort();
  if (port == nullptr) {
    in_.consume(head_len);
    respondLocal(404, "no listener on this port\n", !req_bodyless_);
    return phase_ == Phase::kHead;
  }
  router::RouteDecision d = port->routes->match(in);
  auto reject = [&](int status, std::string body) {
    in_.consume(head_len);
    // A body we will not read makes the connection unusable: close after answering.
    respondLocal(status, body, !req_bodyless_);
    return phase_ == Phase::kHead;
  };
  if (d.listener.empty()) {
    st.global.no_route.inc();
    return reject(404, "no listener on port " + std::to_string(local_port_) + " accepts host '" +
                           std::string(authority) + "'\n");
  }
  if (d.rule == nullptr) {
    st.global.no_route.inc();
    return reject(404, "no route matches on listener " + std::string(d.listener) + "\n");
  }
  // Host names a listener that verifies client certificates, SNI chose another one.
  if (port->tls && port->tls->misdirected(transport_.listenerIndex(), d.listener))
    return reject(421, "misdirected request: this connection was not made for this host\n");
  rule_ = d.rule;
  if (!resumed_) st.routes.at(rule_->route_stats_id).requests.inc();
  switch (checkSecurity(head, head_len, target, in, *port)) {
    case SecurityStep::kAnswered:
      return phase_ == Phase::kHead;
    case SecurityStep::kSuspended:
      return false;
    case SecurityStep::kContinue:
      break;
  }
  q = target.find('?');
  if (needsStreamPath(*rule_, head)) return startBridged(head, head_len, authority, target);
  if (!rule_->filterError().empty()) return reject(500, rule_->filterError());
  if (const config::DirectResponse* dr = rule_->directResponse()) {
    in_.consume(head_len);
    respondLocal(dr->status_code, dr->body, !req_bodyless_, {}, dr->content_type,
                 /*overridable=*/false);
    return phase_ == Phase::kHead;
  }
  if (rule_->redirect() != nullptr) {
    // RequestRedirect: answered here. The Location is built before the head is consumed (the
    // views point into in_).
    scratch_.clear();
    scratch_.append("location: ");
    appendRedirectLocation(*rule_->redirect(), authority, local_port_, in.path, in.query,
                           rule_->rewritePrefix(), scratch_, transport_.isTls() ? "https" : "http");
    scratch_.append("\r\n");
    in_.consume(head_len);
    respondLocal(rule_->redirect()->status_code, "", !req_bodyless_, scratch_.view());
    scratch_.clear();
    scratch_.release();
    return phase_ == Phase::kHead;
  }
  const config::WeightedBackend* wb = router::pickBackend(*rule_, worker_.random());
  if (wb == nullptr) return reject(500, "no backend with a non-zero weight\n");
  if (wb->backend == nullptr) return reject(500, "backend reference not resolved\n");
  target_ = wb;
  backend_ = wb->backend;
  st.backends.at(backend_->stats_id).requests.inc();
  if (backend_->endpoints.empty()) return reject(503, "no endpoints for backend\n");
  if (!upstream::tryAcquire(worker_.shared().load(backend_->stats_id).requests,
                            backend_->circuit_breaker.max_parallel_requests)) {
    st.backends.at(backend_->stats_id).overflows.inc();
    in_.consume(head_len);
    respondLocal(503, "backend circuit breaker open: maxParallelRequests\n", !req_bodyless_,
                 "x-portico-overloaded: maxParallelRequests\r\n");
    return phase_ == Phase::kHead;
  }
  cb_request_ = true;
  lb_hash_ = backend_->lb.hash_on == config::HashOn::kNone
                 ? 0
                 : requestHash(*backend_, in, peer_family_, peer_addr_, worker_.random(),
                               worker_.random());
  if (!pickEndpoint(nullptr)) return reject(503, "no endpoints for backend\n");
  // Effective settings: a Gateway policy's overrides, else the rule's (its own fields and the
  // policies on the route), else the Gateway's defaults.
  const config::PortSettings& ps = port->settings;
  uint32_t request_ms = ps.overrides.request_timeout_ms != 0 ? ps.overrides.request_timeout_ms
                        : rule_->request_timeout_ms != 0     ? rule_->request_timeout_ms
                                                             : ps.request_timeout_ms;
  deadline_ms_ = request_ms >= config::kTimeoutDisabledMs ? 0 : worker_.loop().nowMs() + request_ms;
  retry_ = ps.overrides.retry ? ps.overrides.retry.get()
           : rule_->retry()   ? rule_->retry()
                              : ps.retry.get();
  if (retry_ != nullptr && retry_->num_retries == 0) retry_ = nullptr;
  counted_active_ = true;
  ++worker_.active_requests;

  // Serialize the upstream head once; keep it for one retry when the request has no body.
  req_head_.clear();
  std::string_view up_target = target;
  std::string_view up_authority = absolute ? authority : std::string_view();
  if (const config::UrlRewrite* rw = wb->urlRewrite()) {
    if (!rw->hostname.empty()) up_authority = rw->hostname;
    if (rw->path.kind != config::PathModifierKind::kNone) {
      scratch_.clear();
      appendModifiedPath(rw->path, in.path, rule_->rewritePrefix(), scratch_);
      if (q != std::string_view::npos) scratch_.append(target.substr(q));
      up_target = scratch_.view();
    }
  }
  serializeRequestHead(head, up_target, up_authority, req_head_);
  if (!scratch_.empty()) {
    scratch_.clear();
    scratch_.release();
  }
  for (const config::Mirror& m : wb->mirrors()) {
    if (req_upgrade_ || extras().mirror_count == kMaxMirrors) break;
    if (m.per_million < 1'000'000 && worker_.random() % 1'000'000 >= m.per_million) continue;
    MirrorRequest* mr = MirrorRequest::start(worker_, *m.backend, req_head_.view(), !req_bodyless_,
                                             req_is_head_, responseTimeoutMs());
    if (mr != nullptr) extras_->mirrors[extras_->mirror_count++] = mr;
  }
  req_chunked_out_ = head.info.body == http1::BodyKind::kChunked;
  req_body_.reset(head.info.body, head.info.content_length);
  req_done_ = req_body_.done();  // no body, or Content-Length: 0
  in_.consume(head_len);

  if (expect_continue) out_.append("HTTP/1.1 100 Continue\r\n\r\n");
  if (!req_bodyless_) {
    worker_.loop().timers().schedule(&timer_, port->settings.body_timeout_ms);
  } else {
    timer_.cancel();
  }
  if (!connectUpstream()) return false;
  up_->out.append(req_head_.view());
  if (!req_bodyless_ && retry_ == nullptr) req_head_.clear();
  if (!up_->connecting) flushUpstream();
  if (!out_.empty()) flushOut();
  return false;  // the request is in flight; process() continues with its body
}

void DownstreamConn::serializeRequestHead(const http1::RequestHead& head, std::string_view target,
                                          std::string_view authority, Buffer& out) {
  using http1::HeaderTag;
  out.append(head.method);
  out.append(" ");
  out.append(target);
  out.append(" HTTP/1.1\r\n");
  bool has_host = false;
  const config::HeaderModifier* mod = target_->requestHeaders();
  std::string_view xff_first;
  bool xff_many = false;
  for (uint32_t i = 0; i < head.header_count; ++i) {
    const http1::Header& h = head.headers[i];
    switch (h.tag) {
      case HeaderTag::kHost:
        has_host = true;
        if (!authority.empty()) continue;
        break;
      case HeaderTag::kExpect:
      case HeaderTag::kXForwardedProto:
        continue;
      case HeaderTag::kXForwardedFor:
        if (xff_first.empty()) {
          xff_first = h.value;
        } else {
          xff_many = true;
        }
        continue;
      default:
        if (isHopByHop(h.tag)) continue;
        if (isClientCertHeader(h.name)) continue;  // only Portico sets it
        if (head.info.connection_other_tokens &&
            nominatedByConnection(head.headers, head.header_count, h.name)) {
          continue;
        }
        if (mod != nullptr && modifierTakesOver(*mod, h.name)) continue;
        break;
    }
    out.append(h.name);
    out.append(": ");
    out.append(h.value);
    out.append("\r\n");
  }
  if (mod != nullptr) appendModifierHeaders(*mod, head.headers, head.header_count, out);
  if (req_upgrade_) {  // the only hop-by-hop fields forwarded, Upgrade as received
    for (uint32_t i = 0; i < head.header_count; ++i) {
      if (head.headers[i].tag != HeaderTag::kUpgrade) continue;
      out.append(head.headers[i].name);
      out.append(": ");
      out.append(head.headers[i].value);
      out.append("\r\n");
    }
    out.append("connection: upgrade\r\n");
  }
  if (!authority.empty()) {
    out.append("host: ");
    out.append(authority);
    out.append("\r\n");
  } else if (!has_host) {
    out.append("host: ");
    out.append(endpoint_->authority);
    out.append("\r\n");
  }
  if (head.info.body == http1::BodyKind::kContentLength) {
    out.append("content-length: ");
    appendDecimal(out, head.info.content_length);
    out.append("\r\n");
  } else if (head.info.body == http1::BodyKind::kChunked) {
    out.append("transfer-encoding: chunked\r\n");
  }
  out.append("x-forwarded-for: ");
  if (!xff_first.empty()) {
    out.append(xff_first);
    if (xff_many) {
      bool first = true;
      for (uint32_t i = 0; i < head.header_count; ++i) {
        if (head.headers[i].tag != HeaderTag::kXForwardedFor) continue;
        if (first) {
          first = false;
          continue;
        }
        out.append(", ");
        out.append(head.headers[i].value);
      }
    }
    out.append(", ");
  }
  char ip[INET6_ADDRSTRLEN];
  inet_ntop(peer_family_, peer_addr_, ip, sizeof ip);
  out.append(ip, std::strlen(ip));
  out.append(transport_.isTls() ? "\r\nx-forwarded-proto: https\r\n"
                                : "\r\nx-forwarded-proto: http\r\n");
  if (transport_.isTls()) {
    const net::PeerCertificateInfo& peer = transport_.peerCertificateInfo();
    if (peer.present) {
      out.append("x-forwarded-client-cert: ");
      out.append(peer.xfcc());
      out.append("\r\n");
    }
  }
  out.append("\r\n");
}

bool DownstreamConn::needsStreamPath(const config::Rule& rule, const http1::RequestHead& head) {
  for (const config::WeightedBackend& wb : rule.backends) {
    if (wb.backend != nullptr && wb.backend->protocol != config::BackendProtocol::kHttp1) {
      return true;
    }
  }
  for (uint32_t i = 0; i < head.header_count; ++i) {
    std::string_view suffix;
    if (equalsIgnoreCase(head.headers[i].name, "content-type") &&
        http2::grpcWebMode(head.headers[i].value, &suffix) != 0) {
      return true;
    }
  }
  return false;
}

bool DownstreamConn::startBridged(const http1::RequestHead& head, size_t head_len,
                                  std::string_view authority, std::string_view target) {
  if (!bridge_) bridge_ = std::make_unique<H1Bridge>(*this);
  rule_ = nullptr;  // the stream routes and counts from here on
  req_body_.reset(head.info.body, head.info.content_length);
  req_done_ = req_body_.done();
  if (head.info.expect_continue && !req_bodyless_) out_.append("HTTP/1.1 100 Continue\r\n\r\n");
  bridge_->prepare(head, authority, target);
  in_.consume(head_len);  // the views into it are dead from here
  if (!req_done_) {
    const config::Port* port = findPort();
    worker_.loop().timers().schedule(&timer_, port ? port->settings.body_timeout_ms : 30'000);
  } else {
    timer_.cancel();
  }
  bridge_->start(req_done_);  // may answer at once (then the exchange is over)
  if (phase_ == Phase::kProxy && !out_.empty()) flushOut();
  return phase_ == Phase::kHead;
}

bool DownstreamConn::forwardBodyToBridge() {
  bool progressed = false;
  while (!req_done_ && !in_.empty() && bridge_->active() &&
         bridge_->bufferedRequest() <= kHighWater) {
    http1::BodyDecoder::Step step = req_body_.decode(in_.view());
    if (step.status == http1::ParseStatus::kError) {
      worker_.stats().global.bad_requests.inc();
      close();  // the stream may have answered already: closing is the clear signal
      return false;
    }
    if (!step.data.empty()) bridge_->requestData(step.data);
    in_.consume(step.consumed);
    progressed = true;
    if (phase_ == Phase::kClosed) return false;
    if (step.status == http1::ParseStatus::kDone) {
      req_done_ = true;
      timer_.cancel();
      bridge_->requestEnd();
    }
    if (step.consumed == 0) break;
  }
  if (progressed && !req_done_) {
    const config::Port* port = findPort();
    worker_.loop().timers().schedule(&timer_, port ? port->settings.body_timeout_ms : 30'000);
  }
  // Reading may have paused on a full input buffer: the stream took bytes, so resume.
  if (progressed && phase_ != Phase::kClosed) updateInterest();
  return true;
}

void DownstreamConn::bridgeDone() {
  if (!req_done_) resp_close_ = true;  // unread request body: the framing is lost
  finishExchange();
  if (phase_ == Phase::kHead && !in_.empty() && out_.size() <= kHighWater) process();
}

bool DownstreamConn::forwardRequestBody() {
  if (bridge_ && bridge_->active()) return forwardBodyToBridge();
  if (up_ == nullptr) return false;
  bool progressed = false;
  while (!req_done_ && !in_.empty()) {
    if (up_->out.size() > kHighWater) break;  // backpressure: updateInterest() stops reading
    http1::BodyDecoder::Step step = req_body_.decode(in_.view());
    if (step.status == http1::ParseStatus::kError) {
      worker_.stats().global.bad_requests.inc();
      if (!resp_head_done_) {
        releaseUpstream(false);
        std::string body = std::string(http1::describe(step.error)) + "\n";
        respondLocal(http1::statusFor(step.error), body, true);
      } else {
        close();
      }
      return false;
    }
    if (!step.data.empty()) {
      size_t start = up_->out.size();
      if (req_chunked_out_) appendChunkHeader(up_->out, step.data.size());
      up_->out.append(step.data);
      if (req_chunked_out_) up_->out.append("\r\n");
      std::string_view framed = up_->out.view().substr(start);
      feedMirrors(framed);
      keepForRetry(framed);
    }
    in_.consume(step.consumed);
    progressed = true;
    if (step.status == http1::ParseStatus::kDone) {
      if (req_chunked_out_) {
        up_->out.append("0\r\n\r\n");
        feedMirrors("0\r\n\r\n");
        keepForRetry("0\r\n\r\n");
      }
      req_done_ = true;
      endMirrors(true);
      timer_.cancel();
    }
    if (step.consumed == 0) break;
  }
  if (progressed) {
    if (!req_done_) {
      const config::Port* port = findPort();
      worker_.loop().timers().schedule(&timer_, port ? port->settings.body_timeout_ms : 30'000);
    }
    if (!up_->connecting) flushUpstream();
  }
  return true;
}

bool DownstreamConn::flushOut() {
  while (!out_.empty()) {
    ssize_t n = transport_.write(out_.data(), out_.size());
    if (n > 0) {
      out_.consume(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      updateInterest();
      return true;
    }
    close();
    return false;
  }
  out_.release();
  if (phase_ == Phase::kTunnel) {  // a pending half-close may go now
    tunnelStep();
    return phase_ != Phase::kClosed;
  }
  if (resp_close_ && phase_ == Phase::kHead) {
    beginClose();
    return phase_ != Phase::kClosed;
  }
  // Output drained: a paused upstream may continue.
  if (up_ != nullptr && resp_head_done_ && !up_->in.empty()) processResponse();
  if (bridge_ && bridge_->active()) bridge_->pull();
  if (phase_ == Phase::kHead && !in_.empty()) process();
  if (phase_ != Phase::kClosed) updateInterest();
  return phase_ != Phase::kClosed;
}

void DownstreamConn::updateInterest() {
  if (phase_ == Phase::kClosed) return;
  uint32_t want = client_eof_ || authz_ != nullptr ? 0u : static_cast<uint32_t>(EPOLLIN);
  if (phase_ == Phase::kProxy) {
    if (!req_done_ && up_ != nullptr && up_->out.size() > kHighWater) want = 0;
    if (!req_done_ && up_ == nullptr && in_.size() > kHighWater) want = 0;  // retry backoff
    if (req_done_ && in_.size() > kMaxPipelined) want = 0;
  } else if (phase_ == Phase::kHead && out_.size() > kHighWater) {
    want = 0;
  } else if (phase_ == Phase::kTunnel && up_ != nullptr && up_->out.size() > kHighWater) {
    want = 0;
  }
  if (!out_.empty() || transport_.wantsWrite()) want |= EPOLLOUT;
  if (want != interest_) {
    interest_ = want;
    worker_.loop().modify(fd_, want, this);
  }
  if (up_ != nullptr && !up_->closed() && !up_->connecting) {
    uint32_t up_want = out_.size() > kHighWater || up_eof_ ? 0u : static_cast<uint32_t>(EPOLLIN);
    if (!up_->out.empty()) up_want |= EPOLLOUT;
    up_->setInterest(up_want);
  }
}

void DownstreamConn::respondLocal(int status, std::string_view body, bool close_after,
                                  std::string_view extra_headers, std::string_view content_type,
                                  bool overridable) {
  if (overridable) {
    if (const config::Port* port = findPort()) {
      for (const config::ResponseOverride& ro : port->settings.response_overrides) {
        if (!ro.matches(status)) continue;
        if (ro.response.status_code != 0) status = ro.response.status_code;
        body = ro.response.body;
        content_type = ro.response.content_type;
        break;
      }
    }
  }
  stats::Shard& st = worker_.stats();
  st.global.downstream_responses[stats::statusClass(status)].inc();
  if (rule_ != nullptr) {
    stats::RouteStats& rs = st.routes.at(rule_->route_stats_id);
    rs.responses[stats::statusClass(status)].inc();
  }
  bool close_now = close_after || !req_keep_alive_ || draining_ || worker_.draining();
  // A HEAD response carries the headers of the body it does not send.
  appendLocalResponse(out_, status, req_is_head_ ? std::string_view() : body, body.size(),
                      close_now, extra_headers, content_type);
  resp_close_ = close_now;
  finishExchange();
}

void DownstreamConn::finishExchange() {
  bool close_now = resp_close_ || !req_keep_alive_ || draining_ || worker_.draining();
  resetRequestState();
  up_timer_.cancel();
  up_timer_kind_ = UpTimer::kNone;
  phase_ = Phase::kHead;
  resp_close_ = close_now;
  if (close_now) {
    if (out_.empty()) {
      beginClose();
    } else {
      flushOut();
    }
    return;
  }
  if (in_.empty()) in_.release();
  const config::Port* port = findPort();
  worker_.loop().timers().schedule(&timer_, port ? port->settings.idle_timeout_ms : 60'000);
  if (!out_.empty()) flushOut();
}

void DownstreamConn::beginClose() {
  if (phase_ == Phase::kClosed || phase_ == Phase::kLinger) return;
  releaseUpstream(false);
  // Half-close and drain what the client still sends, so our response is not destroyed by a
  // reset when unread input remains (lingering close).
  transport_.shutdownWrite();
  phase_ = Phase::kLinger;
  in_.clear();
  in_.release();
  worker_.loop().timers().schedule(&timer_, kLingerMs);
  interest_ = EPOLLIN;
  worker_.loop().modify(fd_, EPOLLIN, this);
}

void DownstreamConn::drain() {
  draining_ = true;
  if (phase_ == Phase::kHead && !head_started_ && out_.empty()) close();
}

void DownstreamConn::close() {
  if (phase_ == Phase::kClosed) return;
  if (bridge_) bridge_->abort();
  if (authz_ != nullptr) {
    authz_->cancel();
    authz_ = nullptr;
  }
  if (authz_snapshot_ != nullptr) worker_.releaseSnapshot(std::exchange(authz_snapshot_, nullptr));
  releaseUpstream(false);
  resetRequestState();
  if (phase_ == Phase::kTunnel) worker_.stats().global.downstream_tunnels_active.dec();
  phase_ = Phase::kClosed;
  timer_.cancel();
  up_timer_.cancel();
  if (fd_ >= 0) worker_.loop().remove(fd_);
  transport_.close();
  fd_ = -1;
  in_.clear();
  in_.release();
  out_.clear();
  out_.release();
  req_head_.release();
  worker_.removeConnection(this);
  worker_.loop().deferDelete(this);
}

void DownstreamConn::onTimer(void* ctx) {
  auto* self = static_cast<DownstreamConn*>(ctx);
  switch (self->phase_) {
    case Phase::kHead:
      if (self->head_started_) {
        // Slow or stalled request head.
        self->worker_.stats().global.header_timeouts.inc();
        self->respondLocal(408, "request header timeout\n", true);
      } else {
        self->close();  // keep-alive idle timeout
      }
      break;
    case Phase::kProxy:
      // Request body stalled.
      self->worker_.stats().global.header_timeouts.inc();
      if (!self->resp_head_done_) {
        self->releaseUpstream(false);
        self->respondLocal(408, "request body timeout\n", true);
      } else {
        self->close();
      }
      break;
    case Phase::kTunnel:  // idle tunnel
    case Phase::kLinger:
    case Phase::kClosed:
      self->close();
      break;
  }
}

}  // namespace portico::proxy
