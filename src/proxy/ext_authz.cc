#include "proxy/ext_authz.h"

#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <list>
#include <unordered_map>
#include <utility>

#include "http1/chars.h"
#include "net/socket.h"
#include "proxy/worker.h"

namespace portico::proxy {
namespace {

const http1::Limits kAnswerLimits{8 * 1024, 64 * 1024, Worker::kUpstreamMaxHeaders};
constexpr size_t kReadSize = 16 * 1024;
constexpr uint32_t kDefaultTimeoutMs = 200;

constexpr std::string_view kAllowed = "ext_authz_allowed";
constexpr std::string_view kDenied = "ext_authz_denied";
constexpr std::string_view kTimeout = "ext_authz_timeout";
constexpr std::string_view kUnreachable = "ext_authz_unreachable";
constexpr std::string_view kError = "ext_authz_error";

// Fields never copied to the service: hop-by-hop, framing, and those the call sets itself.
bool skippedRequestField(const http1::Header& h) {
  switch (h.tag) {
    case http1::HeaderTag::kHost:
    case http1::HeaderTag::kContentLength:
    case http1::HeaderTag::kTransferEncoding:
    case http1::HeaderTag::kConnection:
    case http1::HeaderTag::kKeepAlive:
    case http1::HeaderTag::kProxyConnection:
    case http1::HeaderTag::kTe:
    case http1::HeaderTag::kTrailer:
    case http1::HeaderTag::kUpgrade:
    case http1::HeaderTag::kExpect:
    case http1::HeaderTag::kXForwardedFor:
    case http1::HeaderTag::kXForwardedProto:
      return true;
    default:
      break;
  }
  // HTTP/2 requests carry no tags: compare the (lowercase) names.
  static constexpr std::string_view kNames[] = {"host",
                                                "content-length",
                                                "transfer-encoding",
                                                "connection",
                                                "keep-alive",
                                                "proxy-connection",
                                                "te",
                                                "trailer",
                                                "upgrade",
                                                "expect",
                                                "x-forwarded-for",
                                                "x-forwarded-proto",
                                                "x-forwarded-host",
                                                ":authority",
                                                ":method",
                                                ":path",
                                                ":scheme",
                                                ":protocol"};
  for (std::string_view n : kNames)
    if (http1::chars::equalsLower(h.name, n)) return true;
  return !h.name.empty() && h.name[0] == ':';
}

// Answer fields not passed to the client of a deny.
bool skippedAnswerField(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "content-length", "transfer-encoding", "connection",  "keep-alive", "proxy-connection", "te",
      "trailer",        "upgrade",           "content-type"};
  for (std::string_view n : kNames)
    if (http1::chars::equalsLower(name, n)) return true;
  return false;
}

std::string lowerCopy(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = http1::chars::lower(c);
  return out;
}

bool listed(const std::vector<std::string>& names, std::string_view name) {
  for (const std::string& n : names)
    if (http1::chars::equalsLower(name, n)) return true;
  return false;
}

std::string peerIp(const security::Request& req) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (req.peer_addr == nullptr ||
      inet_ntop(req.peer_family, req.peer_addr, buf, sizeof(buf)) == nullptr) {
    return {};
  }
  return buf;
}

}  // namespace

// ---- Cache ---------------------------------------------------------------------------------

struct ExtAuthzCache::Impl {
  struct Entry {
    ExtAuthzVerdict verdict;
    uint64_t expires_ms = 0;
    std::list<std::string>::iterator lru;
  };
  struct PerConfig {
    std::unordered_map<std::string, Entry> entries;
    std::list<std::string> lru;  // most recent first
  };
  std::unordered_map<const security::ExtAuthz*, PerConfig> configs;
};

ExtAuthzCache::ExtAuthzCache() : impl_(new Impl) {}
ExtAuthzCache::~ExtAuthzCache() { delete impl_; }

const ExtAuthzVerdict* ExtAuthzCache::find(const security::ExtAuthz& cfg, const std::string& key,
                                           uint64_t now_ms) {
  auto c = impl_->configs.find(&cfg);
  if (c == impl_->configs.end()) return nullptr;
  Impl::PerConfig& pc = c->second;
  auto it = pc.entries.find(key);
  if (it == pc.entries.end()) return nullptr;
  if (it->second.expires_ms <= now_ms) {
    pc.lru.erase(it->second.lru);
    pc.entries.erase(it);
    return nullptr;
  }
  pc.lru.splice(pc.lru.begin(), pc.lru, it->second.lru);
  return &it->second.verdict;
}

void ExtAuthzCache::insert(const security::ExtAuthz& cfg, const std::string& key,
                           const ExtAuthzVerdict& v, uint64_t now_ms) {
  size_t max =
      cfg.cache_max_entries != 0 ? cfg.cache_max_entries : ExtAuthzCall::kDefaultCacheEntries;
  Impl::PerConfig& pc = impl_->configs[&cfg];
  auto it = pc.entries.find(key);
  if (it != pc.entries.end()) {
    it->second.verdict = v;
    it->second.expires_ms = now_ms + cfg.cache_ttl_ms;
    pc.lru.splice(pc.lru.begin(), pc.lru, it->second.lru);
    return;
  }
  while (pc.entries.size() >= max && !pc.lru.empty()) {
    pc.entries.erase(pc.lru.back());
    pc.lru.pop_back();
  }
  pc.lru.push_front(key);
  Impl::Entry& e = pc.entries[key];
  e.verdict = v;
  e.expires_ms = now_ms + cfg.cache_ttl_ms;
  e.lru = pc.lru.begin();
}

void ExtAuthzCache::clear() { impl_->configs.clear(); }

size_t ExtAuthzCache::size() const {
  size_t n = 0;
  for (const auto& [cfg, pc] : impl_->configs) n += pc.entries.size();
  return n;
}

// ---- Call ----------------------------------------------------------------------------------

ExtAuthzCall::ExtAuthzCall(Worker& worker, const security::ExtAuthz& cfg, Done done, void* ctx)
    : worker_(worker), cfg_(cfg), done_(done), ctx_(ctx) {
  timer_.set(&ExtAuthzCall::onTimer, this);
  worker_.addExtAuthz(this);
  listed_ = true;
}

ExtAuthzCall::~ExtAuthzCall() = default;

ExtAuthzCall* ExtAuthzCall::start(Worker& worker, const security::ExtAuthz& cfg,
                                  const security::Request& req, bool tls, std::string_view body,
                                  Done done, void* ctx) {
  // The body only when the policy asks for it, and never more than it allows.
  body = body.substr(0, cfg.max_body_bytes);
  auto* call = new ExtAuthzCall(worker, cfg, done, ctx);
  call->method_ = std::string(req.method);

  // The request as sent: also the cache key.
  std::string& r = call->request_;
  r.reserve(512 + body.size());
  r.append(req.method).append(" ");
  std::string_view prefix = cfg.path;
  if (!prefix.empty() && prefix.back() == '/' && !req.path.empty() && req.path[0] == '/')
    prefix.remove_suffix(1);
  r.append(prefix).append(req.path);
  if (!req.query.empty()) r.append("?").append(req.query);
  r.append(" HTTP/1.1\r\nhost: ").append(req.authority).append("\r\n");
  std::string xff;
  for (uint32_t i = 0; i < req.header_count; ++i) {
    const http1::Header& h = req.headers[i];
    if (h.tag == http1::HeaderTag::kXForwardedFor ||
        http1::chars::equalsLower(h.name, "x-forwarded-for")) {
      if (!xff.empty()) xff.append(", ");
      xff.append(h.value);
      continue;
    }
    if (skippedRequestField(h)) continue;
    if (!cfg.headers_to_service.empty() && !listed(cfg.headers_to_service, h.name)) continue;
    r.append(lowerCopy(h.name)).append(": ").append(h.value).append("\r\n");
  }
  std::string ip = peerIp(req);
  if (!ip.empty()) {
    if (!xff.empty()) xff.append(", ");
    xff.append(ip);
  }
  if (!xff.empty()) r.append("x-forwarded-for: ").append(xff).append("\r\n");
  r.append("x-forwarded-proto: ").append(tls ? "https" : "http").append("\r\n");
  r.append("x-forwarded-host: ").append(req.authority).append("\r\n");
  if (!body.empty()) r.append("content-length: ").append(std::to_string(body.size()));
  if (!body.empty()) r.append("\r\n");
  r.append("\r\n").append(body);

  if (cfg.cache_ttl_ms > 0) {
    call->cache_key_ = r;
    const ExtAuthzVerdict* hit =
        worker.extAuthzCache().find(cfg, call->cache_key_, worker.loop().nowMs());
    if (hit != nullptr) {
      call->cache_key_.clear();  // nothing to insert
      call->complete(*hit, false);
      return call;
    }
  }
  if (cfg.backend == nullptr || cfg.backend->endpoints.empty()) {
    call->error(kUnreachable);
    return call;
  }
  worker.loop().timers().schedule(&call->timer_,
                                  cfg.timeout_ms != 0 ? cfg.timeout_ms : kDefaultTimeoutMs);
  call->endpoint_ = call->chooseEndpoint();
  if (!call->connect(false)) {
    call->error(kUnreachable);
    return call;
  }
  call->send();
  return call;
}

const config::Endpoint* ExtAuthzCall::chooseEndpoint() {
  const config::Backend& b = *cfg_.backend;
  size_t n = b.endpoints.size();
  size_t first = worker_.nextRoundRobin(b.stats_id) % n;
  const upstream::HealthTable& health = worker_.shared().health;
  for (size_t i = 0; i < n; ++i) {
    const config::Endpoint& e = b.endpoints[(first + i) % n];
    if (health.healthy(e.pool_id)) return &e;
  }
  return &b.endpoints[first];  // none healthy: try anyway
}

bool ExtAuthzCall::connect(bool fresh_only) {
  const config::Backend& b = *cfg_.backend;
  if (!fresh_only) up_ = worker_.pool().acquire(endpoint_->pool_id, this);
  if (up_ == nullptr) {
    bool in_progress = false;
    Result<int> fd = net::connectTcp(endpoint_->address, &in_progress);
    if (!fd.ok()) return false;
    stats::BackendStats& bs = worker_.stats().backends.at(b.stats_id);
    bs.connections_total.inc();
    up_ = new upstream::UpstreamConn(worker_.loop(), worker_.pool(), *fd, endpoint_->pool_id,
                                     b.stats_id, in_progress, &bs.connections_active);
    up_->owner = this;
  }
  // A fresh connection to a TLS Backend starts TLS (a pooled one has already: a no-op).
  if (b.tls) up_->startTls(b.tls, b.tls_server_name);
  return true;
}

void ExtAuthzCall::send() {
  up_->in.clear();
  up_->out.append(request_);
  head_done_ = false;
  got_bytes_ = false;
  flush();
}

void ExtAuthzCall::flush() {
  if (up_ == nullptr || up_->connecting) return;
  if (!up_->flush()) {
    fail(kUnreachable);
    return;
  }
  up_->setInterest(up_->out.empty() ? EPOLLIN : EPOLLIN | EPOLLOUT);
}

void ExtAuthzCall::onUpstreamIo(upstream::UpstreamConn* conn, uint32_t events) {
  if (conn != up_ || completed_) return;
  if (up_->connecting) {
    if (net::connectError(up_->fd()) != 0) {
      fail(kUnreachable);
      return;
    }
    up_->connecting = false;
    flush();
    return;
  }
  if (events & EPOLLOUT) {
    flush();
    if (completed_ || up_ != conn) return;
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) readAnswer();
}

void ExtAuthzCall::readAnswer() {
  char* p = up_->in.reserve(kReadSize);
  ssize_t n = up_->read(p, up_->in.writable());
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n <= 0) {
    if (n == 0 && head_done_ && body_decoder_.kind() == http1::BodyKind::kUntilClose) {
      keep_alive_ = false;
      onAnswer();
      return;
    }
    if (got_bytes_) {
      error(kError);  // the answer was cut short
    } else {
      fail(kUnreachable);
    }
    return;
  }
  got_bytes_ = true;
  up_->in.commit(static_cast<size_t>(n));
  while (!head_done_) {
    http1::ResponseHead head;
    head.headers = worker_.headerScratch();
    http1::ParseResult r = http1::parseResponseHead(up_->in.view(), kAnswerLimits, method_, &head);
    if (r.status == http1::ParseStatus::kIncomplete) return;
    if (r.status == http1::ParseStatus::kError || head.status == 101) {
      error(kError);
      return;
    }
    if (head.status < 200) {
      up_->in.consume(r.consumed);
      continue;  // interim
    }
    head_done_ = true;
    status_ = head.status;
    keep_alive_ = head.info.keep_alive;
    bool allow = status_ >= 200 && status_ < 300;
    for (uint32_t i = 0; i < head.header_count; ++i) {
      const http1::Header& h = head.headers[i];
      if (allow) {
        if (listed(cfg_.headers_to_backend, h.name))
          upstream_headers_.push_back({lowerCopy(h.name), std::string(h.value)});
      } else if (http1::chars::equalsLower(h.name, "content-type")) {
        content_type_ = std::string(h.value);
      } else if (!skippedAnswerField(h.name)) {
        client_headers_.append(h.name).append(": ").append(h.value).append("\r\n");
      }
    }
    up_->in.consume(r.consumed);  // the views above are no longer used
    body_decoder_.reset(head.info.body, head.info.content_length);
    if (body_decoder_.done()) {
      onAnswer();
      return;
    }
  }
  while (!up_->in.empty()) {
    http1::BodyDecoder::Step step = body_decoder_.decode(up_->in.view());
    if (step.status == http1::ParseStatus::kError) {
      error(kError);
      return;
    }
    if (answer_body_.size() + step.data.size() > kMaxAnswerBody) {
      if (status_ >= 200 && status_ < 300) {  // the body does not matter: allow, close
        keep_alive_ = false;
        onAnswer();
      } else {
        error(kError);
      }
      return;
    }
    answer_body_.append(step.data);
    up_->in.consume(step.consumed);
    if (step.status == http1::ParseStatus::kDone) {
      onAnswer();
      return;
    }
    if (step.consumed == 0) break;
  }
}

void ExtAuthzCall::onAnswer() {
  bool reusable = keep_alive_ && up_ != nullptr && up_->in.empty() &&
                  body_decoder_.kind() != http1::BodyKind::kUntilClose;
  if (status_ >= 500) {
    releaseConn(reusable);
    error(kError);
    return;
  }
  ExtAuthzVerdict v;
  if (status_ >= 200 && status_ < 300) {
    v.kind = ExtAuthzVerdict::Kind::kAllow;
    v.status = status_;
    v.upstream_headers = std::move(upstream_headers_);
    v.reason = kAllowed;
  } else {
    v.kind = ExtAuthzVerdict::Kind::kDeny;
    v.status = status_;
    v.body = std::move(answer_body_);
    v.content_type = std::move(content_type_);
    v.client_headers = std::move(client_headers_);
    v.reason = kDenied;
  }
  bool cacheable = !cache_key_.empty() &&
                   (v.kind == ExtAuthzVerdict::Kind::kAllow || (status_ >= 400 && status_ < 500));
  if (cacheable) worker_.extAuthzCache().insert(cfg_, cache_key_, v, worker_.loop().nowMs());
  complete(std::move(v), reusable);
}

void ExtAuthzCall::fail(std::string_view reason) {
  if (up_ != nullptr && up_->reused && !got_bytes_ && !retried_) {
    // A stale keep-alive connection: once more on a fresh one.
    retried_ = true;
    releaseConn(false);
    if (connect(true)) {
      send();
      return;
    }
  }
  error(reason);
}

void ExtAuthzCall::error(std::string_view reason) {
  ExtAuthzVerdict v;
  v.kind = cfg_.fail_open ? ExtAuthzVerdict::Kind::kAllow : ExtAuthzVerdict::Kind::kDeny;
  v.status = 403;
  v.reason = reason;
  complete(std::move(v), false);
}

void ExtAuthzCall::complete(ExtAuthzVerdict verdict, bool reusable) {
  if (completed_) return;
  completed_ = true;
  timer_.cancel();
  releaseConn(reusable);
  stats::GlobalStats& g = worker_.stats().global;
  if (verdict.reason == kAllowed) {
    g.ext_authz_allowed.inc();
  } else if (verdict.reason == kDenied) {
    g.ext_authz_denied.inc();
  } else {
    g.ext_authz_errors.inc();
  }
  verdict_ = std::move(verdict);
  worker_.loop().deferFlush(this);  // delivered at the end of this iteration
}

void ExtAuthzCall::releaseConn(bool reusable) {
  if (up_ == nullptr) return;
  upstream::UpstreamConn* c = up_;
  up_ = nullptr;
  if (reusable && c->out.empty() && c->in.empty() && !c->closed()) {
    ++c->requests;
    worker_.pool().release(c);
  } else {
    c->close();
  }
}

void ExtAuthzCall::flushDeferred() {
  if (!cancelled_) done_(ctx_, verdict_);
  unlist();
  worker_.loop().deferDelete(this);
}

void ExtAuthzCall::cancel() {
  cancelled_ = true;
  if (completed_) {
    unlist();  // the queued delivery frees the call
    return;
  }
  completed_ = true;
  timer_.cancel();
  releaseConn(false);
  unlist();
  worker_.loop().deferDelete(this);
}

void ExtAuthzCall::unlist() {
  if (!listed_) return;
  listed_ = false;
  worker_.removeExtAuthz(this);
}

void ExtAuthzCall::onTimer(void* ctx) {
  auto* call = static_cast<ExtAuthzCall*>(ctx);
  call->releaseConn(false);
  call->error(kTimeout);
}

}  // namespace portico::proxy
