// SecurityPolicy's authentication sections (decode_security.cc has the policy and the other
// sections): jwt providers and their keys' sources, apiKeyAuth and its consumers, basicAuth.
// Keys, Secrets and files are resolved by compile_security.cc.
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "config/decode_route.h"
#include "config/decode_security.h"
#include "config/model.h"
#include "config/syntax.h"
#include "security/jose.h"

namespace portico::config {
namespace security_decode {
namespace {

constexpr size_t kMaxProviders = 16;

// An http(s) URI with a host.
std::string checkUri(std::string_view uri) {
  std::string_view rest;
  if (uri.starts_with("http://")) {
    rest = uri.substr(7);
  } else if (uri.starts_with("https://")) {
    rest = uri.substr(8);
  } else {
    return "must be an http:// or https:// URI";
  }
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  if (authority.empty() || authority.starts_with(":")) return "must name a host";
  if (authority.find('@') != std::string_view::npos) return "must not carry credentials";
  for (char c : uri)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return "must not contain spaces";
  return "";
}

std::optional<security::KeyDigest> parseKeyHash(std::string_view v) {
  if (!v.starts_with("sha256:") || v.size() != 7 + 64) return std::nullopt;
  security::KeyDigest d{};
  for (size_t i = 0; i < 32; ++i) {
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    int hi = hex(v[7 + 2 * i]), lo = hex(v[8 + 2 * i]);
    if (hi < 0 || lo < 0) return std::nullopt;
    d[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return d;
}

std::optional<LocalObjectRefModel> localRef(Reporter& r, const YAML::Node& node,
                                            const std::string& path, bool config_map_allowed) {
  MapReader m(r, node, path);
  LocalObjectRefModel ref;
  ref.where = Where{markOf(node), path};
  std::optional<std::string> group = m.string("group");
  if (std::optional<std::string> kind = m.string("kind")) ref.kind = *kind;
  std::optional<std::string> name = m.string("name", Need::kRequired);
  if (m.has("namespace")) m.unsupported("namespace", "a reference to another namespace");
  m.finish();
  if (group && !group->empty()) {
    r.error(m.markOf("group"), m.childPath("group"),
            "Unsupported value: \"" + *group + "\": must be the core group (\"\")");
    return std::nullopt;
  }
  if (ref.kind != "Secret" && !(config_map_allowed && ref.kind == "ConfigMap")) {
    r.error(m.markOf("kind"), m.childPath("kind"),
            "Unsupported value: \"" + ref.kind + "\": supported values: \"Secret\"" +
                (config_map_allowed ? ", \"ConfigMap\"" : ""));
    return std::nullopt;
  }
  if (!name) return std::nullopt;
  ref.name = *name;
  return ref;
}

// extractFrom of a JWT provider: headers [{name, valuePrefix}], params, cookies.
std::vector<security::CredentialSource> jwtSources(Reporter& r, const YAML::Node& node,
                                                   const std::string& path) {
  std::vector<security::CredentialSource> out;
  MapReader m(r, node, path);
  forEachItem(r, m.take("headers"), m.childPath("headers"), kMaxList,
              [&](const YAML::Node& item, const std::string& p, size_t) {
                MapReader h(r, item, p);
                security::CredentialSource s;
                if (std::optional<std::string> name = h.string("name", Need::kRequired))
                  s.name = headerName(r, h.markOf("name"), h.childPath("name"), *name);
                s.prefix = h.string("valuePrefix").value_or("");
                h.finish();
                if (!s.name.empty()) out.push_back(std::move(s));
              });
  for (auto [key, kind] : {std::pair{"params", security::CredentialSource::Kind::kQuery},
                           {"cookies", security::CredentialSource::Kind::kCookie}}) {
    forEachItem(r, m.take(key), m.childPath(key), kMaxList,
                [&](const YAML::Node& item, const std::string& p, size_t) {
                  std::optional<std::string> v = readString(r, item, p);
                  if (!v) return;
                  if (v->empty()) {
                    r.error(markOf(item), p, "Required value: must not be empty");
                    return;
                  }
                  out.push_back(security::CredentialSource{kind, *v, ""});
                });
  }
  m.finish();
  if (out.empty()) r.error(markOf(node), path, "Required value: at least one source");
  return out;
}

void decodeJwks(MapReader& m, JwtProviderModel* p) {
  Reporter& r = m.reporter();
  bool remote = m.has("remoteJWKS"), local = m.has("localJWKS");
  if (remote == local) {
    r.error(m.mark(), m.path(), "Invalid value: exactly one of remoteJWKS, localJWKS");
    m.take("remoteJWKS");
    m.take("localJWKS");
    return;
  }
  if (remote) {
    p->keys = JwtProviderModel::Keys::kRemote;
    p->keys_where = Where{m.markOf("remoteJWKS"), m.childPath("remoteJWKS")};
    MapReader j(r, m.take("remoteJWKS"), m.childPath("remoteJWKS"));
    if (std::optional<std::string> uri = j.string("uri", Need::kRequired)) {
      std::string problem = checkUri(*uri);
      if (!problem.empty())
        r.error(j.markOf("uri"), j.childPath("uri"), invalidValue(*uri, problem));
      p->remote_uri = *uri;
    }
    if (std::optional<uint64_t> ms = j.duration("cacheDuration")) {
      if (*ms < 1000 || *ms > 86'400'000) {
        r.error(j.markOf("cacheDuration"), j.childPath("cacheDuration"),
                "Invalid value: must be between 1s and 24h");
      } else {
        p->refresh_ms = static_cast<uint32_t>(*ms);
      }
    }
    j.finish();
    return;
  }
  p->keys_where = Where{m.markOf("localJWKS"), m.childPath("localJWKS")};
  MapReader j(r, m.take("localJWKS"), m.childPath("localJWKS"));
  std::string type = j.string("type").value_or("Inline");
  // The fields of the other types are refused, not ignored.
  auto only = [&](std::string_view key, std::string_view of_type) {
    if (j.has(key) && type != of_type) {
      r.error(j.markOf(key), j.childPath(key),
              "Forbidden: only with type " + std::string(of_type) + " (type is " + type + ")");
    }
    j.take(key);
  };
  if (type == "Inline") {
    p->keys = JwtProviderModel::Keys::kInline;
    p->local_text = j.string("inline", Need::kRequired).value_or("");
    p->keys_where = Where{j.markOf("inline"), j.childPath("inline")};
  } else if (type == "File") {
    p->keys = JwtProviderModel::Keys::kFile;
    p->local_text = j.string("file", Need::kRequired).value_or("");
    p->keys_where = Where{j.markOf("file"), j.childPath("file")};
  } else if (type == "ValueRef") {
    p->keys = JwtProviderModel::Keys::kValueRef;
    p->keys_where = Where{j.markOf("valueRef"), j.childPath("valueRef")};
    if (std::optional<LocalObjectRefModel> ref =
            localRef(r, j.take("valueRef", Need::kRequired), j.childPath("valueRef"), true))
      p->value_ref = *ref;
  } else {
    r.error(j.markOf("type"), j.childPath("type"),
            "Unsupported value: \"" + type +
                "\": supported values: \"Inline\", \"File\", "
                "\"ValueRef\"");
  }
  only("inline", "Inline");
  only("file", "File");
  only("valueRef", "ValueRef");
  j.finish();
}

void decodeProvider(Reporter& r, const YAML::Node& node, const std::string& path,
                    JwtProviderModel* p) {
  MapReader m(r, node, path);
  p->where = Where{markOf(node), path};
  if (std::optional<std::string> name = m.string("name", Need::kRequired)) {
    if (name->empty() || name->size() > 253) {
      r.error(m.markOf("name"), m.childPath("name"), invalidValue(*name, "1 to 253 characters"));
    }
    p->name = *name;
    p->provider.name = *name;
  }
  p->options.issuer = m.string("issuer").value_or("");
  p->options.audiences = stringList(r, m.take("audiences"), m.childPath("audiences"));
  if (m.has("algorithms")) {
    security::AlgSet algs;
    forEachItem(r, m.take("algorithms"), m.childPath("algorithms"), kMaxList,
                [&](const YAML::Node& item, const std::string& p_path, size_t) {
                  std::optional<std::string> v = readString(r, item, p_path);
                  if (!v) return;
                  if (lower(*v) == "none") {
                    r.error(markOf(item), p_path,
                            "Forbidden: \"none\" means an unsigned token, which is never "
                            "accepted");
                    return;
                  }
                  std::optional<security::Alg> a = security::parseAlg(*v);
                  if (!a) {
                    r.error(markOf(item), p_path,
                            "Unsupported value: \"" + *v +
                                "\": supported values: HS256, HS384, HS512, RS256, RS384, RS512, "
                                "PS256, PS384, PS512, ES256, ES384, EdDSA");
                    return;
                  }
                  algs.add(*a);
                });
    p->algorithms = algs;
  }
  decodeJwks(m, p);
  p->provider.sources = {{security::CredentialSource::Kind::kHeader, "authorization", "Bearer "}};
  if (m.has("extractFrom"))
    p->provider.sources = jwtSources(r, m.take("extractFrom"), m.childPath("extractFrom"));
  readBool(m, "forward", &p->provider.forward);
  if (std::optional<uint64_t> ms = m.duration("clockSkew")) {
    if (*ms > 3'600'000) {
      r.error(m.markOf("clockSkew"), m.childPath("clockSkew"), "Invalid value: at most 1h");
    }
    p->options.clock_skew_seconds = static_cast<int64_t>(*ms / 1000);
  }
  readBool(m, "requireExpiration", &p->options.require_expiration);
  forEachItem(r, m.take("requiredClaims"), m.childPath("requiredClaims"), kMaxList,
              [&](const YAML::Node& item, const std::string& p_path, size_t) {
                MapReader c(r, item, p_path);
                security::RequiredClaim rc;
                rc.path = c.string("name", Need::kRequired).value_or("");
                rc.values = stringList(r, c.take("values"), c.childPath("values"));
                c.finish();
                if (!rc.path.empty()) p->options.required_claims.push_back(std::move(rc));
              });
  std::set<std::string> headers;
  forEachItem(r, m.take("claimToHeaders"), m.childPath("claimToHeaders"), kMaxList,
              [&](const YAML::Node& item, const std::string& p_path, size_t) {
                MapReader c(r, item, p_path);
                security::ClaimToHeader ch;
                ch.claim = c.string("claim", Need::kRequired).value_or("");
                if (std::optional<std::string> h = c.string("header", Need::kRequired)) {
                  ch.header = upstreamHeader(r, c.markOf("header"), c.childPath("header"), *h);
                  if (!ch.header.empty() && !headers.insert(ch.header).second) {
                    r.error(c.markOf("header"), c.childPath("header"),
                            "Duplicate value: \"" + ch.header + "\"");
                  }
                }
                c.finish();
                if (!ch.claim.empty() && !ch.header.empty())
                  p->provider.claim_to_headers.push_back(std::move(ch));
              });
  readBool(m, "recomputeRoute", &p->provider.recompute_route);
  m.finish();
}

}  // namespace

void decodeJwt(MapReader& parent, JwtModel* out) {
  Reporter& r = parent.reporter();
  out->where = Where{parent.markOf("jwt"), parent.childPath("jwt")};
  MapReader m(r, parent.take("jwt"), parent.childPath("jwt"));
  readBool(m, "optional", &out->optional);
  std::set<std::string> names;
  YAML::Node providers = m.take("providers", Need::kRequired);
  forEachItem(r, providers, m.childPath("providers"), kMaxProviders,
              [&](const YAML::Node& item, const std::string& path, size_t) {
                JwtProviderModel p;
                decodeProvider(r, item, path, &p);
                if (!p.name.empty() && !names.insert(p.name).second) {
                  r.error(markOf(item), fieldPath(path, "name"),
                          "Duplicate value: provider \"" + p.name + "\" is already defined");
                }
                out->providers.push_back(std::move(p));
              });
  if (providers.IsDefined() && providers.IsSequence() && providers.size() == 0)
    r.error(markOf(providers), m.childPath("providers"), "Required value: at least one provider");
  m.finish();
}

namespace {

// apiKeyAuth.extractFrom: [{headers: [...]}, {params: [...]}, {cookies: [...]}].
std::vector<security::CredentialSource> apiKeySources(Reporter& r, const YAML::Node& node,
                                                      const std::string& path) {
  std::vector<security::CredentialSource> out;
  forEachItem(r, node, path, kMaxList, [&](const YAML::Node& item, const std::string& p, size_t) {
    MapReader m(r, item, p);
    for (std::string& h :
         headerList(r, m.take("headers"), m.childPath("headers"), HeaderUse::kRead))
      out.push_back({security::CredentialSource::Kind::kHeader, std::move(h), ""});
    for (const std::string& q : stringList(r, m.take("params"), m.childPath("params")))
      out.push_back({security::CredentialSource::Kind::kQuery, q, ""});
    for (const std::string& c : stringList(r, m.take("cookies"), m.childPath("cookies")))
      out.push_back({security::CredentialSource::Kind::kCookie, c, ""});
    m.finish();
  });
  if (out.empty()) r.error(markOf(node), path, "Required value: at least one source");
  return out;
}

}  // namespace

void decodeApiKey(MapReader& parent, ApiKeyModel* out) {
  Reporter& r = parent.reporter();
  out->where = Where{parent.markOf("apiKeyAuth"), parent.childPath("apiKeyAuth")};
  MapReader m(r, parent.take("apiKeyAuth"), parent.childPath("apiKeyAuth"));
  forEachItem(r, m.take("credentialRefs"), m.childPath("credentialRefs"), kMaxList,
              [&](const YAML::Node& item, const std::string& path, size_t) {
                if (std::optional<LocalObjectRefModel> ref = localRef(r, item, path, false))
                  out->credential_refs.push_back(*ref);
              });
  decodeApiConsumers(r, m.take("consumers"), m.childPath("consumers"), &out->consumers);
  if (std::optional<std::string> file = m.string("consumersFile")) {
    out->consumers_file = *file;
    out->consumers_file_where = Where{m.markOf("consumersFile"), m.childPath("consumersFile")};
  }
  if (out->credential_refs.empty() && out->consumers.empty() && out->consumers_file.empty()) {
    r.error(m.mark(), m.path(), "Required value: one of credentialRefs, consumers, consumersFile");
  }
  out->settings.sources = {{security::CredentialSource::Kind::kHeader, "x-api-key", ""}};
  if (m.has("extractFrom"))
    out->settings.sources = apiKeySources(r, m.take("extractFrom"), m.childPath("extractFrom"));
  if (std::optional<std::string> h = m.string("forwardClientIDHeader")) {
    out->settings.forward_client_id_header = upstreamHeader(
        r, m.markOf("forwardClientIDHeader"), m.childPath("forwardClientIDHeader"), *h);
  }
  forEachItem(r, m.take("metadataToHeaders"), m.childPath("metadataToHeaders"), kMaxList,
              [&](const YAML::Node& item, const std::string& path, size_t) {
                MapReader e(r, item, path);
                std::string key = e.string("metadata", Need::kRequired).value_or("");
                std::string header;
                if (std::optional<std::string> h = e.string("header", Need::kRequired))
                  header = upstreamHeader(r, e.markOf("header"), e.childPath("header"), *h);
                e.finish();
                if (!key.empty() && !header.empty())
                  out->settings.metadata_to_headers.emplace_back(key, header);
              });
  readBool(m, "sanitize", &out->settings.sanitize);
  m.finish();
}

void decodeBasic(MapReader& parent, BasicAuthModel* out) {
  Reporter& r = parent.reporter();
  out->where = Where{parent.markOf("basicAuth"), parent.childPath("basicAuth")};
  MapReader m(r, parent.take("basicAuth"), parent.childPath("basicAuth"));
  bool users = m.has("users"), file = m.has("htpasswdFile");
  if (users == file) {
    r.error(m.mark(), m.path(), "Invalid value: exactly one of users, htpasswdFile");
  }
  if (users) out->users = localRef(r, m.take("users"), m.childPath("users"), false);
  if (std::optional<std::string> f = m.string("htpasswdFile")) {
    out->htpasswd_file = *f;
    out->htpasswd_file_where = Where{m.markOf("htpasswdFile"), m.childPath("htpasswdFile")};
  }
  if (std::optional<std::string> realm = m.string("realm")) {
    if (realm->empty() || realm->find_first_of("\"\\\r\n") != std::string::npos) {
      r.error(m.markOf("realm"), m.childPath("realm"),
              invalidValue(*realm, "must be non-empty, without quotes, backslashes or newlines"));
    }
    out->settings.realm = *realm;
  }
  if (std::optional<std::string> h = m.string("forwardUsernameHeader")) {
    out->settings.forward_username_header = upstreamHeader(
        r, m.markOf("forwardUsernameHeader"), m.childPath("forwardUsernameHeader"), *h);
  }
  readBool(m, "forward", &out->settings.forward);
  m.finish();
}

}  // namespace security_decode

using namespace security_decode;

namespace {
constexpr size_t kMaxConsumers = 10'000;
}  // namespace

security::KeyDigest apiKeyDigest(std::string_view key) {
  security::KeyDigest d{};
  unsigned int len = 0;
  EVP_Digest(key.data(), key.size(), d.data(), &len, EVP_sha256(), nullptr);
  return d;
}

void decodeApiConsumers(Reporter& r, const YAML::Node& node, const std::string& path,
                        std::vector<ApiConsumerModel>* out) {
  forEachItem(r, node, path, kMaxConsumers,
              [&](const YAML::Node& item, const std::string& p, size_t) {
                MapReader m(r, item, p);
                ApiConsumerModel c;
                c.where = Where{markOf(item), p};
                c.consumer.name = m.string("name", Need::kRequired).value_or("");
                bool has_key = m.has("key"), has_hash = m.has("keyHash");
                if (has_key == has_hash) {
                  r.error(m.mark(), p, "Invalid value: exactly one of key, keyHash");
                  m.take("key");
                  m.take("keyHash");
                } else if (has_key) {
                  std::string key = m.string("key").value_or("");
                  if (key.empty()) {
                    r.error(m.markOf("key"), m.childPath("key"), "Required value: empty key");
                  }
                  c.consumer.digest = apiKeyDigest(key);
                } else if (std::optional<std::string> h = m.string("keyHash")) {
                  std::optional<security::KeyDigest> d = parseKeyHash(*h);
                  if (!d) {
                    r.error(m.markOf("keyHash"), m.childPath("keyHash"),
                            "Invalid value: must be \"sha256:\" followed by 64 hex digits");
                  } else {
                    c.consumer.digest = *d;
                  }
                }
                readBool(m, "disabled", &c.consumer.disabled);
                YAML::Node meta = m.take("metadata");
                if (!isAbsent(meta)) {
                  if (!meta.IsMap()) {
                    r.error(markOf(meta), m.childPath("metadata"),
                            "Invalid value: must be a mapping of strings");
                  } else {
                    for (auto it = meta.begin(); it != meta.end(); ++it) {
                      std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
                      std::string child = fieldPath(m.childPath("metadata"), key);
                      if (std::optional<std::string> v = readString(r, it->second, child))
                        c.consumer.metadata.emplace_back(key, *v);
                    }
                  }
                }
                m.finish();
                out->push_back(std::move(c));
              });
}

}  // namespace portico::config
