#include "security/jwks_fetcher.h"

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

namespace portico::security {
namespace {

const std::string kDocA =
    R"({"keys":[{"kty":"oct","kid":"a","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]})";
const std::string kDocB =
    R"({"keys":[{"kty":"oct","kid":"b","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]})";

std::string ok200(const std::string& body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

// A loopback HTTP server on a thread with blocking sockets: reads one request head per
// connection, answers with the current canned response (or, when silent, never answers) and
// closes. A given port is bound again (SO_REUSEADDR): a server can come back after a stop.
class TestServer {
 public:
  explicit TestServer(uint16_t port = 0) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(port);
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

  uint16_t port() const { return port_; }
  std::string uri(const std::string& path = "/jwks.json") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
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
      if (::poll(&p, 1, 10) <= 0) continue;
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
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
      if (silent_) {
        held_.push_back(fd);  // never answered: the fetch must time out
        continue;
      }
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
  std::string response_;
  std::string last_request_;
};

// Drives the loop until `done()` holds or `limit_ms` passed; returns done().
bool runUntil(net::EventLoop& loop, const std::function<bool()>& done, uint64_t limit_ms = 3000) {
  uint64_t deadline = net::EventLoop::monotonicMs() + limit_ms;
  while (!done()) {
    if (net::EventLoop::monotonicMs() >= deadline) return false;
    loop.runOnce(5);
  }
  return true;
}

void runFor(net::EventLoop& loop, uint64_t ms) {
  runUntil(
      loop, [] { return false; }, ms);
}

std::string kidOf(const JwksFetcher& f, const std::string& uri) {
  auto it = f.keySets().find(uri);
  if (it == f.keySets().end() || it->second->keys().empty()) return "";
  return it->second->keys()[0].kid;
}

struct Fixture : ::testing::Test {
  net::EventLoop loop;
  net::DnsResolver dns{loop, net::DnsOptions{}};
  int changes = 0;
  JwksFetchOptions options() {
    JwksFetchOptions o;
    o.timeout_ms = 500;
    o.min_refresh_ms = 300;
    o.retry_base_ms = 20;
    o.retry_max_ms = 80;
    return o;
  }
};

using JwksFetcherTest = Fixture;

TEST_F(JwksFetcherTest, FirstFetchThenUnchangedDocumentsDoNotCallOnChange) {
  TestServer server;
  server.respond(ok200(kDocA));
  JwksFetcher f(
      loop, dns, [&] { ++changes; }, options());
  f.setSources({{server.uri(), 50}});
  ASSERT_TRUE(runUntil(loop, [&] { return changes == 1; }));
  EXPECT_EQ(kidOf(f, server.uri()), "a");
  std::string req = server.lastRequest();
  EXPECT_EQ(req.rfind("GET /jwks.json HTTP/1.1\r\n", 0), 0u) << req;
  EXPECT_NE(req.find("host: 127.0.0.1:" + std::to_string(server.port()) + "\r\n"),
            std::string::npos);
  EXPECT_NE(req.find("accept: application/json\r\n"), std::string::npos);
  EXPECT_NE(req.find("connection: close\r\n"), std::string::npos);
  // Refreshes every 50 ms: same bytes, no change.
  ASSERT_TRUE(runUntil(loop, [&] { return f.counters().ok >= 4; }));
  EXPECT_EQ(changes, 1);
  EXPECT_EQ(f.counters().changed, 1u);
  EXPECT_EQ(f.counters().failed, 0u);
}

TEST_F(JwksFetcherTest, NewDocumentCallsOnChange) {
  TestServer server;
  server.respond(ok200(kDocA));
  JwksFetcher f(
      loop, dns, [&] { ++changes; }, options());
  f.setSources({{server.uri(), 50}});
  ASSERT_TRUE(runUntil(loop, [&] { return changes == 1; }));
  server.respond(ok200(kDocB));
  ASSERT_TRUE(runUntil(loop, [&] { return changes == 2; }));
  EXPECT_EQ(kidOf(f, server.uri()), "b");
  EXPECT_EQ(f.counters().changed, 2u);
}

TEST_F(JwksFetcherTest, ChunkedAndUntilCloseBodies) {
  TestServer server;
  std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
                        std::string("10\r\n") + kDocA.substr(0, 16) + "\r\n" +
                        [&] {
                          char hex[16];
                          std::snprintf(hex, sizeof hex, "%zx", kDocA.size() - 16);
                          return std::string(hex);
                        }() +
                        "\r\n" + kDocA.substr(16) + "\r\n0\r\n\r\n";
  server.respond(chunked);
  JwksFetcher f(
      loop, dns, [&] { ++changes; }, options());
  f.setSources({{server.uri(), 50}});
  ASSERT_TRUE(runUntil(loop, [&] { return changes == 1; }));
  EXPECT_EQ(kidOf(f, server.uri()), "a");
  server.respond("HTTP/1.0 200 OK\r\n\r\n" + kDocB);  // body until close
  ASSERT_TRUE(runUntil(loop, [&] { return changes == 2; }));
  EXPECT_EQ(kidOf(f, server.uri()), "b");
}

TEST_F(JwksFetcherTest, ServerDownKeepsLastGoodAndRetriesWithBackoff) {
  auto server = std::make_unique<TestServer>();
  uint16_t port = server->port();
  std::string uri = server->uri();
  server->respond(ok200(kDocA));
  JwksFetcher f(
      loop, dns, [&] { ++changes; }, options());
  f.setSources({{uri, 50}});
  ASSERT_TRUE(runUntil(loop, [&] { return changes == 1; }));
  server.reset();  // connection refused from now on
  ASSERT_TRUE(runUntil(loop, [&] { return f.counters().failed >= 4; }));
  EXPECT_EQ(kidOf(f, uri), "a");  // the last good set stays
  // Backoff: 20, 40, 80, 80 ms after the first failure; not a tight loop.
  uint64_t failed = f.counters().failed;
  runFor(loop, 200);
  EXPECT_LE(f.counters().failed - failed, 4u);
  server = std::make_unique<TestServer>(port);
  server->respond(ok200(kDocB));
  ASSERT_TRUE(runUntil(loop, [&] { return changes == 2; }));
  EXPECT_EQ(kidOf(f, uri), "b");
}

TEST_F(JwksFetcherTest, FailuresBeforeAnySuccessLeaveNoKeySet) {
  TestServer server;
  server.respond("HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n");
  JwksFetcher f(
      loop, dns, [&] { ++changes; }, options());
  f.setSources({{server.uri(), 50}});
  ASSERT_TRUE(runUntil(loop, [&] { return f.counters().failed >= 2; }));
  EXPECT_EQ(server.lastRequest().rfind("GET /jwks.json ", 0), 0u);  // no redirect followed
  EXPECT_TRUE(f.keySets().empty());
  server.respond("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(runUntil(loop, [&] { return f.counters().failed >= 4; }));
  EXPECT_TRUE(f.keySets().empty());
  EXPECT_EQ(changes, 0);
}

TEST_F(JwksFetcherTest, BadDocumentKeepsLastGood) {
  TestServer server;
  server.respond(ok200(kDocA));
  JwksFetcher f(
      loop, dns, [&] { ++changes; }, options());
  f.setSources({{server.uri(), 50}});
  ASSERT_TRUE(runUntil(loop, [&] { return changes == 1; }));
  server.respond(ok200("{\"keys\": [not json"));
  ASSERT_TRUE(runUntil(loop, [&] { return f.counters().failed >= 2; }));
  EXPECT_EQ(kidOf(f, server.uri()), "a");
  // Every key skipped: a failure too.
  server.respond(ok200(R"({"keys":[{"kty":"foo","kid":"x"}]})"));
  uint64_t failed = f.counters().failed;
  ASSERT_TRUE(runUntil(loop, [&] { return f.counters().failed >= failed + 2; }));
  EXPECT_EQ(kidOf(f, server.uri()), "a");
  EXPECT_EQ(changes, 1);
}

TEST_F(JwksFetcherTest, BodyTooLargeFails) {
  TestServer server;
  std::string big = kDocA;
  big.insert(1, std::string(2000, ' '));
  server.respond(ok200(big));
  JwksFetchOptions o = options();
  o.max_document_bytes = 1024;
  JwksFetcher f(
      loop, dns, [&] { ++changes; }, o);
  f.setSources({{server.uri(), 50}});
  ASSERT_TRUE(runUntil(loop, [&] { return f.counters().failed >= 1; }));
  EXPECT_TRUE(f.keySets().empty());
  // The same without Content-Length (until close): stopped at the limit too.
  server.respond("HTTP/1.0 200 OK\r\n\r\n" + big);
  ASSERT_TRUE(runUntil(loop, [&] { return f.counters().failed >= 3; }));
  EXPECT_TRUE(f.keySets().empty());
  // Under the limit: accepted.
  server.respond(ok200(kDocA));
  ASSERT_TRUE(runUntil(loop, [&] { return changes == 1; }));
}

TEST_F(JwksFetcherTest, SilentServerTimesOut) {
  TestServer server;
  server.setSilent(true);
  JwksFetchOptions o = options();
  o.timeout_ms = 100;
  JwksFetcher f(
      loop, dns, [&] { ++changes; }, o);
  f.setSources({{server.uri(), 50}});
  uint64_t start = net::EventLoop::monotonicMs();
  ASSERT_TRUE(runUntil(loop, [&] { return f.counters().failed >= 1; }));
  EXPECT_GE(net::EventLoop::monotonicMs() - start, 90u);
  EXPECT_TRUE(f.keySets().empty());
}

TEST_F(JwksFetcherTest, RefreshSoonIsRateLimited) {
  TestServer server;
  server.respond(ok200(kDocA));
  JwksFetcher f(
      loop, dns, [&] { ++changes; }, options());  // min_refresh_ms 300
  f.setSources({{server.uri(), 600'000}});
  ASSERT_TRUE(runUntil(loop, [&] { return changes == 1; }));
  uint64_t first = net::EventLoop::monotonicMs();
  // Fetched just now: the refresh waits for the interval, and many asks make one fetch.
  f.refreshSoon(server.uri());
  f.refreshSoon(server.uri());
  runFor(loop, 100);
  f.refreshSoon(server.uri());
  EXPECT_EQ(server.requests(), 1);
  ASSERT_TRUE(runUntil(loop, [&] { return server.requests() == 2; }));
  EXPECT_GE(net::EventLoop::monotonicMs() - first, 280u);
  runUntil(loop, [&] { return f.counters().ok >= 2; });
  runFor(loop, 400);
  EXPECT_EQ(server.requests(), 2);  // the three asks made one fetch
  // Long enough since the last fetch: at once.
  server.respond(ok200(kDocB));
  f.refreshSoon(server.uri());
  ASSERT_TRUE(runUntil(
      loop, [&] { return changes == 2; }, 100));
  f.refreshSoon("http://127.0.0.1:1/unknown");  // ignored
}

TEST_F(JwksFetcherTest, DnsNameAndRemovedSources) {
  TestServer server;
  server.respond(ok200(kDocA));
  std::string uri = "http://localhost:" + std::to_string(server.port()) + "/k?x=1";
  JwksFetcher f(
      loop, dns, [&] { ++changes; }, options());
  f.setSources({{uri, 600'000}});
  ASSERT_TRUE(runUntil(loop, [&] { return changes == 1; }));
  EXPECT_EQ(server.lastRequest().rfind("GET /k?x=1 HTTP/1.1\r\n", 0), 0u);
  EXPECT_NE(server.lastRequest().find("host: localhost:"), std::string::npos);
  f.setSources({});
  EXPECT_TRUE(f.keySets().empty());
  runFor(loop, 50);
  EXPECT_EQ(server.requests(), 1);
}

TEST(JwksUriTest, Parses) {
  JwksUri u;
  std::string err;
  ASSERT_TRUE(parseJwksUri("https://idp.example.com/.well-known/jwks.json", &u, &err));
  EXPECT_TRUE(u.https);
  EXPECT_EQ(u.host, "idp.example.com");
  EXPECT_EQ(u.port, 443);
  EXPECT_EQ(u.authority, "idp.example.com");
  EXPECT_EQ(u.target, "/.well-known/jwks.json");
  ASSERT_TRUE(parseJwksUri("http://[::1]:8081?a=b", &u, &err));
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 8081);
  EXPECT_EQ(u.authority, "[::1]:8081");
  EXPECT_EQ(u.target, "/?a=b");
  ASSERT_TRUE(parseJwksUri("http://h", &u, &err));
  EXPECT_EQ(u.port, 80);
  EXPECT_EQ(u.target, "/");
  for (const char* bad : {"ftp://h/", "http://", "http://u@h/", "http://h:0/", "http://h:99999/",
                          "http://h:x/", "http://h/#f", "http://[::1/", "http://h:/"}) {
    EXPECT_FALSE(parseJwksUri(bad, &u, &err)) << bad;
  }
}

// ---- https, against `openssl s_server -WWW` (a real TLS peer) -------------------------------

TEST_F(JwksFetcherTest, HttpsVerifiesTheServerCertificate) {
  net::testing::Pem pem = net::testing::makeCertificate("localhost", {"localhost"});
  const std::string& cert = pem.cert;
  net::testing::OpensslWwwServer server(pem, "jwks.json", kDocA);
  std::string uri = "https://localhost:" + std::to_string(server.port()) + "/jwks.json";
  // The system CAs do not know this self-signed certificate: the handshake fails.
  {
    JwksFetcher f(
        loop, dns, [&] { ++changes; }, options());
    f.setSources({{uri, 600'000}});
    ASSERT_TRUE(runUntil(loop, [&] { return f.counters().failed >= 1; }));
    EXPECT_TRUE(f.keySets().empty());
  }
  // Trusted: fetched.
  JwksFetchOptions o = options();
  auto ca = net::TlsCaBundle::fromPem(cert);
  ASSERT_TRUE(ca.ok());
  o.ca = ca.value();
  JwksFetcher f(
      loop, dns, [&] { ++changes; }, o);
  f.setSources({{uri, 600'000}});
  ASSERT_TRUE(runUntil(
      loop, [&] { return changes == 1; }, 5000))
      << f.counters().failed;
  EXPECT_EQ(kidOf(f, uri), "a");
  // The certificate names another host: refused even with the CA trusted.
  std::string by_ip = "https://127.0.0.1:" + std::to_string(server.port()) + "/jwks.json";
  f.setSources({{uri, 600'000}, {by_ip, 600'000}});
  ASSERT_TRUE(runUntil(
      loop, [&] { return f.counters().failed >= 1; }, 5000));
  EXPECT_EQ(f.keySets().count(by_ip), 0u);
}

}  // namespace
}  // namespace portico::security
