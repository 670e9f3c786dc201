#include "net/dns_resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <strings.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <optional>
#include <utility>

namespace portico::net {

namespace {

ares_channel chan(void* p) { return static_cast<ares_channel>(p); }

// c-ares hands TTLs over as int; a negative one (a malformed answer) means "do not cache".
uint32_t sanitizeTtl(int ttl) { return ttl < 0 ? 0 : static_cast<uint32_t>(ttl); }

Address fromRaw(int family, const void* bytes) {
  Address a;
  if (family == AF_INET) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
    v4->sin_family = AF_INET;
    std::memcpy(&v4->sin_addr, bytes, sizeof v4->sin_addr);
    a.length = sizeof(sockaddr_in);
  } else {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    v6->sin6_family = AF_INET6;
    std::memcpy(&v6->sin6_addr, bytes, sizeof v6->sin6_addr);
    a.length = sizeof(sockaddr_in6);
  }
  return a;
}

// Only true literals: Address::parseIp also accepts "localhost", which must go through the
// hosts file like any other name.
std::optional<Address> parseLiteral(std::string_view name) {
  if (name.size() >= 2 && name.front() == '[' && name.back() == ']') {
    name = name.substr(1, name.size() - 2);
  }
  char buf[INET6_ADDRSTRLEN];
  if (name.empty() || name.size() >= sizeof buf) return std::nullopt;
  std::memcpy(buf, name.data(), name.size());
  buf[name.size()] = 0;
  unsigned char raw[sizeof(in6_addr)];
  if (inet_pton(AF_INET, buf, raw) == 1) return fromRaw(AF_INET, raw);
  if (inet_pton(AF_INET6, buf, raw) == 1) return fromRaw(AF_INET6, raw);
  return std::nullopt;
}

Status aresError(const std::string& name, int status) {
  const char* what;
  bool retryable = true;
  switch (status) {
    case ARES_ENOTFOUND:
      what = "NXDOMAIN";
      retryable = false;
      break;
    case ARES_ENODATA:
      what = "no addresses";
      retryable = false;
      break;
    case ARES_ETIMEOUT:
      what = "timeout";
      break;
    case ARES_ESERVFAIL:
      what = "SERVFAIL";
      break;
    case ARES_EREFUSED:
      what = "REFUSED";
      break;
    case ARES_ECONNREFUSED:
      // c-ares 1.18 also ends here when every server answered SERVFAIL or REFUSED: it treats
      // those as a broken server and tries the next one instead of reporting the rcode.
      what = "no server answered (refused, SERVFAIL or REFUSED)";
      break;
    default:
      what = ares_strerror(status);
      break;
  }
  return Status::error("dns " + name + ": " + what, ErrorSource::kUpstream, retryable);
}

void initLibraryOnce() {
  // Only Windows needs the global init, but the API requires it before any channel.
  static std::once_flag once;
  std::call_once(once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
}

}  // namespace

bool addressLess(const Address& a, const Address& b) {
  if (a.family() != b.family()) return a.family() < b.family();
  int c = 0;
  if (a.family() == AF_INET) {
    c = std::memcmp(&reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_addr,
                    &reinterpret_cast<const sockaddr_in*>(&b.storage)->sin_addr, 4);
  } else if (a.family() == AF_INET6) {
    c = std::memcmp(&reinterpret_cast<const sockaddr_in6*>(&a.storage)->sin6_addr,
                    &reinterpret_cast<const sockaddr_in6*>(&b.storage)->sin6_addr, 16);
  }
  if (c != 0) return c < 0;
  return a.port() < b.port();
}

bool addressEqual(const Address& a, const Address& b) {
  return !addressLess(a, b) && !addressLess(b, a);
}

struct DnsResolver::Request {
  DnsResolver* self = nullptr;
  uint64_t id = 0;
  std::string name;
  DnsCallback done;
  bool cancelled = false;
  int pending = 0;  // queries still in c-ares
  std::vector<ResolvedAddress> addrs;
  int status_a = ARES_SUCCESS;
  int status_aaaa = ARES_SUCCESS;
  // One per family's query; c-ares gets a pointer to one as the callback argument.
  struct QueryCtx {
    Request* req = nullptr;
    int family = AF_INET;
  } ctx[2];
  std::optional<Result<std::vector<ResolvedAddress>>> result;
};

// One c-ares socket registered with the loop. Freed with deferDelete so that an event already
// fetched in the current epoll batch never reaches a freed handler (c-ares may close a socket
// while another of its events is pending).
class DnsResolver::SocketWatch final : public IoHandler, public Deferred {
 public:
  SocketWatch(DnsResolver* owner, int fd) : owner_(owner), fd_(fd) {}
  void onIo(uint32_t events) override {
    if (closed_) return;
    int r = (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) ? fd_ : ARES_SOCKET_BAD;
    int w = (events & EPOLLOUT) ? fd_ : ARES_SOCKET_BAD;
    owner_->processFd(r, w);  // may close this watch; nothing below touches it
  }
  void close() { closed_ = true; }

 private:
  DnsResolver* owner_;
  int fd_;
  bool closed_ = false;
};

DnsResolver::DnsResolver(EventLoop& loop, DnsOptions options)
    : loop_(loop), options_(std::move(options)), timer_(&DnsResolver::onTimer, this) {
  initLibraryOnce();
  ares_options opts{};
  int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
  opts.sock_state_cb = &DnsResolver::onSocketState;
  opts.sock_state_cb_data = this;
  opts.timeout = static_cast<int>(std::max<uint32_t>(options_.timeout_ms, 1));
  opts.tries = static_cast<int>(std::max<uint32_t>(options_.tries, 1));
  if (!options_.servers.empty()) {
    // Explicit servers mean names are asked as given: the host's search domains belong to
    // its own resolver, and would turn one NXDOMAIN into several queries to the wrong server.
    mask |= ARES_OPT_DOMAINS;
    opts.domains = nullptr;
    opts.ndomains = 0;
  }
  ares_channel channel = nullptr;
  int rc = ares_init_options(&channel, &opts, mask);
  if (rc != ARES_SUCCESS) {
    init_status_ = Status::error(std::string("dns: c-ares init: ") + ares_strerror(rc));
    return;
  }
  channel_ = channel;
  if (!options_.servers.empty()) {
    std::string csv;
    for (const auto& s : options_.servers) {
      if (!csv.empty()) csv += ',';
      csv += s;
    }
    rc = ares_set_servers_ports_csv(channel, csv.c_str());
    if (rc != ARES_SUCCESS) {
      init_status_ = Status::error("dns: bad server list '" + csv + "': " + ares_strerror(rc),
                                   ErrorSource::kConfig);
    }
  }
}

DnsResolver::~DnsResolver() {
  *alive_ = false;
  alive_.reset();
  destroying_ = true;  // ares_destroy calls every pending callback with ARES_EDESTRUCTION
  if (channel_ != nullptr) ares_destroy(chan(channel_));
  for (auto& [fd, watch] : watches_) {  // normally closed by ares_destroy already
    loop_.remove(fd);
    watch->close();
    loop_.deferDelete(watch);
  }
  watches_.clear();
}

void DnsResolver::onSocketState(void* data, int fd, int readable, int writable) {
  auto* self = static_cast<DnsResolver*>(data);
  auto it = self->watches_.find(fd);
  if (!readable && !writable) {
    // Called before c-ares closes the fd, so it is still ours to remove.
    if (it == self->watches_.end()) return;
    self->loop_.remove(fd);
    it->second->close();
    self->loop_.deferDelete(it->second);
    self->watches_.erase(it);
    return;
  }
  uint32_t events = (readable ? EPOLLIN : 0u) | (writable ? EPOLLOUT : 0u);
  if (it != self->watches_.end()) {
    self->loop_.modify(fd, events, it->second);
    return;
  }
  auto* watch = new SocketWatch(self, fd);
  self->watches_[fd] = watch;
  self->loop_.add(fd, events, watch);
}

void DnsResolver::processFd(int read_fd, int write_fd) {
  ares_process_fd(chan(channel_), read_fd, write_fd);
  armTimer();
}

void DnsResolver::onTimer(void* ctx) {
  // No fd: c-ares only expires queries whose deadline passed (and retries them).
  static_cast<DnsResolver*>(ctx)->processFd(ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

void DnsResolver::armTimer() {
  timeval tv{};
  if (ares_timeout(chan(channel_), nullptr, &tv) == nullptr) {
    timer_.cancel();
    return;
  }
  uint64_t ms =
      static_cast<uint64_t>(tv.tv_sec) * 1000 + (static_cast<uint64_t>(tv.tv_usec) + 999) / 1000;
  loop_.timers().schedule(&timer_, ms);
}

uint64_t DnsResolver::resolve(const std::string& name, DnsCallback done) {
  auto owned = std::make_unique<Request>();
  Request* req = owned.get();
  req->self = this;
  req->id = next_id_++;
  req->name = name;
  req->done = std::move(done);
  requests_.emplace(req->id, std::move(owned));

  auto finishNow = [&](Result<std::vector<ResolvedAddress>> r) {
    req->result.emplace(std::move(r));
    ready_.push_back(req->id);
    scheduleFlush();
    return req->id;
  };
  if (!init_status_.ok()) return finishNow(init_status_);
  if (name.empty()) return finishNow(Status::error("dns: empty name", ErrorSource::kConfig));
  if (auto literal = parseLiteral(name)) {
    return finishNow(std::vector<ResolvedAddress>{{*literal, options_.hosts_ttl_s}});
  }

  // The hosts file first, as the system resolver would: "localhost" and pinned names must
  // not depend on a DNS server.
  std::vector<ResolvedAddress> from_file;
  for (int family : {AF_INET, AF_INET6}) {
    if (family == AF_INET6 && !options_.ipv6) break;
    hostent* host = nullptr;
    if (ares_gethostbyname_file(chan(channel_), name.c_str(), family, &host) != ARES_SUCCESS) {
      continue;
    }
    for (char** p = host->h_addr_list; p != nullptr && *p != nullptr; ++p) {
      if (host->h_addrtype == family) {
        from_file.push_back({fromRaw(family, *p), options_.hosts_ttl_s});
      }
    }
    ares_free_hostent(host);
  }
  if (from_file.empty() && strcasecmp(name.c_str(), "localhost") == 0) {
    // RFC 6761: localhost is loopback even with no hosts entry.
    from_file.push_back({*parseLiteral("127.0.0.1"), options_.hosts_ttl_s});
    if (options_.ipv6) from_file.push_back({*parseLiteral("::1"), options_.hosts_ttl_s});
  }
  if (!from_file.empty()) return finishNow(std::move(from_file));

  // Both queries are counted before either starts: c-ares may call back synchronously.
  req->pending = options_.ipv6 ? 2 : 1;
  req->ctx[0] = {req, AF_INET};
  req->ctx[1] = {req, AF_INET6};
  uint64_t id = req->id;
  ares_search(chan(channel_), name.c_str(), ns_c_in, ns_t_a, &DnsResolver::onQueryDone,
              &req->ctx[0]);
  if (options_.ipv6) {
    // `req` is still alive: with two queries counted, the first cannot complete it.
    ares_search(chan(channel_), name.c_str(), ns_c_in, ns_t_aaaa, &DnsResolver::onQueryDone,
                &req->ctx[1]);
  }
  armTimer();
  return id;
}

void DnsResolver::cancel(uint64_t id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  Request* req = it->second.get();
  req->done = nullptr;
  req->cancelled = true;
  // In c-ares: the request must outlive its queries' callbacks, which erase it.
  if (req->pending == 0) requests_.erase(it);
}

void DnsResolver::onQueryDone(void* arg, int status, int timeouts, unsigned char* abuf, int alen) {
  auto* ctx = static_cast<Request::QueryCtx*>(arg);
  Request* req = ctx->req;
  DnsResolver* self = req->self;
  if (self->destroying_) return;
  if (status == ARES_SUCCESS) {
    constexpr int kMaxAddrs = 64;
    if (ctx->family == AF_INET) {
      ares_addrttl ttls[kMaxAddrs];
      int n = kMaxAddrs;
      status = ares_parse_a_reply(abuf, alen, nullptr, ttls, &n);
      for (int i = 0; status == ARES_SUCCESS && i < n; ++i) {
        req->addrs.push_back({fromRaw(AF_INET, &ttls[i].ipaddr), sanitizeTtl(ttls[i].ttl)});
      }
    } else {
      ares_addr6ttl ttls[kMaxAddrs];
      int n = kMaxAddrs;
      status = ares_parse_aaaa_reply(abuf, alen, nullptr, ttls, &n);
      for (int i = 0; status == ARES_SUCCESS && i < n; ++i) {
        req->addrs.push_back({fromRaw(AF_INET6, &ttls[i].ip6addr), sanitizeTtl(ttls[i].ttl)});
      }
    }
  }
  (ctx->family == AF_INET ? req->status_a : req->status_aaaa) = status;
  if (--req->pending == 0) self->complete(req);
}

void DnsResolver::complete(Request* req) {
  if (req->cancelled) {
    requests_.erase(req->id);
    return;
  }
  if (!req->addrs.empty()) {
    // One family answering is enough: an IPv4-only service has no AAAA records.
    req->result.emplace(std::move(req->addrs));
  } else {
    // Prefer the A query's reason; it is the one every deployment has.
    int status = req->status_a != ARES_SUCCESS ? req->status_a : req->status_aaaa;
    if (status == ARES_SUCCESS) status = ARES_ENODATA;
    req->result.emplace(aresError(req->name, status));
  }
  ready_.push_back(req->id);
  scheduleFlush();
}

void DnsResolver::scheduleFlush() {
  // Callbacks run from a posted task rather than inside c-ares (or inside resolve()), so a
  // callback may resolve again, cancel, or destroy the resolver.
  if (flush_posted_) return;
  flush_posted_ = true;
  std::weak_ptr<bool> alive = alive_;
  loop_.post([alive, this] {
    if (alive.expired()) return;
    flush();
  });
}

void DnsResolver::flush() {
  flush_posted_ = false;
  std::vector<uint64_t> ids;
  ids.swap(ready_);
  std::weak_ptr<bool> alive = alive_;
  for (uint64_t id : ids) {
    if (alive.expired()) return;  // a callback destroyed the resolver
    auto it = requests_.find(id);
    if (it == requests_.end()) continue;  // cancelled after it completed
    std::unique_ptr<Request> req = std::move(it->second);
    requests_.erase(it);
    if (req->done && req->result) req->done(std::move(*req->result));
  }
}

// ---------------------------------------------------------------------------------------------

struct DnsReresolver::Entry {
  DnsReresolver* self = nullptr;
  std::string name;
  Timer timer;
  uint64_t request = 0;  // the pending resolve() id, 0 if none
  uint64_t generation = 0;
  bool has_good = false;
  std::vector<Address> addrs;  // sorted, unique
  uint32_t backoff_ms = 0;     // 0 after a success
};

DnsReresolver::DnsReresolver(EventLoop& loop, DnsResolver& resolver, ReresolveOptions options,
                             ChangeCallback on_change, ErrorCallback on_error)
    : loop_(loop),
      resolver_(resolver),
      options_(options),
      on_change_(std::move(on_change)),
      on_error_(std::move(on_error)) {
  options_.min_interval_ms = std::max<uint32_t>(options_.min_interval_ms, 1);
  options_.max_interval_ms = std::max(options_.max_interval_ms, options_.min_interval_ms);
  options_.retry_initial_ms = std::max<uint32_t>(options_.retry_initial_ms, 1);
  options_.retry_max_ms = std::max(options_.retry_max_ms, options_.retry_initial_ms);
}

DnsReresolver::~DnsReresolver() {
  for (auto& [name, e] : entries_) {
    if (e->request != 0) resolver_.cancel(e->request);
  }
}

void DnsReresolver::track(const std::string& name) {
  if (entries_.count(name) != 0) return;
  auto e = std::make_unique<Entry>();
  e->self = this;
  e->name = name;
  e->timer.set(&DnsReresolver::onTimer, e.get());
  Entry* raw = e.get();
  entries_.emplace(name, std::move(e));
  start(raw);
}

void DnsReresolver::untrack(const std::string& name) {
  auto it = entries_.find(name);
  if (it == entries_.end()) return;
  if (it->second->request != 0) resolver_.cancel(it->second->request);
  entries_.erase(it);
}

const std::vector<Address>* DnsReresolver::addresses(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end() || !it->second->has_good) return nullptr;
  return &it->second->addrs;
}

void DnsReresolver::onTimer(void* ctx) {
  auto* e = static_cast<Entry*>(ctx);
  e->self->start(e);
}

void DnsReresolver::start(Entry* e) {
  e->generation = next_generation_++;
  uint64_t generation = e->generation;
  e->request = resolver_.resolve(
      e->name, [this, name = e->name, generation](Result<std::vector<ResolvedAddress>> r) {
        onResult(name, generation, std::move(r));
      });
}

void DnsReresolver::onResult(const std::string& name_ref, uint64_t generation,
                             Result<std::vector<ResolvedAddress>> result) {
  auto it = entries_.find(name_ref);
  if (it == entries_.end() || it->second->generation != generation) return;
  Entry* e = it->second.get();
  e->request = 0;
  // Callbacks go last and get copies: they may untrack this name or destroy this object.
  std::string name = e->name;
  if (!result.ok()) {
    e->backoff_ms = e->backoff_ms == 0 ? options_.retry_initial_ms
                                       : std::min(e->backoff_ms * 2, options_.retry_max_ms);
    loop_.timers().schedule(&e->timer, e->backoff_ms);
    if (on_error_) on_error_(name, result.status());
    return;
  }
  std::vector<Address> addrs;
  uint32_t ttl_s = UINT32_MAX;
  for (const auto& r : result.value()) {
    addrs.push_back(r.address);
    ttl_s = std::min(ttl_s, r.ttl_s);
  }
  std::sort(addrs.begin(), addrs.end(), addressLess);
  addrs.erase(std::unique(addrs.begin(), addrs.end(), addressEqual), addrs.end());
  uint64_t interval = std::clamp<uint64_t>(static_cast<uint64_t>(ttl_s) * 1000,
                                           options_.min_interval_ms, options_.max_interval_ms);
  e->backoff_ms = 0;
  loop_.timers().schedule(&e->timer, interval);
  bool changed = !e->has_good || addrs.size() != e->addrs.size() ||
                 !std::equal(addrs.begin(), addrs.end(), e->addrs.begin(), addressEqual);
  if (!changed) return;
  e->has_good = true;
  e->addrs = addrs;
  if (on_change_) on_change_(name, addrs);
}

}  // namespace portico::net
