// `portico explain`: why a request goes where it goes, offline from the config files, and the
// same report for the admin endpoint GET /explain on a running gateway.
#include "cli/explain_command.h"

#include <netinet/in.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "config/compiler.h"
#include "config/loader.h"
#include "config/stats_ids.h"
#include "net/dns_resolver.h"
#include "net/event_loop.h"
#include "proxy/security_stage.h"
#include "router/explain.h"
#include "router/route_table.h"
#include "security/jwks_fetcher.h"

namespace portico::cli {

namespace {

const uint8_t kLoopback[16] = {127, 0, 0, 1};

void usage() {
  std::fprintf(stderr,
               "usage: portico explain -c PATH --host HOST --path PATH [-X METHOD]\n"
               "                       [-H 'name: value']... [--token JWT] [--port PORT]\n"
               "                       [-o text|json]\n"
               "  Shows the listener chosen for HOST, the route and rule that match (and why),\n"
               "  the near misses with the reason each failed, and the backends of the rule.\n"
               "  With a SecurityPolicy on the rule: each check's decision (--token JWT is\n"
               "  -H 'authorization: Bearer JWT'), the headers set from claims, and the route\n"
               "  chosen again on them (recomputeRoute). Remote JWKS are fetched first.\n");
}

std::string modifierText(std::string_view type, const config::HeaderModifier& m) {
  std::string out(type);
  char sep = ':';
  for (const auto& h : m.set) out += std::exchange(sep, ',') + std::string(" set ") + h.name;
  for (const auto& h : m.add) out += std::exchange(sep, ',') + std::string(" add ") + h.name;
  for (const auto& n : m.remove) out += std::exchange(sep, ',') + std::string(" remove ") + n;
  return out;
}

std::string rewriteText(const config::UrlRewrite& rw) {
  std::string out = "URLRewrite";
  if (!rw.hostname.empty()) out += " hostname " + rw.hostname;
  if (rw.path.kind == config::PathModifierKind::kReplaceFullPath) {
    out += " ReplaceFullPath " + rw.path.value;
  } else if (rw.path.kind == config::PathModifierKind::kReplacePrefixMatch) {
    out += " ReplacePrefixMatch " + rw.path.value;
  }
  return out;
}

std::string mirrorText(const config::Mirror& m) {
  std::string out = "RequestMirror to " + m.backend->ns + "/" + m.backend->name;
  if (m.per_million < 1'000'000) {
    char pct[32];
    std::snprintf(pct, sizeof pct, " (%.4g%% of requests)", m.per_million / 10'000.0);
    out += pct;
  }
  return out;
}

// The filters of a rule, in the order they apply, one line each.
std::vector<std::string> ruleFilters(const config::Rule& rule) {
  std::vector<std::string> out;
  if (!rule.filterError().empty()) out.push_back("ExtensionRef not resolved: answers 500");
  if (const config::DirectResponse* direct = rule.directResponse()) {
    const config::DirectResponse& dr = *direct;
    out.push_back("direct response " + std::to_string(dr.status_code) + " " + dr.content_type +
                  " (" + std::to_string(dr.body.size()) + " bytes)");
  }
  if (rule.redirect())
    out.push_back("RequestRedirect: answers " + std::to_string(rule.redirect()->status_code));
  if (rule.requestHeaders())
    out.push_back(modifierText("RequestHeaderModifier", *rule.requestHeaders()));
  if (rule.urlRewrite()) out.push_back(rewriteText(*rule.urlRewrite()));
  if (rule.responseHeaders())
    out.push_back(modifierText("ResponseHeaderModifier", *rule.responseHeaders()));
  for (const config::Mirror& m : rule.mirrors()) out.push_back(mirrorText(m));
  return out;
}

// What a backendRef's own filters change (the effective filters when it is chosen).
std::vector<std::string> backendFilters(const config::Rule& rule,
                                        const config::WeightedBackend& wb) {
  std::vector<std::string> out;
  if (!wb.hasOwnFilters()) return out;
  if (wb.ownRequestHeaders())
    out.push_back(modifierText("RequestHeaderModifier", *wb.ownRequestHeaders()));
  if (wb.ownUrlRewrite()) out.push_back(rewriteText(*wb.ownUrlRewrite()));
  if (wb.ownResponseHeaders())
    out.push_back(modifierText("ResponseHeaderModifier", *wb.ownResponseHeaders()));
  for (size_t i = rule.mirrors().size(); i < wb.mirrors().size(); ++i)
    out.push_back(mirrorText(wb.mirrors()[i]));
  return out;
}

std::string backendsText(const config::Rule& rule) {
  std::string out;
  for (const std::string& f : ruleFilters(rule)) out += "  filter " + f + "\n";
  for (const std::string& p : rule.policySources()) out += "  policy " + p + "\n";
  for (const auto& wb : rule.backends) {
    out += "  backend ";
    out += wb.backend ? wb.backend->ns + "/" + wb.backend->name : "<unresolved: answers 500>";
    if (wb.backend && wb.backend->protocol != config::BackendProtocol::kHttp1)
      out += std::string(" protocol ") + config::backendProtocolName(wb.backend->protocol);
    out += " weight " + std::to_string(wb.weight);
    if (rule.total_weight > 0) {
      out += " (" + std::to_string(100 * wb.weight / rule.total_weight) + "% of requests)";
    }
    if (wb.backend) {
      for (const auto& ep : wb.backend->endpoints) out += "\n    endpoint " + ep.authority;
    }
    for (const std::string& f : backendFilters(rule, wb)) {
      out += "\n    backendRef filter (effective) " + f;
    }
    out += '\n';
  }
  if (rule.redirect() == nullptr && rule.directResponse() == nullptr && rule.total_weight == 0) {
    out += "  every backendRef has weight 0: answers 500\n";
  }
  return out;
}

nlohmann::json backendsJson(const config::Rule& rule) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& wb : rule.backends) {
    nlohmann::json b;
    b["backend"] = wb.backend ? nlohmann::json(wb.backend->ns + "/" + wb.backend->name)
                              : nlohmann::json(nullptr);
    if (wb.backend) b["protocol"] = config::backendProtocolName(wb.backend->protocol);
    b["weight"] = wb.weight;
    nlohmann::json eps = nlohmann::json::array();
    if (wb.backend) {
      for (const auto& ep : wb.backend->endpoints) eps.push_back(ep.authority);
    }
    b["endpoints"] = eps;
    b["filters"] = backendFilters(rule, wb);
    arr.push_back(b);
  }
  return arr;
}

}  // namespace

bool addHeaderArg(ExplainRequest* req, std::string_view h) {
  size_t colon = h.find(':');
  if (colon == std::string_view::npos) return false;
  std::string_view v = h.substr(colon + 1);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  req->headers.emplace_back(std::string(h.substr(0, colon)), std::string(v));
  return true;
}

namespace {

// The rule's SecurityPolicy run on the request (the same evaluator as the proxy): trace lines,
// the outcome, and when claims became headers and the policy recomputes the route, the
// request's headers after the edits (`edited`).
struct SecurityReport {
  std::vector<std::string> lines;
  nlohmann::json json;
  bool recompute = false;
  std::vector<std::pair<std::string, std::string>> edited;
};

SecurityReport explainSecurity(const config::Port& port, const config::Rule& rule,
                               const router::RouteInput& in,
                               const std::vector<http1::Header>& headers) {
  SecurityReport r;
  security::Layers layers = proxy::securityLayers(port.settings, rule);
  if (!layers.any()) return r;
  for (const security::Policy* p : {layers.override_, layers.rule, layers.defaults}) {
    if (p == nullptr) continue;
    for (const std::string& s : p->sources) r.lines.push_back("security policy " + s);
  }
  security::WorkerState state;
  security::Outcome out;
  security::Trace trace;
  security::Request sreq = proxy::securityRequest(in, AF_INET, kLoopback);
  security::evaluate(layers, sreq, state, proxy::unixSeconds(), &out, &trace);
  for (const std::string& t : trace) r.lines.push_back("security " + t);
  nlohmann::json j;
  j["trace"] = trace;
  switch (out.action) {
    case security::Outcome::Action::kRespond:
      r.lines.push_back("security answers " + std::to_string(out.status) + " (" +
                        std::string(out.reason) + ")");
      j["answer"] = {{"status", out.status}, {"reason", out.reason}};
      break;
    case security::Outcome::Action::kExtAuthz:
      r.lines.push_back("security asks the external authorization service, then continues");
      j["ext_authz"] = true;
      [[fallthrough]];
    case security::Outcome::Action::kContinue: {
      nlohmann::json adds = nlohmann::json::object();
      for (const std::string& n : out.remove_headers)
        r.lines.push_back("security removes header " + n);
      for (const security::HeaderAdd& a : out.add_headers) {
        r.lines.push_back("security sets header " + a.name + ": " + a.value);
        adds[a.name] = a.value;
      }
      j["remove_headers"] = out.remove_headers;
      j["add_headers"] = adds;
      j["recompute_route"] = out.recompute_route;
      if (!out.consumer.empty()) j["consumer"] = out.consumer;
      if (out.provider != nullptr) j["provider"] = out.provider->name;
      if (out.recompute_route) {
        r.recompute = true;
        std::vector<http1::Header> edited(headers.begin(), headers.end());
        edited.resize(edited.size() + out.add_headers.size());
        uint32_t n = static_cast<uint32_t>(headers.size());
        proxy::applyHeaderEdits(out.remove_headers, out.add_headers, {}, edited.data(), &n,
                                static_cast<uint32_t>(edited.size()));
        for (uint32_t i = 0; i < n; ++i)
          r.edited.emplace_back(std::string(edited[i].name), std::string(edited[i].value));
      }
      break;
    }
  }
  r.json = std::move(j);
  return r;
}

}  // namespace

std::string explainRequest(const config::Snapshot& snapshot, const ExplainRequest& req, bool json) {
  std::vector<http1::Header> headers;
  for (const auto& [name, value] : req.headers) headers.push_back({name, value});
  size_t q = req.path.find('?');
  router::RouteInput in;
  in.host = req.host;
  in.path = std::string_view(req.path).substr(0, q);
  in.query = q == std::string::npos ? std::string_view() : std::string_view(req.path).substr(q + 1);
  in.method = req.method;
  in.headers = headers.data();
  in.header_count = static_cast<uint32_t>(headers.size());

  nlohmann::json out_json = nlohmann::json::array();
  std::string out_text;
  bool any = false;
  for (const auto& port : snapshot.ports) {
    if (req.port != 0 && port.port != req.port) continue;
    any = true;
    router::Explanation e = router::explain(*port.routes, in);
    SecurityReport sec;
    if (e.rule != nullptr) sec = explainSecurity(port, *e.rule, in, headers);
    std::string recomputed_text;
    nlohmann::json recomputed_json;
    if (sec.recompute) {
      // The route matched again on the headers the policy set (recomputeRoute).
      std::vector<http1::Header> edited;
      for (const auto& [name, value] : sec.edited) edited.push_back({name, value});
      router::RouteInput again = in;
      again.headers = edited.data();
      again.header_count = static_cast<uint32_t>(edited.size());
      router::Explanation e2 = router::explain(*port.routes, again);
      recomputed_json = router::toJson(e2);
      recomputed_text = "  route recomputed with the headers set from the token's claims:\n";
      std::string t = router::toText(e2);
      size_t pos = 0;
      while (pos < t.size()) {
        size_t eol = t.find('\n', pos);
        if (eol == std::string::npos) eol = t.size();
        recomputed_text += "    " + t.substr(pos, eol - pos) + "\n";
        pos = eol + 1;
      }
      if (e2.rule != nullptr) e = std::move(e2);
    }
    if (json) {
      nlohmann::json j = router::toJson(e);
      j["port"] = port.bind.toString();
      j["backends"] = e.rule ? backendsJson(*e.rule) : nlohmann::json::array();
      j["filters"] = e.rule ? nlohmann::json(ruleFilters(*e.rule)) : nlohmann::json::array();
      j["policies"] = e.rule ? nlohmann::json(e.rule->policySources()) : nlohmann::json::array();
      j["gateway_policies"] = port.settings.policy_sources;
      if (!sec.lines.empty()) j["security"] = sec.json;
      if (sec.recompute) j["recomputed"] = recomputed_json;
      out_json.push_back(j);
    } else {
      out_text += "port " + port.bind.toString() + ":\n" + router::toText(e);
      for (const std::string& l : sec.lines) out_text += "  " + l + "\n";
      out_text += recomputed_text;
      if (e.rule != nullptr) out_text += backendsText(*e.rule);
      for (const std::string& p : port.settings.policy_sources)
        out_text += "  gateway policy " + p + "\n";
    }
  }
  if (!any) {
    std::string msg = "no listener on port " + std::to_string(req.port);
    return json ? nlohmann::json{{"error", msg}}.dump(2) + "\n" : msg + "\n";
  }
  return json ? out_json.dump(2) + "\n" : out_text;
}

int explainMain(int argc, char** argv) {
  std::string path;
  std::string output = "text";
  ExplainRequest req;
  req.path.clear();  // required on the command line
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "portico explain: %s needs a value\n", a.c_str());
        std::exit(64);
      }
      return argv[++i];
    };
    if (a == "-c" || a == "--config") {
      path = value();
    } else if (a == "--host") {
      req.host = value();
    } else if (a == "--path") {
      req.path = value();
    } else if (a == "-X" || a == "--method") {
      req.method = value();
    } else if (a == "-H" || a == "--header") {
      std::string h = value();
      if (!addHeaderArg(&req, h)) {
        std::fprintf(stderr, "portico explain: -H '%s' is not 'name: value'\n", h.c_str());
        return 64;
      }
    } else if (a == "--token") {
      req.headers.emplace_back("authorization", "Bearer " + value());
    } else if (a == "--port") {
      req.port = static_cast<uint16_t>(std::atoi(value().c_str()));
    } else if (a == "-o" || a == "--output") {
      output = value();
      if (output != "text" && output != "json") {
        std::fprintf(stderr, "portico explain: -o must be text or json\n");
        return 64;
      }
    } else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else {
      std::fprintf(stderr, "portico explain: unknown argument '%s'\n", a.c_str());
      usage();
      return 64;
    }
  }
  if (path.empty() || req.path.empty() || req.path[0] != '/') {
    usage();
    return 64;
  }
  config::LoadResult loaded = config::loadPath(path);
  for (const auto& d : loaded.diagnostics) std::fprintf(stderr, "%s\n", d.format().c_str());
  if (loaded.outcome == config::LoadOutcome::kUnreadable) return 2;
  if (loaded.outcome != config::LoadOutcome::kOk) return 1;
  config::StatsIds ids;
  config::CompileResult compiled = config::compile(loaded.resources, ids, 1);
  if (!compiled.snapshot->jwks_sources.empty()) {
    // Remote key sets of SecurityPolicies: fetched once, then the config compiled with them.
    net::EventLoop loop;
    net::DnsResolver dns(loop, net::DnsOptions{});
    security::JwksFetcher fetcher(loop, dns, [] {});
    std::vector<std::pair<std::string, uint32_t>> sources;
    for (const auto& src : compiled.snapshot->jwks_sources)
      sources.emplace_back(src.uri, src.refresh_ms);
    fetcher.setSources(sources);
    auto start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - start < std::chrono::seconds(5)) {
      security::JwksFetcher::Counters c = fetcher.counters();
      if (c.ok + c.failed >= sources.size()) break;
      loop.runOnce(50);
    }
    config::CompileOptions o;
    o.jwks = &fetcher.keySets();
    compiled = config::compile(loaded.resources, ids, 2, o);
  }
  for (const auto& d : compiled.diagnostics) std::fprintf(stderr, "%s\n", d.format().c_str());
  std::string report = explainRequest(*compiled.snapshot, req, output == "json");
  std::fputs(report.c_str(), stdout);
  return 0;
}

}  // namespace portico::cli
