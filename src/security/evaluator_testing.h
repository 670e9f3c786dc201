// What the evaluator's unit tests share (evaluator_test.cc: authentication, caches, layers;
// evaluator_rules_test.cc: access rules and CORS): keys and tokens from the PyJWT vectors,
// HS256 tokens signed here, providers and policies, a request builder, the evaluator run.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/socket.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "security/evaluator.h"
#include "security/jwks.h"

namespace portico::security::eval_test {

using json = nlohmann::json;
using Action = Outcome::Action;

inline constexpr int64_t kNow = 1700000000;  // the vectors' time; their tokens expire at 1700003600

inline const json& vectors() {
  static const json doc = [] {
    std::ifstream in(std::string(PORTICO_SOURCE_DIR) + "/test/vectors/jwt/vectors.json");
    std::stringstream ss;
    ss << in.rdbuf();
    return json::parse(ss.str());
  }();
  return doc;
}

inline std::string vectorToken(const std::string& name) {
  for (const auto& c : vectors()["cases"])
    if (c["name"] == name) return c["token"];
  ADD_FAILURE() << "no vector " << name;
  return "";
}

inline std::shared_ptr<const KeySet> mainKeys() {
  auto ks = parseJwks(vectors()["keysets"]["main"]["jwks"].dump());
  EXPECT_TRUE(ks.ok());
  return *ks;
}

inline std::shared_ptr<const KeySet> emptyKeys() { return *parseJwks(R"({"keys":[]})"); }

inline const std::string kSecret = "0123456789abcdef0123456789abcdef-evaluator-test";

// An HS256 token over `claims`, signed with kSecret.
inline std::string hsToken(const json& claims, const std::string& kid = "hs") {
  std::string h, p, sig;
  base64UrlEncode(json{{"alg", "HS256"}, {"kid", kid}}.dump(), h);
  base64UrlEncode(claims.dump(), p);
  std::string input = h + "." + p;
  unsigned char mac[32];
  size_t mac_len = 0;
  EXPECT_TRUE(EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, kSecret.data(), kSecret.size(),
                        reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac,
                        sizeof mac, &mac_len));
  base64UrlEncode(std::string_view(reinterpret_cast<char*>(mac), mac_len), sig);
  return input + "." + sig;
}

inline uint64_t nextUid() {
  static uint64_t uid = 1000;
  return ++uid;
}

inline JwtProvider provider(std::string name, std::shared_ptr<const KeySet> keys,
                            VerifierOptions o = {}) {
  JwtProvider p;
  p.name = std::move(name);
  p.uid = nextUid();
  if (o.algorithms.empty()) o.algorithms = AlgSet::all();
  p.verifier = std::make_shared<Verifier>(std::move(o), std::move(keys));
  return p;
}

inline JwtProvider rsaProvider() {
  VerifierOptions o;
  o.issuer = "https://idp.example.com";
  o.audiences = {"devices-api"};
  return provider("idp", mainKeys(), o);
}

inline JwtProvider hsProvider() { return provider("hs", *hmacKeySet(kSecret, "hs")); }

inline Policy jwtPolicy(std::vector<JwtProvider> providers, bool optional = false) {
  auto jwt = std::make_shared<JwtAuth>();
  jwt->providers = std::move(providers);
  jwt->optional = optional;
  Policy p;
  p.jwt = jwt;
  return p;
}

// A request with its headers kept alive.
struct Req {
  std::string method = "GET";
  std::string path = "/";
  std::string query;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string peer = "192.0.2.10";

  Req& h(std::string n, std::string v) {
    headers.emplace_back(std::move(n), std::move(v));
    return *this;
  }

  const Request& get() {
    fields.clear();
    for (const auto& [n, v] : headers) fields.push_back({n, v, http1::HeaderTag::kOther});
    request.method = method;
    request.path = path;
    request.query = query;
    request.headers = fields.data();
    request.header_count = static_cast<uint32_t>(fields.size());
    if (inet_pton(AF_INET, peer.c_str(), addr) == 1) {
      request.peer_family = AF_INET;
    } else {
      EXPECT_EQ(inet_pton(AF_INET6, peer.c_str(), addr), 1);
      request.peer_family = AF_INET6;
    }
    request.peer_addr = addr;
    return request;
  }

  std::vector<http1::Header> fields;
  Request request;
  uint8_t addr[16] = {};
};

struct Eval {
  WorkerState state{4096, 64};
  Trace trace;

  Outcome& run(const Layers& layers, Req& r, int64_t now = kNow) {
    trace.clear();
    evaluate(layers, r.get(), state, now, &state.scratch(), &trace);
    return state.scratch();
  }
  Outcome& run(const Policy& p, Req& r, int64_t now = kNow) {
    Layers l;
    l.rule = &p;
    return run(l, r, now);
  }
  bool traced(const std::string& needle) const {
    for (const auto& t : trace)
      if (t.find(needle) != std::string::npos) return true;
    return false;
  }
};

inline bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

inline std::string added(const Outcome& o, const std::string& name) {
  for (const auto& h : o.add_headers)
    if (h.name == name) return h.value;
  return "<none>";
}

inline KeyDigest digestOf(const std::string& key) {
  KeyDigest d{};
  unsigned len = 0;
  EVP_Digest(key.data(), key.size(), d.data(), &len, EVP_sha256(), nullptr);
  return d;
}

inline Policy apiKeyPolicy() {
  auto ak = std::make_shared<ApiKeyAuth>();
  ak->consumers = {
      {"acme-app", digestOf("k-acme-123"), false, {{"tenant", "acme"}, {"plan", "gold"}}},
      {"old-app", digestOf("k-old"), true, {}},
      {"globex", digestOf("k+globex/=="), false, {{"tenant", "globex"}}}};
  std::sort(ak->consumers.begin(), ak->consumers.end(),
            [](const ApiConsumer& a, const ApiConsumer& b) { return a.digest < b.digest; });
  ak->forward_client_id_header = "x-consumer";
  ak->metadata_to_headers = {{"tenant", "x-tenant"}, {"missing", "x-missing"}};
  Policy p;
  p.api_key = ak;
  return p;
}

inline Cidr cidr(const std::string& text) {
  Cidr c;
  size_t slash = text.find('/');
  std::string ip = text.substr(0, slash);
  c.prefix = static_cast<uint8_t>(std::stoi(text.substr(slash + 1)));
  c.family = inet_pton(AF_INET, ip.c_str(), c.addr) == 1 ? AF_INET : AF_INET6;
  if (c.family == AF_INET6) {
    EXPECT_EQ(inet_pton(AF_INET6, ip.c_str(), c.addr), 1);
  }
  return c;
}

inline Policy accessPolicy(std::vector<AccessRule> rules, bool default_allow = false) {
  auto a = std::make_shared<Authorization>();
  a->rules = std::move(rules);
  a->default_allow = default_allow;
  Policy p;
  p.authorization = a;
  return p;
}

}  // namespace portico::security::eval_test
