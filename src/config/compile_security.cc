// SecurityPolicy: each policy's sections compiled into immutable security::Policy objects (key
// sets, verifiers, consumers, htpasswd users, the ext-authz backend), then attached like a
// TrafficPolicy: Gateway targets to the PortSettings of the Gateway's ports (defaults and
// overrides), HTTPRoute / GRPCRoute targets (sectionName = a rule name) to the rules. Per
// section, a rule takes its rule-level policy's, else its route-level one's; within one
// level, the older policy (creationTimestamp, then ns/name) wins and the younger one gets a
// Conflicted condition.
//
// Fail closed: a policy that does not decode or compile (bad keys, missing Secret, unresolved
// ext-authz backend) never leaves its targets open. Its rules answer 500 (filter_error); a
// Gateway it targets denies every request (an override whose access rules deny all).
//
// Files (localJWKS, consumersFile, htpasswdFile) are read at every compile; a compile reuses
// the previous one's routes only when every such file reads the same (securityFilesChanged).
#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "config/compilation.h"
#include "security/htpasswd.h"
#include "security/jwks.h"
#include "security/jwt.h"

namespace portico::config::internal {
namespace {

constexpr size_t kMaxFile = 4 << 20;

std::atomic<uint64_t> g_provider_uid{0};

enum Section { kJwt, kApiKey, kBasic, kExtAuth, kAuthz, kCors, kClientIp, kSectionCount };
constexpr const char* kSectionNames[kSectionCount] = {
    "jwt", "apiKeyAuth", "basicAuth", "extAuth", "authorization", "cors", "clientIPDetection"};

bool hasSection(const security::Policy& p, int s) {
  switch (s) {
    case kJwt:
      return p.jwt != nullptr;
    case kApiKey:
      return p.api_key != nullptr;
    case kBasic:
      return p.basic != nullptr;
    case kExtAuth:
      return p.ext_authz != nullptr;
    case kAuthz:
      return p.authorization != nullptr;
    case kCors:
      return p.cors != nullptr;
    default:
      return p.xff_set;
  }
}

void copySection(const security::Policy& from, int s, security::Policy* to) {
  switch (s) {
    case kJwt:
      to->jwt = from.jwt;
      break;
    case kApiKey:
      to->api_key = from.api_key;
      break;
    case kBasic:
      to->basic = from.basic;
      break;
    case kExtAuth:
      to->ext_authz = from.ext_authz;
      break;
    case kAuthz:
      to->authorization = from.authorization;
      break;
    case kCors:
      to->cors = from.cors;
      break;
    default:
      to->xff_set = from.xff_set;
      to->xff_trusted_hops = from.xff_trusted_hops;
      break;
  }
}

// `path` relative to the directory of `config_file` unless absolute (as TLS files resolve).
std::string resolvePath(const std::string& path, const std::string& config_file) {
  if (path.empty() || path[0] == '/') return path;
  size_t slash = config_file.rfind('/');
  if (slash == std::string::npos) return path;
  return config_file.substr(0, slash + 1) + path;
}

std::string readFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot read " + path + ": " + std::strerror(errno);
  std::ostringstream text;
  text << in.rdbuf();
  *out = text.str();
  if (out->size() > kMaxFile) return path + " is larger than 4 MiB";
  return "";
}

bool looksLikePem(std::string_view text) {
  size_t i = text.find_first_not_of(" \t\r\n");
  return i != std::string_view::npos && text.substr(i).starts_with("-----BEGIN");
}

security::AlgSet defaultAlgorithms(const security::KeySet& keys) {
  using security::Alg;
  security::AlgSet algs{Alg::kRS256, Alg::kRS384, Alg::kRS512, Alg::kPS256, Alg::kPS384,
                        Alg::kPS512, Alg::kES256, Alg::kES384, Alg::kEdDSA};
  for (const security::Jwk& k : keys.keys()) {
    if (k.type == security::KeyType::kOct) {
      algs.add(Alg::kHS256);
      algs.add(Alg::kHS384);
      algs.add(Alg::kHS512);
      break;
    }
  }
  return algs;
}

}  // namespace

std::string Compilation::readSecurityFile(const std::string& path, std::string* out) {
  std::string problem = readFile(path, out);
  security_files_[path] = problem.empty() ? *out : std::string(1, '\0') + problem;
  return problem;
}

bool Compilation::securityFilesChanged() const {
  for (const auto& [path, last] : cache_->state->security_files) {
    std::string now;
    std::string problem = readFile(path, &now);
    if ((problem.empty() ? now : std::string(1, '\0') + problem) != last) return true;
  }
  return false;
}

// What compiling one SecurityPolicy gave.
struct CompiledSecurity {
  std::shared_ptr<security::Policy> defaults;  // sections as compiled (no sources yet)
  std::shared_ptr<security::Policy> overrides;
  std::string failure;    // "" when usable; else why its targets fail closed
  bool rejected = false;  // invalid (Accepted=False); else the failure is an unresolved reference
  std::optional<Condition> refs;  // ResolvedRefs=False
};

void Compilation::applySecurityPolicies() {
  if (security_policies_.empty()) return;
  std::vector<uint32_t> order(security_policies_.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return olderFirst(resources_[security_policies_[a].resource],
                      resources_[security_policies_[b].resource]);
  });
  std::map<std::string, uint32_t> jwks_sources;  // uri -> refresh ms

  // ---- Compile every policy's sections ----
  std::vector<CompiledSecurity> compiled(security_policies_.size());
  for (uint32_t pi : order) {
    const SecurityItem& item = security_policies_[pi];
    const Resource& res = resources_[item.resource];
    CompiledSecurity& out = compiled[pi];
    if (!item.invalid.empty()) {
      out.failure = "SecurityPolicy " + res.ns + '/' + res.name + " is invalid";
      out.rejected = true;
      continue;
    }
    Reporter r = reporterFor(item.resource);
    size_t first = diagnostics_.size();
    // The text of `key` in a Secret/ConfigMap of the policy's namespace; null (reported).
    auto secretText = [&](const LocalObjectRefModel& ref, std::string_view key,
                          const Where& where) -> const std::string* {
      auto it = secret_by_name_.find({ref.kind, res.ns, ref.name});
      if (it == secret_by_name_.end()) {
        bool invalid = rejected_.count({ref.kind, res.ns, ref.name}) > 0;
        std::string message = ref.kind + ' ' + res.ns + '/' + ref.name +
                              (invalid ? " is invalid (see its errors)" : " not found");
        r.error(where.mark, where.path, "ResolvedRefs=False/InvalidSecretRef: " + message);
        if (!out.refs) out.refs = Condition{"ResolvedRefs", false, "InvalidSecretRef", message};
        return nullptr;
      }
      const SecretModel& s = *it->second.second;
      for (size_t i = s.entries.size(); i-- > 0;)
        if (s.entries[i].first == key) return &s.entries[i].second;
      std::string message =
          ref.kind + ' ' + res.ns + '/' + ref.name + " has no key \"" + std::string(key) + "\"";
      r.error(where.mark, where.path, "ResolvedRefs=False/InvalidSecretRef: " + message);
      if (!out.refs) out.refs = Condition{"ResolvedRefs", false, "InvalidSecretRef", message};
      return nullptr;
    };

    auto level = [&](const SecuritySectionsModel& m) -> std::shared_ptr<security::Policy> {
      if (m.empty()) return nullptr;
      auto p = std::make_shared<security::Policy>();
      // JWT: a verifier per provider over its key set.
      if (m.jwt) {
        auto jwt = std::make_shared<security::JwtAuth>();
        jwt->optional = m.jwt->optional;
        for (const JwtProviderModel& pm : m.jwt->providers) {
          std::shared_ptr<const security::KeySet> keys;
          std::string text, problem;
          const Where& kw = pm.keys_where;
          bool local = true;
          switch (pm.keys) {
            case JwtProviderModel::Keys::kRemote: {
              local = false;
              auto it = jwks_.find(pm.remote_uri);
              keys = it != jwks_.end() && it->second != nullptr
                         ? it->second
                         : std::make_shared<const security::KeySet>(
                               std::vector<security::Jwk>{}, std::vector<security::SkippedKey>{});
              auto [src, inserted] = jwks_sources.emplace(pm.remote_uri, pm.refresh_ms);
              if (!inserted) src->second = std::min(src->second, pm.refresh_ms);
              break;
            }
            case JwtProviderModel::Keys::kInline:
              text = pm.local_text;
              break;
            case JwtProviderModel::Keys::kFile:
              problem = readSecurityFile(resolvePath(pm.local_text, res.file), &text);
              break;
            case JwtProviderModel::Keys::kValueRef:
              if (const std::string* t = secretText(pm.value_ref, "jwks.json", kw)) {
                text = *t;
              } else {
                continue;  // reported
              }
              break;
          }
          if (local && problem.empty()) {
            security::JwtResult<std::shared_ptr<const security::KeySet>> parsed =
                looksLikePem(text) ? security::parsePemPublicKey(text) : security::parseJwks(text);
            if (!parsed.ok()) {
              problem =
                  (looksLikePem(text) ? "not a usable PEM public key: " : "not a usable JWKS: ") +
                  parsed.error().description;
            } else if (parsed.value()->empty()) {
              problem = "no usable key";
              for (const security::SkippedKey& k : parsed.value()->skipped()) {
                problem += (&k == &parsed.value()->skipped().front() ? ": " : "; ");
                problem += "keys[" + std::to_string(k.index) + "]" +
                           (k.kid.empty() ? "" : " (kid " + k.kid + ")") + " " + k.reason;
              }
            } else {
              keys = parsed.value();
              for (const security::SkippedKey& k : keys->skipped()) {
                r.warning(kw.mark, kw.path,
                          "keys[" + std::to_string(k.index) + "]" +
                              (k.kid.empty() ? "" : " (kid " + k.kid + ")") +
                              " skipped: " + k.reason);
              }
            }
          }
          if (!problem.empty()) {
            r.error(kw.mark, kw.path, "Invalid value: " + problem);
            continue;
          }
          security::VerifierOptions options = pm.options;
          options.algorithms = pm.algorithms ? *pm.algorithms : defaultAlgorithms(*keys);
          if (local && pm.algorithms) {
            bool usable = false;
            for (const security::Jwk& k : keys->keys())
              for (int a = 0; a < security::kAlgCount && !usable; ++a)
                usable = options.algorithms.contains(static_cast<security::Alg>(a)) &&
                         k.serves(static_cast<security::Alg>(a));
            if (!usable) {
              r.warning(kw.mark, kw.path,
                        "no key serves an algorithm of the provider's algorithms: every token "
                        "fails");
            }
          }
          security::JwtProvider provider = pm.provider;
          provider.uid = ++g_provider_uid;
          provider.verifier = std::make_shared<const security::Verifier>(std::move(options), keys);
          if (!local) provider.remote_jwks_uri = pm.remote_uri;
          jwt->providers.push_back(std::move(provider));
        }
        p->jwt = std::move(jwt);
      }
      // API keys: digests only, sorted, no duplicates.
      if (m.api_key) {
        const ApiKeyModel& am = *m.api_key;
        auto auth = std::make_shared<security::ApiKeyAuth>(am.settings);
        std::vector<std::pair<security::ApiConsumer, Where>> all;
        for (const ApiConsumerModel& c : am.consumers) all.emplace_back(c.consumer, c.where);
        if (!am.consumers_file.empty()) {
          const Where& fw = am.consumers_file_where;
          std::string path = resolvePath(am.consumers_file, res.file), text;
          std::string problem = readSecurityFile(path, &text);
          if (problem.empty()) {
            std::vector<Diagnostic> found;
            Subject subject;
            subject.file = path;
            Reporter fr(subject, &found);
            std::vector<ApiConsumerModel> from_file;
            try {
              YAML::Node doc = YAML::Load(text);
              YAML::Mark at;
              std::string limits = checkDocumentLimits(doc, &at);
              if (!limits.empty()) {
                fr.error(at, "", limits);
              } else {
                decodeApiConsumers(fr, doc, "", &from_file);
              }
            } catch (const YAML::Exception& e) {
              fr.error(e.mark, "", e.msg);
            }
            for (const Diagnostic& d : found) {
              if (d.severity != Severity::kError) continue;
              std::string at = path + ':' + std::to_string(d.line) + ':' + std::to_string(d.col);
              r.error(fw.mark, fw.path,
                      at + ": " + (d.field_path.empty() ? "" : d.field_path + ": ") + d.message);
            }
            for (ApiConsumerModel& c : from_file) {
              c.where = Where{fw.mark, fw.path + " (" + path + ' ' + c.where.path + ')'};
              all.emplace_back(std::move(c.consumer), std::move(c.where));
            }
          } else {
            r.error(fw.mark, fw.path, "Invalid value: " + problem);
          }
        }
        for (const LocalObjectRefModel& ref : am.credential_refs) {
          auto it = secret_by_name_.find({ref.kind, res.ns, ref.name});
          if (it == secret_by_name_.end()) {
            secretText(ref, "", ref.where);  // reports
            continue;
          }
          const SecretModel& s = *it->second.second;
          for (size_t i = 0; i < s.entries.size(); ++i) {
            security::ApiConsumer c;
            c.name = s.entries[i].first;
            c.digest = apiKeyDigest(s.entries[i].second);
            all.emplace_back(
                std::move(c),
                Where{ref.where.mark, ref.where.path + " (" + ref.kind + ' ' + res.ns + '/' +
                                          ref.name + " key " + s.entries[i].first + ')'});
          }
        }
        std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
          return a.first.digest < b.first.digest;
        });
        for (size_t i = 1; i < all.size(); ++i) {
          if (all[i].first.digest == all[i - 1].first.digest) {
            r.error(all[i].second.mark, all[i].second.path,
                    "Duplicate value: consumer \"" + all[i].first.name +
                        "\" has the same key as consumer \"" + all[i - 1].first.name + "\"");
          }
        }
        for (auto& [c, where] : all) auth->consumers.push_back(std::move(c));
        if (auth->consumers.empty())
          r.warning(am.where.mark, am.where.path, "no consumer: every request answers 401");
        p->api_key = std::move(auth);
      }
      // Basic auth: htpasswd lines from a Secret or a file.
      if (m.basic) {
        const BasicAuthModel& bm = *m.basic;
        auto basic = std::make_shared<security::BasicAuth>(bm.settings);
        std::string text;
        bool have = false;
        Where where = bm.htpasswd_file_where;
        if (bm.users) {
          where = bm.users->where;
          if (const std::string* t = secretText(*bm.users, ".htpasswd", where)) {
            text = *t;
            have = true;
          }
        } else if (!bm.htpasswd_file.empty()) {
          std::string problem = readSecurityFile(resolvePath(bm.htpasswd_file, res.file), &text);
          if (!problem.empty()) {
            r.error(where.mark, where.path, "Invalid value: " + problem);
          } else {
            have = true;
          }
        }
        if (have) {
          std::string error;
          std::optional<std::vector<security::HtpasswdUser>> users =
              security::parseHtpasswd(text, &error);
          if (!users) {
            r.error(where.mark, where.path, "Invalid value: htpasswd " + error);
          } else {
            basic->users = std::move(*users);
            std::sort(basic->users.begin(), basic->users.end(),
                      [](const auto& a, const auto& b) { return a.name < b.name; });
            if (basic->users.empty())
              r.warning(where.mark, where.path, "no user: every request answers 401");
          }
        }
        p->basic = std::move(basic);
      }
      if (m.ext_auth) {
        auto ext = std::make_shared<security::ExtAuthz>(m.ext_auth->settings);
        std::string reason, message;
        ext->backend = resolveBackendRef(m.ext_auth->backend, r, &reason, &message,
                                         "the requests it covers answer 500 (fail closed)");
        if (ext->backend == nullptr) {
          if (!out.refs) out.refs = Condition{"ResolvedRefs", false, reason, message};
          if (out.failure.empty())
            out.failure = "SecurityPolicy " + res.ns + '/' + res.name +
                          ": extAuth backend not resolved (" + message + ")";
        }
        p->ext_authz = std::move(ext);
      }
      p->authorization = m.authorization;
      p->cors = m.cors;
      if (m.xff_trusted_hops) {
        p->xff_set = true;
        p->xff_trusted_hops = *m.xff_trusted_hops;
      }
      return p;
    };
    out.defaults = level(item.model.defaults);
    out.overrides = level(item.model.overrides);
    std::string errors = errorsSince(first);
    if (!errors.empty()) {
      out.failure = "SecurityPolicy " + res.ns + '/' + res.name + " is invalid";
      out.rejected = true;
      status_[item.resource].conditions.push_back(Condition{"Accepted", false, "Invalid", errors});
      rejected_.insert({res.kind, res.ns, res.name});
    }
  }
  for (const auto& [uri, ms] : jwks_sources) snapshot_->jwks_sources.push_back({uri, ms});

  // ---- Attachment ----
  struct Slot {
    const security::Policy* from = nullptr;
    std::string policy_id;
    std::string source;  // "SecurityPolicy ns/name (HTTPRoute default)"
  };
  using Slots = std::array<Slot, kSectionCount>;
  // Gateway policies: per port, defaults and overrides.
  std::map<uint32_t, std::pair<Slots, Slots>> port_slots;
  std::map<uint32_t, std::string> port_failure;  // port -> the invalid policy that denies all
  // Route policies: per rule, rule level and route level.
  std::map<Rule*, std::pair<Slots, Slots>> rule_slots;
  std::map<std::tuple<std::string_view, std::string_view, std::string_view>, uint32_t> route_by;
  for (uint32_t i = 0; i < routes_.size(); ++i) {
    const Resource& res = resources_[routes_[i].resource];
    route_by[{res.kind, res.ns, res.name}] = i;
  }
  // Offers `level`'s sections to `slots`; returns the sections lost to an older policy.
  auto offer = [](const security::Policy* level, Slots& slots, const std::string& policy_id,
                  const std::string& source, std::vector<std::string>* lost) {
    if (level == nullptr) return;
    for (int s = 0; s < kSectionCount; ++s) {
      if (!hasSection(*level, s)) continue;
      Slot& slot = slots[s];
      if (slot.from != nullptr) {
        std::string what = kSectionNames[s] + (" (" + slot.policy_id + ")");
        if (slot.policy_id != policy_id &&
            std::find(lost->begin(), lost->end(), what) == lost->end()) {
          lost->push_back(std::move(what));
        }
        continue;
      }
      slot = Slot{level, policy_id, source};
    }
  };
  for (uint32_t pi : order) {
    const SecurityItem& item = security_policies_[pi];
    const CompiledSecurity& cs = compiled[pi];
    const Resource& res = resources_[item.resource];
    Reporter r = reporterFor(item.resource);
    std::string policy_id = "SecurityPolicy " + res.ns + '/' + res.name;
    for (const PolicyTargetModel& target : item.model.targets) {
      AncestorStatus as;
      as.target_kind = target.kind;
      as.gateway_ns = res.ns;
      as.gateway_name = target.name;
      as.section = target.section;
      if (cs.rejected) {
        as.accepted = Condition{"Accepted", false, "Invalid",
                                cs.refs ? cs.refs->message : "see the policy's errors"};
      }
      if (cs.refs) as.more.push_back(*cs.refs);
      std::vector<std::string> lost;
      std::string consequence;
      if (target.kind == "Gateway") {
        auto git = gateway_by_name_.find({res.ns, target.name});
        if (git == gateway_by_name_.end()) {
          targetNotFound(item.resource, target, std::move(as), r);
          continue;
        }
        for (uint32_t port : gateways_[git->second].ports) {
          if (!cs.failure.empty()) {
            port_failure.emplace(port, cs.failure);
            continue;
          }
          auto& [defaults, overrides] = port_slots[port];
          offer(cs.defaults.get(), defaults, policy_id, policy_id + " (Gateway default)", &lost);
          offer(cs.overrides.get(), overrides, policy_id, policy_id + " (Gateway override)", &lost);
        }
        consequence = "every request on the Gateway's ports is denied (403)";
      } else {
        auto rit = route_by.find({target.kind, res.ns, target.name});
        if (rit == route_by.end()) {
          targetNotFound(item.resource, target, std::move(as), r);
          continue;
        }
        RouteItem& route = routes_[rit->second];
        bool any = false;
        for (uint32_t ri = 0; ri < route.model.rules.size(); ++ri) {
          if (!target.section.empty() && route.model.rules[ri].name != target.section) continue;
          any = true;
          if (route.reused) continue;  // final: compiled with these same policies
          Rule* rule = route.rule(ri);
          if (!cs.failure.empty()) {
            if (rule->filterError().empty()) rule->editExtras().filter_error = cs.failure + "\n";
            continue;
          }
          auto& [rule_level, route_level] = rule_slots[rule];
          bool at_rule = !target.section.empty();
          std::string source = policy_id + (at_rule ? " (rule " + target.section + " default)"
                                                    : " (" + target.kind + " default)");
          offer(cs.defaults.get(), at_rule ? rule_level : route_level, policy_id, source, &lost);
        }
        if (!any) {
          as.accepted = Condition{"Accepted", false, "TargetNotFound",
                                  target.kind + " " + res.ns + '/' + target.name +
                                      " has no rule named \"" + target.section + "\""};
          r.warning(target.where.mark, target.where.path,
                    "Accepted=False/TargetNotFound: " + as.accepted.message);
          if (cs.rejected) as.accepted.message += "; the policy is invalid";
        }
        consequence = "the requests it covers answer 500";
      }
      if (!cs.failure.empty()) {
        r.warning(target.where.mark, target.where.path,
                  "fail closed: " + cs.failure + ": " + consequence);
      }
      if (!lost.empty()) {
        std::string list;
        for (const std::string& l : lost) list += (list.empty() ? "" : ", ") + l;
        std::string message = "sections already set for this target by an older policy: " + list;
        r.warning(target.where.mark, target.where.path, "Conflicted: " + message + "; ignored");
        as.more.push_back(Condition{"Conflicted", true, "Conflicted", message});
      }
      status_[item.resource].ancestors.push_back(std::move(as));
    }
  }

  auto build = [](std::initializer_list<const Slots*> layers) {
    auto p = std::make_shared<security::Policy>();
    bool any = false;
    for (int s = 0; s < kSectionCount; ++s) {
      for (const Slots* slots : layers) {
        const Slot& slot = (*slots)[s];
        if (slot.from == nullptr) continue;
        copySection(*slot.from, s, p.get());
        p->sources.push_back(kSectionNames[s] + (": " + slot.source));
        any = true;
        break;
      }
    }
    return any ? p : nullptr;
  };
  for (auto& [rule, slots] : rule_slots) {
    if (!rule->filterError().empty()) continue;
    if (std::shared_ptr<security::Policy> p = build({&slots.first, &slots.second}))
      rule->editExtras().security = std::move(p);
  }
  for (auto& [port, slots] : port_slots) {
    PortSettings& s = ports_[port].settings;
    s.security_defaults = build({&slots.first});
    s.security_overrides = build({&slots.second});
  }
  for (const auto& [port, failure] : port_failure) {
    // Fail closed: access rules that deny everything, winning over every route's.
    auto deny = std::make_shared<security::Policy>();
    deny->authorization = std::make_shared<const security::Authorization>();
    deny->sources.push_back("authorization: " + failure + ": every request is denied");
    ports_[port].settings.security_overrides = std::move(deny);
  }
}

}  // namespace portico::config::internal
