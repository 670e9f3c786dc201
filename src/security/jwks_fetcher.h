// JwksFetcher: keeps the remote JWKS documents of the current config (SecurityPolicy
// jwt.providers[].remoteJWKS) fetched, on the gateway's main thread.
//
// Each URI (http:// or https://, host a literal IP or a DNS name resolved with the given
// DnsResolver, port default 80/443) is fetched with an HTTP/1.1 GET (`Host`, `accept:
// application/json`, `connection: close`); https verifies the server certificate against the
// system CAs (or options.ca) with SNI and name check = the host. A fetch succeeds on a 200 whose
// body (at most max_document_bytes) security::parseJwks accepts with at least one usable key.
// Anything else — connect or TLS failure, timeout, another status (redirects are not
// followed), a body that does not parse or whose keys were all skipped, a body too large — is
// a failure: the last good key set stays, a warning names the URI and the reason, and the
// fetch is retried after retry_base_ms, doubling up to retry_max_ms. After a success the URI is
// fetched again after its refresh interval (cacheDuration).
//
// on_change runs when a URI's key set changed: its first success, or a document whose bytes
// differ from the last good one (an identical document does not call it). It runs on the loop,
// from inside the fetcher's event handling, after the fetcher's state is updated: it may call
// setSources() (the gateway recompiles and passes the new config's URIs), but must not destroy
// the fetcher.
//
// Workers never fetch: a worker that sees a token whose kid the key set lacks posts
// refreshSoon(uri) to the main thread, which fetches at once unless the URI was fetched less
// than min_refresh_ms ago (then once when that interval ends).
//
// Thread-safety: main thread (the loop's thread) only. The loop and the resolver must outlive
// the fetcher; destroying the fetcher cancels everything in flight.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "net/dns_resolver.h"
#include "net/event_loop.h"
#include "net/tls.h"
#include "security/jwks.h"

namespace portico::security {

struct JwksFetchOptions {
  uint32_t timeout_ms = 5000;      // a whole fetch: resolve, connect, TLS, answer
  uint32_t min_refresh_ms = 5000;  // unknown-kid refreshes of one URI at most this often
  uint32_t retry_base_ms = 1000;   // failed fetch: retry after base, doubling, ...
  uint32_t retry_max_ms = 60000;   // ... up to this
  size_t max_document_bytes = 256 * 1024;
  std::shared_ptr<const net::TlsCaBundle> ca;  // https: trusted CAs (null: the system's)
};

// A URI split for fetching. Exposed for tests and for config validation.
struct JwksUri {
  bool https = false;
  std::string host;  // without brackets for IPv6
  uint16_t port = 0;
  std::string authority;  // Host header: as written (with the port when one was given)
  std::string target;     // path and query ("/" when empty)
};
// Parses "http[s]://host[:port][/path][?query]" (no userinfo, no fragment). nullopt-like:
// returns false and sets `error`.
bool parseJwksUri(std::string_view uri, JwksUri* out, std::string* error);

class JwksFetcher {
 public:
  using OnChange = std::function<void()>;
  using KeySets = std::map<std::string, std::shared_ptr<const KeySet>, std::less<>>;

  JwksFetcher(net::EventLoop& loop, net::DnsResolver& dns, OnChange on_change,
              JwksFetchOptions options = {});
  ~JwksFetcher();
  JwksFetcher(const JwksFetcher&) = delete;
  JwksFetcher& operator=(const JwksFetcher&) = delete;

  // The URIs the current config uses, each with its refresh interval (ms): new ones are
  // fetched at once; removed ones forgotten (their fetches cancelled, their key sets dropped);
  // a changed interval applies from the next success.
  void setSources(const std::vector<std::pair<std::string, uint32_t>>& uri_refresh_ms);
  // uri -> the last good key set (given to the compiler as CompileOptions::jwks). URIs that
  // never fetched successfully are absent.
  const KeySets& keySets() const { return key_sets_; }
  // A token named a kid the key set lacks: fetch now unless fetched less than min_refresh_ms
  // ago (then once when that interval ends). Unknown URIs are ignored.
  void refreshSoon(std::string_view uri);

  struct Counters {
    uint64_t ok = 0;       // fetches that succeeded (changed or not)
    uint64_t failed = 0;   // fetches that failed
    uint64_t changed = 0;  // successes that changed a key set (on_change calls)
  };
  Counters counters() const { return counters_; }

 private:
  struct Source;
  class Exchange;
  friend class Exchange;

  void startFetch(Source* s);
  void connectTo(Source* s, const net::Address& address);
  void finish(Source* s, bool ok, std::string body_or_reason);
  void cancelFetch(Source* s);
  void scheduleRetry(Source* s);
  std::shared_ptr<const net::ClientTlsContext> tlsContext(std::string* error);
  static void onTimer(void* ctx);
  static void onTimeout(void* ctx);

  net::EventLoop& loop_;
  net::DnsResolver& dns_;
  OnChange on_change_;
  JwksFetchOptions options_;
  std::map<std::string, std::unique_ptr<Source>, std::less<>> sources_;
  KeySets key_sets_;
  Counters counters_;
  std::shared_ptr<const net::ClientTlsContext> tls_;  // built at the first https fetch
};

}  // namespace portico::security
