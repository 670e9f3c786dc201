#include "upstream/upstream_conn.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "upstream/pool.h"

namespace portico::upstream {

UpstreamConn::UpstreamConn(net::EventLoop& loop, ConnectionPool& pool, int fd, uint32_t pool_id,
                           uint32_t backend_stats_id, bool is_connecting,
                           stats::Counter* active_gauge, std::atomic<uint32_t>* shared_count)
    : connecting(is_connecting),
      loop_(loop),
      pool_(pool),
      fd_(fd),
      transport_(fd),
      pool_id_(pool_id),
      backend_stats_id_(backend_stats_id),
      active_gauge_(active_gauge),
      shared_count_(shared_count) {
  if (active_gauge_ != nullptr) active_gauge_->inc();
  interest_ = is_connecting ? EPOLLOUT : EPOLLIN;
  loop_.add(fd_, interest_, this);
}

UpstreamConn::~UpstreamConn() = default;  // transport_ closes the socket

void UpstreamConn::onIo(uint32_t events) {
  if (fd_ < 0) return;
  if ((events & EPOLLIN) && transport_.wantsRead() && !out.empty()) {
    // A TLS write waited for the server's handshake flight: continue it first.
    if (!flush()) events |= EPOLLERR;
    setInterest(interest_ | EPOLLIN | (out.empty() ? 0u : static_cast<uint32_t>(EPOLLOUT)));
  }
  if (owner != nullptr) {
    owner->onUpstreamIo(this, events);
  } else {
    pool_.onIdleEvent(this, events);
  }
}

void UpstreamConn::setInterest(uint32_t events) {
  // A TLS write waiting for the server's handshake flight needs EPOLLIN, not EPOLLOUT.
  if (transport_.wantsRead() && (events & EPOLLOUT)) events = (events & ~EPOLLOUT) | EPOLLIN;
  if (fd_ < 0 || events == interest_) return;
  interest_ = events;
  loop_.modify(fd_, events, this);
}

bool UpstreamConn::flush() {
  while (!out.empty()) {
    ssize_t n = transport_.write(out.data(), out.size());
    if (n > 0) {
      out.consume(static_cast<size_t>(n));
      bytes_sent += static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;
  }
  out.release();
  return true;
}

void UpstreamConn::close() {
  if (fd_ < 0) return;
  idle_timer.cancel();
  loop_.remove(fd_);
  transport_.close();
  fd_ = -1;
  if (active_gauge_ != nullptr) active_gauge_->dec();
  if (shared_count_ != nullptr) shared_count_->fetch_sub(1, std::memory_order_relaxed);
  owner = nullptr;
  in.clear();
  out.clear();
  loop_.deferDelete(this);
}

}  // namespace portico::upstream
