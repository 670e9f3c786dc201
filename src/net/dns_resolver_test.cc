#include "net/dns_resolver.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace portico::net {
namespace {

// A real DNS server on loopback UDP, small enough to read: it answers A/AAAA questions from a
// table the test changes at run time, answers NXDOMAIN for unknown names, and can go silent.
class FakeDnsServer {
 public:
  FakeDnsServer() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    socklen_t len = sizeof sa;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeDnsServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  void set(const std::string& name, std::vector<std::string> a, uint32_t ttl,
           std::vector<std::string> aaaa = {}) {
    std::lock_guard<std::mutex> lock(mu_);
    records_[name] = {std::move(a), std::move(aaaa), ttl};
  }
  void remove(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    records_.erase(name);
  }
  void setSilent(bool silent) { silent_ = silent; }
  int queries() const { return queries_; }

 private:
  struct Record {
    std::vector<std::string> a, aaaa;
    uint32_t ttl = 0;
  };

  void serve() {
    unsigned char buf[512];
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      sockaddr_storage from{};
      socklen_t from_len = sizeof from;
      ssize_t n =
          ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
      if (n < 12) continue;
      ++queries_;
      if (silent_) continue;
      std::vector<unsigned char> reply = answer(buf, static_cast<size_t>(n));
      if (!reply.empty()) {
        ::sendto(fd_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), from_len);
      }
    }
  }

  // Header, the question echoed back, then one answer per address (name as a pointer to the
  // question at offset 12). Anything after the question (an EDNS record) is ignored.
  std::vector<unsigned char> answer(const unsigned char* q, size_t n) {
    size_t pos = 12;
    std::string name;
    while (pos < n && q[pos] != 0) {
      size_t len = q[pos];
      if (pos + 1 + len > n) return {};
      if (!name.empty()) name += '.';
      for (size_t i = 0; i < len; ++i) name += static_cast<char>(std::tolower(q[pos + 1 + i]));
      pos += 1 + len;
    }
    if (pos + 5 > n) return {};
    size_t question_end = pos + 5;
    uint16_t qtype = static_cast<uint16_t>(q[pos + 1] << 8 | q[pos + 2]);

    std::vector<std::string> ips;
    uint32_t ttl = 0;
    bool found = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = records_.find(name);
      if (it != records_.end()) {
        found = true;
        ips = qtype == 28 ? it->second.aaaa : qtype == 1 ? it->second.a : ips;
        ttl = it->second.ttl;
      }
    }
    std::vector<unsigned char> r(q, q + question_end);
    r[2] = static_cast<unsigned char>(0x80 | (q[2] & 0x01));  // QR, RD as asked
    r[3] = found ? 0x80 : 0x83;                               // RA; rcode 0 or NXDOMAIN
    r[6] = 0;
    r[7] = static_cast<unsigned char>(ips.size());  // ANCOUNT
    r[8] = r[9] = r[10] = r[11] = 0;                // NSCOUNT, ARCOUNT
    for (const auto& ip : ips) {
      unsigned char raw[16];
      bool v6 = qtype == 28;
      inet_pton(v6 ? AF_INET6 : AF_INET, ip.c_str(), raw);
      unsigned char rr[] = {0xc0,
                            0x0c,
                            0,
                            static_cast<unsigned char>(qtype),
                            0,
                            1,
                            static_cast<unsigned char>(ttl >> 24),
                            static_cast<unsigned char>(ttl >> 16),
                            static_cast<unsigned char>(ttl >> 8),
                            static_cast<unsigned char>(ttl),
                            0,
                            static_cast<unsigned char>(v6 ? 16 : 4)};
      r.insert(r.end(), rr, rr + sizeof rr);
      r.insert(r.end(), raw, raw + (v6 ? 16 : 4));
    }
    return r;
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> silent_{false};
  std::atomic<int> queries_{0};
  std::mutex mu_;
  std::map<std::string, Record> records_;
};

// Drives one EventLoop::run() through steps: each waits (polling every 5 ms) until its
// condition holds, then runs its action. One run() per test, because a stopped loop stays
// stopped. A step that times out fails the test and ends the script.
class Script {
 public:
  explicit Script(EventLoop& loop) : loop_(loop) { timer_.set(&Script::poll, this); }

  Script& then(std::function<void()> action) {
    return waitFor([] { return true; }, 0, "(action)", std::move(action));
  }
  Script& waitFor(std::function<bool()> cond, uint64_t max_ms, std::string what,
                  std::function<void()> action = {}) {
    steps_.push_back({std::move(cond), max_ms, std::move(what), std::move(action)});
    return *this;
  }
  Script& sleep(uint64_t ms) {
    auto until = std::make_shared<uint64_t>(0);
    then([until, ms] { *until = EventLoop::monotonicMs() + ms; });
    return waitFor([until] { return EventLoop::monotonicMs() >= *until; }, ms + 1000, "sleep");
  }
  // Returns whether every step completed.
  bool run() {
    deadline_ = EventLoop::monotonicMs() + (steps_.empty() ? 0 : steps_[0].max_ms);
    loop_.timers().schedule(&timer_, 1);
    loop_.run();
    return next_ == steps_.size();
  }

 private:
  struct Step {
    std::function<bool()> cond;
    uint64_t max_ms;
    std::string what;
    std::function<void()> action;
  };

  static void poll(void* ctx) {
    auto* s = static_cast<Script*>(ctx);
    while (s->next_ < s->steps_.size() && s->steps_[s->next_].cond()) {
      Step& step = s->steps_[s->next_++];
      if (step.action) step.action();
      if (s->next_ < s->steps_.size()) {
        s->deadline_ = EventLoop::monotonicMs() + s->steps_[s->next_].max_ms;
      }
    }
    if (s->next_ == s->steps_.size()) {
      s->loop_.stop();
    } else if (EventLoop::monotonicMs() > s->deadline_) {
      ADD_FAILURE() << "timed out waiting for: " << s->steps_[s->next_].what;
      s->loop_.stop();
    } else {
      s->loop_.timers().schedule(&s->timer_, 5);
    }
  }

  EventLoop& loop_;
  std::vector<Step> steps_;
  size_t next_ = 0;
  uint64_t deadline_ = 0;
  Timer timer_;
};

DnsOptions optionsFor(const FakeDnsServer& server) {
  DnsOptions o;
  o.servers = {server.address()};
  o.timeout_ms = 300;
  o.tries = 1;
  return o;
}

std::vector<std::string> ips(const std::vector<ResolvedAddress>& addrs) {
  std::vector<std::string> out;
  for (const auto& a : addrs) out.push_back(a.address.ipString());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> ips(const std::vector<Address>& addrs) {
  std::vector<std::string> out;
  for (const auto& a : addrs) out.push_back(a.ipString());
  return out;
}

using DnsResult = std::optional<Result<std::vector<ResolvedAddress>>>;

// Resolves every name concurrently; the results in the same order.
std::vector<DnsResult> resolveAll(EventLoop& loop, DnsResolver& resolver,
                                  const std::vector<std::string>& names, uint64_t max_ms = 2000) {
  std::vector<DnsResult> out(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    resolver.resolve(names[i], [&out, i](Result<std::vector<ResolvedAddress>> r) {
      out[i].emplace(std::move(r));
    });
  }
  Script(loop)
      .waitFor(
          [&] {
            return std::all_of(out.begin(), out.end(), [](auto& r) { return r.has_value(); });
          },
          max_ms, "every answer")
      .run();
  return out;
}

DnsResult resolveOnce(EventLoop& loop, DnsResolver& resolver, const std::string& name,
                      uint64_t max_ms = 2000) {
  return resolveAll(loop, resolver, {name}, max_ms)[0];
}

TEST(DnsResolver, ResolvesEveryARecordWithItsTtl) {
  FakeDnsServer server;
  server.set("svc.test", {"10.0.0.2", "10.0.0.1"}, 42);
  EventLoop loop;
  DnsResolver resolver(loop, optionsFor(server));
  ASSERT_TRUE(resolver.initStatus().ok());
  DnsResult r = resolveOnce(loop, resolver, "svc.test");
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->ok()) << r->status().message();
  EXPECT_EQ(ips(r->value()), std::vector<std::string>({"10.0.0.1", "10.0.0.2"}));
  for (const auto& a : r->value()) {
    EXPECT_EQ(a.ttl_s, 42u);
    EXPECT_EQ(a.address.port(), 0);
    EXPECT_EQ(a.address.family(), AF_INET);
  }
  EXPECT_EQ(resolver.pendingForTest(), 0u);
}

TEST(DnsResolver, AlsoAsksAaaaWhenIpv6IsOn) {
  FakeDnsServer server;
  server.set("dual.test", {"10.0.0.1"}, 30, {"fd00::1"});
  server.set("v4only.test", {"10.0.0.3"}, 30);
  EventLoop loop;
  DnsOptions o = optionsFor(server);
  o.ipv6 = true;
  DnsResolver resolver(loop, o);
  auto r = resolveAll(loop, resolver, {"dual.test", "v4only.test"});
  ASSERT_TRUE(r[0] && r[0]->ok());
  EXPECT_EQ(ips(r[0]->value()), std::vector<std::string>({"10.0.0.1", "fd00::1"}));
  // No AAAA records is not an error when A answered.
  ASSERT_TRUE(r[1] && r[1]->ok()) << r[1]->status().message();
  EXPECT_EQ(ips(r[1]->value()), std::vector<std::string>({"10.0.0.3"}));
}

TEST(DnsResolver, NxdomainIsAnError) {
  FakeDnsServer server;
  EventLoop loop;
  DnsResolver resolver(loop, optionsFor(server));
  DnsResult r = resolveOnce(loop, resolver, "missing.test");
  ASSERT_TRUE(r.has_value());
  ASSERT_FALSE(r->ok());
  EXPECT_NE(r->status().message().find("NXDOMAIN"), std::string::npos) << r->status().message();
  EXPECT_NE(r->status().message().find("missing.test"), std::string::npos);
}

TEST(DnsResolver, NameWithoutAddressesIsAnError) {
  FakeDnsServer server;
  server.set("empty.test", {}, 30);
  EventLoop loop;
  DnsResolver resolver(loop, optionsFor(server));
  DnsResult r = resolveOnce(loop, resolver, "empty.test");
  ASSERT_TRUE(r && !r->ok());
  EXPECT_NE(r->status().message().find("no addresses"), std::string::npos) << r->status().message();
}

TEST(DnsResolver, SilentServerTimesOutWithinBounds) {
  FakeDnsServer server;
  server.setSilent(true);
  EventLoop loop;
  DnsOptions o = optionsFor(server);
  o.timeout_ms = 200;
  o.tries = 2;  // 200 ms, then 400 ms: c-ares doubles the timeout per round
  DnsResolver resolver(loop, o);
  uint64_t start = EventLoop::monotonicMs();
  DnsResult r = resolveOnce(loop, resolver, "slow.test", 3000);
  uint64_t elapsed = EventLoop::monotonicMs() - start;
  ASSERT_TRUE(r.has_value());
  ASSERT_FALSE(r->ok());
  EXPECT_NE(r->status().message().find("timeout"), std::string::npos) << r->status().message();
  EXPECT_TRUE(r->status().retryable());
  EXPECT_GE(elapsed, 550u);
  EXPECT_LE(elapsed, 1500u);
  EXPECT_EQ(server.queries(), 2);
}

// The first IPv4 name of /etc/hosts other than localhost, with its address, if any. (c-ares
// 1.18's file lookup has no way to point it at another file, so the test uses the real one.)
std::optional<std::pair<std::string, std::string>> hostsFileName() {
  std::ifstream in("/etc/hosts");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line.substr(0, line.find('#')));
    std::string ip, name;
    if (!(fields >> ip) || ip.find(':') != std::string::npos) continue;
    while (fields >> name) {
      if (name != "localhost" && name.find("localhost") == std::string::npos) {
        return std::make_pair(name, ip);
      }
    }
  }
  return std::nullopt;
}

TEST(DnsResolver, LocalhostAndHostsFileNeedNoServer) {
  FakeDnsServer server;
  EventLoop loop;
  DnsOptions o = optionsFor(server);
  o.hosts_ttl_s = 7;
  DnsResolver resolver(loop, o);
  auto pinned = hostsFileName();
  std::vector<std::string> names = {"localhost"};
  if (pinned) names.push_back(pinned->first);
  auto r = resolveAll(loop, resolver, names);
  ASSERT_TRUE(r[0] && r[0]->ok());
  EXPECT_EQ(ips(r[0]->value()), std::vector<std::string>({"127.0.0.1"}));
  EXPECT_EQ(r[0]->value()[0].ttl_s, 7u);
  if (pinned) {
    ASSERT_TRUE(r[1] && r[1]->ok()) << r[1]->status().message();
    auto got = ips(r[1]->value());
    EXPECT_NE(std::find(got.begin(), got.end(), pinned->second), got.end()) << pinned->first;
  }
  EXPECT_EQ(server.queries(), 0);
}

TEST(DnsResolver, IpLiteralResolvesToItself) {
  FakeDnsServer server;
  EventLoop loop;
  DnsResolver resolver(loop, optionsFor(server));
  auto r = resolveAll(loop, resolver, {"10.1.2.3", "[::1]"});
  ASSERT_TRUE(r[0] && r[0]->ok());
  EXPECT_EQ(ips(r[0]->value()), std::vector<std::string>({"10.1.2.3"}));
  ASSERT_TRUE(r[1] && r[1]->ok());
  EXPECT_EQ(ips(r[1]->value()), std::vector<std::string>({"::1"}));
  EXPECT_EQ(server.queries(), 0);
}

TEST(DnsResolver, BadServerListFailsEveryResolve) {
  EventLoop loop;
  DnsOptions o;
  o.servers = {"not an address"};
  DnsResolver resolver(loop, o);
  EXPECT_FALSE(resolver.initStatus().ok());
  DnsResult r = resolveOnce(loop, resolver, "svc.test");
  ASSERT_TRUE(r && !r->ok());
}

TEST(DnsResolver, CallbackNeverRunsInsideResolveAndCancelDropsIt) {
  FakeDnsServer server;
  server.set("svc.test", {"10.0.0.1"}, 30);
  EventLoop loop;
  DnsResolver resolver(loop, optionsFor(server));
  bool called = false;
  resolver.resolve("10.0.0.1", [&](auto) { called = true; });
  EXPECT_FALSE(called);  // even an immediate answer is delivered from the loop
  uint64_t cancelled = resolver.resolve("svc.test", [&](auto) { ADD_FAILURE(); });
  uint64_t cancelled_literal = resolver.resolve("10.0.0.2", [&](auto) { ADD_FAILURE(); });
  resolver.cancel(cancelled);
  resolver.cancel(cancelled_literal);
  DnsResult r = resolveOnce(loop, resolver, "svc.test");
  ASSERT_TRUE(r && r->ok());
  EXPECT_TRUE(called);
  EXPECT_EQ(resolver.pendingForTest(), 0u);
}

TEST(DnsResolver, DestroyingTheResolverCancelsPendingQueries) {
  FakeDnsServer server;
  server.setSilent(true);
  EventLoop loop;
  auto resolver = std::make_unique<DnsResolver>(loop, optionsFor(server));
  resolver->resolve("slow.test", [&](auto) { ADD_FAILURE() << "callback after destruction"; });
  Script(loop)
      .waitFor([&] { return server.queries() > 0; }, 1000, "the query")
      .then([&] { resolver.reset(); })
      .sleep(400)  // past the query timeout: nothing may fire
      .run();
}

TEST(DnsResolver, CallbackMayDestroyTheResolver) {
  FakeDnsServer server;
  server.set("svc.test", {"10.0.0.1"}, 30);
  EventLoop loop;
  auto resolver = std::make_unique<DnsResolver>(loop, optionsFor(server));
  int calls = 0;
  resolver->resolve("svc.test", [&](auto) {
    ++calls;
    resolver.reset();
  });
  resolver->resolve("svc.test", [&](auto) { ++calls; });
  Script(loop)
      .waitFor([&] { return resolver == nullptr; }, 2000, "the first answer")
      .sleep(100)
      .run();
  EXPECT_EQ(calls, 1);
}

struct Changes {
  std::vector<std::vector<std::string>> sets;
  std::vector<uint64_t> at_ms;
  std::vector<std::string> errors;
};

DnsReresolver::ChangeCallback recordChanges(Changes& c) {
  return [&c](const std::string&, const std::vector<Address>& addrs) {
    c.sets.push_back(ips(addrs));
    c.at_ms.push_back(EventLoop::monotonicMs());
  };
}

DnsReresolver::ErrorCallback recordErrors(Changes& c) {
  return [&c](const std::string&, const Status& s) { c.errors.push_back(s.message()); };
}

TEST(DnsReresolver, ReportsAChangedAnswerAfterItsTtl) {
  FakeDnsServer server;
  server.set("svc.test", {"10.0.0.1"}, 1);
  EventLoop loop;
  DnsResolver resolver(loop, optionsFor(server));
  Changes c;
  DnsReresolver rr(loop, resolver, {}, recordChanges(c), recordErrors(c));
  rr.track("svc.test");
  ASSERT_TRUE(Script(loop)
                  .waitFor([&] { return c.sets.size() == 1; }, 1000, "the first answer")
                  .then([&] {
                    EXPECT_EQ(c.sets[0], std::vector<std::string>({"10.0.0.1"}));
                    EXPECT_NE(rr.addresses("svc.test"), nullptr);
                    server.set("svc.test", {"10.0.0.3", "10.0.0.2"}, 1);
                  })
                  .waitFor([&] { return c.sets.size() == 2; }, 2500, "the changed answer")
                  .run());
  EXPECT_EQ(c.sets[1], std::vector<std::string>({"10.0.0.2", "10.0.0.3"}));
  uint64_t gap = c.at_ms[1] - c.at_ms[0];
  EXPECT_GE(gap, 950u);  // not before the 1 s TTL expired
  EXPECT_LE(gap, 1500u);
  EXPECT_EQ(ips(*rr.addresses("svc.test")), c.sets[1]);
  EXPECT_TRUE(c.errors.empty());
}

TEST(DnsReresolver, SameAddressSetInAnotherOrderIsNoChange) {
  FakeDnsServer server;
  server.set("svc.test", {"10.0.0.1", "10.0.0.2"}, 0);
  EventLoop loop;
  DnsResolver resolver(loop, optionsFor(server));
  Changes c;
  ReresolveOptions ro;
  ro.min_interval_ms = 50;  // TTL 0 is clamped to this
  DnsReresolver rr(loop, resolver, ro, recordChanges(c), recordErrors(c));
  rr.track("svc.test");
  ASSERT_TRUE(Script(loop)
                  .waitFor([&] { return server.queries() >= 2; }, 1000, "two queries")
                  .then([&] {
                    server.set("svc.test", {"10.0.0.2", "10.0.0.1"}, 0);
                  })
                  .waitFor([&] { return server.queries() >= 5; }, 1500, "five queries")
                  .run());
  EXPECT_EQ(c.sets.size(), 1u);
  EXPECT_TRUE(c.errors.empty());
}

TEST(DnsReresolver, KeepsTheLastGoodAnswerWhileResolutionFails) {
  FakeDnsServer server;
  server.set("svc.test", {"10.0.0.1"}, 0);
  EventLoop loop;
  DnsResolver resolver(loop, optionsFor(server));
  Changes c;
  ReresolveOptions ro;
  ro.min_interval_ms = 50;
  ro.retry_initial_ms = 50;
  ro.retry_max_ms = 200;
  DnsReresolver rr(loop, resolver, ro, recordChanges(c), recordErrors(c));
  rr.track("svc.test");
  auto keptAnswer = [&] {
    const std::vector<Address>* kept = rr.addresses("svc.test");
    return kept != nullptr && ips(*kept) == std::vector<std::string>({"10.0.0.1"});
  };
  size_t errors = 0;
  ASSERT_TRUE(Script(loop)
                  .waitFor([&] { return c.sets.size() == 1; }, 1000, "the first answer")
                  .then([&] { server.remove("svc.test"); })  // NXDOMAIN from now on
                  .waitFor([&] { return c.errors.size() >= 3; }, 1500, "three failures")
                  .then([&] {
                    EXPECT_NE(c.errors[0].find("NXDOMAIN"), std::string::npos) << c.errors[0];
                    EXPECT_TRUE(keptAnswer());
                    EXPECT_EQ(c.sets.size(), 1u);
                    server.setSilent(true);  // timeouts too keep the answer
                    errors = c.errors.size();
                  })
                  .waitFor([&] { return c.errors.size() > errors; }, 1500, "a timeout")
                  .then([&] {
                    EXPECT_NE(c.errors.back().find("timeout"), std::string::npos)
                        << c.errors.back();
                    EXPECT_TRUE(keptAnswer());
                    server.setSilent(false);
                    server.set("svc.test", {"10.0.0.9"}, 0);
                  })
                  .waitFor([&] { return c.sets.size() == 2; }, 1500, "the new answer")
                  .run());
  EXPECT_EQ(c.sets[1], std::vector<std::string>({"10.0.0.9"}));
}

TEST(DnsReresolver, UntrackStopsQueriesAndCallbacks) {
  FakeDnsServer server;
  server.set("svc.test", {"10.0.0.1"}, 0);
  EventLoop loop;
  DnsResolver resolver(loop, optionsFor(server));
  Changes c;
  ReresolveOptions ro;
  ro.min_interval_ms = 50;
  DnsReresolver rr(loop, resolver, ro, recordChanges(c), recordErrors(c));
  rr.track("svc.test");
  rr.track("svc.test");  // idempotent
  int queries = 0;
  ASSERT_TRUE(Script(loop)
                  .waitFor([&] { return c.sets.size() == 1; }, 1000, "the first answer")
                  .then([&] {
                    rr.untrack("svc.test");
                    EXPECT_FALSE(rr.tracked("svc.test"));
                    EXPECT_EQ(rr.addresses("svc.test"), nullptr);
                    queries = server.queries();
                  })
                  .sleep(300)
                  .run());
  EXPECT_EQ(server.queries(), queries);
  EXPECT_EQ(c.sets.size(), 1u);
}

}  // namespace
}  // namespace portico::net
