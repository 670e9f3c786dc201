// The upstream half of H2Stream: an HTTP/1.1 exchange on a pooled UpstreamConn (the request
// re-framed, the response translated to HTTP/2 fields and body) or a stream on an
// H2ClientConn (fields, data and trailers passed through; gRPC-Web translated). The client
// half (routing, local answers, the request and response bodies) is in h2_stream.cc.
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>

#include "net/socket.h"
#include "proxy/h2_fields.h"
#include "proxy/h2_stream.h"
#include "proxy/http_util.h"
#include "proxy/rewrite.h"
#include "proxy/worker.h"
#include "router/route_table.h"
#include "upstream/load_balancer.h"

namespace portico::proxy {

using namespace h2_fields;  // NOLINT: the stream path's own helpers

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
  if (!cors_resp_.empty()) linesToNv(cors_resp_, nva, /*drop_cors=*/true);
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

}  // namespace portico::proxy
