// Decoded, validated resource specs: the compiler's input after the YAML is checked.
//
// Each struct mirrors a resource's spec with defaults applied. `Where` keeps the position and
// field path of an element so that errors found later (resolution, attachment) point at it.
// Regular expressions (paths, header and query values) are compiled once by the decoder, which
// rejects invalid ones; the route table shares the compiled RE2 objects.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/backend_settings.h"
#include "config/filters.h"
#include "config/policy.h"
#include "config/resource.h"
#include "config/yaml_reader.h"
#include "security/policy.h"

namespace re2 {
class RE2;
}

namespace portico::config {

inline constexpr std::string_view kGatewayGroup = "gateway.networking.k8s.io";
inline constexpr std::string_view kPorticoGroup = "portico.dev";

struct Where {
  YAML::Mark mark = YAML::Mark::null_mark();
  std::string path;
};

// A status condition as Gateway API defines it (metav1.Condition without times).
struct Condition {
  std::string type;    // "Accepted", "ResolvedRefs", "Programmed", "Conflicted"
  bool status = true;  // "True" / "False"
  std::string reason;
  std::string message;
  bool operator==(const Condition&) const = default;
};

// ---- Gateway ---------------------------------------------------------------------------

// ---- TLS (listener tls, Secret, ConfigMap) --------------------------------------------

// A certificateRefs / caCertificateRefs item.
struct CertificateRefModel {
  Where where;
  std::string group;  // "" = core
  std::string kind;   // "Secret" (certificateRefs default), "ConfigMap"
  std::string ns;     // defaults to the Gateway's namespace
  std::string name;
};

enum class ClientCertModel : uint8_t { kRequired, kOptional };

// A Gateway listener's `tls` (protocol HTTPS, mode Terminate).
struct ListenerTlsModel {
  Where where;
  std::vector<CertificateRefModel> certificate_refs;
  // options portico.dev/certificate-file and key-file: PEM files (relative to the config file).
  // Without key-file, the key is read from the certificate file.
  std::string certificate_file;
  std::string key_file;
  Where certificate_file_where;
  // frontendValidation.caCertificateRefs, or option portico.dev/client-ca-file.
  std::vector<CertificateRefModel> ca_refs;
  std::string ca_file;
  Where ca_file_where;
  ClientCertModel client_mode = ClientCertModel::kRequired;  // portico.dev/client-certificate-mode
  int min_version = 0x0303;  // portico.dev/min-version: TLS1_2_VERSION or TLS1_3_VERSION
};

// A core v1 Secret (type kubernetes.io/tls or Opaque) or ConfigMap: the PEM entries Portico
// reads (tls.crt, tls.key, ca.crt), base64-decoded from `data` or plain from `stringData`.
struct SecretModel {
  std::string type;  // Secret type ("kubernetes.io/tls"); "" for a ConfigMap
  // Every entry, decoded (SecurityPolicy reads API keys, .htpasswd and jwks.json from here).
  std::vector<std::pair<std::string, std::string>> entries;
  std::vector<Where> entry_where;  // parallel to entries
  std::string tls_crt, tls_key, ca_crt;
  Where tls_crt_where, tls_key_where, ca_crt_where;
  bool has_tls_crt = false, has_tls_key = false, has_ca_crt = false;
};

struct ListenerModel {
  Where where;
  std::string name;
  uint16_t port = 0;
  std::string protocol;                 // "HTTP", ...
  std::string hostname;                 // "" (any), "a.example.com", "*.example.com"
  bool allow_all_namespaces = false;    // allowedRoutes.namespaces.from: All (else Same)
  bool allows_http_route = true;        // allowedRoutes.kinds includes HTTPRoute (or is unset)
  bool allows_grpc_route = true;        // allowedRoutes.kinds includes GRPCRoute (or is unset)
  std::optional<ListenerTlsModel> tls;  // protocol HTTPS
  // Accepted=False with this reason/message when the listener is not served.
  bool accepted = true;
  std::string reason = "Accepted";
  std::string message;
};

struct GatewayModel {
  std::string class_name;
  std::vector<ListenerModel> listeners;  // every listener, accepted or not, in spec order
  std::vector<std::string> addresses;    // IP literals to bind; empty: 0.0.0.0
};

// ---- HTTPRoute -------------------------------------------------------------------------

struct ParentRefModel {
  Where where;
  std::string group{kGatewayGroup};
  std::string kind = "Gateway";
  std::string ns;  // defaults to the route's namespace
  std::string name;
  std::string section_name;  // "" = every listener
  uint16_t port = 0;         // 0 = any port
};

enum class PathKind : uint8_t { kExact, kPathPrefix, kRegularExpression };
enum class StringMatchKind : uint8_t { kExact, kRegularExpression };

struct StringMatchModel {
  StringMatchKind type = StringMatchKind::kExact;
  std::string name;
  std::string value;
  std::shared_ptr<const re2::RE2> regex;  // compiled value when type is kRegularExpression
};

struct MatchModel {
  Where where;
  PathKind path_kind = PathKind::kPathPrefix;
  std::string path = "/";
  std::shared_ptr<const re2::RE2> path_regex;  // compiled path when kRegularExpression
  std::string method;                          // "" = any
  std::vector<StringMatchModel> headers;       // names as written; compare case-insensitively
  std::vector<StringMatchModel> query_params;  // names compared case-sensitively
  // A GRPCRouteMatch mapped onto the path (decode_grpc_route.cc): ranked by the characters
  // of its service and method (Gateway API GRPCRoute precedence), not by the path.
  bool grpc = false;
  uint16_t grpc_service_chars = 0;
  uint16_t grpc_method_chars = 0;
};

struct MirrorModel;

// ExtensionRef filter: a reference to a portico.dev HTTPRouteFilter in the route's namespace.
struct ExtensionRefModel {
  Where where;
  std::string group;
  std::string kind;
  std::string name;
};

// The filters of a rule or of one backendRef (at most one of each type, except mirrors).
struct FiltersModel {
  std::optional<HeaderModifier> request_headers;
  std::optional<HeaderModifier> response_headers;
  std::optional<Redirect> redirect;       // rule only
  std::optional<UrlRewrite> url_rewrite;  // rule or backendRef, not both
  std::vector<MirrorModel> mirrors;
  std::vector<ExtensionRefModel> extension_refs;  // rule only
};

struct BackendRefModel {
  Where where;
  std::string group;  // "" = core
  std::string kind = "Service";
  std::string ns;  // defaults to the route's namespace
  std::string name;
  uint16_t port = 0;  // 0 = unset
  uint32_t weight = 1;
  FiltersModel filters;  // applied when this backendRef is chosen, after the rule's
};

// RequestMirror: a copy of the request to `backend` for `per_million` of the requests.
struct MirrorModel {
  Where where;
  BackendRefModel backend;  // weight and filters unused
  uint32_t per_million = 1'000'000;
};

struct RuleModel {
  Where where;
  std::string name;
  std::vector<MatchModel> matches;  // never empty: defaults to PathPrefix "/"
  std::vector<BackendRefModel> backend_refs;
  std::optional<uint64_t> request_timeout_ms;          // timeouts.request ("0s" = 0)
  std::optional<uint64_t> backend_request_timeout_ms;  // timeouts.backendRequest
  FiltersModel filters;
};

struct HttpRouteModel {
  std::vector<ParentRefModel> parent_refs;
  std::vector<std::string> hostnames;
  std::vector<RuleModel> rules;
};

// ---- Backend (portico.dev) -------------------------------------------------------------

struct EndpointModel {
  Where where;
  std::string address;    // IP literal, or a DNS name when `dns`
  bool dns = false;       // resolved asynchronously; every address it resolves to is an endpoint
  uint16_t port = 0;      // 0 = take the backendRef's port
  uint32_t weight = 1;    // 1-128
  uint32_t priority = 0;  // 0 = highest; lower priorities take traffic when higher ones fail
  std::string region;     // locality
  std::string zone;
};

// A Backend's spec.tls: TLS to its endpoints.
struct BackendTlsModel {
  Where where;
  std::string sni;  // server name sent and verified; "" = none sent, verification by CA only
  std::vector<CertificateRefModel> ca_refs;  // caCertificateRefs (ConfigMap/Secret ca.crt)
  std::string ca_file;                       // caFile (relative to the config file)
  bool system_cas = false;                   // wellKnownCACertificates: System
  bool insecure_skip_verify = false;
  std::optional<CertificateRefModel> client_certificate;  // clientCertificateRef (Secret)
};

struct BackendModel {
  BackendProtocol protocol = BackendProtocol::kHttp1;  // spec.protocol
  std::vector<EndpointModel> endpoints;
  std::optional<BackendTlsModel> tls;
  LoadBalancerSettings load_balancer;
  std::optional<ActiveHealthSettings> active_health;
  std::optional<PassiveHealthSettings> passive_health;
  CircuitBreakerSettings circuit_breaker;
  ConnectionPoolSettings pool;
};

// ---- TrafficPolicy (portico.dev) -------------------------------------------------------

struct PolicyTargetModel {
  Where where;
  std::string kind;     // "Gateway" or "HTTPRoute"
  std::string name;     // in the policy's namespace
  std::string section;  // sectionName: a rule name of the HTTPRoute; "" = the whole target
};

// A setting of a TrafficPolicy and where it is written (for conflict diagnostics).
template <typename T>
struct Setting {
  std::optional<T> value;
  Where where;
};

// Settings a TrafficPolicy gives the routes under its targets, as defaults (the most specific
// target wins) or overrides (the least specific wins, and beats the route's own fields).
struct RouteSettingsModel {
  Setting<uint64_t> request_ms;        // timeout.http.requestTimeout / timeouts.request
  Setting<uint64_t> connect_ms;        // timeout.tcp.connectTimeout / timeouts.connect
  Setting<uint64_t> upstream_idle_ms;  // timeout.http.connectionIdleTimeout
  Setting<RetryPolicy> retry;
  bool empty() const {
    return !request_ms.value && !connect_ms.value && !upstream_idle_ms.value && !retry.value;
  }
};

// HTTPRouteFilter (portico.dev): filter settings an HTTPRoute rule references with an
// ExtensionRef filter. Today: directResponse.
struct RouteFilterModel {
  std::optional<DirectResponse> direct_response;
};

struct TrafficPolicyModel {
  std::vector<PolicyTargetModel> targets;
  // Client side of a Gateway's ports (Gateway targets only).
  Setting<uint64_t> request_headers_ms;
  Setting<uint64_t> request_body_ms;
  Setting<uint64_t> idle_ms;
  Setting<uint32_t> max_request_line_bytes;
  Setting<uint32_t> max_request_headers_bytes;
  Setting<uint32_t> max_request_headers;
  Setting<uint32_t> h2_max_concurrent_streams;  // spec.http2
  Setting<uint32_t> h2_stream_window;
  Setting<uint32_t> h2_connection_window;
  Setting<std::vector<ResponseOverride>> response_overrides;
  // Routes: top-level fields and spec.defaults are defaults; spec.overrides are overrides.
  RouteSettingsModel defaults;
  RouteSettingsModel overrides;
};

// ---- SecurityPolicy (portico.dev) ------------------------------------------------------
// The sections as decoded; what depends on other resources, files or the JWKS fetcher
// (keys, consumers from Secrets and files, htpasswd, the ext-authz backend) is resolved by
// compile_security.cc. Sections that depend on the document alone are built here.

// A Secret or ConfigMap in the policy's namespace.
struct LocalObjectRefModel {
  Where where;
  std::string kind = "Secret";
  std::string name;
};

struct JwtProviderModel {
  Where where;
  std::string name;
  enum class Keys : uint8_t { kRemote, kInline, kFile, kValueRef } keys = Keys::kRemote;
  Where keys_where;        // remoteJWKS / localJWKS
  std::string remote_uri;  // kRemote
  uint32_t refresh_ms = 300'000;
  std::string local_text;         // kInline: the JWKS or PEM text; kFile: the file name
  LocalObjectRefModel value_ref;  // kValueRef (key jwks.json)
  std::optional<security::AlgSet> algorithms;  // unset: the default set (see compile)
  security::VerifierOptions options;           // issuer, audiences, skew, claims (no algs)
  security::JwtProvider provider;              // name, sources, forward, claimToHeaders...
};

struct JwtModel {
  Where where;
  bool optional = false;
  std::vector<JwtProviderModel> providers;
};

struct ApiConsumerModel {
  Where where;
  security::ApiConsumer consumer;  // name, digest, disabled, metadata
};

struct ApiKeyModel {
  Where where;
  std::vector<LocalObjectRefModel> credential_refs;
  std::vector<ApiConsumerModel> consumers;
  std::string consumers_file;
  Where consumers_file_where;
  security::ApiKeyAuth settings;  // sources, headers, sanitize (consumers filled at compile)
};

struct BasicAuthModel {
  Where where;
  std::optional<LocalObjectRefModel> users;  // Secret key .htpasswd
  std::string htpasswd_file;
  Where htpasswd_file_where;
  security::BasicAuth settings;  // realm, forwardUsernameHeader, forward (users at compile)
};

struct ExtAuthModel {
  Where where;
  BackendRefModel backend;
  security::ExtAuthz settings;  // everything but the backend
};

// The sections of one SecurityPolicy level (the defaults, or a Gateway policy's overrides).
// Each is taken whole from one policy.
struct SecuritySectionsModel {
  std::optional<JwtModel> jwt;
  std::optional<ApiKeyModel> api_key;
  std::optional<BasicAuthModel> basic;
  std::optional<ExtAuthModel> ext_auth;
  std::shared_ptr<const security::Authorization> authorization;
  Where authorization_where;
  std::shared_ptr<const security::Cors> cors;
  Where cors_where;
  std::optional<uint32_t> xff_trusted_hops;  // clientIPDetection
  Where xff_where;
  bool empty() const {
    return !jwt && !api_key && !basic && !ext_auth && !authorization && !cors && !xff_trusted_hops;
  }
};

struct SecurityPolicyModel {
  std::vector<PolicyTargetModel> targets;  // kind Gateway, HTTPRoute or GRPCRoute
  SecuritySectionsModel defaults;
  SecuritySectionsModel overrides;  // Gateway targets only
  // Some section did not decode: the policy is rejected, and fails closed (its targets
  // answer 500 / are denied) rather than leaving them open. The message is for the status.
  bool invalid = false;
};

// ---- Decoders --------------------------------------------------------------------------
// Each validates res.spec strictly, reporting through `r` (whose subject is `res`).
// nullopt: the resource is rejected as a whole. A Gateway listener that is invalid is kept
// with accepted=false (only that listener is rejected).

std::optional<GatewayModel> decodeGateway(const Resource& res, Reporter& r);
std::optional<HttpRouteModel> decodeHttpRoute(const Resource& res, Reporter& r);
// GRPCRoute (gateway.networking.k8s.io/v1), into the HTTPRoute model: method matches become
// path matches ("/service/method"), so the HTTP router serves both kinds.
std::optional<HttpRouteModel> decodeGrpcRoute(const Resource& res, Reporter& r);
std::optional<BackendModel> decodeBackend(const Resource& res, Reporter& r);
std::optional<TrafficPolicyModel> decodeTrafficPolicy(const Resource& res, Reporter& r);
std::optional<RouteFilterModel> decodeRouteFilter(const Resource& res, Reporter& r);
// SecurityPolicy (decode_security.cc). nullopt only when its targetRefs cannot be read; a
// policy with errors elsewhere comes back with `invalid` set, so that its targets fail closed.
std::optional<SecurityPolicyModel> decodeSecurityPolicy(const Resource& res, Reporter& r);
// A list of API-key consumers ({name, key | keyHash, disabled, metadata}), as in
// apiKeyAuth.consumers and in a consumersFile.
void decodeApiConsumers(Reporter& r, const YAML::Node& node, const std::string& path,
                        std::vector<ApiConsumerModel>* out);
// SHA-256 of an API key: what Portico stores and compares instead of the key.
security::KeyDigest apiKeyDigest(std::string_view key);
// Secret and ConfigMap (core v1; their content is at the top level, not in spec).
std::optional<SecretModel> decodeSecret(const Resource& res, Reporter& r);
// A listener's `tls` into out->tls (decode_tls.cc).
void decodeListenerTls(MapReader& listener, ListenerModel* out);
// A Backend's spec.tls into out->tls (decode_tls.cc).
void decodeBackendTls(MapReader& spec, BackendModel* out);

}  // namespace portico::config
