#include "proxy/worker.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "proxy/downstream_conn.h"
#include "proxy/ext_authz.h"
#include "proxy/listener.h"
#include "proxy/mirror.h"

namespace portico::proxy {

Worker::Worker(uint32_t index, stats::Shard& shard, WorkerOptions options)
    : index_(index),
      shard_(shard),
      options_(options),
      pool_(loop_, upstream::PoolSettings{}),
      h2_pool_(loop_),
      ext_authz_cache_(std::make_unique<ExtAuthzCache>()),
      rng_(0x9E3779B97F4A7C15ull ^
           (static_cast<uint64_t>(index + 1) *
            static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()))) {
  drain_timer_.set(&Worker::onDrainTimeout, this);
}

Worker::~Worker() {
  join();
  // Connections still open at exit (only after a forced stop) are closed here.
  while (conns_ != nullptr) conns_->close();
  while (mirrors_ != nullptr) mirrors_->abort();
  while (ext_authz_calls_ != nullptr) ext_authz_calls_->abort();
  listeners_.clear();
  if (current_ != nullptr) releaseSnapshot(current_);
}

void Worker::start(std::shared_ptr<const config::Snapshot> snapshot, std::vector<int> fds) {
  applySnapshot(std::move(snapshot), std::move(fds));
  thread_ = std::thread([this] { run(); });
}

void Worker::run() {
  std::string name = "portico-w" + std::to_string(index_);
  pthread_setname_np(pthread_self(), name.c_str());
  loop_.run();
  // Drained or stopped: close whatever remains on this thread.
  while (conns_ != nullptr) conns_->close();
  while (mirrors_ != nullptr) mirrors_->abort();
  while (ext_authz_calls_ != nullptr) ext_authz_calls_->abort();
  pool_.closeIdle();
  h2_pool_.closeIdle();
  listeners_.clear();
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::publish(std::shared_ptr<const config::Snapshot> snapshot, std::vector<int> fds) {
  loop_.post([this, snapshot = std::move(snapshot), fds = std::move(fds)]() mutable {
    applySnapshot(std::move(snapshot), std::move(fds));
  });
}

void Worker::applySnapshot(std::shared_ptr<const config::Snapshot> snapshot, std::vector<int> fds) {
  // Listeners: keep those whose (address, port) survives, open the new ones (fds given by the
  // main thread in Snapshot::ports order, -1 where an existing listener is kept).
  std::vector<std::unique_ptr<Listener>> next;
  for (size_t i = 0; i < snapshot->ports.size(); ++i) {
    const config::Port& p = snapshot->ports[i];
    std::unique_ptr<Listener> kept;
    for (auto& l : listeners_) {
      if (l && l->port() == p.port && l->bind().ipString() == p.bind.ipString()) {
        kept = std::move(l);
        break;
      }
    }
    if (kept) {
      if (i < fds.size() && fds[i] >= 0) ::close(fds[i]);
      next.push_back(std::move(kept));
    } else if (i < fds.size() && fds[i] >= 0) {
      if (draining_) {
        ::close(fds[i]);
      } else {
        next.push_back(std::make_unique<Listener>(*this, fds[i], p.bind, p.port));
      }
    }
  }
  listeners_ = std::move(next);  // listeners no longer configured close here

  uint32_t max_headers = Worker::kUpstreamMaxHeaders;
  for (const auto& p : snapshot->ports)
    max_headers = std::max(max_headers, p.settings.limits.max_headers);
  max_headers += kSecurityHeaderRoom;
  if (headers_.size() < max_headers) headers_.resize(max_headers);
  if (round_robin_.size() < snapshot->backend_stats_count) {
    round_robin_.resize(snapshot->backend_stats_count, 0);
  }
  auto* local = new LocalSnapshot{std::move(snapshot), 1, {}};
  for (const auto& b : local->snapshot->backends) {
    local->lb.push_back(
        b->balancer ? std::make_unique<upstream::LbWorkerState>(*b->balancer, index_) : nullptr);
  }
  LocalSnapshot* old = current_;
  current_ = local;
  // Cached ext-authz verdicts are keyed by config address, which a later snapshot may reuse.
  ext_authz_cache_->clear();
  if (old != nullptr) releaseSnapshot(old);
}

void Worker::releaseSnapshot(LocalSnapshot* s) {
  if (--s->refs == 0) delete s;
}

uint32_t Worker::nextRoundRobin(uint32_t backend_stats_id) {
  if (backend_stats_id >= round_robin_.size()) round_robin_.resize(backend_stats_id + 1, 0);
  return round_robin_[backend_stats_id]++;
}

void Worker::addConnection(Connection* c, bool fresh) {
  c->prev = nullptr;
  c->next = conns_;
  if (conns_ != nullptr) conns_->prev = c;
  conns_ = c;
  if (fresh) shard_.global.downstream_connections_total.inc();
  shard_.global.downstream_connections_active.inc();
}

void Worker::recordOutcome(const LocalSnapshot& snap, const config::Backend& backend,
                           const config::Endpoint& endpoint, bool server_error,
                           bool gateway_error) {
  if (!backend.passive_health) return;
  const config::PassiveHealthSettings& p = *backend.passive_health;
  uint32_t id = endpoint.health_id;
  if (id >= consecutive_5xx_.size()) {
    consecutive_5xx_.resize(id + 1, 0);
    consecutive_gateway_.resize(id + 1, 0);
  }
  uint16_t& c5 = consecutive_5xx_[id];
  uint16_t& cg = consecutive_gateway_[id];
  c5 = server_error ? static_cast<uint16_t>(std::min<uint32_t>(c5 + 1u, 60000)) : 0;
  cg = gateway_error ? static_cast<uint16_t>(std::min<uint32_t>(cg + 1u, 60000)) : 0;
  bool trip = (p.consecutive_5xx != 0 && c5 == p.consecutive_5xx) ||
              (p.consecutive_gateway_errors != 0 && cg == p.consecutive_gateway_errors);
  if (!trip || !options_.on_outlier) return;
  c5 = cg = 0;
  options_.on_outlier(id, snap.snapshot, backend.index);
}

void Worker::addMirror(MirrorRequest* m) {
  m->prev = nullptr;
  m->next = mirrors_;
  if (mirrors_ != nullptr) mirrors_->prev = m;
  mirrors_ = m;
}

void Worker::removeMirror(MirrorRequest* m) {
  if (m->prev != nullptr) {
    m->prev->next = m->next;
  } else if (mirrors_ == m) {
    mirrors_ = m->next;
  }
  if (m->next != nullptr) m->next->prev = m->prev;
  m->prev = m->next = nullptr;
}

void Worker::addExtAuthz(ExtAuthzCall* c) {
  c->prev = nullptr;
  c->next = ext_authz_calls_;
  if (ext_authz_calls_ != nullptr) ext_authz_calls_->prev = c;
  ext_authz_calls_ = c;
}

void Worker::removeExtAuthz(ExtAuthzCall* c) {
  if (c->prev != nullptr) {
    c->prev->next = c->next;
  } else if (ext_authz_calls_ == c) {
    ext_authz_calls_ = c->next;
  }
  if (c->next != nullptr) c->next->prev = c->prev;
  c->prev = c->next = nullptr;
}

void Worker::removeConnection(Connection* c) {
  if (c->prev != nullptr) {
    c->prev->next = c->next;
  } else if (conns_ == c) {
    conns_ = c->next;
  }
  if (c->next != nullptr) c->next->prev = c->prev;
  c->prev = c->next = nullptr;
  shard_.global.downstream_connections_active.dec();
  if (draining_) maybeFinishDrain();
}

void Worker::drain() {
  loop_.post([this] { startDrain(); });
}

void Worker::startDrain() {
  if (draining_) return;
  draining_ = true;
  for (auto& l : listeners_) l->close();  // stop accepting first
  listeners_.clear();
  pool_.closeIdle();
  h2_pool_.closeIdle();
  loop_.timers().schedule(&drain_timer_, options_.drain_timeout_ms);
  for (Connection* c = conns_; c != nullptr;) {
    Connection* next = c->next;
    c->drain();
    c = next;
  }
  maybeFinishDrain();
}

void Worker::maybeFinishDrain() {
  if (conns_ == nullptr) {
    drain_timer_.cancel();
    loop_.stop();
  }
}

void Worker::onDrainTimeout(void* ctx) {
  auto* self = static_cast<Worker*>(ctx);
  while (self->conns_ != nullptr) self->conns_->close();
  self->loop_.stop();
}

}  // namespace portico::proxy
