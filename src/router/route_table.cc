#include "router/route_table.h"

#include <re2/re2.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>

#include "common/hash.h"
#include "router/matchers.h"

namespace portico::router {
namespace {

bool wildcardCovers(std::string_view pattern, std::string_view host) {
  // pattern "*.example.com" covers "a.example.com" and "*.a.example.com".
  std::string_view suffix = pattern.substr(1);
  return host.size() > suffix.size() && host.ends_with(suffix);
}

}  // namespace

uint64_t FlatStringMap::hash(std::string_view s) { return fastHash(s); }

void FlatStringMap::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(old.empty() ? 8 : old.size() * 2, Slot{});
  mask_ = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.value == kNone) continue;
    uint64_t h = hash(std::string_view(keys_.data() + s.off, s.len));
    size_t i = h & mask_;
    while (slots_[i].value != kNone) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

void FlatStringMap::reserve(size_t keys, size_t key_bytes) {
  if (!slots_.empty()) return;
  size_t size = 8;
  while (size < keys * 2) size *= 2;
  slots_.assign(size, Slot{});
  mask_ = size - 1;
  keys_.reserve(key_bytes);
}

uint32_t FlatStringMap::insert(std::string_view key, uint32_t value) {
  if (uint32_t present = find(key); present != kNone) return present;
  if ((size_ + 1) * 2 > slots_.size()) grow();
  uint64_t h = hash(key);
  size_t i = h & mask_;
  while (slots_[i].value != kNone) i = (i + 1) & mask_;
  Slot& s = slots_[i];
  s.tag = static_cast<uint32_t>(h >> 32);
  s.off = static_cast<uint32_t>(keys_.size());
  s.len = static_cast<uint32_t>(key.size());
  s.value = value;
  keys_.append(key);
  lengths_ |= uint64_t{1} << (key.size() < 63 ? key.size() : 63);
  ++size_;
  return value;
}

void HostIndex::add(std::string_view hostname, uint32_t value) {
  if (hostname.empty()) {
    if (any_ == kNone) any_ = value;
  } else if (hostname.starts_with("*.")) {
    wildcard_.insert(hostname.substr(1), value);
  } else {
    exact_.insert(hostname, value);
  }
}

uint32_t HostIndex::find(std::string_view host) const {
  if (!host.empty()) {
    if (!exact_.empty()) {
      uint32_t v = exact_.find(host);
      if (v != kNone) return v;
    }
    if (!wildcard_.empty()) {
      // Longest suffix first: the most specific wildcard. Position 0 is skipped so that the
      // wildcard label is never empty.
      for (size_t dot = host.find('.', 1); dot != std::string_view::npos;
           dot = host.find('.', dot + 1)) {
        uint32_t v = wildcard_.find(host.substr(dot));
        if (v != kNone) return v;
      }
    }
  }
  return any_;
}

std::string_view normalizeHost(std::string_view host, char (&buf)[kMaxHostLength]) {
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    host = close == std::string_view::npos ? host : host.substr(0, close + 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.empty() || host.size() > kMaxHostLength) return {};
  for (size_t i = 0; i < host.size(); ++i) {
    char c = host[i];
    buf[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
  }
  return std::string_view(buf, host.size());
}

const char* pathTypeName(PathType type) {
  switch (type) {
    case PathType::kExact:
      return "Exact";
    case PathType::kPathPrefix:
      return "PathPrefix";
    case PathType::kRegularExpression:
      return "RegularExpression";
  }
  return "?";
}

MethodName& MethodName::operator=(std::string_view method) {
  if (method.empty()) {
    name_ = nullptr;
    return *this;
  }
  // Never freed (MatchSpecs may outlive static destructors); a handful of names.
  static auto* names = new std::set<std::string, std::less<>>();
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  auto it = names->find(method);
  if (it == names->end()) it = names->emplace(method).first;
  name_ = &*it;
  return *this;
}

const char* routeKindName(RouteKind kind) {
  switch (kind) {
    case RouteKind::kHTTPRoute:
      return "HTTPRoute";
    case RouteKind::kGRPCRoute:
      return "GRPCRoute";
  }
  return "?";
}

namespace {

// Whether `value` satisfies `m` (exact or regex full match).
bool valueMatches(const StringMatch& m, std::string_view value) {
  if (!m.is_regex) return value == m.value;
  return m.regex != nullptr && fullMatch(*m.regex, value);
}

std::string want(const StringMatch& m) {
  return m.is_regex ? "want RegularExpression '" + m.value + "'" : "want '" + m.value + "'";
}

// Keeps the first condition of each name.
void dedupe(std::vector<StringMatch>* list, bool ignore_case) {
  std::vector<StringMatch> out;
  for (StringMatch& m : *list) {
    bool seen = std::any_of(out.begin(), out.end(), [&](const StringMatch& o) {
      return ignore_case ? equalsIgnoreCase(o.name, m.name) : o.name == m.name;
    });
    if (!seen) out.push_back(std::move(m));
  }
  *list = std::move(out);
}

void compileMissing(StringMatch* m) {
  if (m->is_regex && m->regex == nullptr) m->regex = compileRegex(m->value, nullptr);
}

// Whether dedupe() would drop a condition of `list`.
bool hasDuplicateNames(const std::vector<StringMatch>& list, bool ignore_case) {
  for (size_t i = 1; i < list.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (ignore_case ? equalsIgnoreCase(list[i].name, list[j].name) : list[i].name == list[j].name)
        return true;
    }
  }
  return false;
}

// Whether the table must prepare a copy of the route's matches (see RouteTable()).
bool needsPreparing(const RouteSpec& route) {
  auto uncompiled = [](const StringMatch& m) { return m.is_regex && m.regex == nullptr; };
  for (const RuleSpec& rs : route.rules) {
    for (const MatchSpec& m : rs.matches) {
      if (m.path_type == PathType::kRegularExpression && m.path_regex == nullptr) return true;
      if (std::any_of(m.headers.begin(), m.headers.end(), uncompiled) ||
          std::any_of(m.query_params.begin(), m.query_params.end(), uncompiled) ||
          hasDuplicateNames(m.headers, /*ignore_case=*/true) ||
          hasDuplicateNames(m.query_params, /*ignore_case=*/false)) {
        return true;
      }
    }
  }
  return false;
}

// Entries by route hostname: a hash index over a list that sortByName() orders by hostname
// (the order of the candidate lists), so that no lookup compares hostnames in a tree.
class HostGroups {
 public:
  using Group = std::pair<std::string_view, std::vector<uint32_t>>;
  void reserve(size_t routes) { index_.reserve(routes); }
  std::vector<uint32_t>& get(std::string_view hostname) {
    auto [it, inserted] = index_.try_emplace(hostname, static_cast<uint32_t>(groups_.size()));
    if (inserted) groups_.emplace_back(hostname, std::vector<uint32_t>());
    return groups_[it->second].second;
  }
  // REQUIRES: no get() after it.
  void sortByName() {
    std::sort(groups_.begin(), groups_.end(),
              [](const Group& a, const Group& b) { return a.first < b.first; });
    for (uint32_t i = 0; i < groups_.size(); ++i) index_[groups_[i].first] = i;
  }
  std::vector<Group>::iterator begin() { return groups_.begin(); }
  std::vector<Group>::iterator end() { return groups_.end(); }
  size_t size() const { return groups_.size(); }
  std::vector<Group>::iterator find(std::string_view hostname) {
    auto it = index_.find(hostname);
    return it == index_.end() ? groups_.end() : groups_.begin() + it->second;
  }

 private:
  struct Hash {
    size_t operator()(std::string_view s) const { return fastHash(s); }
  };
  std::unordered_map<std::string_view, uint32_t, Hash> index_;
  std::vector<Group> groups_;
};

int pathRank(PathType type) {
  switch (type) {
    case PathType::kExact:
      return 0;
    case PathType::kRegularExpression:
      return 1;
    case PathType::kPathPrefix:
      return 2;
  }
  return 3;
}

}  // namespace

bool RouteTable::Entry::check(const RouteInput& in, std::string* why) const {
  bool path_ok = false;
  switch (match.path_type) {
    case PathType::kExact:
      path_ok = in.path == match.path;
      break;
    case PathType::kPathPrefix:
      path_ok = pathHasPrefix(in.path, prefix());
      break;
    case PathType::kRegularExpression:
      path_ok = match.path_regex != nullptr && fullMatch(*match.path_regex, in.path);
      break;
  }
  if (!path_ok) {
    if (why != nullptr) {
      *why = "path " + std::string(in.path) + " does not match " + pathTypeName(match.path_type) +
             " " + match.path;
    }
    return false;
  }
  if (path_only) return true;  // no other condition
  if (!match.method.empty() && in.method != match.method) {
    if (why != nullptr) *why = "method " + std::string(in.method) + ", want " + match.method.str();
    return false;
  }
  for (const StringMatch& h : match.headers) {
    std::string_view value;
    bool found = findHeader(in, h.name, &value);
    if (found && valueMatches(h, value)) continue;
    if (why != nullptr) {
      *why = "header " + h.name + ": " +
             (found ? "got '" + std::string(value) + "'" : std::string("absent")) + ", " + want(h);
    }
    return false;
  }
  for (const StringMatch& q : match.query_params) {
    std::string_view value;
    bool found = findQueryParam(in.query, q.name, &value);
    if (found && valueMatches(q, value)) continue;
    if (why != nullptr) {
      *why = "query param " + q.name + ": " +
             (found ? "got '" + std::string(value) + "'" : std::string("absent")) + ", " + want(q);
    }
    return false;
  }
  return true;
}

std::string RouteTable::Entry::describe() const {
  std::string out = std::string(pathTypeName(match.path_type)) + " " + match.path;
  if (!match.method.empty()) out += ", method " + match.method.str();
  for (const StringMatch& h : match.headers)
    out += ", header " + h.name + (h.is_regex ? " ~ '" : " = '") + h.value + "'";
  for (const StringMatch& q : match.query_params)
    out += ", query param " + q.name + (q.is_regex ? " ~ '" : " = '") + q.value + "'";
  return out;
}

RouteTable::Entry::Entry(const config::Rule* rule, uint32_t route, uint32_t rule_index,
                         uint32_t match_index, std::string_view hostname, const MatchSpec& match)
    : rule(rule),
      match(match),
      hostname(hostname),
      route(route),
      rule_index(rule_index),
      match_index(match_index) {
  path_only = match.method.empty() && match.headers.empty() && match.query_params.empty();
  if (match.path_type == PathType::kPathPrefix) {
    std::string_view prefix = match.path;
    while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
    prefix_len = static_cast<uint32_t>(prefix.size()) & 0x7fff'ffffu;
  }
}

static_assert(sizeof(RouteTable::Entry) <= 48, "an Entry per match and hostname: keep it small");

namespace {

// Compares "{a.ns}/{a.name}" with "{b.ns}/{b.name}" without building them.
int compareNsName(const RouteSpec& a, const RouteSpec& b) {
  auto at = [](const RouteSpec& r, size_t i) -> int {
    if (i < r.ns.size()) return static_cast<unsigned char>(r.ns[i]);
    if (i == r.ns.size()) return '/';
    i -= r.ns.size() + 1;
    return i < r.name.size() ? static_cast<unsigned char>(r.name[i]) : -1;
  };
  size_t n = std::max(a.ns.size() + a.name.size(), b.ns.size() + b.name.size()) + 1;
  for (size_t i = 0; i < n; ++i) {
    int ca = at(a, i), cb = at(b, i);
    if (ca != cb) return ca < cb ? -1 : 1;
  }
  return 0;
}

}  // namespace

ListenerSpec::ListenerSpec(std::string id, std::string hostname, std::vector<RouteSpec> routes)
    : id(std::move(id)), hostname(std::move(hostname)) {
  this->routes.reserve(routes.size());
  for (RouteSpec& r : routes)
    this->routes.push_back(std::make_shared<const RouteSpec>(std::move(r)));
}

bool precedes(const RouteTable::Entry& a, const RouteTable::Entry& b,
              const std::vector<std::shared_ptr<const RouteSpec>>& routes) {
  const GrpcRank& ag = a.match.grpc;
  const GrpcRank& bg = b.match.grpc;
  if (ag.grpc != bg.grpc) return ag.grpc;
  if (ag.grpc) {
    if (ag.service_chars != bg.service_chars) return ag.service_chars > bg.service_chars;
    if (ag.method_chars != bg.method_chars) return ag.method_chars > bg.method_chars;
  } else {
    int a_rank = pathRank(a.match.path_type);
    int b_rank = pathRank(b.match.path_type);
    if (a_rank != b_rank) return a_rank < b_rank;
    if (a.match.path.size() != b.match.path.size())
      return a.match.path.size() > b.match.path.size();
    bool a_method = !a.match.method.empty();
    bool b_method = !b.match.method.empty();
    if (a_method != b_method) return a_method;
  }
  if (a.match.headers.size() != b.match.headers.size())
    return a.match.headers.size() > b.match.headers.size();
  if (a.match.query_params.size() != b.match.query_params.size())
    return a.match.query_params.size() > b.match.query_params.size();
  if (a.route != b.route) {
    const RouteSpec& ra = *routes[a.route];
    const RouteSpec& rb = *routes[b.route];
    if (ra.created_us != rb.created_us) return ra.created_us < rb.created_us;
    // Alphabetical by "{namespace}/{name}".
    if (int c = compareNsName(ra, rb); c != 0) return c < 0;
    return a.route < b.route;
  }
  if (a.rule_index != b.rule_index) return a.rule_index < b.rule_index;
  return a.match_index < b.match_index;
}

void RouteTable::prepare(RouteSpec& route) {
  for (RuleSpec& rs : route.rules) {
    for (MatchSpec& m : rs.matches) {
      dedupe(&m.headers, /*ignore_case=*/true);
      dedupe(&m.query_params, /*ignore_case=*/false);
      for (StringMatch& h : m.headers) compileMissing(&h);
      for (StringMatch& q : m.query_params) compileMissing(&q);
      if (m.path_type == PathType::kRegularExpression && m.path_regex == nullptr)
        m.path_regex = compileRegex(m.path, nullptr);
    }
  }
  route.prepared = true;
}

RouteTable::RouteTable(std::vector<ListenerSpec> listeners) {
  listeners_.reserve(listeners.size());
  for (ListenerSpec& spec : listeners) {
    Listener l;
    l.spec = std::move(spec);
    l.spec.routes.shrink_to_fit();  // built by push_back: up to twice the room otherwise
    // The matches as the entries evaluate them (entries point at them): a route whose matches
    // need preparing is replaced by a prepared copy.
    size_t entry_count = 0;
    for (std::shared_ptr<const RouteSpec>& shared : l.spec.routes) {
      if (!shared->prepared && needsPreparing(*shared)) {
        auto copy = std::make_shared<RouteSpec>(*shared);
        prepare(*copy);
        shared = std::move(copy);
      }
      size_t matches = 0;
      for (const RuleSpec& rs : shared->rules) matches += rs.matches.size();
      entry_count += matches * std::max<size_t>(shared->hostnames.size(), 1);
    }
    l.entries.reserve(entry_count);
    // Entries grouped by route hostname.
    HostGroups groups;
    groups.reserve(l.spec.routes.size());
    std::vector<std::string_view> hostnames;
    for (uint32_t ri = 0; ri < l.spec.routes.size(); ++ri) {
      const RouteSpec& route = *l.spec.routes[ri];
      hostnames.assign(route.hostnames.begin(), route.hostnames.end());
      if (hostnames.empty()) hostnames.emplace_back();
      std::sort(hostnames.begin(), hostnames.end());
      hostnames.erase(std::unique(hostnames.begin(), hostnames.end()), hostnames.end());
      for (std::string_view hostname : hostnames) {
        std::vector<uint32_t>& group = groups.get(hostname);
        for (uint32_t rule = 0; rule < route.rules.size(); ++rule) {
          const RuleSpec& rs = route.rules[rule];
          for (uint32_t mi = 0; mi < rs.matches.size(); ++mi) {
            group.push_back(static_cast<uint32_t>(l.entries.size()));
            l.entries.emplace_back(rs.rule, ri, rule, mi, hostname, rs.matches[mi]);
          }
        }
      }
    }
    groups.sortByName();
    for (auto& [hostname, members] : groups) {
      // precedes() is a total order within a group (route, rule and match indexes decide
      // last): no need for a stable sort.
      std::sort(members.begin(), members.end(), [&](uint32_t a, uint32_t b) {
        return precedes(l.entries[a], l.entries[b], l.spec.routes);
      });
    }
    // Wildcard groups from most to least specific (longest suffix first).
    std::vector<std::string_view> wildcards;
    for (const auto& [hostname, members] : groups)
      if (hostname.starts_with("*.")) wildcards.push_back(hostname);
    std::stable_sort(wildcards.begin(), wildcards.end(),
                     [](std::string_view a, std::string_view b) { return a.size() > b.size(); });
    auto catchAll = groups.find(std::string_view());
    l.candidates.reserve(groups.size());
    // A group's candidate list: its own entries, then every less specific group that also
    // matches any host of this group, then the catch-all group.
    for (auto& [hostname, members] : groups) {
      // Only wildcard and catch-all groups are read again (by other groups' lists).
      bool shared = hostname.empty() || hostname.starts_with("*.");
      std::vector<uint32_t> list = shared ? members : std::move(members);
      if (!hostname.empty()) {
        for (std::string_view w : wildcards) {
          if (w != hostname && wildcardCovers(w, hostname)) {
            const std::vector<uint32_t>& more = groups.find(w)->second;
            list.insert(list.end(), more.begin(), more.end());
          }
        }
        if (catchAll != groups.end())
          list.insert(list.end(), catchAll->second.begin(), catchAll->second.end());
      }
      CandidateList candidates;
      candidates.entries = std::move(list);
      candidates.entries.shrink_to_fit();
      if (candidates.entries.size() > kIndexThreshold) {
        auto index = std::make_unique<CandidateList::PathIndex>();
        // Each map sized for its own keys (at most half full), keys of the other path type and
        // regexes left out.
        size_t exact_keys = 0, exact_bytes = 0, prefix_keys = 0, prefix_bytes = 0, regexes = 0;
        for (uint32_t e : candidates.entries) {
          const Entry& entry = l.entries[e];
          if (entry.match.path_type == PathType::kExact) {
            ++exact_keys;
            exact_bytes += entry.match.path.size();
          } else if (entry.match.path_type == PathType::kRegularExpression) {
            ++regexes;
          } else {
            ++prefix_keys;
            prefix_bytes += entry.prefix().size();
          }
        }
        if (exact_keys > 0) index->exact.reserve(exact_keys, exact_bytes);
        if (prefix_keys > 0) index->prefix.reserve(prefix_keys, prefix_bytes);
        index->unindexed.reserve(regexes);
        // (key id, position) pairs, then sorted by key id (positions stay ascending) and
        // flattened into `lists`.
        std::vector<std::pair<uint32_t, uint32_t>> keyed;
        keyed.reserve(candidates.entries.size());
        uint32_t keys = 0;
        auto add = [&](FlatStringMap& map, std::string_view key, uint32_t pos) {
          uint32_t id = map.insert(key, keys);
          if (id == keys) ++keys;
          keyed.emplace_back(id, pos);
        };
        for (uint32_t pos = 0; pos < candidates.entries.size(); ++pos) {
          const Entry& e = l.entries[candidates.entries[pos]];
          if (e.match.path_type == PathType::kExact) {
            add(index->exact, e.match.path, pos);
          } else if (e.match.path_type == PathType::kRegularExpression) {
            index->unindexed.push_back(pos);
          } else {
            add(index->prefix, e.prefix(), pos);
          }
        }
        std::sort(keyed.begin(), keyed.end());
        std::vector<uint32_t> offsets(keys);
        index->lists.reserve(keyed.size() * 2 + keys);
        for (size_t k = 0; k < keyed.size(); ++k) {
          if (k == 0 || keyed[k].first != keyed[k - 1].first)
            offsets[keyed[k].first] = static_cast<uint32_t>(index->lists.size());
          index->lists.push_back(keyed[k].second);
          index->lists.push_back(candidates.entries[keyed[k].second]);
          if (k + 1 == keyed.size() || keyed[k + 1].first != keyed[k].first)
            index->lists.push_back(FlatStringMap::kNone);
        }
        index->exact.forEach([&](std::string_view, uint32_t& v) { v = offsets[v]; });
        index->prefix.forEach([&](std::string_view, uint32_t& v) { v = offsets[v]; });
        candidates.index = std::move(index);
        candidates.indexed = true;
      }
      l.hosts.add(hostname, static_cast<uint32_t>(l.candidates.size()));
      l.candidates.push_back(std::move(candidates));
    }
    listener_index_.add(l.spec.hostname, static_cast<uint32_t>(listeners_.size()));
    listeners_.push_back(std::move(l));
  }
}

const RouteTable::Listener* RouteTable::listenerFor(std::string_view raw_host) const {
  char buf[kMaxHostLength];
  uint32_t index = listener_index_.find(normalizeHost(raw_host, buf));
  return index == HostIndex::kNone ? nullptr : &listeners_[index];
}

const std::vector<uint32_t>* RouteTable::candidatesFor(const Listener& listener,
                                                       std::string_view raw_host) const {
  char buf[kMaxHostLength];
  uint32_t index = listener.hosts.find(normalizeHost(raw_host, buf));
  return index == HostIndex::kNone ? nullptr : &listener.candidates[index].entries;
}

const RouteTable::Entry* RouteTable::firstAccepting(const Listener& l, const CandidateList& list,
                                                    const RouteInput& in) {
  if (list.index == nullptr) {
    for (uint32_t e : list.entries) {
      if (l.entries[e].accepts(in)) return &l.entries[e];
    }
    return nullptr;
  }
  uint32_t best = HostIndex::kNone;
  auto scan = [&](const std::vector<uint32_t>& positions) {
    for (uint32_t pos : positions) {
      if (pos >= best) return;
      if (l.entries[list.entries[pos]].accepts(in)) {
        best = pos;
        return;
      }
    }
  };
  const CandidateList::PathIndex& index = *list.index;
  // Candidates found by key: their path matches the request's (the keys tried are the path
  // and its segment prefixes), only the other conditions are left to check.
  auto consider = [&](const FlatStringMap& map, std::string_view key) {
    uint32_t at = map.find(key);
    if (at == FlatStringMap::kNone) return;
    for (const uint32_t* p = index.lists.data() + at; *p != FlatStringMap::kNone; p += 2) {
      if (*p >= best) return;
      if (l.entries[p[1]].acceptsWithPath(in)) {
        best = *p;
        return;
      }
    }
  };
  scan(index.unindexed);
  consider(index.exact, in.path);
  // PathPrefix keys that can match: "" (for "/"), every prefix ending before a '/', the path.
  consider(index.prefix, std::string_view());
  for (size_t i = 1; i < in.path.size(); ++i)
    if (in.path[i] == '/') consider(index.prefix, in.path.substr(0, i));
  consider(index.prefix, in.path);
  return best == HostIndex::kNone ? nullptr : &l.entries[list.entries[best]];
}

RouteDecision RouteTable::match(const RouteInput& in) const {
  RouteDecision decision;
  char buf[kMaxHostLength];
  std::string_view host = normalizeHost(in.host, buf);
  uint32_t li = listener_index_.find(host);
  if (li == HostIndex::kNone) return decision;
  const Listener& l = listeners_[li];
  decision.listener = l.spec.id;
  uint32_t ci = l.hosts.find(host);
  if (ci == HostIndex::kNone) return decision;
  const Entry* entry = firstAccepting(l, l.candidates[ci], in);
  if (entry != nullptr) decision.rule = entry->rule;
  return decision;
}

// Declared in router.h.
const config::WeightedBackend* pickBackend(const config::Rule& rule, uint32_t random) {
  if (rule.total_weight == 0) return nullptr;
  // Maps the 32-bit random onto [0, total_weight) without modulo bias worth noting (total
  // weight is at most 16 x 1,000,000, so the product fits in 64 bits).
  uint64_t point = (static_cast<uint64_t>(random) * rule.total_weight) >> 32;
  for (const config::WeightedBackend& wb : rule.backends) {
    if (point < wb.weight) return &wb;
    point -= wb.weight;
  }
  return nullptr;  // only if total_weight exceeds the sum of weights
}

}  // namespace portico::router
