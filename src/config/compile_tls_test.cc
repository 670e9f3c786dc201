// HTTPS listener and Secret decoding: errors point at the field, a bad listener is rejected
// alone. (Certificates that parse are covered by test/integration/test_tls.py.)
#include <gtest/gtest.h>

#include "config/testing.h"

namespace portico::config::testing {
namespace {

constexpr std::string_view kHttpsGateway = R"(apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  listeners:
  - {name: http, port: 8080, protocol: HTTP}
  - name: https
    port: 8443
    protocol: HTTPS
    tls:
)";

TEST_F(CompilerTest, HttpsListenerTlsErrorsPointAtTheField) {
  std::vector<std::string> d = compileText(std::string(kHttpsGateway) + R"(      mode: Passthrough
      certificateRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: x}]
      options:
        portico.dev/min-version: "1.1"
        portico.dev/certificate-fil: a.pem
        example.com/other: "1"
        portico.dev/client-certificate-mode: Optional
)");
  EXPECT_EQ(
      d, (std::vector<std::string>{
             "F:11:13: error: Gateway default/gw: spec.listeners[1].tls.mode: mode Passthrough "
             "is not supported yet (it needs protocol TLS and TLSRoute); use Terminate",
             "F:12:66: error: Gateway default/gw: spec.listeners[1].tls.certificateRefs[0].kind: "
             "Unsupported value: \"gateway.networking.k8s.io/Gateway\": supported values: "
             "\"Secret\" (core group)",
             "F:14:34: error: Gateway default/gw: "
             "spec.listeners[1].tls.options.portico.dev/min-version: Unsupported value: "
             "\"1.1\": supported values: \"1.2\", \"1.3\"",
             "F:15:38: error: Gateway default/gw: "
             "spec.listeners[1].tls.options.portico.dev/certificate-fil: unknown option "
             "\"portico.dev/certificate-fil\": supported options: portico.dev/certificate-file, "
             "portico.dev/key-file, portico.dev/client-ca-file, "
             "portico.dev/client-certificate-mode, portico.dev/min-version",
             "F:16:28: warning: Gateway default/gw: "
             "spec.listeners[1].tls.options.example.com/other: option \"example.com/other\" is "
             "not Portico's; ignored",
             "F:14:9: error: Gateway default/gw: "
             "spec.listeners[1].tls.options.portico.dev/client-certificate-mode: Forbidden: "
             "needs frontendValidation.caCertificateRefs or option portico.dev/client-ca-file"}))
      << joined(d);
  // The HTTP listener still serves.
  ASSERT_EQ(snap().ports.size(), 1u);
  EXPECT_EQ(snap().ports[0].port, 8080);
  EXPECT_EQ(snap().ports[0].tls, nullptr);
}

TEST_F(CompilerTest, HttpsListenerNeedsACertificate) {
  std::vector<std::string> d = compileText(std::string(kHttpsGateway) + "      mode: Terminate\n");
  EXPECT_EQ(d, (std::vector<std::string>{
                   "F:11:7: error: Gateway default/gw: spec.listeners[1].tls.certificateRefs: "
                   "Required value: at least one certificateRef (or option "
                   "portico.dev/certificate-file)"}))
      << joined(d);
}

TEST_F(CompilerTest, MissingSecretOrFileRejectsTheListener) {
  std::vector<std::string> d =
      compileText(std::string(kHttpsGateway) +
                  R"(      certificateRefs: [{name: nowhere}, {name: other, namespace: elsewhere}]
      options: {portico.dev/certificate-file: missing.pem, portico.dev/key-file: missing.key}
)");
  ASSERT_EQ(d.size(), 3u) << joined(d);
  EXPECT_EQ(d[0],
            "F:11:25: error: Gateway default/gw: spec.listeners[1].tls.certificateRefs[0]: "
            "ResolvedRefs=False/InvalidCertificateRef: Secret default/nowhere not found");
  EXPECT_EQ(d[1],
            "F:11:42: error: Gateway default/gw: spec.listeners[1].tls.certificateRefs[1]: "
            "ResolvedRefs=False/RefNotPermitted: Secret elsewhere/other is in another namespace "
            "than the Gateway (ReferenceGrant is not supported yet)");
  EXPECT_NE(d[2].find("F:12:47: error: Gateway default/gw: "
                      "spec.listeners[1].tls.options.portico.dev/certificate-file: "
                      "ResolvedRefs=False/InvalidCertificateRef: cannot read "),
            std::string::npos)
      << d[2];
  EXPECT_NE(d[2].find("missing.pem: No such file or directory"), std::string::npos) << d[2];
  nlohmann::json gw = dumpOf("Gateway", "gw");
  const nlohmann::json& conditions = gw["status"]["listeners"][1]["conditions"];
  EXPECT_EQ(conditions[1]["type"], "ResolvedRefs");
  EXPECT_EQ(conditions[1]["status"], "False");
  EXPECT_EQ(conditions[1]["reason"], "InvalidCertificateRef");
  EXPECT_EQ(conditions[2]["type"], "Programmed");
  EXPECT_EQ(conditions[2]["status"], "False");
}

TEST_F(CompilerTest, SecretAndConfigMapDecoding) {
  std::vector<std::string> d = compileText(R"(apiVersion: v1
kind: Secret
metadata: {name: bad-base64}
type: kubernetes.io/tls
data: {tls.crt: "not*base64", tls.key: ""}
---
apiVersion: v1
kind: Secret
metadata: {name: with-spec}
spec: {}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ok}
data: {ca.crt: "PEM", other: "x"}
---
apiVersion: v1
kind: Secret
metadata: {name: ok}
stringData: {tls.crt: a}
unknown: 1
)");
  EXPECT_EQ(
      d, (std::vector<std::string>{
             "F:21:1: error: Secret default/ok: unknown: unknown field \"unknown\"",
             "F:5:17: error: Secret default/bad-base64: data.tls.crt: Invalid value: not valid "
             "base64",
             "F:10:7: error: Secret default/with-spec: spec: Forbidden: a Secret has no spec; its "
             "entries go in data or stringData"}))
      << joined(d);
}

TEST_F(CompilerTest, BackendTlsDecoding) {
  std::vector<std::string> d = compileText(R"(apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {name: none}
spec:
  endpoints: [{address: 10.0.0.1, port: 443}]
  tls: {sni: "bad_name"}
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {name: both}
spec:
  endpoints: [{address: 10.0.0.1, port: 443}]
  tls: {insecureSkipVerify: true, caFile: ca.pem, wellKnownCACertificates: Mozilla}
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {name: missing}
spec:
  endpoints: [{address: 10.0.0.1, port: 443}]
  tls: {caCertificateRefs: [{group: "", kind: ConfigMap, name: nope}], insecureSkipVerify: "no"}
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {name: unresolved}
spec:
  endpoints: [{address: 10.0.0.1, port: 443}]
  tls: {caCertificateRefs: [{group: "", kind: ConfigMap, name: nope}]}
)");
  ASSERT_EQ(d.size(), 6u) << joined(d);
  EXPECT_NE(d[0].find("F:6:14: error: Backend default/none: spec.tls.sni: Invalid value: "
                      "\"bad_name\""),
            std::string::npos)
      << d[0];
  EXPECT_EQ(d[1],
            "F:6:8: error: Backend default/none: spec.tls: Required value: one of "
            "caCertificateRefs, caFile, wellKnownCACertificates: System or insecureSkipVerify: "
            "true");
  EXPECT_EQ(d[2],
            "F:13:76: error: Backend default/both: spec.tls.wellKnownCACertificates: Unsupported "
            "value: \"Mozilla\": supported values: \"System\"");
  EXPECT_EQ(d[3],
            "F:13:29: error: Backend default/both: spec.tls.insecureSkipVerify: Forbidden: "
            "insecureSkipVerify verifies nothing: remove the CA settings or it");
  EXPECT_EQ(d[4],
            "F:20:92: error: Backend default/missing: spec.tls.insecureSkipVerify: must be a "
            "boolean");
  EXPECT_EQ(d[5],
            "F:27:29: error: Backend default/unresolved: spec.tls.caCertificateRefs[0]: "
            "ResolvedRefs=False/InvalidCACertificateRef: ConfigMap default/nope not found");
  nlohmann::json b = dumpOf("Backend", "unresolved");
  EXPECT_EQ(b["status"]["conditions"][0]["status"], "False");
}

}  // namespace
}  // namespace portico::config::testing
