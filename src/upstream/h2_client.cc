#include "upstream/h2_client.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "net/socket.h"

namespace portico::upstream {

namespace {
constexpr size_t kOutHighWater = 256 * 1024;
const http2::Limits kClientLimits{};
}  // namespace

H2ClientConn::H2ClientConn(net::EventLoop& loop, H2ClientPool& pool, net::Transport transport,
                           uint32_t pool_id, bool connecting, stats::BackendStats* stats)
    : loop_(loop),
      pool_(pool),
      transport_(std::move(transport)),
      fd_(transport_.fd()),
      pool_id_(pool_id),
      connecting_(connecting),
      stats_(stats) {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_header_callback2(cbs, &H2ClientConn::onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &H2ClientConn::onFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &H2ClientConn::onDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &H2ClientConn::onStreamClose);
  http2::OptionPtr opt = http2::makeOptions(kClientLimits, /*server=*/false);
  nghttp2_session* s = nullptr;
  nghttp2_session_client_new2(&s, cbs, this, opt.get());
  nghttp2_session_callbacks_del(cbs);
  session_.reset(s);
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kClientLimits.initial_stream_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, kClientLimits.max_header_list_size},
  };
  nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, settings, 3);
  nghttp2_session_set_local_window_size(s, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(kClientLimits.connection_window));
  idle_timer_.set(&H2ClientConn::onIdleTimeout, this);
  if (stats_ != nullptr) {
    stats_->connections_total.inc();
    stats_->connections_active.inc();
  }
  interest_ = EPOLLIN | EPOLLOUT;
  loop_.add(fd_, interest_, this);
}

H2ClientConn::~H2ClientConn() = default;  // transport_ closes the socket

bool H2ClientConn::available() const {
  if (fd_ < 0 || goaway_) return false;
  uint32_t max =
      nghttp2_session_get_remote_settings(session_.get(), NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return open_.size() < std::min<uint32_t>(max, 1000);
}

int32_t H2ClientConn::submit(const nghttp2_nv* nva, size_t n, bool has_body,
                             H2StreamHandler* handler) {
  if (fd_ < 0) return -1;
  nghttp2_data_provider prd;
  prd.source.ptr = nullptr;
  prd.read_callback = &H2ClientConn::readBody;
  int32_t id =
      nghttp2_submit_request(session_.get(), nullptr, nva, n, has_body ? &prd : nullptr, nullptr);
  if (id < 0) return id;
  open_.emplace_back(id, handler);
  idle_timer_.cancel();
  return id;
}

void H2ClientConn::resume(int32_t stream) {
  if (fd_ < 0) return;
  nghttp2_session_resume_data(session_.get(), stream);
}

void H2ClientConn::consume(int32_t stream, size_t n) {
  if (fd_ < 0 || n == 0) return;
  if (nghttp2_session_consume(session_.get(), stream, n) != 0) {
    nghttp2_session_consume_connection(session_.get(), n);
  }
}

void H2ClientConn::cancel(int32_t stream, uint32_t error) {
  if (fd_ < 0) return;
  if (find(stream) == nullptr) return;
  detach(stream);
  nghttp2_submit_rst_stream(session_.get(), NGHTTP2_FLAG_NONE, stream, error);
  if (!in_callback_) flush();
}

H2StreamHandler* H2ClientConn::find(int32_t stream) const {
  // The streams of this connection that still have a handler: a few hundred at most. (A
  // request nghttp2 has not sent yet has no stream object, so its user data is not usable.)
  for (const auto& [id, h] : open_)
    if (id == stream) return h;
  return nullptr;
}

void H2ClientConn::detach(int32_t stream) {
  for (auto& entry : open_) {
    if (entry.first != stream) continue;
    entry = open_.back();
    open_.pop_back();
    break;
  }
  if (open_.empty() && fd_ >= 0) armIdle();
}

void H2ClientConn::armIdle() { loop_.timers().schedule(&idle_timer_, pool_.idle_timeout_ms); }

void H2ClientConn::onIdleTimeout(void* ctx) {
  auto* self = static_cast<H2ClientConn*>(ctx);
  if (!self->open_.empty() || self->fd_ < 0) return;
  nghttp2_submit_goaway(self->session_.get(), NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, nullptr, 0);
  self->goaway_ = true;
  self->flushNow();
  self->close();
}

void H2ClientConn::onIo(uint32_t events) {
  if (fd_ < 0) return;
  if (connecting_) {
    int err = net::connectError(fd_);
    if (err != 0) {
      if (stats_ != nullptr) stats_->connect_failures.inc();
      fail(std::string("upstream connect error: ") + std::strerror(err));
      return;
    }
    connecting_ = false;
  }
  if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) || transport_.wantsWrite()) {
    for (int i = 0; i < 4 && fd_ >= 0; ++i) {
      char buf[16 * 1024];
      ssize_t n = transport_.read(buf, sizeof buf);
      if (n > 0) {
        in_callback_ = true;
        ssize_t r = nghttp2_session_mem_recv(session_.get(), reinterpret_cast<uint8_t*>(buf),
                                             static_cast<size_t>(n));
        in_callback_ = false;
        if (r < 0) {
          fail(std::string("upstream HTTP/2 error: ") + nghttp2_strerror(static_cast<int>(r)));
          return;
        }
        if (static_cast<size_t>(n) < sizeof buf && transport_.pending() == 0) break;
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
      fail(n == 0 ? "upstream closed the connection" : "upstream connection reset");
      return;
    }
  }
  if (fd_ >= 0) flush();
}

void H2ClientConn::flush() {
  if (fd_ >= 0) loop_.deferFlush(this);
}

void H2ClientConn::flushNow() {
  if (in_callback_) return;  // the session is running: the outer call sends what is queued
  if (fd_ < 0 || connecting_) {
    updateInterest();
    return;
  }
  for (;;) {
    while (out_.size() < kOutHighWater) {
      const uint8_t* data = nullptr;
      in_callback_ = true;
      ssize_t n = nghttp2_session_mem_send(session_.get(), &data);
      in_callback_ = false;
      if (fd_ < 0) return;
      if (n < 0) {
        fail("HTTP/2 session error");
        return;
      }
      if (n == 0) break;
      out_.append(std::string_view(reinterpret_cast<const char*>(data), static_cast<size_t>(n)));
    }
    if (out_.empty()) break;
    ssize_t w = transport_.write(out_.data(), out_.size());
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
      fail("upstream connection reset");
      return;
    }
    out_.consume(static_cast<size_t>(w));
    if (!out_.empty()) break;
  }
  if (out_.empty()) out_.release();
  if (!nghttp2_session_want_read(session_.get()) && !nghttp2_session_want_write(session_.get()) &&
      out_.empty()) {
    fail("upstream ended the HTTP/2 session");
    return;
  }
  updateInterest();
}

void H2ClientConn::updateInterest() {
  if (fd_ < 0) return;
  uint32_t want = EPOLLIN;
  if (connecting_ || !out_.empty() || transport_.wantsWrite()) want |= EPOLLOUT;
  // A TLS write waiting for the server's handshake flight needs EPOLLIN, not EPOLLOUT.
  if (transport_.wantsRead() && !connecting_) want &= ~static_cast<uint32_t>(EPOLLOUT);
  if (want != interest_) {
    interest_ = want;
    loop_.modify(fd_, want, this);
  }
}

void H2ClientConn::fail(std::string_view why) {
  if (fd_ < 0) return;
  goaway_ = true;
  // Every stream still attached learns it failed; refused when nothing was sent yet.
  std::vector<std::pair<int32_t, H2StreamHandler*>> open;
  open.swap(open_);
  close();
  for (auto& [id, h] : open) h->onH2Reset(NGHTTP2_CONNECT_ERROR, connecting_, why);
}

void H2ClientConn::close() {
  if (fd_ < 0) return;
  idle_timer_.cancel();
  loop_.remove(fd_);
  transport_.close();
  fd_ = -1;
  if (stats_ != nullptr) stats_->connections_active.dec();
  pool_.remove(this);
  loop_.deferDelete(this);
}

int H2ClientConn::onHeader(nghttp2_session*, const nghttp2_frame* frame, nghttp2_rcbuf* name,
                           nghttp2_rcbuf* value, uint8_t, void* user) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  auto* h = static_cast<H2ClientConn*>(user)->find(frame->hd.stream_id);
  if (h == nullptr) return 0;
  h->onH2Header(http2::view(name), http2::view(value), frame->headers.cat == NGHTTP2_HCAT_HEADERS);
  return 0;
}

int H2ClientConn::onFrameRecv(nghttp2_session* s, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2ClientConn*>(user);
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    self->goaway_ = true;
    return 0;
  }
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  int32_t id = frame->hd.stream_id;
  auto* h = static_cast<H2ClientConn*>(user)->find(id);
  if (h == nullptr) return 0;
  bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  if (end) {
    // The response is complete: the handler is done with this stream.
    self->detach(id);
    if (nghttp2_session_get_stream_local_close(s, id) == 0) {
      nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR);
    }
  }
  if (frame->hd.type == NGHTTP2_HEADERS) {
    h->onH2HeadersEnd(frame->headers.cat == NGHTTP2_HCAT_HEADERS, end);
  } else if (end) {
    h->onH2End();
  }
  return 0;
}

int H2ClientConn::onDataChunk(nghttp2_session* s, uint8_t, int32_t id, const uint8_t* data,
                              size_t len, void* user) {
  auto* h = static_cast<H2ClientConn*>(user)->find(id);
  if (h == nullptr) {
    // Nobody reads it any more: give the window back at once.
    nghttp2_session_consume(s, id, len);
    return 0;
  }
  h->onH2Data(std::string_view(reinterpret_cast<const char*>(data), len));
  return 0;
}

int H2ClientConn::onStreamClose(nghttp2_session* s, int32_t id, uint32_t error, void* user) {
  auto* self = static_cast<H2ClientConn*>(user);
  auto* h = static_cast<H2ClientConn*>(user)->find(id);
  if (h == nullptr) return 0;
  self->detach(id);
  if (self->stats_ != nullptr && error != NGHTTP2_REFUSED_STREAM) self->stats_->resets.inc();
  h->onH2Reset(error, error == NGHTTP2_REFUSED_STREAM,
               error == NGHTTP2_REFUSED_STREAM ? "upstream refused the stream"
                                               : "upstream reset the stream");
  return 0;
}

ssize_t H2ClientConn::readBody(nghttp2_session*, int32_t id, uint8_t* buf, size_t len,
                               uint32_t* flags, nghttp2_data_source*, void* user) {
  auto* h = static_cast<H2ClientConn*>(user)->find(id);
  if (h == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  bool eof = false;
  ssize_t n = h->onH2ReadBody(buf, len, &eof);
  if (n < 0) return NGHTTP2_ERR_DEFERRED;
  if (eof) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return n;
}

H2ClientPool::~H2ClientPool() { closeAll(); }

H2ClientConn* H2ClientPool::get(uint32_t pool_id, const net::Address& address,
                                const std::shared_ptr<const net::ClientTlsContext>& tls,
                                const std::string& server_name, stats::BackendStats* stats,
                                std::string* error) {
  if (pool_id >= conns_.size()) conns_.resize(pool_id + 1);
  for (H2ClientConn* c : conns_[pool_id]) {
    if (c->available()) return c;
  }
  bool in_progress = false;
  Result<int> fd = net::connectTcp(address, &in_progress);
  if (!fd.ok()) {
    if (stats != nullptr) stats->connect_failures.inc();
    *error = "upstream connect error: " + fd.status().message();
    return nullptr;
  }
  net::Transport transport(*fd);
  if (tls && !transport.startClientTls(tls, server_name)) {
    *error = "upstream TLS: cannot create a session";
    return nullptr;
  }
  auto* c = new H2ClientConn(loop_, *this, std::move(transport), pool_id, in_progress, stats);
  conns_[pool_id].push_back(c);
  return c;
}

void H2ClientPool::remove(H2ClientConn* conn) {
  if (conn->pool_id_ >= conns_.size()) return;
  auto& v = conns_[conn->pool_id_];
  v.erase(std::remove(v.begin(), v.end(), conn), v.end());
}

void H2ClientPool::closeIdle() {
  for (auto& v : conns_) {
    std::vector<H2ClientConn*> idle;
    for (H2ClientConn* c : v)
      if (c->open_.empty()) idle.push_back(c);
    for (H2ClientConn* c : idle) c->close();
  }
}

void H2ClientPool::closeAll() {
  for (auto& v : conns_) {
    while (!v.empty()) v.back()->fail("gateway shutting down");
  }
}

}  // namespace portico::upstream
