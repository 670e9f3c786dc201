#include "upstream/pool.h"

#include <sys/epoll.h>

#include <algorithm>

namespace portico::upstream {

ConnectionPool::~ConnectionPool() { closeIdle(); }

UpstreamConn* ConnectionPool::acquire(uint32_t pool_id, UpstreamOwner* owner) {
  if (pool_id >= idle_.size()) return nullptr;
  auto& list = idle_[pool_id];
  while (!list.empty()) {
    UpstreamConn* c = list.back();
    list.pop_back();
    c->idle_timer.cancel();
    if (c->closed()) continue;
    c->owner = owner;
    c->reused = true;
    c->bytes_sent = 0;
    c->bytes_received = 0;
    return c;
  }
  return nullptr;
}

void ConnectionPool::release(UpstreamConn* conn) {
  conn->owner = nullptr;
  conn->in.release();
  conn->out.release();
  if (conn->pool_id_ >= idle_.size()) idle_.resize(conn->pool_id_ + 1);
  auto& list = idle_[conn->pool_id_];
  uint32_t max_idle = conn->max_idle != 0 ? conn->max_idle : settings_.max_idle_per_endpoint;
  if (list.size() >= max_idle ||
      (conn->max_requests != 0 && conn->requests >= conn->max_requests)) {
    conn->close();
    return;
  }
  conn->setInterest(EPOLLIN);
  conn->idle_timer.set(&ConnectionPool::onIdleTimeout, conn);
  loop_.timers().schedule(&conn->idle_timer, conn->idle_timeout_ms != 0
                                                 ? conn->idle_timeout_ms
                                                 : settings_.idle_timeout_ms);
  list.push_back(conn);
}

void ConnectionPool::onIdleTimeout(void* ctx) {
  auto* conn = static_cast<UpstreamConn*>(ctx);
  conn->pool_.removeIdle(conn);
  conn->close();
}

void ConnectionPool::onIdleEvent(UpstreamConn* conn, uint32_t) {
  // An idle HTTP/1.1 connection has nothing to say: data, EOF or error all end it.
  removeIdle(conn);
  conn->close();
}

void ConnectionPool::removeIdle(UpstreamConn* conn) {
  if (conn->pool_id_ >= idle_.size()) return;
  auto& list = idle_[conn->pool_id_];
  auto it = std::find(list.begin(), list.end(), conn);
  if (it != list.end()) list.erase(it);
}

void ConnectionPool::closeIdle() {
  for (auto& list : idle_) {
    for (UpstreamConn* c : list) c->close();
    list.clear();
  }
}

size_t ConnectionPool::idleCount() const {
  size_t n = 0;
  for (const auto& l : idle_) n += l.size();
  return n;
}

}  // namespace portico::upstream
