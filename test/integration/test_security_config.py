"""SecurityPolicy configuration errors → the exact diagnostic of `portico check` (text and
`-o json`), in the style of test_config_errors.py; and fail-closed: a route whose
SecurityPolicy is invalid answers 500 through a running gateway instead of being open.

Each row is one SecurityPolicy appended after a valid Gateway `gw`, HTTPRoute `r` and Backend
`api` (24 lines), so the row's resource starts on line 25. Rows needing a file next to the
config name it in `files`.
"""

import collections
import json
import os
import shutil
import subprocess
import tempfile
import unittest
import urllib.error
import urllib.request

from harness import BIN, GatewayTestCase, free_port, wait_port

BASE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  listeners:
  - name: http
    port: 8080
    protocol: HTTP
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
spec:
  parentRefs:
  - name: gw
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {name: api}
spec:
  endpoints: [{address: 127.0.0.1, port: 9}]
---
"""  # 24 lines: the row's resource starts on line 25

HEAD = """\
apiVersion: portico.dev/v1alpha1
kind: SecurityPolicy
metadata:
  name: sp
spec:
  targetRefs:
  - {group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}
"""  # lines 25-31: sections start on line 32

SP = "SecurityPolicy default/sp"

Case = collections.namedtuple(
    "Case", "name text pos severity field message exact exit condition files",
    defaults=(True, 1, None, {}))

CASES = [
    Case("jwt_alg_none", HEAD + "  jwt:\n    providers:\n    - name: idp\n"
         "      algorithms: [RS256, none]\n      remoteJWKS: {uri: http://idp/jwks}\n",
         "35:27", "error", "spec.jwt.providers[0].algorithms[1]",
         'Forbidden: "none" means an unsigned token, which is never accepted',
         condition=("Accepted", "False", "Invalid")),
    Case("jwt_alg_unknown", HEAD + "  jwt:\n    providers:\n    - name: idp\n"
         "      algorithms: [RS255]\n      remoteJWKS: {uri: http://idp/jwks}\n",
         "35:20", "error", "spec.jwt.providers[0].algorithms[0]",
         ['Unsupported value: "RS255"', "RS256", "EdDSA"], exact=False),
    Case("jwt_uri_scheme", HEAD + "  jwt:\n    providers:\n    - name: idp\n"
         "      remoteJWKS: {uri: \"file:///etc/jwks\"}\n",
         "35:25", "error", "spec.jwt.providers[0].remoteJWKS.uri",
         'Invalid value: "file:///etc/jwks": must be an http:// or https:// URI'),
    Case("jwt_uri_no_host", HEAD + "  jwt:\n    providers:\n    - name: idp\n"
         "      remoteJWKS: {uri: \"https:///jwks\"}\n",
         "35:25", "error", "spec.jwt.providers[0].remoteJWKS.uri",
         'Invalid value: "https:///jwks": must name a host'),
    Case("jwt_both_jwks", HEAD + "  jwt:\n    providers:\n    - name: idp\n"
         "      remoteJWKS: {uri: http://idp/jwks}\n"
         "      localJWKS: {type: Inline, inline: x}\n",
         "34:7", "error", "spec.jwt.providers[0]",
         "Invalid value: exactly one of remoteJWKS, localJWKS"),
    Case("jwks_inline_with_file", HEAD + "  jwt:\n    providers:\n    - name: idp\n"
         "      localJWKS: {type: Inline, inline: x, file: k.json}\n",
         "35:50", "error", "spec.jwt.providers[0].localJWKS.file",
         "Forbidden: only with type File (type is Inline)"),
    Case("jwt_duplicate_provider", HEAD + "  jwt:\n    providers:\n"
         "    - {name: idp, remoteJWKS: {uri: http://a/jwks}}\n"
         "    - {name: idp, remoteJWKS: {uri: http://b/jwks}}\n",
         "35:7", "error", "spec.jwt.providers[1].name",
         'Duplicate value: provider "idp" is already defined'),
    Case("jwt_unknown_field", HEAD + "  jwt:\n    providers:\n    - name: idp\n"
         "      remoteJWKS: {uri: http://idp/jwks}\n      audience: [x]\n",
         "36:7", "error", "spec.jwt.providers[0].audience",
         ['unknown field "audience"', "audiences"], exact=False),
    Case("jwt_claim_to_pseudo_header", HEAD + "  jwt:\n    providers:\n    - name: idp\n"
         "      remoteJWKS: {uri: http://idp/jwks}\n"
         "      claimToHeaders: [{claim: sub, header: \":authority\"}]\n",
         "36:45", "error", "spec.jwt.providers[0].claimToHeaders[0].header",
         'Invalid value: ":authority": a pseudo-header cannot be set'),
    Case("jwt_claim_to_hop_header", HEAD + "  jwt:\n    providers:\n    - name: idp\n"
         "      remoteJWKS: {uri: http://idp/jwks}\n"
         "      claimToHeaders: [{claim: sub, header: Transfer-Encoding}]\n",
         "36:45", "error", "spec.jwt.providers[0].claimToHeaders[0].header",
         ['Invalid value: "Transfer-Encoding"', "hop-by-hop"], exact=False),
    Case("jwks_file_missing", HEAD + "  jwt:\n    providers:\n    - name: idp\n"
         "      localJWKS: {type: File, file: nowhere.json}\n",
         "35:37", "error", "spec.jwt.providers[0].localJWKS.file",
         ["Invalid value: cannot read ", "nowhere.json"], exact=False,
         condition=("Accepted", "False", "Invalid")),
    Case("jwks_no_usable_key", HEAD + "  jwt:\n    providers:\n    - name: idp\n"
         "      localJWKS: {type: File, file: keys.json}\n",
         "35:37", "error", "spec.jwt.providers[0].localJWKS.file",
         'Invalid value: no usable key: keys[0] (kid a) unsupported "kty"',
         files={"keys.json": '{"keys":[{"kty":"XYZ","kid":"a"}]}'}),
    Case("jwks_bad_pem", HEAD + "  jwt:\n    providers:\n    - name: idp\n"
         "      localJWKS: {type: File, file: key.pem}\n",
         "35:37", "error", "spec.jwt.providers[0].localJWKS.file",
         ["Invalid value: not a usable PEM public key"], exact=False,
         files={"key.pem": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}),
    Case("jwks_secret_missing", HEAD + "  jwt:\n    providers:\n    - name: idp\n"
         "      localJWKS: {type: ValueRef, valueRef: {kind: Secret, name: jwks}}\n",
         "35:45", "error", "spec.jwt.providers[0].localJWKS.valueRef",
         "ResolvedRefs=False/InvalidSecretRef: Secret default/jwks not found"),
    Case("api_key_hash", HEAD + "  apiKeyAuth:\n    consumers:\n"
         "    - {name: a, keyHash: \"sha256:xyz\"}\n",
         "34:26", "error", "spec.apiKeyAuth.consumers[0].keyHash",
         'Invalid value: must be "sha256:" followed by 64 hex digits'),
    Case("api_key_key_and_hash", HEAD + "  apiKeyAuth:\n    consumers:\n"
         "    - {name: a, key: k, keyHash: \"sha256:00\"}\n",
         "34:7", "error", "spec.apiKeyAuth.consumers[0]",
         "Invalid value: exactly one of key, keyHash"),
    Case("api_key_duplicate", HEAD + "  apiKeyAuth:\n    consumers:\n"
         "    - {name: a, key: same}\n    - {name: b, key: same}\n",
         None, "error", None, ['has the same key as consumer'], exact=False),
    Case("api_key_no_source", HEAD + "  apiKeyAuth: {sanitize: true}\n",
         "32:15", "error", "spec.apiKeyAuth",
         "Required value: one of credentialRefs, consumers, consumersFile"),
    Case("api_key_consumers_file", HEAD + "  apiKeyAuth:\n    consumersFile: c.yaml\n",
         "33:20", "error", "spec.apiKeyAuth.consumersFile",
         ["c.yaml:3:3: [0].kee: unknown field \"kee\""], exact=False,
         files={"c.yaml": "- name: a\n  key: k\n  kee: k\n"}),
    Case("basic_both", HEAD + "  basicAuth:\n    users: {name: h}\n    htpasswdFile: x\n",
         "33:5", "error", "spec.basicAuth",
         "Invalid value: exactly one of users, htpasswdFile"),
    Case("basic_bad_line", HEAD + "  basicAuth: {htpasswdFile: users.htpasswd}\n",
         "32:29", "error", "spec.basicAuth.htpasswdFile",
         ["Invalid value: htpasswd line 2"], exact=False,
         files={"users.htpasswd": "ok:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nbroken\n"}),
    Case("basic_realm_quote", HEAD + "  basicAuth: {htpasswdFile: u, realm: 'a\"b'}\n",
         "32:39", "error", "spec.basicAuth.realm",
         ['Invalid value: "a"b"', "without quotes"], exact=False),
    Case("ext_auth_two_backends", HEAD + "  extAuth:\n    http:\n      backendRefs:\n"
         "      - {group: portico.dev, kind: Backend, name: api}\n"
         "      - {group: portico.dev, kind: Backend, name: api}\n",
         "34:7", "error", "spec.extAuth.http",
         "Invalid value: exactly one backendRef (backendRef, or backendRefs with one item)"),
    Case("ext_auth_backend_missing", HEAD + "  extAuth:\n    http:\n"
         "      backendRef: {group: portico.dev, kind: Backend, name: authz}\n",
         "34:19", "warning", "spec.extAuth.http.backendRef",
         "ResolvedRefs=False/BackendNotFound: Backend default/authz not found; the requests "
         "it covers answer 500 (fail closed)", exit=0),
    Case("ext_auth_timeout", HEAD + "  extAuth:\n    http: {backendRef: {name: api}}\n"
         "    timeout: 0s\n",
         "34:14", "error", "spec.extAuth.timeout",
         "Invalid value: must be between 1ms and 60s"),
    Case("authz_cidr", HEAD + "  authorization:\n    rules:\n    - action: Allow\n"
         "      principal: {clientCIDRs: [\"10.0.0.0/40\"]}\n",
         "35:33", "error", "spec.authorization.rules[0].principal.clientCIDRs[0]",
         'Invalid value: "10.0.0.0/40": must be an IPv4 or IPv6 CIDR (10.0.0.0/8, ::1/128) '
         "with a prefix length in range"),
    Case("authz_regex", HEAD + "  authorization:\n    rules:\n    - action: Deny\n"
         "      operation: {paths: [{type: RegularExpression, value: \"a(\"}]}\n",
         "35:60", "error", "spec.authorization.rules[0].operation.paths[0].value",
         ['Invalid value: "a("', "missing )"], exact=False),
    Case("authz_action", HEAD + "  authorization:\n    rules:\n    - action: Maybe\n",
         "34:15", "error", "spec.authorization.rules[0].action",
         'Unsupported value: "Maybe": supported values: "Allow", "Deny"'),
    Case("cors_origin_path", HEAD + "  cors:\n    allowOrigins: [\"https://a.example.com/x\"]\n",
         "33:20", "error", "spec.cors.allowOrigins[0]",
         ['Invalid value: "https://a.example.com/x"', "no path"], exact=False),
    Case("overrides_on_route", HEAD + "  overrides:\n    cors: {allowOrigins: [\"*\"]}\n",
         "33:5", "error", "spec.overrides",
         "Forbidden: overrides are for policies that target Gateways only"),
    Case("target_kind", HEAD.replace("kind: HTTPRoute", "kind: Service") + "  cors: {}\n",
         "31:46", "error", "spec.targetRefs[0]",
         ["Unsupported value: gateway.networking.k8s.io/Service", "Gateway, HTTPRoute or "
          "GRPCRoute"], exact=False),
    Case("target_missing", HEAD.replace("name: r}", "name: nope}") + "  cors: {}\n",
         "31:5", "warning", "spec.targetRefs[0]",
         "Accepted=False/TargetNotFound: HTTPRoute default/nope not found", exit=0),
]


class SecurityConfigErrors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="portico-security-config-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_check(self, path, *extra):
        p = subprocess.run([BIN, "check", "-c", path, *extra], capture_output=True, text=True,
                           timeout=30)
        return p.returncode, p.stdout, p.stderr

    def assertMessage(self, case, message):
        if case.exact:
            self.assertEqual(message, case.message)
        else:
            for part in case.message:
                self.assertIn(part, message)

    def test_table(self):
        self.assertEqual(len({c.name for c in CASES}), len(CASES))
        for case in CASES:
            with self.subTest(case.name):
                d = os.path.join(self.tmp, case.name)
                os.makedirs(d, exist_ok=True)
                for name, text in case.files.items():
                    with open(os.path.join(d, name), "w") as f:
                        f.write(text)
                path = os.path.join(d, "config.yaml")
                with open(path, "w") as f:
                    f.write(BASE + case.text)
                code, out, err = self.run_check(path)
                self.assertEqual(code, case.exit, out + err)
                if case.pos is None:  # position not asserted: the message somewhere
                    lines = [l for l in err.splitlines()
                             if f": {case.severity}: {SP}: " in l]
                    self.assertTrue(any(all(p in l for p in case.message) for l in lines), err)
                    continue
                want = f"{path}:{case.pos}: {case.severity}: {SP}: {case.field}: "
                lines = [l for l in err.splitlines() if l.startswith(want)]
                self.assertEqual(len(lines), 1, f"want a line starting {want!r}:\n{err}")
                self.assertMessage(case, lines[0][len(want):])
                # JSON output: the same diagnostic, field by field.
                code, out, _ = self.run_check(path, "-o", "json")
                self.assertEqual(code, case.exit)
                doc = json.loads(out)
                line, col = map(int, case.pos.split(":"))
                found = [x for x in doc["diagnostics"]
                         if (x["line"], x["column"], x["severity"], x["fieldPath"]) ==
                         (line, col, case.severity, case.field)]
                self.assertEqual(len(found), 1, doc["diagnostics"])
                self.assertEqual((found[0]["kind"], found[0]["name"]), ("SecurityPolicy", "sp"))
                self.assertMessage(case, found[0]["message"])
                if case.condition:
                    res = [r for r in doc["resources"]
                           if (r["kind"], r["name"]) == ("SecurityPolicy", "sp")]
                    self.assertEqual(len(res), 1, doc["resources"])
                    got = [(c["type"], c["status"], c["reason"]) for c in res[0]["conditions"]]
                    self.assertIn(case.condition, got)

    def test_valid_policy_checks_clean(self):
        d = os.path.join(self.tmp, "valid")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "consumers.yaml"), "w") as f:
            f.write("- {name: file-app, key: k-file, metadata: {tenant: globex}}\n")
        path = os.path.join(d, "config.yaml")
        with open(path, "w") as f:
            f.write(BASE + HEAD + """\
  jwt:
    providers:
    - name: idp
      issuer: https://idp.example.com
      audiences: [devices-api]
      algorithms: [RS256, ES256]
      remoteJWKS: {uri: "http://127.0.0.1:8081/jwks.json", cacheDuration: 300s}
      claimToHeaders: [{claim: tenant, header: x-tenant}]
      recomputeRoute: true
  apiKeyAuth:
    consumers: [{name: acme-app, key: k-acme-123, metadata: {tenant: acme}}]
    consumersFile: consumers.yaml
  authorization:
    defaultAction: Deny
    rules:
    - {name: lab, action: Allow, principal: {clientCIDRs: [10.0.0.0/8, "::1/128"]}}
  cors: {allowOrigins: ["https://app.example.com"], allowMethods: [GET], maxAge: 600s}
  clientIPDetection: {xForwardedFor: {numTrustedHops: 1}}
""")
        code, out, err = self.run_check(path)
        self.assertEqual(code, 0, out + err)
        self.assertNotIn("SecurityPolicy", err)


class SecurityFailClosed(GatewayTestCase):
    """An invalid SecurityPolicy never leaves its route open: it answers 500."""

    def test_invalid_policy_route_answers_500(self):
        backend = self.echo("api")
        port = free_port()
        config = f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  listeners: [{{name: http, port: {port}, protocol: HTTP}}]
  addresses: [{{type: IPAddress, value: 127.0.0.1}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: guarded}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /guarded}}}}]
    backendRefs: [{{group: portico.dev, kind: Backend, name: api}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: open}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /open}}}}]
    backendRefs: [{{group: portico.dev, kind: Backend, name: api}}]
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {{name: api}}
spec:
  endpoints: [{{address: 127.0.0.1, port: {backend}}}]
---
apiVersion: portico.dev/v1alpha1
kind: SecurityPolicy
metadata: {{name: broken}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: guarded}}]
  jwt:
    providers:
    - name: idp
      localJWKS: {{type: File, file: missing-keys.json}}
"""
        self.gateway(config)
        wait_port(port)

        def get(path):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()

        status, body = get("/guarded/x")
        self.assertEqual(status, 500)
        self.assertIn("SecurityPolicy default/broken is invalid", body)
        self.assertEqual(get("/open/x")[0], 200)
        # The status says why.
        _, dump = self.admin_get("/config_dump")
        doc = json.loads(dump)
        sp = [r for r in doc["resources"] if r["kind"] == "SecurityPolicy"][0]
        conds = {c["type"]: c for c in sp["status"]["conditions"]}
        self.assertEqual(conds["Accepted"]["status"], "False")
        self.assertEqual(conds["Accepted"]["reason"], "Invalid")
        self.assertIn("missing-keys.json", conds["Accepted"]["message"])


if __name__ == "__main__":
    unittest.main()
