#include "proxy/mirror.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>

#include "net/socket.h"
#include "proxy/worker.h"

namespace portico::proxy {
namespace {

const http1::Limits kMirrorResponseLimits{64 * 1024, 96 * 1024, Worker::kUpstreamMaxHeaders};
constexpr size_t kReadSize = 16 * 1024;

}  // namespace

MirrorRequest::MirrorRequest(Worker& worker, uint32_t backend_stats_id, bool is_head)
    : worker_(worker), backend_stats_id_(backend_stats_id), is_head_(is_head) {
  timer_.set(&MirrorRequest::onTimer, this);
  worker_.addMirror(this);
}

MirrorRequest::~MirrorRequest() = default;

MirrorRequest* MirrorRequest::start(Worker& worker, const config::Backend& backend,
                                    std::string_view head, bool has_body, bool is_head,
                                    uint32_t timeout_ms) {
  stats::GlobalStats& g = worker.stats().global;
  if (backend.endpoints.empty()) {
    g.mirror_failures.inc();
    return nullptr;
  }
  g.mirror_requests.inc();
  const config::Endpoint& endpoint =
      backend.endpoints[worker.nextRoundRobin(backend.stats_id) % backend.endpoints.size()];
  auto* m = new MirrorRequest(worker, backend.stats_id, is_head);
  m->body_ended_ = !has_body;
  m->body_complete_ = !has_body;
  if (!m->connect(endpoint)) {
    m->finish(false, false);
    return has_body ? m : nullptr;
  }
  // A fresh connection to a TLS Backend starts TLS (a pooled one has already: a no-op).
  if (backend.tls) m->up_->startTls(backend.tls, backend.tls_server_name);
  worker.loop().timers().schedule(&m->timer_, timeout_ms);
  m->up_->out.append(head);
  m->flush();
  return has_body ? m : nullptr;
}

bool MirrorRequest::connect(const config::Endpoint& endpoint) {
  up_ = worker_.pool().acquire(endpoint.pool_id, this);
  if (up_ != nullptr) return true;
  bool in_progress = false;
  Result<int> fd = net::connectTcp(endpoint.address, &in_progress);
  if (!fd.ok()) return false;
  stats::BackendStats& bs = worker_.stats().backends.at(backend_stats_id_);
  bs.connections_total.inc();
  up_ = new upstream::UpstreamConn(worker_.loop(), worker_.pool(), *fd, endpoint.pool_id,
                                   backend_stats_id_, in_progress, &bs.connections_active);
  up_->owner = this;
  return true;
}

void MirrorRequest::feed(std::string_view framed) {
  if (finished_ || up_ == nullptr) return;
  if (up_->out.size() + framed.size() > kMaxBuffered) {
    finish(false, false);  // fell behind: drop the copy rather than buffer without bound
    return;
  }
  up_->out.append(framed);
  flush();
}

void MirrorRequest::end(bool complete) {
  body_ended_ = true;
  body_complete_ = complete;
  if (!complete && !finished_) finish(false, false);
  maybeFree();
}

void MirrorRequest::abort() {
  body_ended_ = true;
  if (!finished_) finish(false, false);
  maybeFree();
}

void MirrorRequest::flush() {
  if (up_ == nullptr || up_->connecting) return;
  if (!up_->flush()) {
    finish(false, false);
    return;
  }
  up_->setInterest(up_->out.empty() ? EPOLLIN : EPOLLIN | EPOLLOUT);
}

void MirrorRequest::onUpstreamIo(upstream::UpstreamConn* conn, uint32_t events) {
  if (conn != up_ || finished_) return;
  if (up_->connecting) {
    if (net::connectError(up_->fd()) != 0) {
      finish(false, false);
      return;
    }
    up_->connecting = false;
    flush();
    return;
  }
  if (events & EPOLLOUT) {
    flush();
    if (finished_) return;
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) readResponse();
}

void MirrorRequest::readResponse() {
  char* p = up_->in.reserve(kReadSize);
  ssize_t n = up_->read(p, up_->in.writable());
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n <= 0) {
    bool until_close = resp_head_done_ && resp_body_.kind() == http1::BodyKind::kUntilClose;
    finish(n == 0 && until_close, false);
    return;
  }
  up_->in.commit(static_cast<size_t>(n));
  while (!resp_head_done_) {
    http1::ResponseHead head;
    head.headers = worker_.headerScratch();
    http1::ParseResult r = http1::parseResponseHead(up_->in.view(), kMirrorResponseLimits,
                                                    is_head_ ? "HEAD" : "GET", &head);
    if (r.status == http1::ParseStatus::kIncomplete) return;
    if (r.status == http1::ParseStatus::kError) {
      finish(false, false);
      return;
    }
    up_->in.consume(r.consumed);
    if (head.status < 200) continue;  // interim
    resp_head_done_ = true;
    resp_body_.reset(head.info.body, head.info.content_length);
    if (resp_body_.done()) {
      finish(true, head.info.keep_alive);
      return;
    }
    up_keep_alive_ = head.info.keep_alive;
  }
  while (!up_->in.empty()) {
    http1::BodyDecoder::Step step = resp_body_.decode(up_->in.view());
    if (step.status == http1::ParseStatus::kError) {
      finish(false, false);
      return;
    }
    up_->in.consume(step.consumed);
    if (step.status == http1::ParseStatus::kDone) {
      finish(true, up_keep_alive_ && resp_body_.kind() != http1::BodyKind::kUntilClose);
      return;
    }
    if (step.consumed == 0) break;
  }
}

void MirrorRequest::finish(bool ok, bool reusable) {
  if (finished_) return;
  finished_ = true;
  timer_.cancel();
  if (!ok) worker_.stats().global.mirror_failures.inc();
  if (up_ != nullptr) {
    upstream::UpstreamConn* c = up_;
    up_ = nullptr;
    // Reusable only when the whole request went out and nothing else is pending.
    if (reusable && body_ended_ && body_complete_ && c->out.empty() && c->in.empty() &&
        !c->closed()) {
      ++c->requests;
      worker_.pool().release(c);
    } else {
      c->close();
    }
  }
  maybeFree();
}

void MirrorRequest::maybeFree() {
  if (freed_ || !finished_ || !body_ended_) return;
  freed_ = true;
  worker_.removeMirror(this);
  worker_.loop().deferDelete(this);
}

void MirrorRequest::onTimer(void* ctx) { static_cast<MirrorRequest*>(ctx)->finish(false, false); }

}  // namespace portico::proxy
