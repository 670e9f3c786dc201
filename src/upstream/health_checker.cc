#include "upstream/health_checker.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "http1/parser.h"
#include "http2/h2.h"
#include "net/socket.h"

namespace portico::upstream {

namespace {

// Below the timer wheel's tick a shorter interval would only spin the main loop.
constexpr uint32_t kMinIntervalMs = 10;
constexpr uint32_t kMaxHeaders = 64;

uint64_t wallClockMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// Path and host go verbatim into the request; a space or a control byte would let a config
// value inject headers, so such a check fails instead of sending anything.
bool safeRequestText(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return false;
  }
  return !s.empty();
}

std::string connectErrorText(int err) {
  switch (err) {
    case ECONNREFUSED:
      return "connect refused";
    case ETIMEDOUT:
      return "connect timeout";
    case EHOSTUNREACH:
    case ENETUNREACH:
      return "unreachable";
    default:
      return std::string("connect error: ") + std::strerror(err);
  }
}

bool statusExpected(const ActiveCheckConfig& c, int status) {
  if (c.expected_statuses.empty()) return status >= 200 && status <= 299;
  for (const auto& [lo, hi] : c.expected_statuses) {
    if (status >= lo && status <= hi) return true;
  }
  return false;
}

void bump(uint32_t& counter) {
  if (counter < std::numeric_limits<uint32_t>::max()) ++counter;
}

}  // namespace

// One endpoint under check. Owns the timers; the socket lives in a Probe so that epoll events
// still queued for a finished check can never reach a newer one.
struct HealthChecker::Target {
  HealthChecker* owner = nullptr;
  CheckTarget spec;
  std::string request;  // the HTTP request, built once; "" when path or host is unusable
  bool healthy = true;
  uint32_t successes = 0;
  uint32_t failures = 0;
  uint64_t checks = 0;
  std::string last_result;
  uint64_t last_check_ms = 0;
  Probe* probe = nullptr;  // the check in flight
  net::Timer next_timer;
  net::Timer timeout_timer;

  static void onNextTimer(void* ctx) {
    auto* t = static_cast<Target*>(ctx);
    t->owner->startCheck(t);
  }
  static void onTimeoutTimer(void* ctx);

  void prepare() {
    next_timer.set(&onNextTimer, this);
    timeout_timer.set(&onTimeoutTimer, this);
    request.clear();
    if (spec.config.type != ActiveCheckConfig::Type::kHttp) return;
    std::string host = spec.config.host.empty() ? spec.address.toString() : spec.config.host;
    if (!safeRequestText(spec.config.path) || spec.config.path.front() != '/' ||
        !safeRequestText(host)) {
      return;
    }
    request = "GET " + spec.config.path + " HTTP/1.1\r\nHost: " + host +
              "\r\nUser-Agent: portico-health-check\r\nConnection: close\r\n\r\n";
  }
};

// One check's connection. Handed to deferDelete when the check ends, so an event of the same
// epoll batch finds it alive, sees target_ == nullptr, and does nothing.
class HealthChecker::Probe final : public net::IoHandler, public net::Deferred {
 public:
  Probe(net::EventLoop& loop, Target* target, int fd) : loop_(loop), target_(target), fd_(fd) {}
  ~Probe() override { closeSocket(); }

  bool connecting() const { return phase_ == Phase::kConnecting; }

  // Waits for the connect to complete (an already connected socket is writable at once).
  bool start() { return loop_.add(fd_, EPOLLOUT, this); }

  // Detaches from the target and closes the socket; freed after the current batch.
  void abandon() {
    target_ = nullptr;
    closeSocket();
    loop_.deferDelete(this);
  }

  void onIo(uint32_t events) override {
    if (target_ == nullptr) return;
    if (phase_ == Phase::kConnecting) {
      int err = net::connectError(fd_);
      if (err == 0 && (events & (EPOLLERR | EPOLLHUP)) != 0) err = ECONNRESET;
      if (err != 0) return finish(false, connectErrorText(err));
      if (target_->spec.config.type == ActiveCheckConfig::Type::kTcp) {
        return finish(true, "connected");
      }
      if (target_->spec.config.type == ActiveCheckConfig::Type::kGrpc) {
        phase_ = Phase::kGrpc;
        startGrpc();
        return;
      }
      phase_ = Phase::kSending;
    }
    if (phase_ == Phase::kGrpc) {
      if (events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) receiveGrpc();
      if (target_ != nullptr) sendGrpc();
      return;
    }
    if (phase_ == Phase::kSending) {
      if (!sendRequest()) return;
      // The response usually arrives later; reading now would only hit EAGAIN.
      if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) == 0) return;
    }
    receive();
  }

 private:
  enum class Phase : uint8_t { kConnecting, kSending, kReceiving, kGrpc };

  // gRPC health checking protocol (grpc/doc/health-checking.md): one unary
  // grpc.health.v1.Health/Check on an h2c connection; the check passes when the call ends
  // with grpc-status 0 and the response's status field is SERVING (1).
  struct Grpc {
    http2::SessionPtr session;
    std::string request;  // the length-prefixed HealthCheckRequest
    size_t request_sent = 0;
    std::string response;  // response DATA, bounded by kMaxResponseHead
    int grpc_status = -1;
    int http_status = 0;
    bool done = false;
  };

  void startGrpc() {
    grpc_ = std::make_unique<Grpc>();
    const std::string& service = target_->spec.config.grpc_service;
    // HealthCheckRequest { string service = 1; } after the 5-byte gRPC message prefix.
    std::string msg;
    if (!service.empty() && service.size() < 128) {
      msg.push_back(0x0A);
      msg.push_back(static_cast<char>(service.size()));
      msg.append(service);
    }
    grpc_->request.assign(1, '\0');
    uint32_t len = static_cast<uint32_t>(msg.size());
    for (int shift = 24; shift >= 0; shift -= 8) {
      grpc_->request.push_back(static_cast<char>((len >> shift) & 0xFF));
    }
    grpc_->request.append(msg);
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(
        cbs,
        [](nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t nlen,
           const uint8_t* value, size_t vlen, uint8_t, void* user) -> int {
          auto* g = static_cast<Grpc*>(user);
          if (frame->hd.stream_id != 1) return 0;
          std::string_view n(reinterpret_cast<const char*>(name), nlen);
          std::string_view v(reinterpret_cast<const char*>(value), vlen);
          int x = 0;
          for (char c : v) x = (c >= '0' && c <= '9') ? x * 10 + (c - '0') : x;
          if (n == ":status") g->http_status = x;
          if (n == "grpc-status") g->grpc_status = x;
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cbs,
        [](nghttp2_session*, uint8_t, int32_t, const uint8_t* data, size_t len, void* user) -> int {
          auto* g = static_cast<Grpc*>(user);
          if (g->response.size() + len <= kMaxResponseHead) {
            g->response.append(reinterpret_cast<const char*>(data), len);
          }
          return 0;
        });
    nghttp2_session_callbacks_set_on_stream_close_callback(
        cbs, [](nghttp2_session*, int32_t, uint32_t, void* user) -> int {
          static_cast<Grpc*>(user)->done = true;
          return 0;
        });
    nghttp2_session* s = nullptr;
    nghttp2_session_client_new(&s, cbs, grpc_.get());
    nghttp2_session_callbacks_del(cbs);
    grpc_->session.reset(s);
    nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, nullptr, 0);
    std::string authority = target_->spec.address.toString();
    nghttp2_nv nva[] = {
        http2::nv(":method", "POST"),
        http2::nv(":scheme", "http"),
        http2::nv(":authority", authority),
        http2::nv(":path", "/grpc.health.v1.Health/Check"),
        http2::nv("content-type", "application/grpc"),
        http2::nv("te", "trailers"),
        http2::nv("user-agent", "portico-health-check"),
    };
    nghttp2_data_provider prd;
    prd.source.ptr = grpc_.get();
    prd.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t len, uint32_t* flags,
                           nghttp2_data_source* src, void*) -> ssize_t {
      auto* g = static_cast<Grpc*>(src->ptr);
      size_t n = std::min(len, g->request.size() - g->request_sent);
      std::memcpy(buf, g->request.data() + g->request_sent, n);
      g->request_sent += n;
      if (g->request_sent == g->request.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
      return static_cast<ssize_t>(n);
    };
    nghttp2_submit_request(s, nullptr, nva, sizeof nva / sizeof nva[0], &prd, nullptr);
    loop_.modify(fd_, EPOLLIN | EPOLLOUT | EPOLLRDHUP, this);
    sendGrpc();
  }

  void sendGrpc() {
    for (;;) {
      if (out_.empty()) {
        const uint8_t* data = nullptr;
        ssize_t n = nghttp2_session_mem_send(grpc_->session.get(), &data);
        if (n < 0) return finish(false, "HTTP/2 error");
        if (n == 0) break;
        out_.assign(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
      }
      ssize_t w = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        loop_.modify(fd_, EPOLLIN | EPOLLOUT | EPOLLRDHUP, this);
        return;
      }
      if (w < 0) return finish(false, std::string("send error: ") + std::strerror(errno));
      out_.erase(0, static_cast<size_t>(w));
    }
    loop_.modify(fd_, EPOLLIN | EPOLLRDHUP, this);
  }

  void receiveGrpc() {
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        ssize_t r = nghttp2_session_mem_recv(
            grpc_->session.get(), reinterpret_cast<const uint8_t*>(buf), static_cast<size_t>(n));
        if (r < 0) return finish(false, "bad HTTP/2 response (is the endpoint gRPC?)");
        if (grpc_->done) return grpcVerdict();
      } else if (n == 0) {
        return finish(false, "connection closed");
      } else if (errno == EINTR) {
        continue;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return;
      } else {
        return finish(false, std::string("read error: ") + std::strerror(errno));
      }
    }
  }

  void grpcVerdict() {
    if (grpc_->grpc_status < 0) {
      return finish(false, "HTTP " + std::to_string(grpc_->http_status) + " without grpc-status");
    }
    if (grpc_->grpc_status != 0) {
      return finish(false, "grpc-status " + std::to_string(grpc_->grpc_status));
    }
    // HealthCheckResponse { ServingStatus status = 1; }: 0x08 <varint>; absent = UNKNOWN.
    const std::string& r = grpc_->response;
    int status = 0;
    if (r.size() >= 7 && r[5] == 0x08) status = static_cast<unsigned char>(r[6]);
    static constexpr const char* kNames[] = {"UNKNOWN", "SERVING", "NOT_SERVING",
                                             "SERVICE_UNKNOWN"};
    std::string name = status < 4 ? kNames[status] : std::to_string(status);
    finish(status == 1, "gRPC " + name);
  }

  void closeSocket() {
    if (fd_ < 0) return;
    loop_.remove(fd_);
    ::close(fd_);
    fd_ = -1;
  }

  void finish(bool ok, std::string result) {
    Target* t = target_;
    t->owner->complete(t, ok, std::move(result));  // abandons this probe
  }

  // Returns true once the whole request is written (now waiting for the response).
  bool sendRequest() {
    const std::string& req = target_->request;
    while (sent_ < req.size()) {
      ssize_t n = ::send(fd_, req.data() + sent_, req.size() - sent_, MSG_NOSIGNAL);
      if (n > 0) {
        sent_ += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return false;  // still registered for EPOLLOUT
      } else {
        finish(false, std::string("send error: ") + std::strerror(errno));
        return false;
      }
    }
    phase_ = Phase::kReceiving;
    loop_.modify(fd_, EPOLLIN | EPOLLRDHUP, this);
    return true;
  }

  void receive() {
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        in_.append(buf, static_cast<size_t>(n));
        if (parse()) return;
      } else if (n == 0) {
        return finish(false, in_.empty() ? "connection closed" : "truncated response");
      } else if (errno == EINTR) {
        continue;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return;
      } else {
        return finish(false, std::string("read error: ") + std::strerror(errno));
      }
    }
  }

  // Returns true when the check ended (the probe is abandoned).
  bool parse() {
    http1::Limits limits;
    limits.max_header_bytes = kMaxResponseHead;
    limits.max_headers = kMaxHeaders;
    for (;;) {
      http1::Header headers[kMaxHeaders];
      http1::ResponseHead head;
      head.headers = headers;
      http1::ParseResult r = http1::parseResponseHead(in_, limits, "GET", &head);
      if (r.status == http1::ParseStatus::kIncomplete) {
        if (in_.size() < kMaxResponseHead) return false;
        finish(false, "response head too large");
        return true;
      }
      if (r.status == http1::ParseStatus::kError) {
        finish(false, "bad response: " + std::string(http1::describe(r.error)));
        return true;
      }
      // Interim responses (100 Continue, 103 Early Hints) precede the real answer. The body
      // is never read: the verdict is the status, and Connection: close ends the exchange.
      if (head.status >= 100 && head.status < 200 && head.status != 101) {
        in_.erase(0, r.consumed);
        continue;
      }
      finish(statusExpected(target_->spec.config, head.status),
             "HTTP " + std::to_string(head.status));
      return true;
    }
  }

  net::EventLoop& loop_;
  Target* target_;
  int fd_;
  Phase phase_ = Phase::kConnecting;
  size_t sent_ = 0;
  std::string in_;   // bounded by kMaxResponseHead plus one read
  std::string out_;  // gRPC: session bytes not yet written
  std::unique_ptr<Grpc> grpc_;
};

void HealthChecker::Target::onTimeoutTimer(void* ctx) {
  auto* t = static_cast<Target*>(ctx);
  bool connecting = t->probe != nullptr && t->probe->connecting();
  t->owner->complete(t, false, connecting ? "connect timeout" : "timeout");
}

HealthChecker::HealthChecker(net::EventLoop& loop, HealthTable& table)
    : loop_(loop),
      table_(table),
      rng_(static_cast<std::minstd_rand::result_type>(net::EventLoop::monotonicUs())) {}

HealthChecker::~HealthChecker() {
  for (auto& t : targets_) {
    dropProbe(t.get());
    table_.set(t->spec.pool_id, HealthTable::kActiveUnhealthy, false);
  }
}

uint32_t HealthChecker::jitter(uint32_t max_ms) {
  if (max_ms == 0) return 0;
  return std::uniform_int_distribution<uint32_t>(0, max_ms)(rng_);
}

void HealthChecker::scheduleNext(Target* t, uint32_t base_ms) {
  loop_.timers().schedule(&t->next_timer, base_ms + jitter(t->spec.config.jitter_ms));
}

void HealthChecker::dropProbe(Target* t) {
  t->timeout_timer.cancel();
  if (t->probe == nullptr) return;
  t->probe->abandon();
  t->probe = nullptr;
}

void HealthChecker::record(Target* t, bool ok, std::string result) {
  const ActiveCheckConfig& c = t->spec.config;
  ++t->checks;
  t->last_result = std::move(result);
  t->last_check_ms = wallClockMs();
  if (ok) {
    t->failures = 0;
    bump(t->successes);
    if (!t->healthy && t->successes >= std::max<uint32_t>(c.healthy_threshold, 1)) {
      t->healthy = true;
      table_.set(t->spec.pool_id, HealthTable::kActiveUnhealthy, false);
    }
  } else {
    t->successes = 0;
    bump(t->failures);
    if (t->healthy && t->failures >= std::max<uint32_t>(c.unhealthy_threshold, 1)) {
      t->healthy = false;
      table_.set(t->spec.pool_id, HealthTable::kActiveUnhealthy, true);
    }
  }
}

void HealthChecker::complete(Target* t, bool ok, std::string result) {
  dropProbe(t);
  record(t, ok, std::move(result));
  scheduleNext(t, std::max(t->spec.config.interval_ms, kMinIntervalMs));
}

void HealthChecker::startCheck(Target* t) {
  const CheckTarget& s = t->spec;
  if (s.config.type == ActiveCheckConfig::Type::kHttp && t->request.empty()) {
    return complete(t, false, "invalid path or host");
  }
  int fd = ::socket(s.address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return complete(t, false, std::string("socket: ") + std::strerror(errno));
  if (::connect(fd, s.address.sa(), s.address.length) != 0 && errno != EINPROGRESS) {
    int err = errno;
    ::close(fd);
    return complete(t, false, connectErrorText(err));
  }
  auto* probe = new Probe(loop_, t, fd);
  if (!probe->start()) {
    int err = errno;
    delete probe;
    return complete(t, false, std::string("epoll: ") + std::strerror(err));
  }
  t->probe = probe;
  loop_.timers().schedule(&t->timeout_timer, std::max<uint32_t>(s.config.timeout_ms, 1));
}

void HealthChecker::update(std::vector<CheckTarget> targets) {
  std::unordered_map<uint32_t, std::unique_ptr<Target>> old;
  for (auto& t : targets_) old.emplace(t->spec.pool_id, std::move(t));
  targets_.clear();

  std::unordered_set<uint32_t> seen;
  for (CheckTarget& spec : targets) {
    if (!seen.insert(spec.pool_id).second) continue;
    auto it = old.find(spec.pool_id);
    if (it != old.end()) {
      std::unique_ptr<Target> t = std::move(it->second);
      old.erase(it);
      if (t->spec.config == spec.config && t->spec.address.toString() == spec.address.toString()) {
        t->spec.backend = std::move(spec.backend);
        targets_.push_back(std::move(t));
        continue;
      }
      // Changed check: restart the evidence but keep the verdict (see the header).
      dropProbe(t.get());
      t->successes = t->failures = 0;
      t->checks = 0;
      t->spec = std::move(spec);
      t->prepare();
      scheduleNext(t.get(), 0);
      targets_.push_back(std::move(t));
      continue;
    }
    auto t = std::make_unique<Target>();
    t->owner = this;
    t->spec = std::move(spec);
    t->prepare();
    // Healthy until proven otherwise; nothing else writes this flag.
    table_.set(t->spec.pool_id, HealthTable::kActiveUnhealthy, false);
    scheduleNext(t.get(), 0);
    targets_.push_back(std::move(t));
  }

  for (auto& [pool_id, t] : old) {
    dropProbe(t.get());
    table_.set(pool_id, HealthTable::kActiveUnhealthy, false);
  }
}

std::vector<TargetStatus> HealthChecker::status() const {
  std::vector<TargetStatus> out;
  out.reserve(targets_.size());
  for (const auto& t : targets_) {
    TargetStatus s;
    s.pool_id = t->spec.pool_id;
    s.address = t->spec.address.toString();
    s.backend = t->spec.backend;
    s.type = t->spec.config.type;
    s.healthy = t->healthy;
    s.consecutive_successes = t->successes;
    s.consecutive_failures = t->failures;
    s.checks = t->checks;
    s.last_result = t->last_result;
    s.last_check_ms = t->last_check_ms;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace portico::upstream
