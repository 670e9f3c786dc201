// The gateway process: loads and compiles the config, binds every worker's listeners, runs the
// admin listener and signal handling on the main thread, publishes new snapshots on SIGHUP,
// and drains on SIGTERM/SIGINT.
#include "cli/gateway_command.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "admin/admin_server.h"
#include "cli/explain_command.h"
#include "config/compiler.h"
#include "config/file_watcher.h"
#include "config/loader.h"
#include "config/stats_ids.h"
#include "config/syntax.h"
#include "net/dns_resolver.h"
#include "net/socket.h"
#include "proxy/worker.h"
#include "security/jwks_fetcher.h"
#include "stats/prometheus.h"
#include "upstream/health_checker.h"
#include "upstream/outlier_detector.h"
#include "upstream/shared_state.h"

namespace portico::cli {

namespace {

struct Options {
  std::string config_path;
  std::string admin = "127.0.0.1:9901";
  uint32_t workers = 0;
  uint32_t drain_timeout_ms = 30'000;
  std::string zone;                      // this gateway's zone, for zone-aware load balancing
  std::vector<std::string> dns_servers;  // "ip:port"; empty: /etc/resolv.conf
};

void usage() {
  std::fprintf(
      stderr,
      "usage: portico gateway -c PATH [--admin HOST:PORT|none] [--workers N]\n"
      "                       [--drain-timeout DURATION] [--zone ZONE]\n"
      "                       [--dns-server IP:PORT]...\n"
      "  -c, --config PATH     YAML file or folder of YAML files (Gateway, HTTPRoute,\n"
      "                        Backend, TrafficPolicy resources)\n"
      "  --admin HOST:PORT     admin listener (default 127.0.0.1:9901; 'none' to disable)\n"
      "  --workers N           worker threads (default: number of cores)\n"
      "  --drain-timeout D     how long SIGTERM waits for in-flight requests (default 30s)\n"
      "  --zone ZONE           this gateway's zone: traffic prefers Backend endpoints in it\n"
      "  --dns-server IP:PORT  resolver for DNS endpoints (repeatable; default resolv.conf)\n");
}

net::DnsOptions dnsOptions(const Options& o) {
  net::DnsOptions d;
  d.servers = o.dns_servers;
  return d;
}

class Gateway {
 public:
  explicit Gateway(Options options) : options_(std::move(options)) {}

  int run() {
    // Watch before the first load, so that a change made while starting is not missed (the
    // reload runs once the loop runs).
    watcher_ =
        std::make_unique<config::FileWatcher>(loop_, options_.config_path, [this] { reload(); });
    std::shared_ptr<const config::Snapshot> snapshot = loadConfig(/*initial=*/true);
    if (!snapshot) return 1;
    if (snapshot->ports.empty()) {
      std::fprintf(stderr, "portico: error: the configuration defines no usable listener\n");
      return 1;
    }
    uint32_t n = options_.workers;
    for (uint32_t i = 0; i < n; ++i) shards_.push_back(std::make_unique<stats::Shard>());
    // Bind every worker's sockets before starting any worker, so a port in use fails fast.
    std::vector<std::vector<int>> fds(n);
    for (uint32_t w = 0; w < n; ++w) {
      for (const auto& port : snapshot->ports) {
        Result<int> fd = net::listenTcp(port.bind, /*reuse_port=*/true);
        if (!fd.ok()) {
          std::fprintf(stderr, "portico: error: %s\n", fd.status().message().c_str());
          return 1;
        }
        fds[w].push_back(*fd);
      }
    }
    if (!startAdmin()) return 1;
    for (const auto& port : snapshot->ports) {
      std::fprintf(stderr, "portico: listening on %s\n", port.bind.toString().c_str());
    }
    current_ = snapshot;
    proxy::WorkerOptions wopts;
    wopts.drain_timeout_ms = options_.drain_timeout_ms;
    wopts.shared = &shared_;
    wopts.on_outlier = [this](uint32_t pool_id, std::shared_ptr<const config::Snapshot> snap,
                              uint32_t backend_index) {
      loop_.post([this, pool_id, snap = std::move(snap), backend_index] {
        outliers_.report(pool_id, *snap->backends[backend_index]);
      });
    };
    wopts.on_jwks_refresh = [this](std::string uri) {
      loop_.post([this, uri = std::move(uri)] { jwks_.refreshSoon(uri); });
    };
    applied(snapshot);
    for (uint32_t w = 0; w < n; ++w) {
      workers_.push_back(std::make_unique<proxy::Worker>(w, *shards_[w], wopts));
      workers_.back()->start(snapshot, std::move(fds[w]));
    }
    std::fprintf(stderr, "portico: %u worker(s) running\n", n);
    if (!watcher_->ok()) {
      std::fprintf(stderr, "portico: warning: cannot watch %s; reload with SIGHUP\n",
                   options_.config_path.c_str());
    }
    loop_.run();
    if (joiner_.joinable()) joiner_.join();
    for (auto& w : workers_) w->join();
    std::fprintf(stderr, "portico: stopped\n");
    return 0;
  }

  bool setUpSignals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    // Blocked in every thread (workers inherit the mask); read through a signalfd here.
    if (pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) return false;
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) return false;
    signals_ = std::make_unique<SignalHandler>(*this, sfd);
    return loop_.add(sfd, EPOLLIN, signals_.get());
  }

 private:
  class SignalHandler final : public net::IoHandler {
   public:
    SignalHandler(Gateway& g, int fd) : g_(g), fd_(fd) {}
    ~SignalHandler() override { ::close(fd_); }
    void onIo(uint32_t) override {
      signalfd_siginfo si;
      while (::read(fd_, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGHUP) {
          g_.reload();
        } else {
          g_.shutdown();
        }
      }
    }

   private:
    Gateway& g_;
    int fd_;
  };

  static double msSince(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
        .count();
  }

  std::shared_ptr<const config::Snapshot> loadConfig(bool initial) {
    auto start = std::chrono::steady_clock::now();
    config::LoadResult loaded = loader_.load(options_.config_path);
    load_ms_ = msSince(start);
    for (const auto& d : loaded.diagnostics) std::fprintf(stderr, "%s\n", d.format().c_str());
    // A file that cannot be read, or a document that is not even a resource, leaves us unable
    // to tell what the user meant: at start-up that is fatal, on reload the running
    // configuration stays. Errors inside well-formed resources reject those resources alone.
    if (loaded.outcome != config::LoadOutcome::kOk ||
        (!initial && config::hasErrors(loaded.diagnostics))) {
      std::fprintf(stderr, "portico: %s: configuration %s\n", options_.config_path.c_str(),
                   initial ? "not loaded" : "not reloaded; keeping the running configuration");
      return nullptr;
    }
    // Shared with the snapshot (its config dump); changed below only before a recompile.
    auto shared = std::make_shared<std::vector<config::Resource>>(std::move(loaded.resources));
    std::vector<config::Resource>& resources = *shared;
    start = std::chrono::steady_clock::now();
    config::CompileResult compiled = config::compile(shared, ids_, ++version_, compileOptions());
    for (const auto& d : compiled.diagnostics) std::fprintf(stderr, "%s\n", d.format().c_str());
    if (!initial) {
      // A resource that became invalid keeps serving its last good version.
      std::set<std::string> bad = rejected(compiled.diagnostics);
      std::map<std::string, const config::Resource*> good;  // last good versions of `bad`
      if (!bad.empty() && last_resources_) {
        for (const auto& r : *last_resources_) {
          std::string id = r.id();
          if (bad.count(id) != 0 && last_bad_.count(id) == 0) good.emplace(std::move(id), &r);
        }
      }
      bool substituted = false;
      for (auto& r : resources) {
        if (good.empty()) break;
        auto it = good.find(r.id());
        if (it == good.end()) continue;
        std::fprintf(stderr, "portico: %s is invalid: keeping its last good version (%s)\n",
                     r.id().c_str(), it->second->file.c_str());
        r = *it->second;
        substituted = true;
      }
      if (substituted) {
        compiled = config::compile(shared, ids_, version_, compileOptions());
        for (const auto& d : compiled.diagnostics) {
          std::fprintf(stderr, "%s\n", d.format().c_str());
        }
      }
    }
    compile_ms_ = msSince(start);
    compile_timings_ = compiled.timings.describe();
    // The resources of this version without the invalid ones are the last good versions.
    last_resources_ = shared;
    last_bad_ = rejected(compiled.diagnostics);
    return compiled.snapshot;
  }

  config::CompileOptions compileOptions() {
    config::CompileOptions o;
    o.local_zone = options_.zone;
    o.dns = &dns_answers_;
    o.jwks = &jwks_.keySets();
    o.cache = &compile_cache_;
    return o;
  }

  // "Kind ns/name" of every resource with an error diagnostic.
  static std::set<std::string> rejected(const std::vector<config::Diagnostic>& diagnostics) {
    std::set<std::string> out;
    for (const auto& d : diagnostics) {
      if (d.severity == config::Severity::kError && !d.kind.empty()) {
        out.insert(d.kind + ' ' + d.ns + '/' + d.name);
      }
    }
    return out;
  }

  void reload() {
    if (draining_) return;
    std::shared_ptr<const config::Snapshot> next = loadConfig(/*initial=*/false);
    if (!next) return;
    // New (address, port) pairs get fresh sockets; workers keep the listeners they have.
    std::vector<std::vector<int>> fds(workers_.size());
    for (size_t w = 0; w < workers_.size(); ++w) {
      for (const auto& port : next->ports) {
        bool existed = false;
        for (const auto& old : current_->ports) {
          if (old.port == port.port && old.bind.ipString() == port.bind.ipString()) existed = true;
        }
        int fd = -1;
        if (!existed) {
          Result<int> r = net::listenTcp(port.bind, true);
          if (!r.ok()) {
            std::fprintf(stderr, "portico: error: %s (listener skipped)\n",
                         r.status().message().c_str());
          } else {
            fd = *r;
          }
        }
        fds[w].push_back(fd);
      }
    }
    publish(next, std::move(fds));
  }

  // Serves `next` on every worker (fds: new listening sockets per worker, in port order).
  void publish(const std::shared_ptr<const config::Snapshot>& next,
               std::vector<std::vector<int>> fds) {
    // The previous snapshot is freed here, on the main thread, once no worker uses it: freeing
    // a large one takes milliseconds that a worker would take from its requests.
    retiring_.push_back(std::move(current_));
    if (!retire_timer_.armed()) loop_.timers().schedule(&retire_timer_, kRetireCheckMs);
    current_ = next;
    for (size_t w = 0; w < workers_.size(); ++w) workers_[w]->publish(next, std::move(fds[w]));
    applied(next);
    std::fprintf(stderr,
                 "portico: configuration version %llu applied (%zu documents parsed, %zu "
                 "reused; load %.1f ms: read %.1f, split %.1f, documents %.1f; compile %.1f ms: "
                 "%s)\n",
                 static_cast<unsigned long long>(next->version), loader_.parsedDocuments(),
                 loader_.reusedDocuments(), load_ms_, loader_.timings().read_ms,
                 loader_.timings().split_ms, loader_.timings().documents_ms, compile_ms_,
                 compile_timings_.c_str());
  }

  static void onRetireTimer(void* ctx) {
    auto* g = static_cast<Gateway*>(ctx);
    std::erase_if(g->retiring_, [](const std::shared_ptr<const config::Snapshot>& s) {
      return s.use_count() == 1;  // only this list: every worker has moved on
    });
    if (!g->retiring_.empty()) g->loop_.timers().schedule(&g->retire_timer_, kRetireCheckMs);
  }

  // Main-thread follow-up of a snapshot now serving: the active health checks it asks for.
  void applied(const std::shared_ptr<const config::Snapshot>& snapshot) {
    std::vector<upstream::CheckTarget> targets;
    for (const auto& b : snapshot->backends) {
      if (!b->active_health) continue;
      const config::ActiveHealthSettings& a = *b->active_health;
      upstream::ActiveCheckConfig c;
      c.type = a.http   ? upstream::ActiveCheckConfig::Type::kHttp
               : a.grpc ? upstream::ActiveCheckConfig::Type::kGrpc
                        : upstream::ActiveCheckConfig::Type::kTcp;
      c.grpc_service = a.grpc_service;
      c.path = a.path;
      c.host = a.host;
      if (!a.expected_statuses.empty()) c.expected_statuses = a.expected_statuses;
      c.interval_ms = a.interval_ms;
      c.timeout_ms = a.timeout_ms;
      c.healthy_threshold = a.healthy_threshold;
      c.unhealthy_threshold = a.unhealthy_threshold;
      c.jitter_ms = a.jitter_ms;
      for (const auto& e : b->endpoints)
        targets.push_back(upstream::CheckTarget{e.health_id, e.address, b->ns + "/" + b->name, c});
    }
    checker_.update(std::move(targets));
    // DNS endpoints: resolve the names in use, forget the others.
    std::set<std::string> names(snapshot->dns_names.begin(), snapshot->dns_names.end());
    for (const std::string& n : names) reresolver_.track(n);
    for (const std::string& n : dns_tracked_) {
      if (names.count(n) != 0) continue;
      reresolver_.untrack(n);
      dns_answers_.by_name.erase(n);
    }
    dns_tracked_ = std::move(names);
    // Remote JWKS of SecurityPolicies: fetched (and refreshed) on this loop; a changed key set
    // recompiles (jwksChanged).
    std::vector<std::pair<std::string, uint32_t>> jwks;
    for (const auto& src : snapshot->jwks_sources) jwks.emplace_back(src.uri, src.refresh_ms);
    jwks_.setSources(jwks);
    // Certificate and CA files of HTTPS listeners: a change reloads, as a config change does.
    // Watchers are only added (never freed inside a reload that a watcher may have started).
    for (const auto& p : snapshot->ports) {
      if (!p.tls) continue;
      for (const auto& l : p.tls->settings().listeners) {
        for (const std::string& f : l.files) {
          if (tls_watchers_.count(f) == 0)
            tls_watchers_[f] = std::make_unique<config::FileWatcher>(loop_, f, [this] {
              // Rotation tools write a certificate and its key one after the other: reload
              // once both are in place, not between them (a mismatched pair).
              loop_.timers().schedule(&tls_reload_timer_, kTlsSettleMs);
            });
        }
      }
    }
  }

  // A DNS endpoint name resolved to a new address set: recompile the running resources.
  void dnsChanged(const std::string& name, const std::vector<net::Address>& addresses) {
    std::vector<std::string>& ips = dns_answers_.by_name[name];
    ips.clear();
    for (const net::Address& a : addresses) ips.push_back(a.ipString());
    std::fprintf(stderr, "portico: dns: %s -> %zu address(es)\n", name.c_str(), ips.size());
    recompileRunning();
  }

  // A remote JWKS changed (first fetch, rotation): recompile the running resources.
  void jwksChanged() {
    std::fprintf(stderr, "portico: jwks: a remote key set changed; recompiling\n");
    recompileRunning();
  }

  // The running resources compiled again with new inputs (DNS answers, JWKS) and published;
  // no listener changes.
  void recompileRunning() {
    if (draining_ || workers_.empty()) return;
    if (!last_resources_) return;
    config::CompileResult compiled =
        config::compile(last_resources_, ids_, ++version_, compileOptions());
    std::vector<std::vector<int>> fds(workers_.size());
    for (auto& f : fds) f.assign(compiled.snapshot->ports.size(), -1);  // same ports
    publish(compiled.snapshot, std::move(fds));
  }

  // GET /backends: every backend with its endpoints, their health and the breaker loads.
  std::string backendsJson() {
    nlohmann::json out = nlohmann::json::array();
    std::map<uint32_t, upstream::TargetStatus> checks;
    for (auto& t : checker_.status()) checks.emplace(t.pool_id, t);
    static const char* kLb[] = {"RoundRobin", "LeastRequest", "Random", "RingHash", "Maglev"};
    for (const auto& b : current_->backends) {
      nlohmann::json eps = nlohmann::json::array();
      for (const auto& e : b->endpoints) {
        uint8_t flags = shared_.health.flags(e.health_id);
        nlohmann::json ep = {
            {"address", e.authority},
            {"weight", e.weight},
            {"priority", e.priority},
            {"zone", e.zone},
            {"healthy", flags == 0},
            {"active_unhealthy", (flags & upstream::HealthTable::kActiveUnhealthy) != 0},
            {"ejected", (flags & upstream::HealthTable::kEjected) != 0}};
        if (!e.hostname.empty()) ep["hostname"] = e.hostname;
        if (const auto* o = outliers_.state(e.health_id)) ep["ejections"] = o->ejections;
        if (auto it = checks.find(e.health_id); it != checks.end()) {
          ep["health_check"] = {{"healthy", it->second.healthy},
                                {"last_result", it->second.last_result},
                                {"consecutive_successes", it->second.consecutive_successes},
                                {"consecutive_failures", it->second.consecutive_failures},
                                {"checks", it->second.checks}};
        }
        eps.push_back(std::move(ep));
      }
      upstream::BackendLoad& load = shared_.load(b->stats_id);
      const config::CircuitBreakerSettings& cb = b->circuit_breaker;
      auto pair = [](const std::atomic<uint32_t>& now, uint32_t max) {
        return nlohmann::json{{"current", now.load(std::memory_order_relaxed)}, {"max", max}};
      };
      out.push_back({{"name", b->ns + "/" + b->name},
                     {"load_balancer", kLb[static_cast<int>(b->lb.type)]},
                     {"endpoints", std::move(eps)},
                     {"circuit_breaker",
                      {{"connections", pair(load.connections, cb.max_connections)},
                       {"pending_requests", pair(load.pending, cb.max_pending_requests)},
                       {"requests", pair(load.requests, cb.max_parallel_requests)},
                       {"retries", pair(load.retries, cb.max_parallel_retries)}}}});
    }
    return nlohmann::json{{"backends", out}}.dump(2) + "\n";
  }

  void shutdown() {
    if (draining_) return;
    draining_ = true;
    std::fprintf(stderr, "portico: draining (up to %u ms)\n", options_.drain_timeout_ms);
    for (auto& w : workers_) w->drain();
    joiner_ = std::thread([this] {
      for (auto& w : workers_) w->join();
      loop_.stop();
    });
  }

  bool startAdmin() {
    if (options_.admin == "none") return true;
    auto addr = net::Address::parseHostPort(options_.admin);
    if (!addr) {
      std::fprintf(stderr, "portico: error: --admin: '%s' is not HOST:PORT\n",
                   options_.admin.c_str());
      return false;
    }
    Result<int> fd = net::listenTcp(*addr, false, 128);
    if (!fd.ok()) {
      std::fprintf(stderr, "portico: error: admin: %s\n", fd.status().message().c_str());
      return false;
    }
    std::fprintf(stderr, "portico: admin listening on %s\n",
                 net::localAddress(*fd).toString().c_str());
    admin_ = std::make_unique<admin::AdminServer>(
        loop_, *fd, [this](std::string_view method, std::string_view path, std::string_view query) {
          return handleAdmin(method, path, query);
        });
    return true;
  }

  // Percent-decodes a query parameter value ('+' is a space).
  static std::string decodeQueryValue(std::string_view v) {
    std::string out;
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] == '+') {
        out += ' ';
      } else if (v[i] == '%' && i + 2 < v.size() &&
                 std::isxdigit(static_cast<unsigned char>(v[i + 1])) &&
                 std::isxdigit(static_cast<unsigned char>(v[i + 2]))) {
        out += static_cast<char>(std::stoi(std::string(v.substr(i + 1, 2)), nullptr, 16));
        i += 2;
      } else {
        out += v[i];
      }
    }
    return out;
  }

  // GET /explain?host=H&path=P[&method=M][&header=k:v]...[&port=N][&format=json]
  admin::AdminResponse explainEndpoint(std::string_view query) {
    cli::ExplainRequest req;
    bool json = false;
    while (!query.empty()) {
      size_t amp = query.find('&');
      std::string_view pair = query.substr(0, amp);
      size_t eq = pair.find('=');
      std::string key(pair.substr(0, eq));
      std::string value = eq == std::string_view::npos ? "" : decodeQueryValue(pair.substr(eq + 1));
      if (key == "host") {
        req.host = value;
      } else if (key == "path") {
        req.path = value;
      } else if (key == "method") {
        req.method = value;
      } else if (key == "port") {
        req.port = static_cast<uint16_t>(std::atoi(value.c_str()));
      } else if (key == "format") {
        json = value == "json";
      } else if (key == "header") {
        cli::addHeaderArg(&req, value);
      }
      if (amp == std::string_view::npos) break;
      query.remove_prefix(amp + 1);
    }
    admin::AdminResponse r;
    if (req.path.empty() || req.path[0] != '/') {
      r.status = 400;
      r.body = "usage: /explain?host=H&path=/P[&method=M][&header=k:v]...[&port=N][&format=json]\n";
      return r;
    }
    if (json) r.content_type = "application/json";
    r.body = explainRequest(*current_, req, json);
    return r;
  }

  admin::AdminResponse handleAdmin(std::string_view method, std::string_view path,
                                   std::string_view query) {
    admin::AdminResponse r;
    if (method != "GET" && method != "HEAD") {
      r.status = 405;
      r.body = "admin endpoints are read-only (GET)\n";
      return r;
    }
    if (path == "/ready") {
      r.status = draining_ ? 503 : 200;
      r.body = draining_ ? "DRAINING\n" : "LIVE\n";
    } else if (path == "/stats/prometheus" || path == "/metrics") {
      std::vector<const stats::Shard*> shards;
      for (const auto& s : shards_) shards.push_back(s.get());
      stats::ExpositionNames names{&current_->route_stat_names, &current_->backend_stat_names};
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      r.body = stats::renderPrometheus(shards, names);
    } else if (path == "/explain") {
      return explainEndpoint(query);
    } else if (path == "/backends") {
      r.content_type = "application/json";
      r.body = backendsJson();
    } else if (path == "/config_dump") {
      r.content_type = "application/json";
      r.body = config::renderConfigDump(*current_);
      if (r.body.empty() || r.body.back() != '\n') r.body += '\n';
    } else if (path == "/" || path == "/help") {
      r.body =
          "admin commands are:\n"
          "  /ready: 200 LIVE while serving, 503 DRAINING after SIGTERM\n"
          "  /stats/prometheus: metrics in Prometheus text format 0.0.4\n"
          "  /config_dump: the running configuration and each resource's status (JSON)\n"
          "  /backends: backends, endpoints, health checks, ejections, circuit breakers (JSON)\n"
          "  /explain?host=H&path=/P[&method=M][&header=k:v][&port=N][&format=json]:\n"
          "      why a request goes where it goes\n";
    } else {
      r.status = 404;
      r.body = "unknown admin path; see /help\n";
    }
    return r;
  }

  Options options_;
  net::EventLoop loop_;
  upstream::SharedState shared_;  // health and backend loads, read by every worker
  upstream::HealthChecker checker_{loop_, shared_.health};
  upstream::OutlierDetector outliers_{loop_, shared_.health};
  net::DnsResolver dns_{loop_, dnsOptions(options_)};
  security::JwksFetcher jwks_{loop_, dns_, [this] { jwksChanged(); }};
  net::DnsReresolver reresolver_{
      loop_, dns_, net::ReresolveOptions{},
      [this](const std::string& name, const std::vector<net::Address>& a) { dnsChanged(name, a); },
      [](const std::string& name, const Status& error) {
        std::fprintf(stderr, "portico: dns: %s: %s (keeping the last answer)\n", name.c_str(),
                     error.message().c_str());
      }};
  config::DnsAnswers dns_answers_;
  std::set<std::string> dns_tracked_;
  config::StatsIds ids_;
  uint64_t version_ = 0;
  std::shared_ptr<const config::Snapshot> current_;
  // Replaced snapshots, kept until the workers release them (then freed on this thread).
  static constexpr uint32_t kRetireCheckMs = 200;
  std::vector<std::shared_ptr<const config::Snapshot>> retiring_;
  net::Timer retire_timer_{&Gateway::onRetireTimer, this};
  static constexpr uint32_t kTlsSettleMs = 300;  // after the last certificate file change
  net::Timer tls_reload_timer_{[](void* self) { static_cast<Gateway*>(self)->reload(); }, this};
  std::vector<std::unique_ptr<stats::Shard>> shards_;
  std::vector<std::unique_ptr<proxy::Worker>> workers_;
  std::unique_ptr<admin::AdminServer> admin_;
  std::unique_ptr<SignalHandler> signals_;
  std::unique_ptr<config::FileWatcher> watcher_;
  std::map<std::string, std::unique_ptr<config::FileWatcher>> tls_watchers_;  // by file
  config::Loader loader_;        // keeps the parsed documents: a reload parses changed ones only
  double load_ms_ = 0;           // last loadConfig(): reading and parsing
  double compile_ms_ = 0;        // last loadConfig(): compiling, last-good substitution included
  std::string compile_timings_;  // last loadConfig(): the last compile's breakdown
  // The last compile's routes: a reload that changed only HTTPRoutes compiles only those.
  config::CompileCache compile_cache_;
  // The resources of the running version and the ids ("Kind ns/name") of those that were
  // rejected: the others are the last good versions for the next reload.
  std::shared_ptr<const std::vector<config::Resource>> last_resources_;
  std::set<std::string> last_bad_;
  std::atomic<bool> draining_{false};
  std::thread joiner_;
};

}  // namespace

int gatewayMain(int argc, char** argv) {
  Options o;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "portico gateway: %s needs a value\n", a.c_str());
        std::exit(64);
      }
      return argv[++i];
    };
    if (a == "-c" || a == "--config") {
      o.config_path = value();
    } else if (a == "--admin") {
      o.admin = value();
    } else if (a == "--workers") {
      std::string v = value();
      o.workers = static_cast<uint32_t>(std::atoi(v.c_str()));
      if (o.workers == 0 || o.workers > 256) {
        std::fprintf(stderr, "portico gateway: --workers: '%s' is not 1..256\n", v.c_str());
        return 64;
      }
    } else if (a == "--drain-timeout") {
      std::string v = value();
      auto ms = config::parseDurationMs(v);
      if (!ms) {
        std::fprintf(stderr, "portico gateway: --drain-timeout: '%s' is not a duration (30s)\n",
                     v.c_str());
        return 64;
      }
      o.drain_timeout_ms = static_cast<uint32_t>(*ms);
    } else if (a == "--zone") {
      o.zone = value();
    } else if (a == "--dns-server") {
      o.dns_servers.push_back(value());
    } else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else {
      std::fprintf(stderr, "portico gateway: unknown argument '%s'\n", a.c_str());
      usage();
      return 64;
    }
  }
  if (o.config_path.empty()) {
    std::fprintf(stderr, "portico gateway: -c PATH is required\n");
    usage();
    return 64;
  }
  if (o.workers == 0) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    o.workers = cores > 0 ? static_cast<uint32_t>(cores) : 1;
  }
  Gateway gateway(std::move(o));
  if (!gateway.setUpSignals()) {
    std::perror("portico: signals");
    return 1;
  }
  return gateway.run();
}

}  // namespace portico::cli
