// Worker: one thread, one event loop, its listeners, connections, upstream pool and stats.
//
// Workers share nothing on the request path. The main thread talks to a worker only through
// post(): new config snapshots, drain and stop. A worker counts snapshot references locally
// (LocalSnapshot), so requests never touch the shared_ptr's atomic refcount.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "config/snapshot.h"
#include "http1/message.h"
#include "net/event_loop.h"
#include "security/evaluator.h"
#include "stats/stats.h"
#include "upstream/h2_client.h"
#include "upstream/load_balancer.h"
#include "upstream/pool.h"
#include "upstream/shared_state.h"

namespace portico::proxy {

class Connection;
class Listener;
class MirrorRequest;
class ExtAuthzCall;
class ExtAuthzCache;

// A snapshot as one worker sees it: worker-local, non-atomic reference count, and this
// worker's load-balancing state for each of the snapshot's backends.
struct LocalSnapshot {
  std::shared_ptr<const config::Snapshot> snapshot;
  uint32_t refs = 1;  // the worker's own reference while current
  std::vector<std::unique_ptr<upstream::LbWorkerState>> lb;  // by Backend::index
};

// Worker-wide settings that are not part of the routing config.
struct WorkerOptions {
  uint32_t drain_timeout_ms = 30'000;
  upstream::SharedState* shared = nullptr;  // health and backend load, shared by all workers
  // Passive outlier detection: an endpoint crossed a consecutive-error threshold on this
  // worker (called on the worker thread; posts to the main thread).
  std::function<void(uint32_t pool_id, std::shared_ptr<const config::Snapshot> snapshot,
                     uint32_t backend_index)>
      on_outlier;
  // A token named a kid its remote JWKS lacks (called on the worker thread; posts to the main
  // thread, which rate-limits the refresh).
  std::function<void(std::string uri)> on_jwks_refresh;
};

class Worker {
 public:
  Worker(uint32_t index, stats::Shard& shard, WorkerOptions options);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker();

  // Main thread, before start(): the listening sockets of this worker, one per snapshot port
  // (same order as Snapshot::ports), already bound with SO_REUSEPORT.
  void start(std::shared_ptr<const config::Snapshot> snapshot, std::vector<int> listen_fds);
  // Makes `snapshot` current without starting the thread: for tests and fuzz targets that
  // drive loop() themselves on their own thread.
  void attach(std::shared_ptr<const config::Snapshot> snapshot) {
    applySnapshot(std::move(snapshot), {});
  }
  // Any thread.
  void publish(std::shared_ptr<const config::Snapshot> snapshot, std::vector<int> new_fds);
  void drain();
  void join();

  // Loop thread only, below.
  net::EventLoop& loop() { return loop_; }
  LocalSnapshot* acquireSnapshot() {
    ++current_->refs;
    return current_;
  }
  void releaseSnapshot(LocalSnapshot* s);
  const config::Snapshot& currentSnapshot() const { return *current_->snapshot; }
  upstream::ConnectionPool& pool() { return pool_; }
  upstream::SharedState& shared() { return *options_.shared; }
  uint32_t index() const { return index_; }
  // Passive outlier detection: the outcome of one upstream attempt to an endpoint.
  // `server_error`: a 5xx response or a local failure (connect, reset, timeout);
  // `gateway_error`: 502/503/504 or a local failure.
  void recordOutcome(const LocalSnapshot& snap, const config::Backend& backend,
                     const config::Endpoint& endpoint, bool server_error, bool gateway_error);
  stats::Shard& stats() { return shard_; }
  bool draining() const { return draining_; }
  uint32_t random() {
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    return static_cast<uint32_t>(rng_ >> 32);
  }
  uint32_t nextRoundRobin(uint32_t backend_stats_id);
  // Scratch header storage for one head parse at a time, with room for the fields a security
  // policy adds (headerCapacity()).
  http1::Header* headerScratch() { return headers_.data(); }
  uint32_t headerCapacity() const { return static_cast<uint32_t>(headers_.size()); }
  static constexpr uint32_t kSecurityHeaderRoom = 64;
  // A copy of a head's fields kept while a recomputed route is checked (security_side.cc).
  std::vector<http1::Header>& headerBackup() { return header_backup_; }
  // SecurityPolicy caches (verified tokens, basic-auth credentials) and the outcome scratch.
  security::WorkerState& security() { return security_; }
  // At most one post per second per worker: a flood of unknown kids costs the main thread
  // nothing (it rate-limits each URI again).
  void requestJwksRefresh(std::string_view uri) {
    uint64_t now = loop_.nowMs();
    if (!options_.on_jwks_refresh || (jwks_posted_ms_ != 0 && now - jwks_posted_ms_ < 1000)) return;
    jwks_posted_ms_ = now;
    options_.on_jwks_refresh(std::string(uri));
  }
  static constexpr uint32_t kUpstreamMaxHeaders = 256;

  // `fresh`: a new client connection (counted in downstream_connections_total); false for a
  // connection handed from one protocol to another (HTTP/1.1 to HTTP/2).
  void addConnection(Connection* c, bool fresh = true);
  void removeConnection(Connection* c);
  upstream::H2ClientPool& h2Pool() { return h2_pool_; }
  // Requests being proxied now and those among them in a retry: the retry budget's inputs.
  uint32_t active_requests = 0;
  uint32_t active_retries = 0;

  void addMirror(MirrorRequest* m);
  void removeMirror(MirrorRequest* m);
  // External authorization calls in flight (aborted at exit) and the verdict cache (cleared
  // when a new snapshot is installed).
  void addExtAuthz(ExtAuthzCall* c);
  void removeExtAuthz(ExtAuthzCall* c);
  ExtAuthzCache& extAuthzCache() { return *ext_authz_cache_; }

 private:
  void run();
  void applySnapshot(std::shared_ptr<const config::Snapshot> snapshot, std::vector<int> fds);
  void startDrain();
  void maybeFinishDrain();
  static void onDrainTimeout(void* ctx);

  uint32_t index_;
  stats::Shard& shard_;
  WorkerOptions options_;
  net::EventLoop loop_;
  upstream::ConnectionPool pool_;
  upstream::H2ClientPool h2_pool_;
  LocalSnapshot* current_ = nullptr;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<http1::Header> headers_;
  std::vector<http1::Header> header_backup_;
  security::WorkerState security_;
  uint64_t jwks_posted_ms_ = 0;
  std::vector<uint32_t> round_robin_;
  std::vector<uint16_t> consecutive_5xx_;  // by pool id, for outlier detection
  std::vector<uint16_t> consecutive_gateway_;
  Connection* conns_ = nullptr;       // intrusive list of live downstream connections
  MirrorRequest* mirrors_ = nullptr;  // intrusive list of mirror copies in flight

  ExtAuthzCall* ext_authz_calls_ = nullptr;  // intrusive list of ext-authz calls in flight
  std::unique_ptr<ExtAuthzCache> ext_authz_cache_;
  bool draining_ = false;
  net::Timer drain_timer_;
  uint64_t rng_;
  std::thread thread_;
};

}  // namespace portico::proxy
