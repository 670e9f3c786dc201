// DnsResolver: asynchronous A/AAAA resolution on an EventLoop (c-ares), and DnsReresolver,
// which keeps a set of names resolved by their TTLs.
//
// Both run on the gateway's main thread loop, never on workers: a worker must not wait on DNS,
// and the resolved addresses reach workers only through a rebuilt config snapshot.
//
// Thread-safety: every method must be called on the loop's thread. Callbacks run on it too.
// Lifetime: the EventLoop must outlive the DnsResolver, which must outlive a DnsReresolver that
// uses it. Destroying either from inside one of its own callbacks is allowed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "net/address.h"
#include "net/event_loop.h"
#include "net/timer_wheel.h"

namespace portico::net {

struct ResolvedAddress {
  Address address;  // port 0: the caller adds the endpoint's port
  uint32_t ttl_s = 0;
};

struct DnsOptions {
  // "127.0.0.1:5353", "[::1]:53", "10.0.0.2" (port 53). Empty: the system's resolv.conf
  // (servers, search domains, ndots).
  std::vector<std::string> servers;
  // Per try; c-ares doubles the timeout on every retry round, so the worst case with N tries
  // is timeout_ms * (2^N - 1) per server.
  uint32_t timeout_ms = 2000;
  uint32_t tries = 2;
  bool ipv6 = false;  // also query AAAA
  // TTL given to answers from the hosts file (/etc/hosts) and to IP literals, which carry none.
  uint32_t hosts_ttl_s = 30;
};

using DnsCallback = std::function<void(Result<std::vector<ResolvedAddress>>)>;

class DnsResolver {
 public:
  DnsResolver(EventLoop& loop, DnsOptions options);
  DnsResolver(const DnsResolver&) = delete;
  DnsResolver& operator=(const DnsResolver&) = delete;
  ~DnsResolver();

  // Resolves `name` to every A (and AAAA if options.ipv6) address with its TTL, or an error
  // whose message says why ("NXDOMAIN", "timeout", "no addresses", ...). The hosts file is
  // consulted first; an IP literal resolves to itself. `done` is always called later on the
  // loop (never from inside resolve()), unless cancel()ed or the resolver is destroyed first.
  // Returns an id for cancel() (never 0).
  uint64_t resolve(const std::string& name, DnsCallback done);
  // Drops the callback of a pending resolve(); unknown or finished ids are ignored.
  void cancel(uint64_t id);
  // Whether the channel initialized (servers parsed); if not, every resolve() fails.
  const Status& initStatus() const { return init_status_; }
  size_t pendingForTest() const { return requests_.size(); }

 private:
  struct Request;
  class SocketWatch;

  static void onSocketState(void* data, int fd, int readable, int writable);
  static void onQueryDone(void* arg, int status, int timeouts, unsigned char* abuf, int alen);
  static void onTimer(void* ctx);
  void complete(Request* req);
  void processFd(int read_fd, int write_fd);
  void armTimer();
  void scheduleFlush();
  void flush();

  EventLoop& loop_;
  DnsOptions options_;
  Status init_status_;
  void* channel_ = nullptr;  // ares_channel, kept opaque so users need no c-ares headers
  bool destroying_ = false;
  Timer timer_;
  std::unordered_map<int, SocketWatch*> watches_;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Request>> requests_;
  std::vector<uint64_t> ready_;  // completed requests whose callbacks have not run yet
  bool flush_posted_ = false;
  // Expires with the resolver: posted tasks and flush() use it to notice a destroyed resolver.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

struct ReresolveOptions {
  // The re-resolution interval is the answer's smallest TTL clamped to [min, max].
  uint32_t min_interval_ms = 1000;
  uint32_t max_interval_ms = 300000;
  // After a failure the last good answer stays; the retry waits initial, then doubles to max.
  uint32_t retry_initial_ms = 1000;
  uint32_t retry_max_ms = 30000;
};

// Keeps names resolved: each tracked name is re-resolved when its answer's TTL expires, and
// on_change reports a name whose sorted address set changed (including the first answer). A
// failure keeps the last good addresses (an outage of DNS must not empty a backend) and is
// reported to on_error.
class DnsReresolver {
 public:
  using ChangeCallback =
      std::function<void(const std::string& name, const std::vector<Address>& addresses)>;
  using ErrorCallback = std::function<void(const std::string& name, const Status& error)>;

  DnsReresolver(EventLoop& loop, DnsResolver& resolver, ReresolveOptions options,
                ChangeCallback on_change, ErrorCallback on_error = nullptr);
  DnsReresolver(const DnsReresolver&) = delete;
  DnsReresolver& operator=(const DnsReresolver&) = delete;
  ~DnsReresolver();

  // Starts resolving `name` now (no-op if tracked already).
  void track(const std::string& name);
  void untrack(const std::string& name);
  bool tracked(const std::string& name) const { return entries_.count(name) != 0; }
  // The last good sorted addresses of `name`, or nullptr if it never resolved (or untracked).
  const std::vector<Address>* addresses(const std::string& name) const;

 private:
  struct Entry;
  static void onTimer(void* ctx);
  void start(Entry* e);
  void onResult(const std::string& name, uint64_t generation,
                Result<std::vector<ResolvedAddress>> result);

  EventLoop& loop_;
  DnsResolver& resolver_;
  ReresolveOptions options_;
  ChangeCallback on_change_;
  ErrorCallback on_error_;
  uint64_t next_generation_ = 1;
  std::unordered_map<std::string, std::unique_ptr<Entry>> entries_;
};

// Orders addresses by family, then bytes, then port: the canonical order of an address set.
bool addressLess(const Address& a, const Address& b);
bool addressEqual(const Address& a, const Address& b);

}  // namespace portico::net
