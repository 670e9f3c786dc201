#include "proxy/ext_authz.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "net/tls_testing.h"
#include "proxy/worker.h"
#include "upstream/shared_state.h"

namespace portico::proxy {
namespace {

// A loopback HTTP/1.1 server on a thread (poll over blocking sockets): keeps connections
// open (keep-alive), answers each request with answer(request), records requests and counts
// connections. An answer containing "Connection: close" closes after it; silent: no answer.
class AuthzServer {
 public:
  AuthzServer() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    EXPECT_EQ(::listen(listen_fd_, 64), 0);
    socklen_t len = sizeof sa;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~AuthzServer() {
    stop_ = true;
    thread_.join();
    for (Conn& c : conns_) ::close(c.fd);
    ::close(listen_fd_);
  }

  uint16_t port() const { return port_; }
  void answer(std::string raw) {
    std::lock_guard<std::mutex> lock(mu_);
    answer_ = std::move(raw);
  }
  void setSilent(bool s) { silent_ = s; }
  // Closes each connection right after its answer, without saying so: the pooled connection
  // is stale (dropped by the pool, or retried once on a fresh connection when already taken).
  void setCloseAfterAnswer(bool c) { close_after_ = c; }
  int connections() const { return connections_; }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  struct Conn {
    int fd;
    std::string in;
  };

  void serve() {
    while (!stop_) {
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
      for (Conn& c : conns_) fds.push_back({c.fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 10) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
          conns_.push_back({fd, {}});
          ++connections_;
        }
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        Conn& c = conns_[i - 1];
        char buf[4096];
        ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
        if (n <= 0) {
          ::close(c.fd);
          c.fd = -1;
          continue;
        }
        c.in.append(buf, static_cast<size_t>(n));
        handle(c);
      }
      std::erase_if(conns_, [](const Conn& c) { return c.fd < 0; });
    }
  }

  void handle(Conn& c) {
    for (;;) {
      size_t end = c.in.find("\r\n\r\n");
      if (end == std::string::npos) return;
      size_t body = 0;
      size_t cl = c.in.find("content-length: ");
      if (cl != std::string::npos && cl < end) body = std::stoul(c.in.substr(cl + 16));
      size_t total = end + 4 + body;
      if (c.in.size() < total) return;
      std::string answer;
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(c.in.substr(0, total));
        answer = answer_;
      }
      c.in.erase(0, total);
      if (silent_) continue;
      [[maybe_unused]] ssize_t n = ::send(c.fd, answer.data(), answer.size(), MSG_NOSIGNAL);
      if (close_after_ || answer.find("Connection: close") != std::string::npos) {
        ::close(c.fd);
        c.fd = -1;
        return;
      }
    }
  }

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> silent_{false};
  std::atomic<bool> close_after_{false};
  std::atomic<int> connections_{0};
  std::vector<Conn> conns_;  // server thread only
  std::mutex mu_;
  std::string answer_ = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  std::vector<std::string> requests_;
};

uint16_t closedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  ::close(fd);
  return ntohs(sa.sin_port);
}

struct Result {
  int calls = 0;
  ExtAuthzVerdict verdict;
};

void onDone(void* ctx, ExtAuthzVerdict& v) {
  auto* r = static_cast<Result*>(ctx);
  ++r->calls;
  r->verdict = std::move(v);
}

class ExtAuthzTest : public ::testing::Test {
 protected:
  ExtAuthzTest() {
    WorkerOptions options;
    options.shared = &shared_;
    worker_ = std::make_unique<Worker>(0, shard_, options);
    worker_->attach(std::make_shared<config::Snapshot>());
  }

  void useBackend(uint16_t port) {
    backend_.name = "authz";
    backend_.stats_id = 0;
    config::Endpoint e;
    e.address = *net::Address::parseIp("127.0.0.1", port);
    e.authority = e.address.toString();
    e.pool_id = 7;
    backend_.endpoints = {e};
    cfg_.backend = &backend_;
    cfg_.path = "/check";
  }

  security::Request request() {
    headers_ = {
        {"Authorization", "Bearer t", http1::HeaderTag::kOther},
        {"X-Forwarded-For", "10.0.0.1", http1::HeaderTag::kXForwardedFor},
        {"Connection", "keep-alive", http1::HeaderTag::kConnection},
        {"x-request-id", "r1", http1::HeaderTag::kOther},
        {"content-length", "5", http1::HeaderTag::kOther},  // untagged (HTTP/2 style)
    };
    security::Request r;
    r.method = "GET";
    r.authority = "api.example.com";
    r.path = "/orders/1";
    r.query = "a=b";
    r.headers = headers_.data();
    r.header_count = static_cast<uint32_t>(headers_.size());
    r.peer_family = AF_INET;
    r.peer_addr = peer_;
    return r;
  }

  // Starts a call and runs the loop until it delivers (or 3 s pass).
  Result check(std::string_view body = {}) {
    Result r;
    ExtAuthzCall::start(*worker_, cfg_, request(), true, body, &onDone, &r);
    EXPECT_EQ(r.calls, 0);  // never inside start()
    uint64_t deadline = net::EventLoop::monotonicMs() + 3000;
    while (r.calls == 0 && net::EventLoop::monotonicMs() < deadline) worker_->loop().runOnce(5);
    EXPECT_EQ(r.calls, 1);
    return r;
  }

  uint64_t stat(stats::Counter stats::GlobalStats::*c) { return (shard_.global.*c).get(); }

  stats::Shard shard_;
  upstream::SharedState shared_;
  std::unique_ptr<Worker> worker_;
  config::Backend backend_;
  security::ExtAuthz cfg_;
  std::vector<http1::Header> headers_;
  uint8_t peer_[4] = {192, 0, 2, 7};
};

TEST_F(ExtAuthzTest, AllowSendsTheRequestAndCopiesHeadersToBackend) {
  AuthzServer server;
  server.answer("HTTP/1.1 200 OK\r\nX-User-Id: 42\r\nX-Other: 1\r\nContent-Length: 2\r\n\r\nok");
  useBackend(server.port());
  cfg_.headers_to_backend = {"x-user-id"};
  Result r = check();
  EXPECT_EQ(r.verdict.kind, ExtAuthzVerdict::Kind::kAllow);
  EXPECT_EQ(r.verdict.reason, "ext_authz_allowed");
  ASSERT_EQ(r.verdict.upstream_headers.size(), 1u);
  EXPECT_EQ(r.verdict.upstream_headers[0].name, "x-user-id");
  EXPECT_EQ(r.verdict.upstream_headers[0].value, "42");
  ASSERT_EQ(server.requests().size(), 1u);
  std::string req = server.requests()[0];
  EXPECT_EQ(req.rfind("GET /check/orders/1?a=b HTTP/1.1\r\n", 0), 0u) << req;
  EXPECT_NE(req.find("host: api.example.com\r\n"), std::string::npos) << req;
  EXPECT_NE(req.find("authorization: Bearer t\r\n"), std::string::npos) << req;
  EXPECT_NE(req.find("x-request-id: r1\r\n"), std::string::npos) << req;
  EXPECT_NE(req.find("x-forwarded-for: 10.0.0.1, 192.0.2.7\r\n"), std::string::npos) << req;
  EXPECT_NE(req.find("x-forwarded-proto: https\r\n"), std::string::npos) << req;
  EXPECT_NE(req.find("x-forwarded-host: api.example.com\r\n"), std::string::npos) << req;
  EXPECT_EQ(req.find("onnection"), std::string::npos) << req;
  EXPECT_EQ(req.find("content-length"), std::string::npos) << req;  // no body sent
  EXPECT_EQ(stat(&stats::GlobalStats::ext_authz_allowed), 1u);
  cfg_.max_body_bytes = 0;
  check("a body");
  EXPECT_EQ(server.requests().at(1).find("a body"), std::string::npos);  // maxRequestBytes 0
}

TEST_F(ExtAuthzTest, HeadersToServiceAndBody) {
  AuthzServer server;
  useBackend(server.port());
  cfg_.headers_to_service = {"x-request-id"};
  cfg_.path = "/";
  cfg_.max_body_bytes = 5;
  Result r = check("hello, and more");
  EXPECT_EQ(r.verdict.kind, ExtAuthzVerdict::Kind::kAllow);
  std::string req = server.requests().at(0);
  EXPECT_EQ(req.rfind("GET /orders/1?a=b HTTP/1.1\r\n", 0), 0u) << req;
  EXPECT_EQ(req.find("authorization"), std::string::npos) << req;
  EXPECT_NE(req.find("x-request-id: r1\r\n"), std::string::npos) << req;
  EXPECT_NE(req.find("content-length: 5\r\n\r\nhello"), std::string::npos) << req;
}

TEST_F(ExtAuthzTest, DenyPassesTheServiceAnswer) {
  AuthzServer server;
  server.answer(
      "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Type: text/plain\r\n"
      "Transfer-Encoding: chunked\r\n\r\n4\r\nnope\r\n0\r\n\r\n");
  useBackend(server.port());
  Result r = check();
  EXPECT_EQ(r.verdict.kind, ExtAuthzVerdict::Kind::kDeny);
  EXPECT_EQ(r.verdict.status, 401);
  EXPECT_EQ(r.verdict.reason, "ext_authz_denied");
  EXPECT_EQ(r.verdict.body, "nope");
  EXPECT_EQ(r.verdict.content_type, "text/plain");
  EXPECT_EQ(r.verdict.client_headers, "WWW-Authenticate: Bearer\r\n");
  EXPECT_EQ(stat(&stats::GlobalStats::ext_authz_denied), 1u);
}

TEST_F(ExtAuthzTest, ErrorsDenyWith403OrAllowWhenFailOpen) {
  AuthzServer server;
  server.answer("HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\n\r\n");
  useBackend(server.port());
  Result r = check();
  EXPECT_EQ(r.verdict.kind, ExtAuthzVerdict::Kind::kDeny);
  EXPECT_EQ(r.verdict.status, 403);
  EXPECT_EQ(r.verdict.reason, "ext_authz_error");
  cfg_.fail_open = true;
  r = check();
  EXPECT_EQ(r.verdict.kind, ExtAuthzVerdict::Kind::kAllow);
  EXPECT_EQ(r.verdict.reason, "ext_authz_error");
  cfg_.fail_open = false;
  server.answer("HTTP/9.9 2x\r\n\r\n");
  r = check();
  EXPECT_EQ(r.verdict.reason, "ext_authz_error");
  EXPECT_EQ(stat(&stats::GlobalStats::ext_authz_errors), 3u);
}

TEST_F(ExtAuthzTest, UnreachableAndTimeout) {
  useBackend(closedPort());
  Result r = check();
  EXPECT_EQ(r.verdict.kind, ExtAuthzVerdict::Kind::kDeny);
  EXPECT_EQ(r.verdict.status, 403);
  EXPECT_EQ(r.verdict.reason, "ext_authz_unreachable");
  AuthzServer server;
  server.setSilent(true);
  useBackend(server.port());
  cfg_.timeout_ms = 60;
  uint64_t start = net::EventLoop::monotonicMs();
  r = check();
  EXPECT_EQ(r.verdict.reason, "ext_authz_timeout");
  EXPECT_GE(net::EventLoop::monotonicMs() - start, 55u);
  cfg_.backend = nullptr;
  r = check();
  EXPECT_EQ(r.verdict.reason, "ext_authz_unreachable");
}

TEST_F(ExtAuthzTest, KeepAliveConnectionsAreReused) {
  AuthzServer server;
  useBackend(server.port());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(check().verdict.kind, ExtAuthzVerdict::Kind::kAllow);
  EXPECT_EQ(server.requests().size(), 3u);
  EXPECT_EQ(server.connections(), 1);
  // A service that closes after its answer: a fresh connection each time.
  server.answer("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  for (int i = 0; i < 2; ++i) EXPECT_EQ(check().verdict.kind, ExtAuthzVerdict::Kind::kAllow);
  EXPECT_EQ(server.connections(), 2);
}

TEST_F(ExtAuthzTest, ServiceClosingAfterEachAnswerIsNeverAnError) {
  AuthzServer server;
  server.setCloseAfterAnswer(true);
  useBackend(server.port());
  for (int i = 0; i < 4; ++i) {
    Result r = check();
    EXPECT_EQ(r.verdict.kind, ExtAuthzVerdict::Kind::kAllow) << i;
    EXPECT_EQ(r.verdict.reason, "ext_authz_allowed") << i;
  }
  EXPECT_EQ(server.requests().size(), 4u);
  EXPECT_EQ(server.connections(), 4);
}

TEST_F(ExtAuthzTest, CacheKeepsAllowsAnd4xxButNotErrors) {
  AuthzServer server;
  useBackend(server.port());
  cfg_.cache_ttl_ms = 10'000;
  cfg_.cache_max_entries = 2;
  cfg_.max_body_bytes = 64;
  EXPECT_EQ(check().verdict.kind, ExtAuthzVerdict::Kind::kAllow);
  EXPECT_EQ(check().verdict.kind, ExtAuthzVerdict::Kind::kAllow);  // cached
  EXPECT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(stat(&stats::GlobalStats::ext_authz_allowed), 2u);
  EXPECT_EQ(check("other body").verdict.kind, ExtAuthzVerdict::Kind::kAllow);  // another key
  EXPECT_EQ(server.requests().size(), 2u);

  worker_->extAuthzCache().clear();
  server.answer("HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno");
  EXPECT_EQ(check().verdict.status, 403);
  Result r = check();
  EXPECT_EQ(r.verdict.body, "no");  // cached deny, whole
  EXPECT_EQ(server.requests().size(), 3u);

  worker_->extAuthzCache().clear();
  server.answer("HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(check().verdict.reason, "ext_authz_error");
  EXPECT_EQ(check().verdict.reason, "ext_authz_error");
  EXPECT_EQ(server.requests().size(), 5u);
  EXPECT_EQ(worker_->extAuthzCache().size(), 0u);

  // Bounded by maxEntries.
  server.answer("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  for (const char* b : {"1", "2", "3"}) check(b);
  EXPECT_EQ(worker_->extAuthzCache().size(), 2u);
  // A new snapshot clears it.
  worker_->attach(std::make_shared<config::Snapshot>());
  EXPECT_EQ(worker_->extAuthzCache().size(), 0u);
}

TEST_F(ExtAuthzTest, TlsBackend) {
  net::testing::Pem pem = net::testing::makeCertificate("authz.test", {"authz.test"});
  const std::string& cert = pem.cert;
  net::testing::OpensslWwwServer server(pem, "check/orders/1", "ok");
  useBackend(server.port());
  net::ClientTlsSettings settings;
  auto ca = net::TlsCaBundle::fromPem(cert);
  ASSERT_TRUE(ca.ok());
  settings.ca = ca.value();
  auto tls = net::ClientTlsContext::build(settings);
  ASSERT_TRUE(tls.ok());
  backend_.tls = tls.value();
  backend_.tls_server_name = "authz.test";
  cfg_.timeout_ms = 2000;
  Result r = check();  // s_server -WWW answers 200 for a file it has
  EXPECT_EQ(r.verdict.kind, ExtAuthzVerdict::Kind::kAllow);
  EXPECT_EQ(r.verdict.reason, "ext_authz_allowed");
  // A name the certificate does not cover: the handshake fails, the service is unreachable.
  backend_.tls_server_name = "other.test";
  r = check();
  EXPECT_EQ(r.verdict.kind, ExtAuthzVerdict::Kind::kDeny);
  EXPECT_EQ(r.verdict.reason, "ext_authz_unreachable");
}

TEST_F(ExtAuthzTest, CancelledCallsNeverDeliver) {
  AuthzServer server;
  server.setSilent(true);
  useBackend(server.port());
  Result r;
  ExtAuthzCall* call = ExtAuthzCall::start(*worker_, cfg_, request(), false, {}, &onDone, &r);
  for (int i = 0; i < 5; ++i) worker_->loop().runOnce(5);
  call->cancel();
  for (int i = 0; i < 30; ++i) worker_->loop().runOnce(10);  // past the 200 ms timeout
  EXPECT_EQ(r.calls, 0);
  // Cancelled after the verdict was ready but before delivery.
  cfg_.backend = nullptr;
  call = ExtAuthzCall::start(*worker_, cfg_, request(), false, {}, &onDone, &r);
  call->cancel();
  worker_->loop().runOnce(0);
  EXPECT_EQ(r.calls, 0);
  // In flight at worker exit: freed by the worker (checked by the sanitizer build).
  useBackend(server.port());
  ExtAuthzCall::start(*worker_, cfg_, request(), false, {}, &onDone, &r);
  worker_->loop().runOnce(5);
  worker_.reset();
  EXPECT_EQ(r.calls, 0);
}

}  // namespace
}  // namespace portico::proxy
