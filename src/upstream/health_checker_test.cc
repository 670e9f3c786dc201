#include "upstream/health_checker.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace portico::upstream {
namespace {

using Type = ActiveCheckConfig::Type;

// A loopback HTTP server on a thread with blocking sockets: answers every connection with
// the current canned response (or, when silent, accepts and never answers) and closes.
class TestServer {
 public:
  TestServer() {
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
  ~TestServer() {
    stop_ = true;
    thread_.join();
    for (int fd : held_) ::close(fd);
    ::close(listen_fd_);
  }

  net::Address address() const { return *net::Address::parseIp("127.0.0.1", port_); }
  uint16_t port() const { return port_; }
  void respondStatus(int status) {
    respond("HTTP/1.1 " + std::to_string(status) +
            " X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
  }
  void respond(std::string raw) {
    std::lock_guard<std::mutex> lock(mu_);
    response_ = std::move(raw);
  }
  void setSilent(bool silent) { silent_ = silent; }
  int requests() const { return requests_; }
  std::string lastRequest() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_request_;
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      if (silent_) {
        held_.push_back(fd);  // closed by the destructor; the checker must time out
        continue;
      }
      std::string req;
      char buf[1024];
      while (req.find("\r\n\r\n") == std::string::npos) {
        pollfd q{fd, POLLIN, 0};
        if (::poll(&q, 1, 1000) <= 0) break;
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
      }
      std::string response;
      {
        std::lock_guard<std::mutex> lock(mu_);
        last_request_ = req;
        response = response_;
      }
      if (!req.empty()) ++requests_;
      [[maybe_unused]] ssize_t n = ::send(fd, response.data(), response.size(), MSG_NOSIGNAL);
      ::close(fd);
    }
  }

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> silent_{false};
  std::atomic<int> requests_{0};
  std::vector<int> held_;  // server thread only until join
  std::mutex mu_;
  std::string response_ = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  std::string last_request_;
};

// A loopback port nothing listens on: bound, then closed.
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

// Runs the loop until `done()` holds (polled every tick) or `limit_ms` passed. A loop runs
// once only (stop() is final), so multi-phase tests advance their phases inside `done`.
bool runUntil(net::EventLoop& loop, const std::function<bool()>& done, uint64_t limit_ms) {
  struct Poller {
    net::EventLoop* loop;
    const std::function<bool()>* done;
    uint64_t deadline;
    bool met = false;
    net::Timer timer;
  } p;
  p.loop = &loop;
  p.done = &done;
  p.deadline = net::EventLoop::monotonicMs() + limit_ms;
  p.timer.set(
      [](void* ctx) {
        auto* p = static_cast<Poller*>(ctx);
        p->met = (*p->done)();
        if (p->met || net::EventLoop::monotonicMs() >= p->deadline) {
          p->loop->stop();
        } else {
          p->loop->timers().schedule(&p->timer, 5);
        }
      },
      &p);
  loop.timers().schedule(&p.timer, 0);
  loop.run();
  return p.met;
}

CheckTarget httpTarget(uint32_t pool_id, const net::Address& addr, uint32_t unhealthy = 2,
                       uint32_t healthy = 1) {
  CheckTarget t;
  t.pool_id = pool_id;
  t.address = addr;
  t.backend = "default/svc";
  t.config.type = Type::kHttp;
  t.config.path = "/healthz";
  t.config.interval_ms = 50;
  t.config.timeout_ms = 300;
  t.config.unhealthy_threshold = unhealthy;
  t.config.healthy_threshold = healthy;
  return t;
}

TEST(HealthChecker, HttpOkStaysHealthyAndSendsTheConfiguredRequest) {
  TestServer server;
  net::EventLoop loop;
  HealthTable table;
  HealthChecker checker(loop, table);
  CheckTarget t = httpTarget(7, server.address());
  t.config.host = "svc.example";
  checker.update({t});
  ASSERT_TRUE(runUntil(
      loop, [&] { return checker.status()[0].checks >= 3; }, 2000));
  TargetStatus s = checker.status()[0];
  EXPECT_TRUE(s.healthy);
  EXPECT_TRUE(table.healthy(7));
  EXPECT_EQ(s.last_result, "HTTP 200");
  EXPECT_GE(s.consecutive_successes, 3u);
  EXPECT_EQ(s.consecutive_failures, 0u);
  EXPECT_GT(s.last_check_ms, 0u);
  EXPECT_EQ(s.backend, "default/svc");
  EXPECT_EQ(s.address, "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(server.lastRequest(),
            "GET /healthz HTTP/1.1\r\nHost: svc.example\r\nUser-Agent: portico-health-check\r\n"
            "Connection: close\r\n\r\n");
}

TEST(HealthChecker, DefaultHostIsTheEndpointAddress) {
  TestServer server;
  net::EventLoop loop;
  HealthTable table;
  HealthChecker checker(loop, table);
  checker.update({httpTarget(1, server.address())});
  ASSERT_TRUE(runUntil(
      loop, [&] { return checker.status()[0].checks >= 1; }, 2000));
  EXPECT_NE(
      server.lastRequest().find("\r\nHost: 127.0.0.1:" + std::to_string(server.port()) + "\r\n"),
      std::string::npos);
}

TEST(HealthChecker, ErrorStatusMarksUnhealthyAfterThresholdAndRecovers) {
  TestServer server;
  server.respondStatus(503);
  net::EventLoop loop;
  HealthTable table;
  HealthChecker checker(loop, table);
  checker.update({httpTarget(3, server.address(), /*unhealthy=*/2, /*healthy=*/2)});

  // Phase 0: 503s until unhealthy; phase 1: 200s until healthy again. Every intermediate
  // check is sampled to prove the thresholds hold exactly.
  int phase = 0;
  bool healthy_after_one_failure = false;
  bool unhealthy_after_one_success = false;
  ASSERT_TRUE(runUntil(
      loop,
      [&] {
        TargetStatus s = checker.status()[0];
        if (phase == 0) {
          if (s.consecutive_failures == 1) healthy_after_one_failure = table.healthy(3);
          if (s.healthy) return false;
          EXPECT_EQ(s.consecutive_failures, 2u);
          EXPECT_EQ(s.last_result, "HTTP 503");
          EXPECT_EQ(table.flags(3), HealthTable::kActiveUnhealthy);
          server.respondStatus(200);
          phase = 1;
          return false;
        }
        if (s.consecutive_successes == 1) unhealthy_after_one_success = !table.healthy(3);
        return s.healthy;
      },
      3000));
  EXPECT_TRUE(healthy_after_one_failure);
  EXPECT_TRUE(unhealthy_after_one_success);
  EXPECT_TRUE(table.healthy(3));
  EXPECT_EQ(checker.status()[0].last_result, "HTTP 200");
}

TEST(HealthChecker, TcpCheckClosedPortIsUnhealthyOpenPortIsHealthy) {
  // A listening socket that never accepts still completes TCP handshakes (the backlog).
  TestServer open;
  net::EventLoop loop;
  HealthTable table;
  HealthChecker checker(loop, table);
  CheckTarget closed = httpTarget(10, *net::Address::parseIp("127.0.0.1", closedPort()));
  closed.config.type = Type::kTcp;
  CheckTarget listening = httpTarget(11, open.address());
  listening.config.type = Type::kTcp;
  checker.update({closed, listening});
  ASSERT_TRUE(runUntil(
      loop,
      [&] {
        auto s = checker.status();
        return !s[0].healthy && s[1].checks >= 2;
      },
      2000));
  auto s = checker.status();
  EXPECT_EQ(s[0].last_result, "connect refused");
  EXPECT_FALSE(table.healthy(10));
  EXPECT_TRUE(s[1].healthy);
  EXPECT_EQ(s[1].last_result, "connected");
  EXPECT_TRUE(table.healthy(11));
  EXPECT_EQ(open.requests(), 0);  // a TCP check sends nothing
}

TEST(HealthChecker, SilentServerTimesOut) {
  TestServer server;
  server.setSilent(true);
  net::EventLoop loop;
  HealthTable table;
  HealthChecker checker(loop, table);
  CheckTarget t = httpTarget(4, server.address());
  t.config.timeout_ms = 100;
  checker.update({t});
  uint64_t start = net::EventLoop::monotonicMs();
  ASSERT_TRUE(runUntil(
      loop, [&] { return !checker.status()[0].healthy; }, 2000));
  // Two timeouts of 100 ms with an interval of 50 ms between them.
  EXPECT_GE(net::EventLoop::monotonicMs() - start, 240u);
  EXPECT_EQ(checker.status()[0].last_result, "timeout");
  EXPECT_FALSE(table.healthy(4));
}

TEST(HealthChecker, ExpectedStatusRanges) {
  TestServer server;
  server.respondStatus(204);
  net::EventLoop loop;
  HealthTable table;
  HealthChecker checker(loop, table);
  CheckTarget only200 = httpTarget(20, server.address(), 1);
  only200.config.expected_statuses = {{200, 200}};
  CheckTarget listed = httpTarget(21, server.address(), 1);
  listed.config.expected_statuses = {{200, 200}, {204, 204}};
  CheckTarget defaults = httpTarget(22, server.address(), 1);  // 200-299
  CheckTarget redirects = httpTarget(23, server.address(), 1);
  redirects.config.expected_statuses = {{300, 399}};
  checker.update({only200, listed, defaults, redirects});
  ASSERT_TRUE(runUntil(
      loop,
      [&] {
        for (const auto& s : checker.status()) {
          if (s.checks < 2) return false;
        }
        return true;
      },
      2000));
  auto s = checker.status();
  EXPECT_FALSE(s[0].healthy);
  EXPECT_TRUE(s[1].healthy);
  EXPECT_TRUE(s[2].healthy);
  EXPECT_FALSE(s[3].healthy);
  EXPECT_EQ(s[0].last_result, "HTTP 204");
  EXPECT_FALSE(table.healthy(20));
  EXPECT_TRUE(table.healthy(21));
  EXPECT_TRUE(table.healthy(22));
  EXPECT_FALSE(table.healthy(23));
}

TEST(HealthChecker, InterimResponseIsSkippedAndGarbageFails) {
  TestServer interim;
  interim.respond("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  TestServer garbage;
  garbage.respond("SSH-2.0-OpenSSH_9.6\r\n\r\n");
  TestServer empty;
  empty.respond("");
  net::EventLoop loop;
  HealthTable table;
  HealthChecker checker(loop, table);
  checker.update({httpTarget(1, interim.address(), 1), httpTarget(2, garbage.address(), 1),
                  httpTarget(3, empty.address(), 1)});
  ASSERT_TRUE(runUntil(
      loop,
      [&] {
        auto s = checker.status();
        return s[0].checks >= 1 && s[1].checks >= 1 && s[2].checks >= 1;
      },
      2000));
  auto s = checker.status();
  EXPECT_TRUE(s[0].healthy);
  EXPECT_EQ(s[0].last_result, "HTTP 200");
  EXPECT_FALSE(s[1].healthy);
  EXPECT_EQ(s[1].last_result.rfind("bad response: ", 0), 0u) << s[1].last_result;
  EXPECT_FALSE(s[2].healthy);
  EXPECT_EQ(s[2].last_result, "connection closed");
}

TEST(HealthChecker, UnsafePathFailsWithoutSending) {
  TestServer server;
  net::EventLoop loop;
  HealthTable table;
  HealthChecker checker(loop, table);
  CheckTarget t = httpTarget(5, server.address(), 1);
  t.config.path = "/x HTTP/1.1\r\nX-Injected: 1\r\n";
  checker.update({t});
  ASSERT_TRUE(runUntil(
      loop, [&] { return checker.status()[0].checks >= 1; }, 2000));
  EXPECT_EQ(checker.status()[0].last_result, "invalid path or host");
  EXPECT_FALSE(table.healthy(5));
  EXPECT_EQ(server.requests(), 0);
}

TEST(HealthChecker, FirstCheckRunsSoonEvenWithALongInterval) {
  TestServer server;
  net::EventLoop loop;
  HealthTable table;
  HealthChecker checker(loop, table);
  CheckTarget t = httpTarget(6, server.address());
  t.config.interval_ms = 60'000;
  t.config.jitter_ms = 100;
  checker.update({t});
  EXPECT_TRUE(runUntil(
      loop, [&] { return checker.status()[0].checks == 1; }, 1000));
}

TEST(HealthChecker, UpdateKeepsUnchangedTargetsAndClearsRemovedOnes) {
  TestServer bad;
  bad.respondStatus(500);
  TestServer good;
  net::EventLoop loop;
  HealthTable table;
  HealthChecker checker(loop, table);
  CheckTarget a = httpTarget(30, bad.address(), 1);
  CheckTarget b = httpTarget(31, good.address(), 1);
  checker.update({a, b});
  ASSERT_TRUE(runUntil(
      loop,
      [&] {
        auto s = checker.status();
        return !s[0].healthy && s[1].checks >= 2;
      },
      2000));
  // Checks may be in flight here: update() must drop them safely (ASan watches).
  TargetStatus before_a = checker.status()[0];
  TargetStatus before_b = checker.status()[1];

  // Same targets (a backend renamed, order changed): state kept.
  a.backend = "default/renamed";
  checker.update({b, a});
  auto s = checker.status();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].pool_id, 31u);
  EXPECT_EQ(s[0].checks, before_b.checks);
  EXPECT_EQ(s[1].pool_id, 30u);
  EXPECT_FALSE(s[1].healthy);
  EXPECT_EQ(s[1].checks, before_a.checks);
  EXPECT_EQ(s[1].consecutive_failures, before_a.consecutive_failures);
  EXPECT_EQ(s[1].backend, "default/renamed");
  EXPECT_FALSE(table.healthy(30));

  // Changed config: counters restart, the verdict stays until new checks decide.
  a.config.path = "/ready";
  checker.update({b, a});
  s = checker.status();
  EXPECT_EQ(s[1].checks, 0u);
  EXPECT_EQ(s[1].consecutive_failures, 0u);
  EXPECT_FALSE(s[1].healthy);
  EXPECT_FALSE(table.healthy(30));

  // Removed: flag cleared at once, only b is left.
  checker.update({b});
  s = checker.status();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].pool_id, 31u);
  EXPECT_TRUE(table.healthy(30));

  // Duplicate pool ids are checked once.
  checker.update({b, b});
  EXPECT_EQ(checker.status().size(), 1u);
}

TEST(HealthChecker, DestructionClearsFlagsAndNewTargetsStartHealthy) {
  TestServer bad;
  bad.respondStatus(503);
  net::EventLoop loop;
  HealthTable table;
  table.set(40, HealthTable::kEjected, true);  // not ours: must survive
  {
    HealthChecker checker(loop, table);
    checker.update({httpTarget(40, bad.address(), 1)});
    EXPECT_TRUE(checker.status()[0].healthy);
    ASSERT_TRUE(runUntil(
        loop, [&] { return !checker.status()[0].healthy; }, 2000));
    EXPECT_EQ(table.flags(40), HealthTable::kActiveUnhealthy | HealthTable::kEjected);
  }
  EXPECT_EQ(table.flags(40), HealthTable::kEjected);
}

}  // namespace
}  // namespace portico::upstream
