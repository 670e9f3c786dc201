// RouteTable: the listeners of one listening port and the HTTPRoute matches attached to them,
// compiled for fast, allocation-free matching.
//
// Built once on the main thread by the config compiler, then shared read-only by every worker
// (const methods only, no locks). The table points at config::Rule objects owned by the
// Snapshot that owns the table: it is valid only while that Snapshot lives.
//
// Matching follows Gateway API:
//  1. Listener by Host (port stripped, case-insensitive): exact listener hostname, then the
//     most specific wildcard ("*.a.example.com" before "*.example.com"), then the listener
//     without hostname. None: RouteDecision.listener is empty (404).
//  2. Within the listener, candidates are grouped by the route hostname that matched: exact,
//     then wildcards most specific first, then routes without hostname; within a group by
//     precedence (precedes()); the first candidate whose match accepts the request wins.
//
// A match accepts a request when every condition holds (AND): the path (Exact, PathPrefix,
// or RegularExpression: RE2 full match of the path without query), the method (exact,
// case-sensitive), each header (name case-insensitive; the first request header of that name
// is compared, Exact or RE2 full match of the value) and each query parameter (name
// case-sensitive; the first occurrence is compared, raw: no percent- or '+'-decoding). A
// header or query name repeated in one match counts once (the first entry).
//
// Lookup cost: one hash lookup per host suffix (flat open-addressing tables; a suffix length
// no key has costs a bit test), then per candidate list either a linear scan (short lists) or,
// for lists longer than kIndexThreshold, hash lookups of the request path (exact) and of each
// of its segment prefixes (again only for lengths some key has), each giving the candidates
// with that key in match order (their path is known to match: only method, headers and query
// are left to check), plus a scan of the unindexed RegularExpression entries; the earliest
// accepting candidate (by position) wins. Without regexes no step allocates.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/snapshot.h"
#include "router/router.h"

namespace re2 {
class RE2;
}

namespace portico::router {

enum class PathType : uint8_t {
  kExact,              // case-sensitive, whole path
  kPathPrefix,         // whole path segments; a trailing '/' of the value is ignored
  kRegularExpression,  // RE2, full match of the path
};
const char* pathTypeName(PathType type);  // "Exact", "PathPrefix", "RegularExpression"

// A header or query parameter condition.
struct StringMatch {
  std::string name;   // headers: compared case-insensitively; query params: exactly
  std::string value;  // the exact value, or the RE2 pattern when `regex` is set
  bool is_regex = false;
  // Compiled `value` when is_regex; the table compiles it when null. A pattern that does not
  // compile never matches (the config compiler rejects it before).
  std::shared_ptr<const re2::RE2> regex;
};

// GRPCRoute precedence (Gateway API): a GRPCRoute match is mapped onto a path condition, but
// ranks by the characters of its service, then of its method, then its header count.
struct GrpcRank {
  bool grpc = false;  // false: an HTTPRoute match (ranked by its path)
  uint16_t service_chars = 0;
  uint16_t method_chars = 0;
};

// The method condition of a match: "" (any) or a method name. Holds one pointer to the name,
// interned (the names a config can give are HTTP's few methods), to keep MatchSpec small.
class MethodName {
 public:
  MethodName() = default;
  MethodName(std::string_view method) { *this = method; }  // NOLINT: implicit, as a string
  MethodName& operator=(std::string_view method);
  bool empty() const { return name_ == nullptr; }
  const std::string& str() const { return name_ != nullptr ? *name_ : config::kNoString; }
  friend bool operator==(const MethodName& a, std::string_view b) { return a.str() == b; }
  friend bool operator==(const MethodName& a, const MethodName& b) { return a.name_ == b.name_; }

 private:
  const std::string* name_ = nullptr;  // interned; null for ""
};

// One HTTPRouteMatch (or mapped GRPCRouteMatch) as the table evaluates it. Conditions are AND-ed.
// (path_type and grpc first: they share the first 8 bytes.)
struct MatchSpec {
  PathType path_type = PathType::kPathPrefix;
  GrpcRank grpc;                               // set for GRPCRoute matches
  std::string path = "/";                      // value, or RE2 pattern for kRegularExpression
  std::shared_ptr<const re2::RE2> path_regex;  // compiled `path`; the table compiles it if null
  MethodName method;                           // "" = any
  std::vector<StringMatch> headers;            // the table keeps the first entry of each name
  std::vector<StringMatch> query_params;       // idem
};

// The kind of a route: its Kubernetes kind, as routeKindName() spells it.
enum class RouteKind : uint8_t { kHTTPRoute, kGRPCRoute };
const char* routeKindName(RouteKind kind);  // "HTTPRoute", "GRPCRoute"

// One rule of a route. `rule` is owned by the Snapshot.
struct RuleSpec {
  const config::Rule* rule = nullptr;
  std::vector<MatchSpec> matches;  // OR-ed; must not be empty (the compiler adds PathPrefix "/")
};

// One HTTPRoute as attached to one listener.
struct RouteSpec {
  std::string ns;
  std::string name;
  int64_t created_us = std::numeric_limits<int64_t>::max();  // creationTimestamp; max = unknown
  // Effective hostnames: the route's hostnames intersected with the listener's (lowercase,
  // exact or "*." wildcard). Empty: any host the listener accepts.
  std::vector<std::string> hostnames;
  std::vector<RuleSpec> rules;  // in list order
  RouteKind kind = RouteKind::kHTTPRoute;
  // The matches are as the table evaluates them (RouteTable::prepare() did it): the table
  // shares the spec without looking at them.
  bool prepared = false;
};

// One listener (Gateway x listener) on the port.
struct ListenerSpec {
  std::string id;        // "ns/gateway/listener"
  std::string hostname;  // "" (any), "a.example.com" or "*.example.com"
  // Immutable once shared: a reload reuses the RouteSpecs of the routes it did not change.
  std::vector<std::shared_ptr<const RouteSpec>> routes;

  ListenerSpec() = default;
  // Takes each route into its own shared RouteSpec.
  ListenerSpec(std::string id, std::string hostname, std::vector<RouteSpec> routes = {});
};

// An open-addressing hash map from strings to uint32_t values, for lookups on the request
// path: one flat slot array (16-byte slots holding a hash tag, the key's place in one key
// arena and the value), linear probing, at most half full. Keys are copied into the arena.
// It also records which key lengths are present, so that a lookup of a length no key has
// costs one bit test.
class FlatStringMap {
 public:
  static constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
  // Stores `value` (not kNone) under `key` unless the key is present. Returns the value stored.
  uint32_t insert(std::string_view key, uint32_t value);
  // Room for `keys` keys of `key_bytes` bytes in all without growing. Only before the first
  // insert.
  void reserve(size_t keys, size_t key_bytes);
  // kNone when absent.
  uint32_t find(std::string_view key) const {
    if (!hasLength(key.size())) return kNone;
    uint64_t h = hash(key);
    uint32_t tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.value == kNone) return kNone;
      if (s.tag == tag && s.len == key.size() &&
          (key.empty() || std::memcmp(keys_.data() + s.off, key.data(), key.size()) == 0))
        return s.value;
    }
  }
  // Whether some key has `n` bytes (lengths from 63 up share one bit).
  bool hasLength(size_t n) const { return (lengths_ >> (n < 63 ? n : 63)) & 1; }
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  // Calls f(key, value&) for every entry.
  template <typename F>
  void forEach(F&& f) {
    for (Slot& s : slots_)
      if (s.value != kNone) f(std::string_view(keys_.data() + s.off, s.len), s.value);
  }
  static uint64_t hash(std::string_view s);

 private:
  struct Slot {
    uint32_t tag = 0;
    uint32_t off = 0;
    uint32_t len = 0;
    uint32_t value = kNone;
  };
  void grow();
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
  uint64_t lengths_ = 0;
  std::string keys_;
};

// Maps a request host to a value registered under the most specific matching hostname:
// exact, then the longest wildcard, then the catch-all "".
class HostIndex {
 public:
  static constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
  // Registers `hostname` ("" catch-all, exact, or "*.suffix"). The first registration wins.
  void add(std::string_view hostname, uint32_t value);
  // REQUIRES: `host` normalized (normalizeHost). kNone when nothing matches.
  uint32_t find(std::string_view host) const;

 private:
  FlatStringMap exact_;
  FlatStringMap wildcard_;  // keyed by the suffix with its leading dot: ".example.com"
  uint32_t any_ = kNone;
};

// Lowercases `host` into `buf`, dropping a ":port" and a trailing '.'; "[v6]:port" keeps
// "[v6]". Returns "" when the host is empty or longer than the buffer.
inline constexpr size_t kMaxHostLength = 255;
std::string_view normalizeHost(std::string_view host, char (&buf)[kMaxHostLength]);

class RouteTable {
 public:
  // One match of one rule of one route under one route hostname: the unit of precedence.
  // Views into the Listener's spec, which the table owns and never changes after building.
  struct Entry {
    Entry(const config::Rule* rule, uint32_t route, uint32_t rule_index, uint32_t match_index,
          std::string_view hostname, const MatchSpec& match);
    const config::Rule* rule = nullptr;
    const MatchSpec& match;     // headers/query_params deduplicated by name, regexes compiled
    std::string_view hostname;  // route hostname group ("" = none)
    uint32_t route = 0;         // index in ListenerSpec::routes
    uint32_t rule_index = 0;    // index in RouteSpec::rules
    uint32_t match_index = 0;   // index in RuleSpec::matches
    // Length of the PathPrefix value without trailing '/' (see prefix()); packed with
    // path_only so that an Entry takes 48 bytes.
    uint32_t prefix_len : 31 = 0;
    bool path_only : 1 = false;  // no method, header or query param condition

    // PathPrefix value without trailing '/' ("" for "/"; "" for other path types).
    std::string_view prefix() const { return std::string_view(match.path.data(), prefix_len); }

    // accepts() for a request whose path is known to match (found by the path index).
    bool acceptsWithPath(const RouteInput& in) const { return path_only || check(in, nullptr); }

    // Whether this match accepts the request. Allocation-free (RE2 aside).
    bool accepts(const RouteInput& in) const { return check(in, nullptr); }
    // accepts(); when it does not and `why` is given, sets it to the first failing condition
    // ("path /a does not match PathPrefix /b", "method GET, want POST", ...).
    bool check(const RouteInput& in, std::string* why) const;
    // The conditions of the match, for explain: "PathPrefix /api, method POST, ...".
    std::string describe() const;
  };

  // The entries a request of one route-hostname group may match, in match order.
  struct CandidateList {
    std::vector<uint32_t> entries;  // indexes into Listener::entries
    // Path index, built when entries.size() > kIndexThreshold: positions in `entries`
    // (ascending) by Exact value and by PathPrefix value without trailing '/'. Keys view the
    // paths of the listener's spec.
    struct PathIndex {
      std::vector<uint32_t> unindexed;  // positions of RegularExpression entries (ascending)
      // Exact value / PathPrefix value -> offset in `lists` of that key's candidates: pairs
      // (position in `entries`, entry index), positions ascending, ended by kNone.
      FlatStringMap exact;
      FlatStringMap prefix;
      std::vector<uint32_t> lists;
    };
    bool indexed = false;                    // index != nullptr
    std::unique_ptr<const PathIndex> index;  // null: the list is scanned
  };
  static constexpr size_t kIndexThreshold = 16;

  struct Listener {
    ListenerSpec spec;
    std::vector<Entry> entries;
    std::vector<CandidateList> candidates;  // one per route hostname group
    HostIndex hosts;                        // normalized request host -> index into candidates
  };

  // Builds the table. Listener hostnames should be distinct on a port (the compiler rejects
  // conflicting listeners); for a duplicate hostname the first listener wins. A RouteSpec
  // whose matches the table must prepare (uncompiled regexes, a header or query name given
  // twice) is copied; the others are shared as they are.
  explicit RouteTable(std::vector<ListenerSpec> listeners);
  RouteTable(const RouteTable&) = delete;
  RouteTable& operator=(const RouteTable&) = delete;

  // Prepares the matches of `route` as the table evaluates them (the first condition of each
  // header or query name, compiled regexes) and marks it prepared.
  static void prepare(RouteSpec& route);

  // Per request, any thread. Allocation-free.
  RouteDecision match(const RouteInput& in) const;

  // Introspection (explain, admin, tests).
  const std::vector<Listener>& listeners() const { return listeners_; }
  // The listener serving `host` (raw Host header), or nullptr.
  const Listener* listenerFor(std::string_view host) const;
  // The candidates `host` (raw) meets on `listener`, in match order; nullptr when none.
  const std::vector<uint32_t>* candidatesFor(const Listener& listener, std::string_view host) const;

 private:
  // The first entry of `list` accepting the request, or nullptr.
  static const Entry* firstAccepting(const Listener& l, const CandidateList& list,
                                     const RouteInput& in);

  std::vector<Listener> listeners_;
  HostIndex listener_index_;
};

// Gateway API precedence between two entries of the same listener and hostname group:
// Exact, then RegularExpression, then PathPrefix; within a path type the longer value (regex:
// the longer pattern) first; then a match with a method before one without; then more header
// matches; then more query param matches; then the older route (creationTimestamp), then
// "ns/name" alphabetically, then rule order, then match order.
// GRPCRoute matches come before HTTPRoute matches of the same hostname group (Gateway API does
// not merge the two kinds); between themselves they rank by GrpcRank: more service characters,
// then more method characters, then more header matches, then the same route tie-breaks.
bool precedes(const RouteTable::Entry& a, const RouteTable::Entry& b,
              const std::vector<std::shared_ptr<const RouteSpec>>& routes);

}  // namespace portico::router
