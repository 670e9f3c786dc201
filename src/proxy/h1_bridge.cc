#include "proxy/h1_bridge.h"

#include "proxy/downstream_conn.h"
#include "proxy/http_util.h"
#include "proxy/worker.h"

namespace portico::proxy {

H1Bridge::~H1Bridge() { abort(); }

Worker& H1Bridge::worker() { return conn_.worker_; }
const config::Port* H1Bridge::findPort(const config::Snapshot&) { return conn_.findPort(); }
uint16_t H1Bridge::localPort() const { return conn_.local_port_; }
uint8_t H1Bridge::peerFamily() const { return conn_.peer_family_; }
const uint8_t* H1Bridge::peerAddr() const { return conn_.peer_addr_; }
bool H1Bridge::tls() const { return conn_.transport_.isTls(); }
bool H1Bridge::misdirected(const config::Port& port, std::string_view listener) {
  return port.tls && port.tls->misdirected(conn_.transport_.listenerIndex(), listener);
}
std::string H1Bridge::clientCertHeader() {
  if (!conn_.transport_.isTls()) return {};
  const net::PeerCertificateInfo& peer = conn_.transport_.peerCertificateInfo();
  return peer.present ? peer.xfcc() : std::string();
}

void H1Bridge::prepare(const http1::RequestHead& head, std::string_view authority,
                       std::string_view target) {
  chunked_ = false;
  head_only_ = head.method == "HEAD";
  trailers_.clear();
  stream_ = new H2Stream(*this, 1);
  stream_->setBridged();
  stream_->setHttp1Head(head, authority, target);
}

void H1Bridge::start(bool end_stream) {
  if (stream_ != nullptr) stream_->headersDone(end_stream);
}

void H1Bridge::requestData(std::string_view data) {
  if (stream_ == nullptr) return;
  feeding_ = true;
  stream_->requestData(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  feeding_ = false;
}

void H1Bridge::requestEnd() {
  if (stream_ == nullptr) return;
  feeding_ = true;
  stream_->requestEnd();
  feeding_ = false;
}

void H1Bridge::submitResponse(H2Stream*, const nghttp2_nv* nva, size_t n, bool end_stream) {
  Buffer& out = conn_.out_;
  std::string_view status(reinterpret_cast<const char*>(nva[0].value), nva[0].valuelen);
  int code = 0;
  for (char c : status) code = code * 10 + (c - '0');
  bool has_length = false;
  for (size_t i = 1; i < n; ++i) {
    std::string_view name(reinterpret_cast<const char*>(nva[i].name), nva[i].namelen);
    if (name == "content-length") has_length = true;
  }
  bool client11 = conn_.req_version_minor_ >= 1;
  bool bodiless = end_stream || head_only_ || code == 204 || code == 304;
  chunked_ = !bodiless && !has_length && client11;
  bool close = conn_.client_eof_ || !conn_.req_keep_alive_ || conn_.draining_ ||
               conn_.worker_.draining() || (!bodiless && !has_length && !client11);
  conn_.resp_close_ = close;
  out.append("HTTP/1.1 ");
  out.append(status);
  out.append(" ");
  out.append(reasonPhrase(code));
  out.append("\r\n");
  for (size_t i = 1; i < n; ++i) {
    std::string_view name(reinterpret_cast<const char*>(nva[i].name), nva[i].namelen);
    if (!conn_.cors_resp_.empty() && isCorsResponseHeader(name)) continue;
    out.append(name);
    out.append(": ");
    out.append(std::string_view(reinterpret_cast<const char*>(nva[i].value), nva[i].valuelen));
    out.append("\r\n");
  }
  out.append(conn_.cors_resp_);  // the SecurityPolicy's CORS lines (gRPC-Web from browsers)
  if (chunked_) {
    out.append("transfer-encoding: chunked\r\n");
  } else if (end_stream && !has_length && !head_only_ && code != 204 && code != 304) {
    out.append("content-length: 0\r\n");
  }
  if (close) {
    out.append("connection: close\r\n");
  } else if (!client11) {
    out.append("connection: keep-alive\r\n");
  }
  out.append("\r\n");
  if (end_stream) {
    finish();
    return;
  }
  pull();
}

void H1Bridge::pull() {
  if (stream_ == nullptr || pulling_) return;
  pulling_ = true;
  Buffer& out = conn_.out_;
  uint8_t buf[16 * 1024];
  while (stream_ != nullptr && out.size() <= DownstreamConn::kHighWater) {
    uint32_t flags = 0;
    ssize_t got = stream_->readResponse(buf, sizeof buf, &flags);
    if (got == NGHTTP2_ERR_DEFERRED) break;
    if (got < 0) {
      pulling_ = false;
      conn_.close();
      return;
    }
    if (got > 0 && !head_only_) {
      if (chunked_) appendChunkHeader(out, static_cast<size_t>(got));
      out.append(std::string_view(reinterpret_cast<const char*>(buf), static_cast<size_t>(got)));
      if (chunked_) out.append("\r\n");
    }
    if (flags & NGHTTP2_DATA_FLAG_EOF) {
      if (chunked_) {
        out.append("0\r\n");
        out.append(trailers_);
        out.append("\r\n");
      }
      pulling_ = false;
      finish();
      return;
    }
  }
  pulling_ = false;
  if (!out.empty()) conn_.flushOut();
}

void H1Bridge::submitTrailers(H2Stream*, const nghttp2_nv* nva, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    trailers_.append(reinterpret_cast<const char*>(nva[i].name), nva[i].namelen);
    trailers_.append(": ");
    trailers_.append(reinterpret_cast<const char*>(nva[i].value), nva[i].valuelen);
    trailers_.append("\r\n");
  }
}

void H1Bridge::resumeResponse(H2Stream*) { pull(); }

void H1Bridge::consumeRequest(H2Stream*, size_t) {
  // The stream took body bytes: more of the client's body may be decoded (unless this runs
  // inside requestData(), whose caller's loop goes on by itself).
  if (feeding_) return;
  if (!conn_.req_done_ && !conn_.in_.empty()) conn_.forwardRequestBody();
}

void H1Bridge::resetStream(H2Stream*, uint32_t) {
  // The response cannot complete: closing is the only honest signal left on HTTP/1.1.
  conn_.close();
}

void H1Bridge::finish() {
  H2Stream* s = stream_;
  stream_ = nullptr;
  s->closed(0);
  conn_.worker_.loop().deferDelete(s);
  conn_.bridgeDone();
}

void H1Bridge::abort() {
  if (stream_ == nullptr) return;
  H2Stream* s = stream_;
  stream_ = nullptr;
  s->closed(NGHTTP2_CANCEL);
  conn_.worker_.loop().deferDelete(s);
}

}  // namespace portico::proxy
