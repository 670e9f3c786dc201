#include "proxy/h2_downstream.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "net/address.h"
#include "proxy/h2_stream.h"
#include "proxy/worker.h"

namespace portico::proxy {

namespace {
const http2::Limits kLimits{};
}  // namespace

H2DownstreamConn::H2DownstreamConn(Worker& worker, net::Transport transport, uint8_t peer_family,
                                   const uint8_t* peer_addr, uint16_t local_port)
    : worker_(worker),
      transport_(std::move(transport)),
      fd_(transport_.fd()),
      local_port_(local_port),
      peer_family_(peer_family) {
  std::memcpy(peer_addr_, peer_addr, sizeof peer_addr_);
  timer_.set(&H2DownstreamConn::onTimer, this);
}

H2DownstreamConn::~H2DownstreamConn() = default;  // transport_ closes the socket

std::string H2DownstreamConn::clientCertHeader() {
  if (!transport_.isTls()) return {};
  const net::PeerCertificateInfo& peer = transport_.peerCertificateInfo();
  return peer.present ? peer.xfcc() : std::string();
}

void H2DownstreamConn::start(std::string_view received, bool fresh) {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &H2DownstreamConn::onBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback2(cbs, &H2DownstreamConn::onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &H2DownstreamConn::onFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &H2DownstreamConn::onDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &H2DownstreamConn::onStreamClose);
  http2::OptionPtr opt = http2::makeOptions(kLimits, /*server=*/true);
  nghttp2_session* s = nullptr;
  nghttp2_session_server_new2(&s, cbs, this, opt.get());
  nghttp2_session_callbacks_del(cbs);
  session_.reset(s);
  // The port's settings (TrafficPolicy spec.http2, clientLimits) when the connection opens.
  const config::Port* port = findPort(worker_.currentSnapshot());
  config::PortSettings defaults;
  const config::PortSettings& ps = port != nullptr ? port->settings : defaults;
  max_header_bytes_ = ps.limits.max_header_bytes;
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, ps.h2_max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, ps.h2_stream_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, max_header_bytes_},
  };
  nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, settings, 3);
  nghttp2_session_set_local_window_size(s, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(ps.h2_connection_window));
  worker_.addConnection(this, fresh);
  worker_.stats().global.http2_connections.inc();
  interest_ = EPOLLIN;
  worker_.loop().add(fd_, interest_, this);
  if (!received.empty()) {
    in_session_ = true;
    ssize_t r = nghttp2_session_mem_recv(s, reinterpret_cast<const uint8_t*>(received.data()),
                                         received.size());
    in_session_ = false;
    if (r < 0) {
      close();
      return;
    }
  }
  armIdle();
  flush();
}

const config::Port* H2DownstreamConn::findPort(const config::Snapshot& snap) {
  return port_cache_.find(snap, local_port_, fd_);
}

void H2DownstreamConn::onIo(uint32_t events) {
  if (closed_) return;
  if (events & EPOLLOUT) flush();
  if (closed_) return;
  // A TLS read may wait for the socket to be writable (renegotiation-free TLS 1.3 key
  // updates, a 1.2 handshake flight).
  if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) || transport_.wantsWrite()) readClient();
  if (!closed_) flush();
}

void H2DownstreamConn::readClient() {
  for (int i = 0; i < 4 && !closed_ && !read_paused_; ++i) {
    char buf[16 * 1024];
    ssize_t n = transport_.read(buf, sizeof buf);
    if (n > 0) {
      in_session_ = true;
      ssize_t r = nghttp2_session_mem_recv(session_.get(), reinterpret_cast<uint8_t*>(buf),
                                           static_cast<size_t>(n));
      in_session_ = false;
      if (r < 0) {
        // Fatal for the connection (bad preface, flood, ...): nghttp2 queued a GOAWAY when
        // it could; send it and close.
        worker_.stats().global.http2_abuse_closes.inc();
        nghttp2_session_terminate_session(session_.get(), NGHTTP2_PROTOCOL_ERROR);
        flushNow();
        close();
        return;
      }
      if (out_.size() > kHighWater) read_paused_ = true;
      if (static_cast<size_t>(n) < sizeof buf && transport_.pending() == 0) return;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    close();  // EOF or reset: the client is gone
    return;
  }
}

void H2DownstreamConn::flush() {
  if (!closed_) worker_.loop().deferFlush(this);
}

void H2DownstreamConn::flushNow() {
  if (closed_ || in_session_) return;
  for (;;) {
    while (out_.size() < kHighWater) {
      const uint8_t* data = nullptr;
      in_session_ = true;
      ssize_t n = nghttp2_session_mem_send(session_.get(), &data);
      in_session_ = false;
      if (closed_) return;
      if (n < 0) {
        close();
        return;
      }
      if (n == 0) break;
      out_.append(std::string_view(reinterpret_cast<const char*>(data), static_cast<size_t>(n)));
    }
    if (out_.empty()) break;
    ssize_t w = transport_.write(out_.data(), out_.size());
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
      close();
      return;
    }
    out_.consume(static_cast<size_t>(w));
    if (!out_.empty()) break;
  }
  if (out_.empty()) out_.release();
  if (read_paused_ && out_.size() <= kHighWater / 2) read_paused_ = false;
  if (out_.empty() && !nghttp2_session_want_read(session_.get()) &&
      !nghttp2_session_want_write(session_.get())) {
    close();  // GOAWAY sent, nothing left to do
    return;
  }
  if (draining_ && streams_.empty() && out_.empty()) {
    close();
    return;
  }
  updateInterest();
}

void H2DownstreamConn::updateInterest() {
  uint32_t want = read_paused_ ? 0u : static_cast<uint32_t>(EPOLLIN);
  if (!out_.empty() || transport_.wantsWrite()) want |= EPOLLOUT;
  if (want != interest_) {
    interest_ = want;
    worker_.loop().modify(fd_, want, this);
  }
}

void H2DownstreamConn::armIdle() {
  const config::Port* port = findPort(worker_.currentSnapshot());
  worker_.loop().timers().schedule(&timer_, port ? port->settings.idle_timeout_ms : 60'000);
}

void H2DownstreamConn::onTimer(void* ctx) {
  auto* self = static_cast<H2DownstreamConn*>(ctx);
  if (self->closed_ || !self->streams_.empty()) return;
  nghttp2_session_terminate_session(self->session_.get(), NGHTTP2_NO_ERROR);
  self->flushNow();
  if (!self->closed_) self->close();
}

void H2DownstreamConn::drain() {
  if (closed_ || draining_) return;
  draining_ = true;
  nghttp2_submit_goaway(session_.get(), NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_.get()), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  flush();
}

void H2DownstreamConn::close() {
  if (closed_) return;
  closed_ = true;
  timer_.cancel();
  // Streams still open learn the connection is gone (their upstream work is cancelled).
  std::vector<H2Stream*> open;
  open.swap(streams_);
  for (H2Stream* st : open) {
    nghttp2_session_set_stream_user_data(session_.get(), st->id(), nullptr);
    st->closed(NGHTTP2_CANCEL);
    worker_.loop().deferDelete(st);
  }
  worker_.loop().remove(fd_);
  transport_.close();
  fd_ = -1;
  out_.clear();
  out_.release();
  worker_.removeConnection(this);
  worker_.loop().deferDelete(this);
}

void H2DownstreamConn::submitResponse(H2Stream* stream, const nghttp2_nv* nva, size_t n,
                                      bool end_stream) {
  if (closed_) return;
  nghttp2_data_provider prd;
  prd.source.ptr = stream;
  prd.read_callback = &H2DownstreamConn::readResponse;
  nghttp2_submit_response(session_.get(), stream->id(), nva, n, end_stream ? nullptr : &prd);
  flush();
}

void H2DownstreamConn::submitTrailers(H2Stream* stream, const nghttp2_nv* nva, size_t n) {
  if (closed_) return;
  nghttp2_submit_trailer(session_.get(), stream->id(), nva, n);
}

void H2DownstreamConn::resumeResponse(H2Stream* stream) {
  if (closed_) return;
  nghttp2_session_resume_data(session_.get(), stream->id());
  flush();
}

void H2DownstreamConn::consumeRequest(H2Stream* stream, size_t n) {
  if (closed_ || n == 0) return;
  if (nghttp2_session_consume(session_.get(), stream->id(), n) != 0) {
    nghttp2_session_consume_connection(session_.get(), n);
  }
  flush();
}

void H2DownstreamConn::resetStream(H2Stream* stream, uint32_t error) {
  if (closed_) return;
  nghttp2_submit_rst_stream(session_.get(), NGHTTP2_FLAG_NONE, stream->id(), error);
  flush();
}

void H2DownstreamConn::tooManyEarlyResets() {
  if (streams_opened_ < kLimits.early_reset_min_streams || early_resets_ * 2 < streams_opened_)
    return;
  // Rapid reset: stop serving this client at once.
  worker_.stats().global.http2_abuse_closes.inc();
  nghttp2_session_terminate_session(session_.get(), NGHTTP2_ENHANCE_YOUR_CALM);
}

int H2DownstreamConn::onBeginHeaders(nghttp2_session* s, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2DownstreamConn*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  auto* st = new H2Stream(*self, frame->hd.stream_id);
  nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, st);
  self->streams_.push_back(st);
  ++self->streams_opened_;
  self->worker_.stats().global.http2_streams.inc();
  self->timer_.cancel();
  // The whole header block must arrive within the port's header timeout (slow headers).
  const config::Port* port = self->findPort(self->worker_.currentSnapshot());
  st->armHeaderTimeout(port != nullptr ? port->settings.header_timeout_ms : 10'000);
  return 0;
}

int H2DownstreamConn::onHeader(nghttp2_session* s, const nghttp2_frame* frame, nghttp2_rcbuf* name,
                               nghttp2_rcbuf* value, uint8_t, void* user) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  auto* st = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(s, frame->hd.stream_id));
  if (st == nullptr) return 0;
  if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;  // request trailers: dropped
  auto* self = static_cast<H2DownstreamConn*>(user);
  if (!st->addHeader(name, value, self->max_header_bytes_)) {
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // RST_STREAM; the HPACK state stays sound
  }
  return 0;
}

int H2DownstreamConn::onFrameRecv(nghttp2_session* s, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2DownstreamConn*>(user);
  int32_t id = frame->hd.stream_id;
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS: {
      auto* st = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(s, id));
      if (st == nullptr) return 0;
      bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
      if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        st->headersDone(end);
      } else if (end) {
        st->requestEnd();  // trailers end the request
      }
      return 0;
    }
    case NGHTTP2_DATA: {
      auto* st = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(s, id));
      if (st != nullptr && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) st->requestEnd();
      return 0;
    }
    case NGHTTP2_RST_STREAM: {
      auto* st = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(s, id));
      if (st != nullptr && !st->responseStarted()) {
        ++self->early_resets_;
        self->tooManyEarlyResets();
      }
      return 0;
    }
    default:
      return 0;
  }
}

int H2DownstreamConn::onDataChunk(nghttp2_session* s, uint8_t, int32_t id, const uint8_t* data,
                                  size_t len, void*) {
  auto* st = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(s, id));
  if (st == nullptr) {
    nghttp2_session_consume(s, id, len);
    return 0;
  }
  st->requestData(data, len);
  return 0;
}

int H2DownstreamConn::onStreamClose(nghttp2_session* s, int32_t id, uint32_t error, void* user) {
  auto* self = static_cast<H2DownstreamConn*>(user);
  auto* st = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(s, id));
  if (st == nullptr) return 0;
  nghttp2_session_set_stream_user_data(s, id, nullptr);
  for (H2Stream*& p : self->streams_) {
    if (p != st) continue;
    p = self->streams_.back();
    self->streams_.pop_back();
    break;
  }
  st->closed(error);
  self->worker_.loop().deferDelete(st);
  if (self->streams_.empty() && !self->draining_) self->armIdle();
  return 0;
}

ssize_t H2DownstreamConn::readResponse(nghttp2_session*, int32_t, uint8_t* buf, size_t len,
                                       uint32_t* flags, nghttp2_data_source* source, void*) {
  auto* st = static_cast<H2Stream*>(source->ptr);
  return st->readResponse(buf, len, flags);
}

}  // namespace portico::proxy
