#include "security/jwks_fetcher.h"

#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include "http1/parser.h"
#include "net/socket.h"

namespace portico::security {
namespace {

constexpr uint32_t kDefaultRefreshMs = 300'000;
constexpr size_t kMaxHeadBytes = 64 * 1024;
constexpr uint32_t kMaxHeaders = 128;

void warn(const std::string& uri, const std::string& reason) {
  std::fprintf(stderr, "portico: warning: JWKS %s: %s; keeping the last good key set\n",
               uri.c_str(), reason.c_str());
}

}  // namespace

bool parseJwksUri(std::string_view uri, JwksUri* out, std::string* error) {
  *out = JwksUri{};
  std::string_view rest;
  if (uri.substr(0, 7) == "http://") {
    rest = uri.substr(7);
  } else if (uri.substr(0, 8) == "https://") {
    out->https = true;
    rest = uri.substr(8);
  } else {
    *error = "the URI must start with http:// or https://";
    return false;
  }
  if (rest.find('#') != std::string_view::npos) {
    *error = "a fragment is not allowed";
    return false;
  }
  size_t slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  std::string_view target = slash == std::string_view::npos ? "" : rest.substr(slash);
  if (authority.empty() || authority.find('@') != std::string_view::npos) {
    *error = authority.empty() ? "the URI has no host" : "userinfo is not allowed";
    return false;
  }
  std::string_view host = authority;
  std::string_view port;
  if (host[0] == '[') {
    size_t close = host.find(']');
    if (close == std::string_view::npos) {
      *error = "unterminated IPv6 address";
      return false;
    }
    std::string_view after = host.substr(close + 1);
    host = host.substr(1, close - 1);
    if (!after.empty()) {
      if (after[0] != ':') {
        *error = "invalid authority";
        return false;
      }
      port = after.substr(1);
    }
  } else if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
  }
  if (host.empty()) {
    *error = "the URI has no host";
    return false;
  }
  for (char c : host) {
    if (static_cast<unsigned char>(c) <= ' ' || c == '/' || c == '\\' || c == '%') {
      *error = "invalid host";
      return false;
    }
  }
  uint32_t p = out->https ? 443 : 80;
  if (!port.empty() || authority.back() == ':') {
    if (port.empty() || port.size() > 5) {
      *error = "invalid port";
      return false;
    }
    p = 0;
    for (char c : port) {
      if (c < '0' || c > '9') {
        *error = "invalid port";
        return false;
      }
      p = p * 10 + static_cast<uint32_t>(c - '0');
    }
    if (p == 0 || p > 65535) {
      *error = "invalid port";
      return false;
    }
  }
  for (char c : target) {
    if (static_cast<unsigned char>(c) <= ' ' || static_cast<unsigned char>(c) >= 0x7f) {
      *error = "invalid character in the path";
      return false;
    }
  }
  out->host = std::string(host);
  out->port = static_cast<uint16_t>(p);
  out->authority = std::string(authority);
  out->target = target.empty() ? "/" : std::string(target);
  if (out->target[0] == '?') out->target.insert(0, "/");
  return true;
}

struct JwksFetcher::Source {
  JwksFetcher* owner = nullptr;
  std::string uri;
  JwksUri parsed;
  uint32_t refresh_ms = kDefaultRefreshMs;
  net::Timer refresh_timer;  // next fetch: refresh, retry, or a rate-limited refreshSoon
  net::Timer timeout_timer;  // the fetch in flight
  Exchange* exchange = nullptr;
  uint64_t dns_id = 0;
  bool in_flight = false;
  uint64_t last_start_ms = 0;
  bool started_once = false;
  uint32_t failures = 0;  // consecutive
  std::string last_body;  // the last good document
};

// One HTTP exchange over a fresh connection (plain or TLS).
class JwksFetcher::Exchange final : public net::IoHandler, public net::Deferred {
 public:
  Exchange(JwksFetcher& f, Source* s, net::Transport transport, bool connecting)
      : f_(f), s_(s), transport_(std::move(transport)), connecting_(connecting) {
    const JwksUri& u = s->parsed;
    out_ = "GET " + u.target + " HTTP/1.1\r\nhost: " + u.authority +
           "\r\naccept: application/json\r\nconnection: close\r\n"
           "user-agent: portico-jwks\r\n\r\n";
    interest_ = EPOLLIN | EPOLLOUT;
    f_.loop_.add(transport_.fd(), interest_, this);
  }

  void onIo(uint32_t events) override {
    if (closed_) return;
    if (connecting_) {
      int err = net::connectError(transport_.fd());
      if (err != 0) return fail(std::string("connect: ") + std::strerror(err));
      connecting_ = false;
    }
    if (!writeOut()) return;
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) || transport_.wantsWrite() ||
        transport_.pending() > 0 || out_.empty()) {
      if (!readIn()) return;
      if (!writeOut()) return;  // a TLS read may have let a write proceed
    }
    uint32_t want = EPOLLIN;
    if (!out_.empty() || transport_.wantsWrite()) want |= EPOLLOUT;
    if (transport_.wantsRead()) want &= ~static_cast<uint32_t>(EPOLLOUT);
    if (want != interest_) {
      interest_ = want;
      f_.loop_.modify(transport_.fd(), want, this);
    }
  }

  // Closes without reporting (the fetch was cancelled).
  void abandon() {
    if (closed_) return;
    closed_ = true;
    f_.loop_.remove(transport_.fd());
    transport_.close();
    f_.loop_.deferDelete(this);
  }

 private:
  bool writeOut() {
    while (!out_.empty()) {
      ssize_t n = transport_.write(out_.data(), out_.size());
      if (n > 0) {
        out_.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      fail(transport_.isTls() && !transport_.handshakeDone() ? handshakeFailed()
           : transport_.isTls()                              ? std::string("TLS write failed")
                                : std::string("write: ") + std::strerror(errno));
      return false;
    }
    return true;
  }

  // False when the exchange ended (reported).
  bool readIn() {
    char buf[16 * 1024];
    for (;;) {
      ssize_t n = transport_.read(buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      if (n < 0) {
        fail(transport_.isTls() && !transport_.handshakeDone()
                 ? handshakeFailed()
                 : std::string("read: ") + std::strerror(errno));
        return false;
      }
      if (n == 0) {
        if (head_done_ && decoder_.kind() == http1::BodyKind::kUntilClose) {
          succeed();
        } else {
          fail("the connection closed before the answer was complete");
        }
        return false;
      }
      in_.append(buf, static_cast<size_t>(n));
      if (!consume()) return false;
    }
  }

  // Parses what arrived. False when the exchange ended.
  bool consume() {
    if (!head_done_) {
      http1::Header headers[kMaxHeaders];
      http1::ResponseHead head;
      head.headers = headers;
      http1::Limits limits{8 * 1024, kMaxHeadBytes, kMaxHeaders};
      http1::ParseResult r = http1::parseResponseHead(in_, limits, "GET", &head);
      if (r.status == http1::ParseStatus::kIncomplete) return true;
      if (r.status == http1::ParseStatus::kError) {
        fail("malformed HTTP answer: " + std::string(http1::describe(r.error)));
        return false;
      }
      if (head.status >= 100 && head.status < 200) {
        in_.erase(0, r.consumed);
        return consume();
      }
      if (head.status != 200) {
        std::string reason = "HTTP status " + std::to_string(head.status);
        if (head.status >= 300 && head.status < 400) reason += " (redirects are not followed)";
        fail(reason);
        return false;
      }
      if (head.info.body == http1::BodyKind::kContentLength &&
          head.info.content_length > f_.options_.max_document_bytes) {
        fail(tooLarge());
        return false;
      }
      head_done_ = true;
      decoder_.reset(head.info.body, head.info.content_length);
      in_.erase(0, r.consumed);
      if (decoder_.done()) {
        succeed();
        return false;
      }
    }
    size_t pos = 0;
    while (pos < in_.size()) {
      http1::BodyDecoder::Step step = decoder_.decode(std::string_view(in_).substr(pos));
      if (step.status == http1::ParseStatus::kError) {
        fail("malformed HTTP body: " + std::string(http1::describe(step.error)));
        return false;
      }
      body_.append(step.data);
      pos += step.consumed;
      if (body_.size() > f_.options_.max_document_bytes) {
        fail(tooLarge());
        return false;
      }
      if (step.status == http1::ParseStatus::kDone) {
        succeed();
        return false;
      }
      if (step.consumed == 0) break;
    }
    in_.erase(0, pos);
    return true;
  }

  std::string handshakeFailed() const {
    return "TLS handshake failed (is the server certificate trusted and valid for " +
           s_->parsed.host + "?)";
  }

  std::string tooLarge() const {
    return "the document is larger than " + std::to_string(f_.options_.max_document_bytes) +
           " bytes";
  }

  void succeed() { end(true, std::move(body_)); }
  void fail(std::string reason) { end(false, std::move(reason)); }

  void end(bool ok, std::string data) {
    JwksFetcher& f = f_;
    Source* s = s_;
    abandon();
    s->exchange = nullptr;
    f.finish(s, ok, std::move(data));  // may free the source: nothing after this
  }

  JwksFetcher& f_;
  Source* s_;
  net::Transport transport_;
  bool connecting_;
  bool closed_ = false;
  bool head_done_ = false;
  uint32_t interest_ = 0;
  std::string out_;
  std::string in_;
  std::string body_;
  http1::BodyDecoder decoder_;
};

JwksFetcher::JwksFetcher(net::EventLoop& loop, net::DnsResolver& dns, OnChange on_change,
                         JwksFetchOptions options)
    : loop_(loop), dns_(dns), on_change_(std::move(on_change)), options_(std::move(options)) {}

JwksFetcher::~JwksFetcher() {
  for (auto& [uri, s] : sources_) cancelFetch(s.get());
}

void JwksFetcher::setSources(const std::vector<std::pair<std::string, uint32_t>>& uri_refresh_ms) {
  std::set<std::string, std::less<>> wanted;
  for (const auto& [uri, ms] : uri_refresh_ms) wanted.insert(uri);
  for (auto it = sources_.begin(); it != sources_.end();) {
    if (wanted.count(it->first) != 0) {
      ++it;
      continue;
    }
    cancelFetch(it->second.get());
    key_sets_.erase(it->first);
    it = sources_.erase(it);
  }
  for (const auto& [uri, ms] : uri_refresh_ms) {
    uint32_t refresh = ms != 0 ? ms : kDefaultRefreshMs;
    auto it = sources_.find(uri);
    if (it != sources_.end()) {
      it->second->refresh_ms = refresh;
      continue;
    }
    auto s = std::make_unique<Source>();
    s->owner = this;
    s->uri = uri;
    s->refresh_ms = refresh;
    s->refresh_timer.set(&JwksFetcher::onTimer, s.get());
    s->timeout_timer.set(&JwksFetcher::onTimeout, s.get());
    std::string error;
    bool valid = parseJwksUri(uri, &s->parsed, &error);
    Source* raw = s.get();
    sources_.emplace(uri, std::move(s));
    if (!valid) {
      ++counters_.failed;
      warn(uri, "invalid URI: " + error);  // never fetched: the config is wrong
      continue;
    }
    startFetch(raw);
  }
}

void JwksFetcher::refreshSoon(std::string_view uri) {
  auto it = sources_.find(uri);
  if (it == sources_.end()) return;
  Source* s = it->second.get();
  if (s->in_flight || s->parsed.host.empty()) return;
  uint64_t now = loop_.nowMs();
  uint64_t earliest = s->last_start_ms + options_.min_refresh_ms;
  if (!s->started_once || now >= earliest) {
    s->refresh_timer.cancel();
    startFetch(s);
    return;
  }
  // Rate-limited: once when the interval ends, unless a fetch is due sooner anyway.
  if (!s->refresh_timer.armed() || s->refresh_timer.deadline() > earliest)
    loop_.timers().schedule(&s->refresh_timer, earliest - now);
}

void JwksFetcher::startFetch(Source* s) {
  s->in_flight = true;
  s->started_once = true;
  s->last_start_ms = loop_.nowMs();
  s->refresh_timer.cancel();
  loop_.timers().schedule(&s->timeout_timer, options_.timeout_ms);
  if (std::optional<net::Address> ip = net::Address::parseIp(s->parsed.host, s->parsed.port)) {
    connectTo(s, *ip);
    return;
  }
  s->dns_id = dns_.resolve(s->parsed.host, [this, s](Result<std::vector<net::ResolvedAddress>> r) {
    s->dns_id = 0;
    if (!r.ok())
      return finish(s, false, "resolving " + s->parsed.host + ": " + r.status().message());
    if (r->empty()) return finish(s, false, "resolving " + s->parsed.host + ": no addresses");
    std::optional<net::Address> a =
        net::Address::parseIp(r->front().address.ipString(), s->parsed.port);
    if (!a) return finish(s, false, "resolving " + s->parsed.host + ": unusable address");
    connectTo(s, *a);
  });
}

void JwksFetcher::connectTo(Source* s, const net::Address& address) {
  bool in_progress = false;
  Result<int> fd = net::connectTcp(address, &in_progress);
  if (!fd.ok())
    return finish(s, false, "connect " + address.toString() + ": " + fd.status().message());
  net::Transport transport(*fd);
  if (s->parsed.https) {
    std::string error;
    std::shared_ptr<const net::ClientTlsContext> tls = tlsContext(&error);
    if (tls == nullptr || !transport.startClientTls(std::move(tls), s->parsed.host)) {
      transport.close();
      return finish(s, false, "TLS: " + (error.empty() ? std::string("cannot start") : error));
    }
  }
  s->exchange = new Exchange(*this, s, std::move(transport), in_progress);
}

std::shared_ptr<const net::ClientTlsContext> JwksFetcher::tlsContext(std::string* error) {
  if (tls_ != nullptr) return tls_;
  net::ClientTlsSettings settings;
  settings.ca = options_.ca;
  auto ctx = net::ClientTlsContext::build(std::move(settings));
  if (!ctx.ok()) {
    *error = ctx.status().message();
    return nullptr;
  }
  tls_ = std::move(ctx.value());
  return tls_;
}

void JwksFetcher::cancelFetch(Source* s) {
  if (s->dns_id != 0) dns_.cancel(s->dns_id);
  s->dns_id = 0;
  if (s->exchange != nullptr) s->exchange->abandon();
  s->exchange = nullptr;
  s->timeout_timer.cancel();
  s->refresh_timer.cancel();
  s->in_flight = false;
}

void JwksFetcher::finish(Source* s, bool ok, std::string data) {
  s->in_flight = false;
  s->timeout_timer.cancel();
  std::string reason;
  if (ok) {
    bool known = key_sets_.count(s->uri) != 0;
    if (known && data == s->last_body) {
      ++counters_.ok;
      s->failures = 0;
      loop_.timers().schedule(&s->refresh_timer, s->refresh_ms);
      return;
    }
    JwksLimits limits;
    limits.max_document_bytes = options_.max_document_bytes;
    JwtResult<std::shared_ptr<const KeySet>> parsed = parseJwks(data, limits);
    if (!parsed.ok()) {
      reason = "invalid JWKS: " + parsed.error().description;
    } else if ((*parsed)->empty()) {
      reason = "no usable key in the JWKS";
      for (const SkippedKey& k : (*parsed)->skipped()) {
        reason += (&k == &(*parsed)->skipped().front()) ? " (" : "; ";
        reason +=
            (k.kid.empty() ? "key " + std::to_string(k.index) : "kid " + k.kid) + ": " + k.reason;
        if (&k == &(*parsed)->skipped().back()) reason += ")";
      }
    } else {
      ++counters_.ok;
      ++counters_.changed;
      s->failures = 0;
      s->last_body = std::move(data);
      key_sets_[s->uri] = std::move(parsed.value());
      loop_.timers().schedule(&s->refresh_timer, s->refresh_ms);
      if (on_change_) on_change_();  // may call setSources(): nothing after this
      return;
    }
  } else {
    reason = std::move(data);
  }
  ++counters_.failed;
  warn(s->uri, reason);
  scheduleRetry(s);
}

void JwksFetcher::scheduleRetry(Source* s) {
  uint64_t delay = options_.retry_base_ms;
  for (uint32_t i = 0; i < s->failures && delay < options_.retry_max_ms; ++i) delay *= 2;
  delay = std::min<uint64_t>(delay, options_.retry_max_ms);
  ++s->failures;
  loop_.timers().schedule(&s->refresh_timer, delay);
}

void JwksFetcher::onTimer(void* ctx) {
  auto* s = static_cast<Source*>(ctx);
  if (!s->in_flight) s->owner->startFetch(s);
}

void JwksFetcher::onTimeout(void* ctx) {
  auto* s = static_cast<Source*>(ctx);
  JwksFetcher* f = s->owner;
  uint32_t ms = f->options_.timeout_ms;
  f->cancelFetch(s);
  f->finish(s, false, "no answer within " + std::to_string(ms) + " ms");
}

}  // namespace portico::security
