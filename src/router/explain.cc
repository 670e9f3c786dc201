#include "router/explain.h"

#include <algorithm>

namespace portico::router {
namespace {

// Whether a listener or route hostname ("", exact, "*.suffix") covers normalized `host`.
bool hostnameCovers(std::string_view hostname, std::string_view host) {
  if (hostname.empty()) return true;
  if (hostname.starts_with("*.")) {
    std::string_view suffix = hostname.substr(1);
    return host.size() > suffix.size() && host.ends_with(suffix);
  }
  return hostname == host;
}

std::string inQuotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

// "ns/name" for an HTTPRoute; other kinds are named: "GRPCRoute ns/name".
std::string routeName(const RouteSpec& r) {
  return (r.kind == RouteKind::kHTTPRoute ? std::string()
                                          : std::string(routeKindName(r.kind)) + " ") +
         r.ns + "/" + r.name;
}

}  // namespace

Explanation explain(const RouteTable& table, const RouteInput& in) {
  Explanation out;
  char buf[kMaxHostLength];
  std::string_view host = normalizeHost(in.host, buf);
  out.host = std::string(host);
  out.method = std::string(in.method);
  out.path = std::string(in.path);
  out.query = std::string(in.query);

  const RouteTable::Listener* chosen = table.listenerFor(in.host);
  for (const RouteTable::Listener& l : table.listeners()) {
    ListenerConsidered c;
    c.id = l.spec.id;
    c.hostname = l.spec.hostname;
    c.chosen = &l == chosen;
    bool covers = !host.empty() && hostnameCovers(l.spec.hostname, host);
    if (c.chosen) {
      if (l.spec.hostname.empty()) {
        c.reason = "selected: no hostname, accepts any host";
      } else if (l.spec.hostname.starts_with("*.")) {
        c.reason = "selected: most specific wildcard hostname covering " + inQuotes(host);
      } else {
        c.reason = "selected: exact hostname match";
      }
    } else if (!covers) {
      c.reason = host.empty() ? "request has no usable Host"
                              : "hostname " + inQuotes(l.spec.hostname) + " does not match host " +
                                    inQuotes(host);
    } else if (chosen != nullptr && chosen->spec.hostname == l.spec.hostname) {
      c.reason = "same hostname as " + chosen->spec.id + ", which comes first";
    } else {
      c.reason = "hostname " + inQuotes(l.spec.hostname) + " matches, but " +
                 (chosen != nullptr ? chosen->spec.id : std::string("another listener")) +
                 " is more specific";
    }
    out.listeners.push_back(std::move(c));
  }
  if (chosen == nullptr) return out;
  out.listener = chosen->spec.id;

  const std::vector<uint32_t>* candidates = table.candidatesFor(*chosen, in.host);
  std::vector<bool> is_candidate(chosen->spec.routes.size(), false);
  if (candidates != nullptr) {
    for (uint32_t index : *candidates) {
      const RouteTable::Entry& e = chosen->entries[index];
      is_candidate[e.route] = true;
      std::string reason;
      if (out.rule == nullptr && e.check(in, &reason)) {
        out.rule = e.rule;
        out.matched_route = routeName(*chosen->spec.routes[e.route]);
        out.rule_index = static_cast<int32_t>(e.rule_index);
        out.match_index = static_cast<int32_t>(e.match_index);
        out.matched_hostname = e.hostname;
        out.why = "matches " + e.describe();
        continue;
      }
      if (out.rule != nullptr) continue;  // after the winner: not evaluated
      NearMiss miss;
      miss.route = routeName(*chosen->spec.routes[e.route]);
      miss.rule_index = static_cast<int32_t>(e.rule_index);
      miss.match_index = static_cast<int32_t>(e.match_index);
      miss.route_hostname = e.hostname;
      miss.reason = std::move(reason);
      out.near_misses.push_back(std::move(miss));
    }
  }
  for (uint32_t ri = 0; ri < chosen->spec.routes.size(); ++ri) {
    const RouteSpec& route = *chosen->spec.routes[ri];
    if (is_candidate[ri]) continue;
    NearMiss miss;
    miss.route = routeName(route);
    std::string list;
    for (const std::string& h : route.hostnames) list += (list.empty() ? "" : ", ") + h;
    miss.reason = "hostname " + inQuotes(host) + " not in route hostnames [" + list + "]";
    out.near_misses.push_back(std::move(miss));
  }
  return out;
}

std::string toText(const Explanation& e) {
  std::string out = "request: " + e.method + " " + e.path + (e.query.empty() ? "" : "?" + e.query) +
                    " host " + inQuotes(e.host) + "\n";
  out += "listeners:\n";
  for (const ListenerConsidered& l : e.listeners) {
    out += std::string(l.chosen ? "  * " : "    ") + l.id + " (hostname " +
           (l.hostname.empty() ? std::string("any") : inQuotes(l.hostname)) + "): " + l.reason +
           "\n";
  }
  if (e.listener.empty()) {
    out += "result: 404, no listener accepts host " + inQuotes(e.host) + "\n";
    return out;
  }
  if (e.rule != nullptr) {
    out += "result: " + e.matched_route + " rule " + std::to_string(e.rule_index) + " match " +
           std::to_string(e.match_index) + " (route hostname " +
           (e.matched_hostname.empty() ? std::string("any") : inQuotes(e.matched_hostname)) +
           "): " + e.why + "\n";
  } else {
    out += "result: 404, no route of " + e.listener + " matches\n";
  }
  if (!e.near_misses.empty()) {
    out += e.rule != nullptr ? "near misses (evaluated before the match):\n" : "near misses:\n";
    for (const NearMiss& m : e.near_misses) {
      out += "  " + m.route;
      if (m.rule_index >= 0)
        out += " rule " + std::to_string(m.rule_index) + " match " + std::to_string(m.match_index);
      out += ": " + m.reason + "\n";
    }
  }
  return out;
}

nlohmann::json toJson(const Explanation& e) {
  nlohmann::json j;
  j["request"] = {{"host", e.host}, {"method", e.method}, {"path", e.path}, {"query", e.query}};
  j["listener"] = e.listener.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.listener);
  nlohmann::json listeners = nlohmann::json::array();
  for (const ListenerConsidered& l : e.listeners) {
    listeners.push_back(
        {{"id", l.id}, {"hostname", l.hostname}, {"chosen", l.chosen}, {"reason", l.reason}});
  }
  j["listeners"] = std::move(listeners);
  if (e.rule != nullptr) {
    j["match"] = {{"route", e.matched_route},
                  {"rule", e.rule_index},
                  {"match", e.match_index},
                  {"route_hostname", e.matched_hostname},
                  {"why", e.why}};
  } else {
    j["match"] = nullptr;
  }
  nlohmann::json misses = nlohmann::json::array();
  for (const NearMiss& m : e.near_misses) {
    nlohmann::json n = {{"route", m.route}, {"reason", m.reason}};
    if (m.rule_index >= 0) {
      n["rule"] = m.rule_index;
      n["match"] = m.match_index;
      n["route_hostname"] = m.route_hostname;
    }
    misses.push_back(std::move(n));
  }
  j["near_misses"] = std::move(misses);
  return j;
}

}  // namespace portico::router
