"""SecurityPolicy (portico.dev/v1alpha1) end to end: JWT (every algorithm, the attack table,
token sources, remote JWKS with rotation and outages), claim-based routing, API keys, basic
auth, external authorization, access rules, CORS, attachment and reload.

Tokens and keys come from an independent implementation (python3-jwt, python3-cryptography,
openssl), htpasswd files from the real `htpasswd`, the authorization and JWKS servers are real
HTTP servers on loopback (sec_peers.py). The upstream is `portico echo`, which answers with
the request head it received: the tests assert which headers reached it.
"""

import base64
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest

import jwt

from harness import BIN, GatewayTestCase, free_port, wait_port
import sec_peers as sp

_KEYS = None
_OTHER = None


def keys():
    """The provider's keys (one per kind), made once per run."""
    global _KEYS
    if _KEYS is None:
        import tempfile
        import shutil
        d = tempfile.mkdtemp(prefix="portico-keys-")
        try:
            _KEYS = sp.KeySet(tmpdir=d, prefix="k1")  # the RSA key from `openssl genpkey`
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return _KEYS


def other_keys():
    """Keys nobody configured (an attacker's, or the next rotation's)."""
    global _OTHER
    if _OTHER is None:
        _OTHER = sp.KeySet(prefix="k2")
    return _OTHER


# ---- Config pieces (block-style YAML) -----------------------------------------------------

def gateway_doc(port, name="gw", addresses=("127.0.0.1",)):
    addrs = ", ".join(f'{{type: IPAddress, value: "{a}"}}' for a in addresses)
    return (f"apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
            f"metadata: {{name: {name}}}\nspec:\n"
            f"  addresses: [{addrs}]\n"
            f"  listeners: [{{name: http, port: {port}, protocol: HTTP}}]\n")


def backend_doc(name, port):
    return (f"apiVersion: portico.dev/v1alpha1\nkind: Backend\nmetadata: {{name: {name}}}\n"
            f"spec:\n  endpoints: [{{address: 127.0.0.1, port: {port}}}]\n")


def route_doc(name, prefix, backend, gateway="gw", rule_name=None):
    rn = f"name: {rule_name}, " if rule_name else ""
    return (f"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
            f"metadata: {{name: {name}}}\nspec:\n  parentRefs: [{{name: {gateway}}}]\n"
            f"  rules:\n  - {{{rn}matches: [{{path: {{type: PathPrefix, value: {prefix}}}}}], "
            f"backendRefs: [{{name: {backend}}}]}}\n")


def policy_doc(name, kind, target, spec, section=None):
    """spec: block YAML of the spec's sections, indented by 2 (under `spec:`)."""
    group = "gateway.networking.k8s.io"
    sec = f", sectionName: {section}" if section else ""
    return (f"apiVersion: portico.dev/v1alpha1\nkind: SecurityPolicy\n"
            f"metadata: {{name: {name}}}\nspec:\n"
            f"  targetRefs: [{{group: {group}, kind: {kind}, name: {target}{sec}}}]\n"
            + spec)


def indent(text, n):
    pad = " " * n
    return "".join(pad + line if line.strip() else line for line in text.splitlines(True))


def provider(name="idp", jwks=None, extra=""):
    """A JWT provider list entry (block YAML, at column 0 of the list: "- name: ...")."""
    jwks = jwks or f"localJWKS: {{type: Inline, inline: '{keys().jwks_json()}'}}"
    return (f"- name: {name}\n  issuer: {sp.ISSUER}\n  audiences: [{sp.AUDIENCE}]\n"
            f"  {jwks}\n" + indent(extra, 2))


def jwt_section(providers, optional=False):
    out = "  jwt:\n"
    if optional:
        out += "    optional: true\n"
    return out + "    providers:\n" + indent(providers, 4)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


class SecurityCase(GatewayTestCase):
    """Helpers: start the gateway from documents, send requests, read what the upstream saw."""

    def setUp(self):
        super().setUp()
        self.port = free_port()

    def start_gateway(self, docs, workers=2):
        self.config_text = "---\n".join(docs)
        self.config_path = os.path.join(self.tmp, "gateway.yaml")
        self.gateway(self.config_text, workers=workers)
        try:
            wait_port(self.port)
        except TimeoutError:
            self.fail(self.gw.output())

    def request(self, method, path, headers=None, body=None, conn=None, addr="127.0.0.1"):
        """Returns (status, headers as a lowercase dict (repeated fields joined), body)."""
        c = conn or http.client.HTTPConnection(addr, self.port, timeout=10)
        c.request(method, path, body=body, headers={"Host": "api.example.com",
                                                    **(headers or {})})
        r = c.getresponse()
        data = r.read()
        hs = {}
        for k, v in r.getheaders():
            k = k.lower()
            hs[k] = hs[k] + ", " + v if k in hs else v
        if conn is None:
            c.close()
        return r.status, hs, data

    def get(self, path, headers=None, conn=None, addr="127.0.0.1"):
        return self.request("GET", path, headers, conn=conn, addr=addr)

    def echoed(self, path, headers=None, method="GET"):
        """The request head the upstream saw (asserts a 200 from the echo upstream)."""
        status, hs, body = self.request(method, path, headers)
        self.assertEqual(status, 200, (status, hs, body, self.gw.output()[-2000:]))
        return json.loads(body)

    def assert_status(self, expected, path, headers=None, method="GET"):
        status, hs, body = self.request(method, path, headers)
        self.assertEqual(status, expected, (path, hs, body))
        return hs, body

    def assert_no_secrets(self, hs, body, secrets):
        text = json.dumps(hs) + body.decode(errors="replace")
        for s in secrets:
            self.assertNotIn(s, text)


# ---- JWT with local keys: algorithms, attacks, sources -------------------------------------

class JwtLocal(SecurityCase):
    """Local (inline) JWKS with an RSA, P-256, P-384, Ed25519 and HMAC key."""

    def setUp(self):
        super().setUp()
        self.up = self.echo("up")
        self.start_gateway([
            gateway_doc(self.port), backend_doc("up", self.up),
            route_doc("api", "/api", "up"),
            route_doc("premium", "/premium", "up"),
            route_doc("src", "/src", "up"),
            route_doc("fwd", "/fwd", "up"),
            policy_doc("api", "HTTPRoute", "api", jwt_section(provider())),
            policy_doc("premium", "HTTPRoute", "premium", jwt_section(provider(
                extra="requiredClaims: [{name: plan, values: [premium, gold]}]\n"))),
            policy_doc("src", "HTTPRoute", "src", jwt_section(provider(extra=(
                "extractFrom:\n"
                "  headers: [{name: x-token, valuePrefix: \"Token \"}]\n"
                "  params: [access_token]\n"
                "  cookies: [session]\n"
                "forward: false\n")))),
            policy_doc("fwd", "HTTPRoute", "fwd", jwt_section(provider(extra="forward: true\n"))),
        ])

    def assert_invalid(self, token, path="/api/x"):
        status, hs, body = self.get(path, bearer(token))
        self.assertEqual(status, 401, (token[:200], hs, body))
        self.assertTrue(hs.get("www-authenticate", "").startswith('Bearer error="invalid_token"'),
                        hs)
        self.assertIn("error_description=", hs["www-authenticate"])
        self.assert_no_secrets(hs, body, keys().secrets())
        return hs, body

    # Every algorithm (methods added below the class: test_alg_RS256, ...).
    def check_alg(self, alg):
        token = keys().token(alg, tenant="acme")
        seen = self.echoed("/api/devices", bearer(token))
        self.assertEqual(seen["path"], "/api/devices")
        # The token is removed before the upstream (forward defaults to false).
        self.assertNotIn("authorization", seen["headers"])

    # The attack table.
    def test_attack_alg_none(self):
        self.assert_invalid(sp.token_alg_none())

    def test_attack_hs256_signed_with_rsa_public_key(self):
        self.assert_invalid(sp.token_hmac_with_public_key(keys().keys["RSA"]))
        self.assert_invalid(sp.token_hmac_with_public_key(keys().keys["EC256"]))

    def test_attack_stripped_signature(self):
        self.assert_invalid(sp.token_stripped(keys().token("RS256")))
        self.assert_invalid(sp.token_stripped(keys().token("ES256")))

    def test_attack_wrong_kid(self):
        # Signed by the right key but naming a kid the set does not have.
        self.assert_invalid(keys().token("RS256", kid="no-such-kid"))
        # Signed by a key nobody configured, with the configured key's kid.
        k = other_keys().keys["RSA"]
        self.assert_invalid(sp.make_token(k.private, "RS256", keys().keys["RSA"].kid))

    def test_attack_expired(self):
        now = int(time.time())
        self.assert_invalid(keys().token("RS256", iat=now - 7200, exp=now - 3600))

    def test_attack_not_yet_valid(self):
        self.assert_invalid(keys().token("ES256", nbf=int(time.time()) + 3600))

    def test_attack_wrong_issuer(self):
        self.assert_invalid(keys().token("RS256", iss="https://evil.example.com"))

    def test_attack_wrong_audience(self):
        self.assert_invalid(keys().token("RS256", aud="other-api"))

    def test_attack_tampered_payload(self):
        good = keys().token("RS256", tenant="acme")
        self.assert_invalid(sp.token_tampered(good, tenant="globex"))
        self.assert_invalid(sp.token_tampered(keys().token("EdDSA"), sub="admin"))
        self.assert_invalid(sp.token_tampered(keys().token("HS256"), sub="admin"))

    def test_attack_huge_token_keeps_connection_usable(self):
        huge = keys().token("RS256", pad="x" * 20000)
        self.assertGreater(len(huge), 16 * 1024)
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        status, hs, body = self.get("/api/x", bearer(huge), conn=c)
        self.assertEqual(status, 401, (hs, body))
        self.assertIn("invalid_token", hs.get("www-authenticate", ""))
        sock = c.sock
        self.assertIsNotNone(sock, "the connection was closed after the 401")
        status, _, _ = self.get("/api/x", bearer(keys().token("RS256")), conn=c)
        self.assertEqual(status, 200)
        self.assertIs(c.sock, sock, "a new connection was opened")
        c.close()

    def test_attack_alg_none_spellings(self):
        for alg in ["None", "NONE", "nOnE", ""]:
            with self.subTest(alg=alg):
                head = sp.b64url_json({"alg": alg, "typ": "JWT"})
                self.assert_invalid(head + "." + sp.b64url_json(sp.claims()) + ".")
                # With a signature segment that is not empty either.
                self.assert_invalid(head + "." + sp.b64url_json(sp.claims()) + ".c2ln")

    def test_attack_embedded_jwk_header(self):
        # CVE-2018-0114 style: the token carries its own (attacker's) public key in `jwk`.
        k = other_keys().keys["RSA"]
        token = jwt.encode(sp.claims(), k.private, algorithm="RS256",
                           headers={"jwk": k.jwk(), "kid": k.kid})
        self.assert_invalid(token)
        token = jwt.encode(sp.claims(), k.private, algorithm="RS256", headers={"jwk": k.jwk()})
        self.assert_invalid(token)

    def test_attack_jku_header_not_followed(self):
        # The token names the attacker's key set URL: Portico never fetches it.
        evil = sp.JwksServer(free_port(), other_keys().jwks(["RSA"]))
        self.addCleanup(evil.stop)
        k = other_keys().keys["RSA"]
        for member in ("jku", "x5u"):
            token = jwt.encode(sp.claims(), k.private, algorithm="RS256",
                               headers={member: evil.uri, "kid": k.kid})
            self.assert_invalid(token)
        time.sleep(0.3)
        self.assertEqual(evil.requests, 0, "the gateway fetched a key set named by a token")

    def test_attack_crit_header(self):
        k = keys().keys["RSA"]
        token = jwt.encode(sp.claims(), k.private, algorithm="RS256",
                           headers={"kid": k.kid, "crit": ["exp"], "exp": 1})
        self.assert_invalid(token)

    def test_clock_skew_tolerated(self):
        now = int(time.time())
        # Within the default 60 s of skew: accepted.
        self.echoed("/api/x", bearer(keys().token("RS256", exp=now - 20)))
        self.echoed("/api/x", bearer(keys().token("RS256", nbf=now + 20)))
        # Beyond it: refused.
        self.assert_invalid(keys().token("RS256", exp=now - 120))
        self.assert_invalid(keys().token("RS256", nbf=now + 120))

    def test_attack_malformed_base64(self):
        good = keys().token("RS256")
        head, body, sig = good.split(".")
        for bad in ["abc!.def$.ghi%", f"{head}.{body}.{sig[:-3]}***", f"{head}!.{body}.{sig}",
                    f"{head}.{body}", "a.b.c.d", "....", "e30.e30.", head + "." + "%%%" + "." + sig,
                    base64.b64encode(b'{"alg": "RS256"}').decode() + "." + body + "." + sig]:
            with self.subTest(bad=bad[:40]):
                self.assert_invalid(bad)

    def test_missing_token(self):
        for headers in [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"X-Token": "Bearer x"}]:
            with self.subTest(headers=headers):
                status, hs, body = self.get("/api/x", headers)
                self.assertEqual(status, 401, (hs, body))
                self.assertTrue(hs.get("www-authenticate", "").startswith('Bearer realm='), hs)
                self.assertNotIn("error=", hs["www-authenticate"])

    def test_required_claim(self):
        seen = self.echoed("/premium/x", bearer(keys().token("RS256", plan="gold")))
        self.assertEqual(seen["path"], "/premium/x")
        for token in [keys().token("RS256", plan="free"), keys().token("RS256"),
                      keys().token("RS256", plan=["free", "trial"])]:
            status, hs, body = self.get("/premium/x", bearer(token))
            self.assertEqual(status, 403, (hs, body))
            self.assertTrue(
                hs.get("www-authenticate", "").startswith('Bearer error="insufficient_scope"'),
                hs)
            self.assert_no_secrets(hs, body, keys().secrets())

    def test_answers_never_contain_key_material(self):
        bad = [sp.token_alg_none(), keys().token("RS256", kid="x"), "garbage",
               sp.token_hmac_with_public_key(keys().keys["RSA"]),
               sp.token_tampered(keys().token("HS512"), sub="root")]
        for token in bad:
            status, hs, body = self.get("/api/x", bearer(token))
            self.assertEqual(status, 401)
            self.assert_no_secrets(hs, body, keys().secrets())

    # Token sources.
    def test_source_custom_header_with_prefix(self):
        token = keys().token("RS256")
        seen = self.echoed("/src/x", {"X-Token": f"Token {token}"})
        self.assertNotIn("x-token", seen["headers"])
        # The configured sources replace the default: Authorization Bearer is not read here.
        self.assert_status(401, "/src/x", bearer(token))
        # The prefix is required.
        self.assert_status(401, "/src/x", {"X-Token": token})

    def test_source_query_parameter_removed_upstream(self):
        token = keys().token("ES384")
        seen = self.echoed(f"/src/q?a=1&access_token={token}&b=2")
        self.assertEqual(seen["path"], "/src/q")
        self.assertNotIn(token, seen["query"])
        self.assertNotIn("access_token", seen["query"])
        self.assertIn("a=1", seen["query"])
        self.assertIn("b=2", seen["query"])
        self.assert_status(401, "/src/q?access_token=garbage")

    def test_source_cookie(self):
        token = keys().token("EdDSA")
        seen = self.echoed("/src/c", {"Cookie": f"theme=dark; session={token}; x=1"})
        self.assertEqual(seen["path"], "/src/c")
        self.assert_status(401, "/src/c", {"Cookie": "session=garbage"})
        self.assert_status(401, "/src/c", {"Cookie": f"other={token}"})

    def test_forward_true_keeps_authorization(self):
        token = keys().token("RS256")
        seen = self.echoed("/fwd/x", bearer(token))
        self.assertEqual(seen["headers"].get("authorization"), f"Bearer {token}")

    def test_forward_false_removes_authorization(self):
        seen = self.echoed("/api/x", bearer(keys().token("PS256")))
        self.assertNotIn("authorization", seen["headers"])

    def test_cached_token_still_checks_expiry_and_route(self):
        # The same token twice (the second from the worker cache), then on another route with
        # other requirements: the cache never carries a verdict across providers.
        token = keys().token("RS256", plan="free")
        for _ in range(3):
            self.echoed("/api/x", bearer(token))
        self.assert_status(403, "/premium/x", bearer(token))


for _alg in sp.ALL_ALGS:
    setattr(JwtLocal, f"test_alg_{_alg}_accepted",
            (lambda alg: lambda self: self.check_alg(alg))(_alg))


# ---- JWT provider options -------------------------------------------------------------------

class JwtProviders(SecurityCase):
    """optional, several providers, keys from a JWKS file and a PEM file, requireExpiration,
    an algorithm allow-list, and JWT plus API key on one route."""

    def setUp(self):
        super().setUp()
        self.up = self.echo("up")
        with open(os.path.join(self.tmp, "keys.json"), "w") as f:
            f.write(keys().jwks_json(["EC256"]))
        with open(os.path.join(self.tmp, "rsa.pem"), "wb") as f:
            f.write(keys().keys["RSA"].public_pem())
        other = other_keys().jwks_json(["RSA"])
        names = ["opt", "multi", "file", "pem", "exp", "algs", "both"]
        self.start_gateway(
            [gateway_doc(self.port), backend_doc("up", self.up)]
            + [route_doc(n, f"/{n}", "up") for n in names]
            + [policy_doc("opt", "HTTPRoute", "opt", jwt_section(provider(), optional=True)),
               policy_doc("multi", "HTTPRoute", "multi", jwt_section(
                   provider() + provider(name="idp2", jwks=(
                       f"localJWKS: {{type: Inline, inline: '{other}'}}")).replace(
                       f"issuer: {sp.ISSUER}\n  audiences: [{sp.AUDIENCE}]\n  localJWKS: "
                       f"{{type: Inline, inline: '{other}'}}",
                       f"issuer: https://idp2.example.com\n  audiences: [{sp.AUDIENCE}]\n"
                       f"  localJWKS: {{type: Inline, inline: '{other}'}}"))),
               policy_doc("file", "HTTPRoute", "file", jwt_section(provider(
                   jwks="localJWKS: {type: File, file: keys.json}"))),
               policy_doc("pem", "HTTPRoute", "pem", jwt_section(provider(
                   jwks="localJWKS: {type: File, file: rsa.pem}"))),
               policy_doc("exp", "HTTPRoute", "exp", jwt_section(provider(
                   extra="requireExpiration: true\n"))),
               policy_doc("algs", "HTTPRoute", "algs", jwt_section(provider(
                   extra="algorithms: [ES256]\n"))),
               policy_doc("both", "HTTPRoute", "both", jwt_section(provider()) + (
                   "  apiKeyAuth:\n    consumers: [{name: app, key: k-both}]\n"))])

    def test_optional_token(self):
        self.echoed("/opt/x")
        self.echoed("/opt/x", bearer(keys().token("RS256")))
        # optional is about a missing token: a bad one is still refused.
        self.assert_status(401, "/opt/x", bearer(sp.token_alg_none()))

    def test_several_providers(self):
        self.echoed("/multi/x", bearer(keys().token("RS256")))
        self.echoed("/multi/x", bearer(other_keys().token("RS256",
                                                          iss="https://idp2.example.com")))
        # A provider's keys never verify the other provider's issuer.
        self.assert_status(401, "/multi/x", bearer(other_keys().token("RS256")))

    def test_keys_from_jwks_file(self):
        self.echoed("/file/x", bearer(keys().token("ES256")))
        self.assert_status(401, "/file/x", bearer(keys().token("RS256")))

    def test_keys_from_pem_file(self):
        # A PEM public key has no kid: a token without one verifies (and one with any kid).
        k = keys().keys["RSA"]
        self.echoed("/pem/x", bearer(sp.make_token(k.private, "RS256", None)))
        self.echoed("/pem/x", bearer(sp.make_token(k.private, "PS256", None)))
        self.assert_status(401, "/pem/x", bearer(keys().token("ES256")))

    def test_require_expiration(self):
        self.echoed("/exp/x", bearer(keys().token("RS256")))
        # A token without exp is not valid here (RFC 6750: invalid_token, 401), not a
        # question of privileges (insufficient_scope, 403).
        status, hs, body = self.get("/exp/x", bearer(keys().token("RS256", exp=None)))
        self.assertEqual(status, 401, (hs, body))
        self.assertIn('error="invalid_token"', hs.get("www-authenticate", ""))
        # Without requireExpiration the same token is fine.
        self.echoed("/opt/x", bearer(keys().token("RS256", exp=None)))

    def test_algorithm_allow_list(self):
        self.echoed("/algs/x", bearer(keys().token("ES256")))
        for alg in ("RS256", "EdDSA", "HS256", "ES384"):
            status, hs, _ = self.get("/algs/x", bearer(keys().token(alg)))
            self.assertEqual(status, 401, alg)
            self.assertIn("invalid_token", hs.get("www-authenticate", ""))

    def test_jwt_and_api_key_both_required(self):
        token = keys().token("RS256")
        self.echoed("/both/x", {**bearer(token), "X-Api-Key": "k-both"})
        self.assert_status(401, "/both/x", bearer(token))
        self.assert_status(401, "/both/x", {"X-Api-Key": "k-both"})


# ---- HTTP/2 ------------------------------------------------------------------------------

class Http2(SecurityCase):
    """The same checks on h2c (curl with prior knowledge): the HTTP/2 path runs the policy too."""

    def setUp(self):
        super().setUp()
        self.up = self.echo("up")
        self.start_gateway([
            gateway_doc(self.port), backend_doc("up", self.up),
            route_doc("api", "/api", "up"), route_doc("keys", "/keys", "up"),
            route_doc("cors", "/cors", "up"),
            policy_doc("api", "HTTPRoute", "api", jwt_section(provider(
                extra="claimToHeaders: [{claim: tenant, header: x-tenant}]\n"))),
            policy_doc("keys", "HTTPRoute", "keys", (
                "  apiKeyAuth:\n    consumers: [{name: app, key: k-h2}]\n"
                "    forwardClientIDHeader: x-consumer\n")),
            policy_doc("cors", "HTTPRoute", "cors", (
                "  cors:\n    allowOrigins: [\"https://app.example.com\"]\n"
                "    allowMethods: [GET, PUT]\n")),
        ])

    def curl(self, path, *args):
        """Returns (status, headers dict, body) of an h2c request made by curl."""
        out = subprocess.run(
            ["curl", "-s", "--http2-prior-knowledge", "-D", "-", "-o",
             os.path.join(self.tmp, "body"), "-H", "Host: api.example.com", *args,
             f"http://127.0.0.1:{self.port}{path}"], capture_output=True, text=True, timeout=15)
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.strip().splitlines()  # text mode: "\r\n" reads as "\n"
        self.assertTrue(lines[0].startswith("HTTP/2 "), lines[0])
        hs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hs[k.strip().lower()] = v.strip()
        with open(os.path.join(self.tmp, "body"), "rb") as f:
            body = f.read()
        return int(lines[0].split()[1]), hs, body

    def test_h2_jwt(self):
        status, hs, _ = self.curl("/api/x")
        self.assertEqual(status, 401)
        self.assertTrue(hs.get("www-authenticate", "").startswith("Bearer realm="), hs)
        status, hs, _ = self.curl("/api/x", "-H", f"Authorization: Bearer {sp.token_alg_none()}")
        self.assertEqual(status, 401)
        self.assertIn("invalid_token", hs.get("www-authenticate", ""))
        token = keys().token("ES256", tenant="acme")
        status, hs, body = self.curl("/api/x", "-H", f"Authorization: Bearer {token}",
                                     "-H", "X-Tenant: globex")
        self.assertEqual(status, 200, body)
        seen = json.loads(body)
        self.assertNotIn("authorization", seen["headers"])
        self.assertEqual(seen["headers"].get("x-tenant"), "acme")

    def test_h2_api_key(self):
        self.assertEqual(self.curl("/keys/x", "-H", "x-api-key: nope")[0], 401)
        status, _, body = self.curl("/keys/x", "-H", "x-api-key: k-h2")
        self.assertEqual(status, 200)
        seen = json.loads(body)
        self.assertEqual(seen["headers"].get("x-consumer"), "app")
        self.assertNotIn("x-api-key", seen["headers"])

    def test_h2_cors_preflight(self):
        status, hs, body = self.curl("/cors/x", "-X", "OPTIONS", "-H",
                                     "Origin: https://app.example.com", "-H",
                                     "Access-Control-Request-Method: PUT")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"")
        self.assertEqual(hs.get("access-control-allow-origin"), "https://app.example.com")
        self.assertIn("PUT", hs.get("access-control-allow-methods", ""))


# ---- Remote JWKS --------------------------------------------------------------------------

class RemoteJwks(SecurityCase):
    def setUp(self):
        super().setUp()
        self.up = self.echo("up")
        self.jwks_port = free_port()

    def start_with_jwks(self, cache="300s"):
        uri = f"http://127.0.0.1:{self.jwks_port}/jwks.json"
        self.start_gateway([
            gateway_doc(self.port), backend_doc("up", self.up), route_doc("api", "/api", "up"),
            policy_doc("api", "HTTPRoute", "api", jwt_section(provider(
                jwks=f"remoteJWKS: {{uri: '{uri}', cacheDuration: {cache}}}"))),
        ])

    def tearDown(self):
        if getattr(self, "jwks", None):
            self.jwks.stop()
        super().tearDown()

    def wait_status(self, token_fn, expected, timeout):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = self.get("/api/x", bearer(token_fn()))
            if last[0] == expected:
                return time.time()
            time.sleep(0.1)
        self.fail(f"no {expected} within {timeout}s: {last} {self.gw.output()[-2000:]}")

    def test_keys_fetched_from_jwks_server(self):
        self.jwks = sp.JwksServer(self.jwks_port, keys().jwks(["RSA", "EC256"]))
        self.start_with_jwks()
        self.wait_status(lambda: keys().token("RS256"), 200, 5)
        self.echoed("/api/x", bearer(keys().token("ES256")))
        self.assertGreaterEqual(self.jwks.requests, 1)
        # A key the set does not contain (P-384) does not verify.
        self.assert_status(401, "/api/x", bearer(keys().token("ES384")))

    def test_explain_fetches_the_remote_keys(self):
        self.jwks = sp.JwksServer(self.jwks_port, keys().jwks(["RSA"]))
        self.start_with_jwks()
        out = subprocess.run([BIN, "explain", "-c", self.config_path, "--host", "x",
                              "--path", "/api/x", "--token", keys().token("RS256")],
                             capture_output=True, text=True, timeout=15)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("verified", out.stdout)
        self.jwks.stop()
        self.jwks = None
        out = subprocess.run([BIN, "explain", "-c", self.config_path, "--host", "x",
                              "--path", "/api/x", "--token", keys().token("RS256")],
                             capture_output=True, text=True, timeout=15)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("signing keys not available", out.stdout)
        self.assertIn("401", out.stdout)

    def test_unknown_kid_refresh_is_rate_limited(self):
        self.jwks = sp.JwksServer(self.jwks_port, keys().jwks(["RSA"]))
        self.start_with_jwks()
        self.wait_status(lambda: keys().token("RS256"), 200, 5)
        before = self.jwks.requests
        for i in range(50):
            self.assert_status(401, "/api/x", bearer(other_keys().token("RS256", jti=str(i))))
        time.sleep(0.5)
        self.assertLessEqual(self.jwks.requests - before, 5,
                             "every unknown kid fetched the key set")

    def test_jwks_rotation_mid_load(self):
        old = keys().keys["RSA"]
        new = other_keys().keys["RSA"]
        self.jwks = sp.JwksServer(self.jwks_port, {"keys": [old.jwk()]})
        self.start_with_jwks()
        self.wait_status(lambda: keys().token("RS256"), 200, 5)
        failures, count, stop = [], [0], threading.Event()

        def load():
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            i = 0
            while not stop.is_set():
                i += 1
                status, hs, body = self.get("/api/x", bearer(keys().token("RS256", jti=str(i))),
                                            conn=c)
                count[0] += 1
                if status != 200:
                    failures.append((status, hs, body))
            c.close()

        threads = [threading.Thread(target=load) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            # The IdP publishes the new key next to the old one, then signs with the new key.
            self.jwks.set({"keys": [old.jwk(), new.jwk()]})
            switched = time.time()
            done = self.wait_status(lambda: other_keys().token("RS256"), 200, 10)
            self.assertLess(done - switched, 10)
            time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertGreater(count[0], 10)
        self.assertEqual(failures, [], "old-key tokens failed during the rotation")
        # Both keys now verify.
        self.echoed("/api/x", bearer(sp.make_token(new.private, "RS256", new.kid, jti="n")))
        self.echoed("/api/x", bearer(sp.make_token(old.private, "RS256", old.kid, jti="o")))

    def test_jwks_server_down_at_start(self):
        self.jwks = sp.JwksServer(self.jwks_port, keys().jwks(["RSA"]), up=False)
        self.start_with_jwks()
        status, hs, body = self.get("/api/x", bearer(keys().token("RS256")))
        self.assertEqual(status, 401, (hs, body))
        self.assertIn("invalid_token", hs.get("www-authenticate", ""))
        self.assertIn("not available", hs.get("www-authenticate", "") + body.decode())
        self.jwks.start()
        self.wait_status(lambda: keys().token("RS256", jti=str(time.time())), 200, 20)

    def test_jwks_server_down_after_good_fetch_keeps_last_good_set(self):
        self.jwks = sp.JwksServer(self.jwks_port, keys().jwks(["RSA"]))
        self.start_with_jwks(cache="1s")
        self.wait_status(lambda: keys().token("RS256"), 200, 5)
        self.jwks.stop()
        time.sleep(2.5)  # refreshes fail meanwhile
        for i in range(5):
            # Fresh tokens (not in the token cache) still verify with the last good key set.
            self.echoed("/api/x", bearer(keys().token("RS256", jti=f"after-{i}")))
        # The server answering garbage is a failed fetch too: the keys stay.
        self.jwks.set({"keys": "not a list"})
        self.jwks.start()
        time.sleep(2.5)
        self.echoed("/api/x", bearer(keys().token("RS256", jti="after-garbage")))


# ---- Claim-based routing -------------------------------------------------------------------

class ClaimRouting(SecurityCase):
    """tenant claim -> x-tenant, plan claim -> x-plan, then the route is matched again:
    x-plan premium -> premium-pool, x-tenant acme -> tenant-acme, globex -> tenant-globex."""

    def setUp(self):
        super().setUp()
        ports = {n: self.echo(n) for n in ("tenant-acme", "tenant-globex", "premium-pool",
                                           "fallback")}
        route = (
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
            "metadata: {name: devices}\nspec:\n  parentRefs: [{name: gw}]\n  rules:\n"
            "  - name: premium\n"
            "    matches: [{path: {type: PathPrefix, value: /devices},"
            " headers: [{name: x-plan, value: premium}]}]\n"
            "    backendRefs: [{name: premium-pool}]\n"
            "  - name: acme\n"
            "    matches: [{path: {type: PathPrefix, value: /devices},"
            " headers: [{name: x-tenant, value: acme}]}]\n"
            "    backendRefs: [{name: tenant-acme}]\n"
            "  - name: globex\n"
            "    matches: [{path: {type: PathPrefix, value: /devices},"
            " headers: [{name: x-tenant, value: globex}]}]\n"
            "    backendRefs: [{name: tenant-globex}]\n"
            "  - name: rest\n"
            "    matches: [{path: {type: PathPrefix, value: /devices}}]\n"
            "    backendRefs: [{name: fallback}]\n")
        self.start_gateway(
            [gateway_doc(self.port), route]
            + [backend_doc(n, p) for n, p in ports.items()]
            + [policy_doc("tenants", "HTTPRoute", "devices", jwt_section(provider(extra=(
                "claimToHeaders: [{claim: tenant, header: x-tenant}, "
                "{claim: plan, header: x-plan}]\n"
                "recomputeRoute: true\n")))),
               # The globex rule alone also has access rules: checked after the route is
               # matched again on the claims (policy.h's pass 1).
               policy_doc("globex-admins", "HTTPRoute", "devices", (
                   "  authorization:\n    defaultAction: Deny\n    rules:\n"
                   "    - name: admins\n      action: Allow\n"
                   "      principal: {jwt: {claims: [{name: role, values: [admin]}]}}\n"),
                   section="globex")])

    def test_rule_reached_by_claims_runs_its_own_policy(self):
        # globex without role admin: its rule's access rules deny (the first match, "rest",
        # had none); with the role: served, and the claim headers are still set.
        self.assert_status(403, "/devices/1", bearer(keys().token("RS256", tenant="globex")))
        seen = self.echoed("/devices/1", bearer(keys().token("RS256", tenant="globex",
                                                             role="admin")))
        self.assertEqual(seen["name"], "tenant-globex")
        self.assertEqual(seen["headers"].get("x-tenant"), "globex")
        self.assertNotIn("authorization", seen["headers"])
        # A client that names globex itself with an acme token is routed by the claim.
        seen = self.echoed("/devices/1", {**bearer(keys().token("RS256", tenant="acme")),
                                          "X-Tenant": "globex"})
        self.assertEqual(seen["name"], "tenant-acme")

    def test_two_tenants_routed_by_claim(self):
        acme = self.echoed("/devices/1", bearer(keys().token("RS256", tenant="acme")))
        self.assertEqual(acme["name"], "tenant-acme")
        self.assertEqual(acme["headers"].get("x-tenant"), "acme")
        globex = self.echoed("/devices/1", bearer(keys().token("ES256", tenant="globex",
                                                               role="admin")))
        self.assertEqual(globex["name"], "tenant-globex")
        self.assertEqual(globex["headers"].get("x-tenant"), "globex")
        other = self.echoed("/devices/1", bearer(keys().token("RS256", tenant="initech")))
        self.assertEqual(other["name"], "fallback")

    def test_premium_plan_routed_to_premium_pool(self):
        seen = self.echoed("/devices/1", bearer(keys().token("RS256", tenant="acme",
                                                             plan="premium")))
        self.assertEqual(seen["name"], "premium-pool")
        self.assertEqual(seen["headers"].get("x-plan"), "premium")
        self.assertEqual(seen["headers"].get("x-tenant"), "acme")

    def test_claim_headers_cannot_be_spoofed(self):
        token = keys().token("RS256", tenant="acme")
        seen = self.echoed("/devices/1", {**bearer(token), "X-Tenant": "globex",
                                          "X-Plan": "premium"})
        self.assertEqual(seen["name"], "tenant-acme")
        self.assertEqual(seen["headers"].get("x-tenant"), "acme")
        self.assertNotIn("x-plan", seen["headers"])  # the token has no plan claim
        # A valid token without a tenant claim: the client's x-tenant is still removed.
        seen = self.echoed("/devices/1", {**bearer(keys().token("RS256")), "X-Tenant": "globex"})
        self.assertEqual(seen["name"], "fallback")
        self.assertNotIn("x-tenant", seen["headers"])
        # Without a token: 401, never routed on the client's header.
        self.assert_status(401, "/devices/1", {"X-Tenant": "globex"})

    def test_invalid_token_is_not_routed(self):
        bad = sp.token_tampered(keys().token("RS256", tenant="acme"), tenant="globex")
        self.assert_status(401, "/devices/1", bearer(bad))

    def test_explain_with_token(self):
        h = subprocess.run([BIN, "explain", "--help"], capture_output=True, text=True,
                           timeout=10)
        usage = h.stdout + h.stderr
        token = keys().token("RS256", tenant="globex")
        if "--token" in usage:
            extra = ["--token", token]
        elif "--header" in usage:
            extra = ["--header", f"authorization: Bearer {token}"]
        else:
            self.skipTest("portico explain has no --token/--header option yet")
        out = subprocess.run([BIN, "explain", "-c", self.config_path, "--host",
                              "api.example.com", "--path", "/devices/1", *extra],
                             capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        text = out.stdout
        self.assertIn("x-tenant", text)
        self.assertIn("globex", text)
        self.assertIn("tenant-globex", text)
        # A bad token: explain says it is answered 401.
        bad = sp.token_alg_none(tenant="globex")
        extra = ["--token", bad] if extra[0] == "--token" else [
            "--header", f"authorization: Bearer {bad}"]
        out = subprocess.run([BIN, "explain", "-c", self.config_path, "--host",
                              "api.example.com", "--path", "/devices/1", *extra],
                             capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"401|refused|invalid")


class ClaimRoutingWithExtAuth(SecurityCase):
    """recomputeRoute and an external authorization service in one policy: the service is asked
    once the route was matched again (as in Envoy), on HTTP/1.1 and HTTP/2 alike."""

    def setUp(self):
        super().setUp()
        self.authz = sp.AuthzServer()
        acme, other = self.echo("tenant-acme"), self.echo("other")
        route = (
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
            "metadata: {name: devices}\nspec:\n  parentRefs: [{name: gw}]\n  rules:\n"
            "  - matches: [{path: {type: PathPrefix, value: /d},"
            " headers: [{name: x-tenant, value: acme}]}]\n"
            "    backendRefs: [{name: tenant-acme}]\n"
            "  - matches: [{path: {type: PathPrefix, value: /d}}]\n"
            "    backendRefs: [{name: other}]\n")
        self.start_gateway([
            gateway_doc(self.port), route, backend_doc("tenant-acme", acme),
            backend_doc("other", other), backend_doc("authz", self.authz.port),
            policy_doc("tenants", "HTTPRoute", "devices", jwt_section(provider(extra=(
                "claimToHeaders: [{claim: tenant, header: x-tenant}]\n"
                "recomputeRoute: true\n"))) + (
                "  extAuth:\n    http:\n"
                "      backendRefs: [{group: portico.dev, kind: Backend, name: authz}]\n"
                "      path: /check\n      headersToBackend: [x-user-id]\n"))])

    def tearDown(self):
        super().tearDown()
        self.authz.close()

    def test_http1(self):
        token = keys().token("RS256", tenant="acme")
        seen = self.echoed("/d/1", {**bearer(token), "X-Authz": "allow"})
        self.assertEqual(seen["name"], "tenant-acme")
        self.assertEqual(seen["headers"].get("x-user-id"), "user-42")
        self.assertEqual(seen["headers"].get("x-tenant"), "acme")
        self.assertEqual(self.authz.last()["headers"].get("x-tenant"), "acme")
        self.assert_status(sp.AuthzServer.DENY_STATUS, "/d/1", {**bearer(token), "X-Authz": "no"})

    def test_http2(self):
        token = keys().token("RS256", tenant="acme")
        out = subprocess.run(
            ["curl", "-s", "--http2-prior-knowledge", "--max-time", "10", "-H",
             f"Authorization: Bearer {token}", "-H", "X-Authz: allow",
             f"http://127.0.0.1:{self.port}/d/1"], capture_output=True, timeout=15)
        self.assertEqual(out.returncode, 0, out.stderr)
        seen = json.loads(out.stdout)
        self.assertEqual(seen["name"], "tenant-acme")
        self.assertEqual(seen["headers"].get("x-user-id"), "user-42")
        self.assertEqual(seen["headers"].get("x-tenant"), "acme")
        self.assertNotIn("authorization", seen["headers"])


# ---- API keys ------------------------------------------------------------------------------

class ApiKeys(SecurityCase):
    def setUp(self):
        super().setUp()
        self.up = self.echo("up")
        hashed = hashlib.sha256(b"k-hashed-789").hexdigest()
        secret = base64.b64encode(b"k-globex-456").decode()
        self.start_gateway([
            gateway_doc(self.port), backend_doc("up", self.up), route_doc("keys", "/keys", "up"),
            "apiVersion: v1\nkind: Secret\nmetadata: {name: api-keys}\ntype: Opaque\n"
            f"data:\n  globex-app: {secret}\n",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: more-keys}\ntype: Opaque\n"
            "stringData:\n  initech-app: k-initech-321\n",
            policy_doc("keys", "HTTPRoute", "keys", (
                "  apiKeyAuth:\n"
                "    credentialRefs: [{kind: Secret, name: api-keys}, "
                "{kind: Secret, name: more-keys}]\n"
                "    consumers:\n"
                "    - name: acme-app\n"
                "      key: k-acme-123\n"
                "      metadata: {tenant: acme, plan: premium}\n"
                "    - name: hashed-app\n"
                f"      keyHash: \"sha256:{hashed}\"\n"
                "      metadata: {tenant: hashed}\n"
                "    - name: old-app\n"
                "      key: k-old-000\n"
                "      disabled: true\n"
                "    extractFrom: [{headers: [x-api-key]}, {params: [api_key]}]\n"
                "    forwardClientIDHeader: x-consumer\n"
                "    metadataToHeaders: [{metadata: tenant, header: x-tenant}]\n")),
        ])

    def assert_401(self, path, headers=None):
        status, hs, body = self.get(path, headers)
        self.assertEqual(status, 401, (path, headers, hs, body))
        self.assertRegex(hs.get("www-authenticate", ""), r"(?i)^apikey\b")
        for k in ("k-acme-123", "k-globex-456", "k-old-000"):
            self.assertNotIn(k, json.dumps(hs) + body.decode())

    def test_api_key_in_header(self):
        seen = self.echoed("/keys/x", {"X-Api-Key": "k-acme-123"})
        self.assertEqual(seen["headers"].get("x-consumer"), "acme-app")
        self.assertEqual(seen["headers"].get("x-tenant"), "acme")
        self.assertNotIn("x-api-key", seen["headers"])  # sanitize: true by default

    def test_api_key_in_query_parameter_removed_upstream(self):
        seen = self.echoed("/keys/x?a=1&api_key=k-acme-123&b=2")
        self.assertEqual(seen["headers"].get("x-consumer"), "acme-app")
        self.assertNotIn("k-acme-123", seen["query"])
        self.assertIn("a=1", seen["query"])
        self.assertIn("b=2", seen["query"])

    def test_api_key_hash_form(self):
        seen = self.echoed("/keys/x", {"X-Api-Key": "k-hashed-789"})
        self.assertEqual(seen["headers"].get("x-consumer"), "hashed-app")
        self.assertEqual(seen["headers"].get("x-tenant"), "hashed")

    def test_api_key_secret_credential_refs(self):
        seen = self.echoed("/keys/x", {"X-Api-Key": "k-globex-456"})
        self.assertEqual(seen["headers"].get("x-consumer"), "globex-app")
        self.assertNotIn("x-tenant", seen["headers"])  # no metadata in the Secret form
        seen = self.echoed("/keys/x", {"X-Api-Key": "k-initech-321"})
        self.assertEqual(seen["headers"].get("x-consumer"), "initech-app")

    def test_api_key_missing_unknown_disabled(self):
        self.assert_401("/keys/x")
        self.assert_401("/keys/x", {"X-Api-Key": "k-acme-1234"})
        self.assert_401("/keys/x", {"X-Api-Key": "k-acme-12"})
        self.assert_401("/keys/x", {"X-Api-Key": ""})
        self.assert_401("/keys/x", {"X-Api-Key": "k-old-000"})
        self.assert_401("/keys/x?api_key=nope")
        # The key is a secret, not a consumer name.
        self.assert_401("/keys/x", {"X-Api-Key": "acme-app"})

    def test_consumer_headers_cannot_be_spoofed(self):
        seen = self.echoed("/keys/x", {"X-Api-Key": "k-acme-123", "X-Consumer": "admin",
                                       "X-Tenant": "globex"})
        self.assertEqual(seen["headers"].get("x-consumer"), "acme-app")
        self.assertEqual(seen["headers"].get("x-tenant"), "acme")


# ---- Basic auth ----------------------------------------------------------------------------

class BasicAuth(SecurityCase):
    PASSWORD = "s3cret pass:word"

    def setUp(self):
        super().setUp()
        self.up = self.echo("up")
        self.schemes = [s for s, flag in sp.HTPASSWD_SCHEMES.items()
                        if sp.htpasswd_supports(flag)]
        path = os.path.join(self.tmp, "users.htpasswd")
        for s in self.schemes:
            sp.htpasswd(path, f"user-{s}", self.PASSWORD, sp.HTPASSWD_SCHEMES[s])
        with open(path) as f:
            self.htpasswd_text = f.read()
        secret_text = "".join("    " + line + "\n" for line in self.htpasswd_text.splitlines())
        self.start_gateway([
            gateway_doc(self.port), backend_doc("up", self.up),
            route_doc("basic", "/basic", "up"), route_doc("basic-secret", "/secret", "up"),
            "apiVersion: v1\nkind: Secret\nmetadata: {name: htpasswd}\ntype: Opaque\n"
            "stringData:\n  .htpasswd: |\n" + secret_text,
            policy_doc("basic", "HTTPRoute", "basic", (
                "  basicAuth:\n    htpasswdFile: users.htpasswd\n    realm: portico-test\n"
                "    forwardUsernameHeader: x-user\n")),
            policy_doc("basic-secret", "HTTPRoute", "basic-secret", (
                "  basicAuth:\n    users: {kind: Secret, name: htpasswd}\n"
                "    forwardUsernameHeader: x-user\n")),
        ])

    def check_scheme(self, scheme):
        if scheme not in self.schemes:
            self.skipTest(f"this htpasswd cannot write {scheme}")
        self.assertIn(f"user-{scheme}:", self.htpasswd_text)
        for path in ("/basic/x", "/secret/x"):
            seen = self.echoed(path, {"Authorization": sp.basic(f"user-{scheme}", self.PASSWORD)})
            self.assertEqual(seen["headers"].get("x-user"), f"user-{scheme}")
            self.assertNotIn("authorization", seen["headers"])
            status, hs, _ = self.get(path, {"Authorization": sp.basic(f"user-{scheme}",
                                                                      self.PASSWORD + "x")})
            self.assertEqual(status, 401)

    def test_htpasswd_formats_written(self):
        self.assertIn("$2y$", self.htpasswd_text)   # bcrypt
        self.assertIn("$apr1$", self.htpasswd_text)
        self.assertIn("{SHA}", self.htpasswd_text)

    def test_wrong_password_unknown_user_missing(self):
        for headers in [{"Authorization": sp.basic("user-bcrypt", "wrong")},
                        {"Authorization": sp.basic("nobody", self.PASSWORD)},
                        {"Authorization": "Basic !!!notbase64"},
                        {"Authorization": "Basic " + base64.b64encode(b"nocolon").decode()},
                        {"Authorization": "Bearer abc"}, {}]:
            with self.subTest(headers=headers):
                status, hs, body = self.get("/basic/x", headers)
                self.assertEqual(status, 401, (hs, body))
                self.assertEqual(hs.get("www-authenticate"), 'Basic realm="portico-test"')
                self.assertNotIn("$apr1$", body.decode())
        status, hs, _ = self.get("/secret/x", {"Authorization": sp.basic("user-apr1", "no")})
        self.assertEqual(status, 401)
        self.assertEqual(hs.get("www-authenticate"), 'Basic realm="portico"')

    def test_username_header_cannot_be_spoofed(self):
        seen = self.echoed("/basic/x", {"Authorization": sp.basic("user-apr1", self.PASSWORD),
                                        "X-User": "admin"})
        self.assertEqual(seen["headers"].get("x-user"), "user-apr1")


for _scheme in sp.HTPASSWD_SCHEMES:
    setattr(BasicAuth, f"test_basic_{_scheme}",
            (lambda s: lambda self: self.check_scheme(s))(_scheme))


# ---- External authorization ----------------------------------------------------------------

class ExtAuth(SecurityCase):
    def setUp(self):
        super().setUp()
        self.up = self.echo("up")
        self.authz = sp.AuthzServer(slow_s=1.5)
        down = free_port()

        def ext(name, extra):
            return policy_doc(name, "HTTPRoute", name, (
                "  extAuth:\n    http:\n"
                f"      backendRefs: [{{group: portico.dev, kind: Backend, name: "
                f"{'authz-down' if name == 'down' else 'authz'}}}]\n"
                "      path: /check\n"
                "      headersToBackend: [x-user-id]\n" + indent(extra, 4)))

        names = ["ext", "open", "cached", "limited", "down", "body"]
        self.start_gateway(
            [gateway_doc(self.port), backend_doc("up", self.up),
             backend_doc("authz", self.authz.port), backend_doc("authz-down", down)]
            + [route_doc(n, f"/{n}", "up") for n in names]
            + [ext("ext", "timeout: 300ms\nfailOpen: false\n"),
               ext("open", "timeout: 300ms\nfailOpen: true\n"),
               ext("cached", "cache: {ttl: 10s, maxEntries: 100}\n"),
               ext("limited", "headersToExtAuth: [x-authz, x-request-id]\n"),
               ext("down", "failOpen: false\n"),
               ext("body", "bodyToExtAuth: {maxRequestBytes: 64}\n")],
            workers=1)  # one worker: a call that blocked it would hold up every request

    def tearDown(self):
        super().tearDown()
        self.authz.close()

    def test_allow_copies_headers_upstream(self):
        seen = self.echoed("/ext/orders/1?x=2", {"X-Authz": "allow", "X-Other": "o"})
        self.assertEqual(seen["headers"].get("x-user-id"), "user-42")
        self.assertNotIn("x-authz-internal", seen["headers"])
        asked = self.authz.last()
        self.assertIsNotNone(asked, "the service was not asked")
        self.assertTrue(asked["path"].startswith("/check/ext/orders/1"), asked["path"])
        self.assertEqual(asked["headers"].get("x-other"), "o")  # default: all headers sent

    def test_allowed_request_cannot_spoof_authz_headers(self):
        seen = self.echoed("/ext/x", {"X-Authz": "allow", "X-User-Id": "admin"})
        self.assertEqual(seen["headers"].get("x-user-id"), "user-42")

    def h2(self, path, *args):
        """(status, headers, body) of an h2c request by curl (the HTTP/2 path's ext-authz)."""
        out = subprocess.run(
            ["curl", "-s", "--http2-prior-knowledge", "-D", "-", "--max-time", "10", *args,
             f"http://127.0.0.1:{self.port}{path}"], capture_output=True, timeout=15)
        self.assertEqual(out.returncode, 0, out.stderr)
        head, _, body = out.stdout.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        self.assertTrue(lines[0].startswith("HTTP/2 "), lines[0])
        hs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hs[k.strip().lower()] = v.strip()
        return int(lines[0].split()[1]), hs, body

    def test_http2_allow_copies_headers_and_deny_passes_the_answer(self):
        status, _, body = self.h2("/ext/h2/1", "-H", "X-Authz: allow", "-H", "X-User-Id: spoof")
        self.assertEqual(status, 200, body)
        seen = json.loads(body)
        self.assertEqual(seen["headers"].get("x-user-id"), "user-42")  # the service's, not the client's
        self.assertTrue(self.authz.last()["path"].startswith("/check/ext/h2/1"))
        status, hs, body = self.h2("/ext/h2/2", "-H", "X-Authz: deny")
        self.assertEqual(status, sp.AuthzServer.DENY_STATUS)
        self.assertEqual(body, sp.AuthzServer.DENY_BODY)
        self.assertEqual(hs.get("x-deny-reason"), "policy-says-no")
        status, _, _ = self.h2("/ext/h2/3", "-H", "X-Authz: slow")
        self.assertEqual(status, 403)  # timed out, fail closed

    def test_http2_request_body_sent_while_the_check_runs_reaches_the_upstream(self):
        # The DATA frames arrive before the service answers: they are held, then forwarded.
        body = os.path.join(self.tmp, "post.bin")
        payload = bytes(range(256)) * 400  # 100 KiB
        with open(body, "wb") as f:
            f.write(payload)
        for authz in ("allow", "slow"):  # "slow": answered after the timeout, fail open
            status, _, out = self.h2("/open/post", "-H", f"X-Authz: {authz}",
                                     "--data-binary", f"@{body}")
            self.assertEqual(status, 200, out[:200])
            seen = json.loads(out)
            self.assertEqual(seen["body_bytes"], len(payload), authz)

    def test_http2_streams_wait_without_holding_the_connection(self):
        # Two streams on one connection (curl multiplexes with --parallel): the slow check does
        # not hold up the allowed one, and both get their answer.
        base = f"http://127.0.0.1:{self.port}"
        common = ["--http2-prior-knowledge", "-o", "/dev/null", "-w",
                  "%{http_code} %{url_effective}\n"]
        out = subprocess.run(
            ["curl", "-s", "--parallel", "--parallel-immediate", *common,
             "-H", "X-Authz: slow", f"{base}/open/slow", "--next", *common,
             "-H", "X-Authz: allow", f"{base}/ext/fast"],
            capture_output=True, text=True, timeout=15)
        codes = {}
        for line in out.stdout.splitlines():
            code, _, url = line.partition(" ")
            codes[url] = code
        self.assertEqual(codes.get(f"{base}/ext/fast"), "200", out)
        self.assertEqual(codes.get(f"{base}/open/slow"), "200", out)  # timed out, fail open

    def test_deny_passes_status_body_headers(self):
        status, hs, body = self.get("/ext/x", {"X-Authz": "deny"})
        self.assertEqual(status, sp.AuthzServer.DENY_STATUS)
        self.assertEqual(body, sp.AuthzServer.DENY_BODY)
        self.assertEqual(hs.get("x-deny-reason"), "policy-says-no")
        self.assertEqual(hs.get("www-authenticate"), 'Custom realm="authz"')

    def test_timeout_fail_closed(self):
        t = time.time()
        status, hs, body = self.get("/ext/x", {"X-Authz": "slow"})
        elapsed = time.time() - t
        self.assertEqual(status, 403, (hs, body))
        self.assertLess(elapsed, 1.2)

    def test_timeout_fail_open(self):
        t = time.time()
        status, hs, body = self.get("/open/x", {"X-Authz": "slow"})
        self.assertEqual(status, 200, (hs, body))
        self.assertLess(time.time() - t, 1.2)
        # Fail-open is for errors only: a real deny still denies.
        status, _, _ = self.get("/open/x", {"X-Authz": "deny"})
        self.assertEqual(status, sp.AuthzServer.DENY_STATUS)

    def test_service_down_fail_closed(self):
        status, hs, body = self.get("/down/x", {"X-Authz": "allow"})
        self.assertEqual(status, 403, (hs, body))

    def test_worker_not_blocked_while_waiting(self):
        # A slow authorization call (1.5 s) must not hold up other connections on the (only)
        # worker.
        results = []
        t = threading.Thread(target=lambda: results.append(
            self.get("/open/x", {"X-Authz": "slow"})[0]))
        t.start()
        time.sleep(0.05)
        start = time.time()
        for _ in range(5):
            self.assertEqual(self.get("/ext/x", {"X-Authz": "allow"})[0], 200)
        self.assertLess(time.time() - start, 1.0)
        t.join()
        self.assertEqual(results, [200])

    def test_cache_second_identical_request_not_sent(self):
        # The cache is per worker: one keep-alive connection stays on one worker.
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

        def ask(path):
            status, hs, body = self.get(path, {"X-Authz": "allow"}, conn=c)
            self.assertEqual(status, 200, (hs, body))
            return json.loads(body)

        before = self.authz.count()
        ask("/cached/a")
        self.assertEqual(self.authz.count(), before + 1)
        seen = ask("/cached/a")
        self.assertEqual(self.authz.count(), before + 1, "the cached verdict was not used")
        self.assertEqual(seen["headers"].get("x-user-id"), "user-42")
        ask("/cached/b")  # another path: asked again
        self.assertEqual(self.authz.count(), before + 2)
        # Without a cache every request is asked.
        ask("/ext/a")
        ask("/ext/a")
        self.assertEqual(self.authz.count(), before + 4)
        c.close()

    def test_body_to_ext_auth(self):
        status, hs, body = self.request("POST", "/body/x", {"X-Authz": "allow",
                                                            "Content-Type": "text/plain"},
                                        body=b"hello authz")
        self.assertEqual(status, 200, (hs, body))
        self.assertEqual(self.authz.last()["body"], b"hello authz")
        self.assertEqual(json.loads(body)["body"], "hello authz")  # the upstream gets it too
        # Without bodyToExtAuth the service gets no body.
        status, _, body = self.request("POST", "/ext/x", {"X-Authz": "allow"}, body=b"secret")
        self.assertEqual(status, 200)
        self.assertEqual(self.authz.last()["body"], b"")
        self.assertEqual(json.loads(body)["body"], "secret")

    def test_headers_to_ext_auth(self):
        self.echoed("/limited/x", {"X-Authz": "allow", "X-Request-Id": "r-1",
                                   "X-Secret": "nope", "Cookie": "a=b"})
        self.assertIsNotNone(self.authz.last(), "the service was not asked")
        asked = self.authz.last()["headers"]
        self.assertEqual(asked.get("x-authz"), "allow")
        self.assertEqual(asked.get("x-request-id"), "r-1")
        self.assertNotIn("x-secret", asked)
        self.assertNotIn("cookie", asked)


# ---- Access rules --------------------------------------------------------------------------

class AccessRules(SecurityCase):
    def setUp(self):
        super().setUp()
        self.up = self.echo("up")
        names = ["v4", "v6only", "xff", "claim", "consumer", "ops"]
        self.start_gateway(
            [gateway_doc(self.port, addresses=("127.0.0.1", "::1")), backend_doc("up", self.up)]
            + [route_doc(n, f"/{n}", "up") for n in names]
            + [policy_doc("v4", "HTTPRoute", "v4", (
                "  authorization:\n    defaultAction: Deny\n    rules:\n"
                "    - {name: loopback, action: Allow, principal: {clientCIDRs: [127.0.0.0/8]}}\n")),
               policy_doc("v6only", "HTTPRoute", "v6only", (
                   "  authorization:\n    defaultAction: Deny\n    rules:\n"
                   "    - {name: v6, action: Allow, principal: {clientCIDRs: [\"::1/128\"]}}\n")),
               policy_doc("xff", "HTTPRoute", "xff", (
                   "  clientIPDetection: {xForwardedFor: {numTrustedHops: 1}}\n"
                   "  authorization:\n    defaultAction: Allow\n    rules:\n"
                   "    - {name: lab, action: Deny, principal: {clientCIDRs: [10.0.0.0/8]}}\n")),
               policy_doc("claim", "HTTPRoute", "claim", jwt_section(provider()) + (
                   "  authorization:\n    defaultAction: Deny\n    rules:\n"
                   "    - name: acme-only\n      action: Allow\n"
                   "      principal: {jwt: {claims: [{name: tenant, values: [acme]}]}}\n")),
               policy_doc("consumer", "HTTPRoute", "consumer", (
                   "  apiKeyAuth:\n    consumers:\n"
                   "    - {name: acme-app, key: k-acme}\n    - {name: globex-app, key: k-globex}\n"
                   "  authorization:\n    defaultAction: Deny\n    rules:\n"
                   "    - {name: acme, action: Allow, principal: {consumers: [acme-app]}}\n")),
               policy_doc("ops", "HTTPRoute", "ops", (
                   "  authorization:\n    defaultAction: Allow\n    rules:\n"
                   "    - {name: no-delete, action: Deny, operation: {methods: [DELETE]}}\n"
                   "    - name: admin\n      action: Deny\n"
                   "      operation: {paths: [{type: PathPrefix, value: /ops/admin}]}\n"
                   "    - name: re\n      action: Deny\n"
                   "      operation: {methods: [POST], paths: [{type: RegularExpression, "
                   "value: \"/ops/items/[0-9]+\"}]}\n"))])

    def test_cidr_allow_ipv4_loopback(self):
        self.echoed("/v4/x")

    def test_cidr_ipv6_rule_denies_ipv4_client(self):
        status, hs, body = self.get("/v6only/x")
        self.assertEqual(status, 403, (hs, body))

    def test_cidr_ipv4_vs_ipv6_clients(self):
        wait_port(self.port, host="::1")
        # The same rules, the client on ::1 instead of 127.0.0.1.
        self.assertEqual(self.get("/v6only/x", addr="::1")[0], 200)
        self.assertEqual(self.get("/v4/x", addr="::1")[0], 403)
        self.assertEqual(self.get("/v4/x")[0], 200)
        self.assertEqual(self.get("/v6only/x")[0], 403)

    def test_cidr_via_x_forwarded_for_trusted_hops(self):
        self.echoed("/xff/x", {"X-Forwarded-For": "192.168.1.1"})
        self.assert_status(403, "/xff/x", {"X-Forwarded-For": "10.1.2.3"})
        # One trusted hop: the rightmost address is the client; what is left of it is the
        # client's own claim and cannot unlock or lock anything.
        self.echoed("/xff/x", {"X-Forwarded-For": "10.1.2.3, 192.168.1.1"})
        self.assert_status(403, "/xff/x", {"X-Forwarded-For": "192.168.1.1, 10.1.2.3"})
        # No X-Forwarded-For: no client address, no CIDR rule matches: the default (Allow).
        self.echoed("/xff/x")

    def test_claim_rule(self):
        self.echoed("/claim/x", bearer(keys().token("RS256", tenant="acme")))
        self.assert_status(403, "/claim/x", bearer(keys().token("RS256", tenant="globex")))
        self.assert_status(403, "/claim/x", bearer(keys().token("RS256")))
        self.assert_status(401, "/claim/x")

    def test_consumer_rule(self):
        self.echoed("/consumer/x", {"X-Api-Key": "k-acme"})
        self.assert_status(403, "/consumer/x", {"X-Api-Key": "k-globex"})
        self.assert_status(401, "/consumer/x", {"X-Api-Key": "k-nope"})

    def test_method_and_path_rules(self):
        self.echoed("/ops/x")
        self.echoed("/ops/x", method="POST")
        self.assert_status(403, "/ops/x", method="DELETE")
        self.assert_status(403, "/ops/admin/users")
        self.assert_status(403, "/ops/items/42", method="POST")
        self.echoed("/ops/items/42")
        self.echoed("/ops/items/abc", method="POST")


# ---- CORS ----------------------------------------------------------------------------------

class Cors(SecurityCase):
    def setUp(self):
        super().setUp()
        self.up = sp.CountingUpstream()
        cors = (
            "  cors:\n"
            "    allowOrigins: [\"https://app.example.com\", \"https://*.example.com\"]\n"
            "    allowOriginRegexes: [\"^https://[a-z]+\\\\.example\\\\.org$\"]\n"
            "    allowMethods: [GET, POST]\n"
            "    allowHeaders: [x-tenant, content-type]\n"
            "    exposeHeaders: [x-request-id]\n"
            "    maxAge: 600s\n"
            "    allowCredentials: true\n")
        self.start_gateway([
            gateway_doc(self.port), backend_doc("up", self.up.port),
            route_doc("cors", "/cors", "up"), route_doc("star", "/star", "up"),
            route_doc("auth", "/auth", "up"),
            policy_doc("cors", "HTTPRoute", "cors", cors),
            policy_doc("star", "HTTPRoute", "star", (
                "  cors:\n    allowOrigins: [\"*\"]\n    allowMethods: [GET, PUT]\n")),
            policy_doc("auth", "HTTPRoute", "auth", cors + (
                "  apiKeyAuth:\n    consumers: [{name: a, key: k-a}]\n")),
        ])

    def tearDown(self):
        super().tearDown()
        self.up.close()

    def preflight(self, path, origin, method="POST", req_headers=None):
        headers = {"Origin": origin, "Access-Control-Request-Method": method}
        if req_headers:
            headers["Access-Control-Request-Headers"] = req_headers
        return self.request("OPTIONS", path, headers)

    def test_preflight_answered_at_gateway(self):
        status, hs, body = self.preflight("/cors/x", "https://app.example.com", "POST",
                                          "x-tenant, content-type")
        self.assertEqual(status, 200, (hs, body))
        self.assertEqual(body, b"")
        self.assertEqual(hs.get("access-control-allow-origin"), "https://app.example.com")
        methods = [m.strip() for m in hs.get("access-control-allow-methods", "").split(",")]
        self.assertIn("POST", methods)
        allowed = [h.strip().lower()
                   for h in hs.get("access-control-allow-headers", "").split(",")]
        self.assertIn("x-tenant", allowed)
        self.assertIn("content-type", allowed)
        self.assertEqual(hs.get("access-control-max-age"), "600")
        self.assertEqual(hs.get("access-control-allow-credentials"), "true")
        self.assertEqual(self.up.count(), 0, "the preflight was forwarded")

    def test_wildcard_origin(self):
        status, hs, _ = self.preflight("/cors/x", "https://eu.example.com")
        self.assertEqual(status, 200)
        self.assertEqual(hs.get("access-control-allow-origin"), "https://eu.example.com")
        # The wildcard covers a subdomain label, not the bare domain or another scheme.
        for bad in ["http://eu.example.com", "https://example.com.evil.net",
                    "https://eu.example.com.evil.net"]:
            with self.subTest(origin=bad):
                status, hs, _ = self.preflight("/cors/x", bad)
                self.assertNotIn("access-control-allow-origin", hs)

    def test_regex_origin(self):
        status, hs, _ = self.preflight("/cors/x", "https://shop.example.org")
        self.assertEqual(hs.get("access-control-allow-origin"), "https://shop.example.org")
        for bad in ["https://shop.example.org.evil.com", "https://shop1.example.org",
                    "https://shopXexample.org"]:
            with self.subTest(origin=bad):
                _, hs, _ = self.preflight("/cors/x", bad)
                self.assertNotIn("access-control-allow-origin", hs)

    def test_disallowed_origin_preflight(self):
        status, hs, body = self.preflight("/cors/x", "https://evil.com")
        self.assertEqual(status, 200, (hs, body))
        self.assertNotIn("access-control-allow-origin", hs)
        self.assertNotIn("access-control-allow-credentials", hs)
        self.assertEqual(self.up.count(), 0, "the preflight was forwarded")

    def test_credentials_never_with_star(self):
        for origin in ["https://app.example.com", "https://a.example.com",
                       "https://shop.example.org"]:
            _, hs, _ = self.preflight("/cors/x", origin)
            self.assertEqual(hs.get("access-control-allow-origin"), origin)
            self.assertEqual(hs.get("access-control-allow-credentials"), "true")
        status, hs, _ = self.preflight("/star/x", "https://anyone.net", "PUT")
        self.assertEqual(status, 200)
        self.assertIn(hs.get("access-control-allow-origin"), ("*", "https://anyone.net"))
        self.assertNotIn("access-control-allow-credentials", hs)
        self.assertNotIn("access-control-max-age", hs)

    def test_simple_request_headers(self):
        status, hs, body = self.request("GET", "/cors/x", {"Origin": "https://app.example.com"})
        self.assertEqual(status, 200, (hs, body))
        self.assertEqual(self.up.count(), 1)
        self.assertEqual(hs.get("access-control-allow-origin"), "https://app.example.com")
        self.assertEqual(hs.get("access-control-allow-credentials"), "true")
        self.assertIn("x-request-id", hs.get("access-control-expose-headers", "").lower())
        self.assertIn("origin", hs.get("vary", "").lower())
        # A disallowed origin is served (CORS is enforced by the browser) without the headers.
        status, hs, _ = self.request("GET", "/cors/x", {"Origin": "https://evil.com"})
        self.assertEqual(status, 200)
        self.assertNotIn("access-control-allow-origin", hs)
        # An OPTIONS without Access-Control-Request-Method is not a preflight: forwarded.
        before = self.up.count()
        status, _, _ = self.request("OPTIONS", "/cors/x", {"Origin": "https://app.example.com"})
        self.assertEqual(status, 200)
        self.assertEqual(self.up.count(), before + 1)

    def test_local_401_carries_allow_origin(self):
        status, hs, _ = self.request("GET", "/auth/x", {"Origin": "https://app.example.com"})
        self.assertEqual(status, 401)
        self.assertEqual(hs.get("access-control-allow-origin"), "https://app.example.com")
        # The preflight of a protected route needs no credentials.
        status, hs, _ = self.preflight("/auth/x", "https://app.example.com")
        self.assertEqual(status, 200)
        self.assertEqual(hs.get("access-control-allow-origin"), "https://app.example.com")
        self.assertEqual(self.up.count(), 0)


# ---- Attachment ----------------------------------------------------------------------------

class Attachment(SecurityCase):
    """gw policy: apiKeyAuth default (key k-gw), overrides.authorization (deny /r3/blocked).
    r2 has its own apiKeyAuth (key k-route); r3 its own authorization allowing everything;
    r4's rule `locked` has a rule-level policy (basic auth would be too slow: api key k-rule)."""

    def setUp(self):
        super().setUp()
        self.up = self.echo("up")
        r4 = ("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
              "metadata: {name: r4}\nspec:\n  parentRefs: [{name: gw}]\n  rules:\n"
              "  - name: open\n    matches: [{path: {type: PathPrefix, value: /r4/open}}]\n"
              "    backendRefs: [{name: up}]\n"
              "  - name: locked\n    matches: [{path: {type: PathPrefix, value: /r4/locked}}]\n"
              "    backendRefs: [{name: up}]\n")
        self.start_gateway([
            gateway_doc(self.port), backend_doc("up", self.up),
            route_doc("r1", "/r1", "up"), route_doc("r2", "/r2", "up"),
            route_doc("r3", "/r3", "up"), r4,
            policy_doc("gw", "Gateway", "gw", (
                "  apiKeyAuth:\n    consumers: [{name: gw-app, key: k-gw}]\n"
                "  overrides:\n    authorization:\n      defaultAction: Allow\n      rules:\n"
                "      - name: blocked\n        action: Deny\n"
                "        operation: {paths: [{type: PathPrefix, value: /r3/blocked}]}\n")),
            policy_doc("r2", "HTTPRoute", "r2", (
                "  apiKeyAuth:\n    consumers: [{name: route-app, key: k-route}]\n"
                "    forwardClientIDHeader: x-consumer\n")),
            policy_doc("r3", "HTTPRoute", "r3", (
                "  authorization:\n    defaultAction: Allow\n    rules:\n"
                "    - {name: all, action: Allow, operation: {methods: [GET, POST]}}\n")),
            policy_doc("r4-locked", "HTTPRoute", "r4", (
                "  apiKeyAuth:\n    consumers: [{name: rule-app, key: k-rule}]\n"), "locked"),
        ])

    def test_gateway_policy_applies_to_route(self):
        self.echoed("/r1/x", {"X-Api-Key": "k-gw"})
        self.assert_status(401, "/r1/x")
        self.assert_status(401, "/r1/x", {"X-Api-Key": "k-route"})

    def test_route_policy_overrides_gateway_default(self):
        seen = self.echoed("/r2/x", {"X-Api-Key": "k-route"})
        self.assertEqual(seen["headers"].get("x-consumer"), "route-app")
        self.assert_status(401, "/r2/x", {"X-Api-Key": "k-gw"})

    def test_rule_policy_overrides_route_and_gateway(self):
        self.echoed("/r4/locked", {"X-Api-Key": "k-rule"})
        self.assert_status(401, "/r4/locked", {"X-Api-Key": "k-gw"})
        self.echoed("/r4/open", {"X-Api-Key": "k-gw"})
        self.assert_status(401, "/r4/open", {"X-Api-Key": "k-rule"})

    def test_gateway_overrides_win(self):
        self.echoed("/r3/ok", {"X-Api-Key": "k-gw"})
        self.assert_status(403, "/r3/blocked", {"X-Api-Key": "k-gw"})
        # The override applies to every route, also those with their own sections.
        self.assert_status(403, "/r3/blocked/deeper", {"X-Api-Key": "k-gw"})


# ---- Reload and check ----------------------------------------------------------------------

class Reload(SecurityCase):
    def setUp(self):
        super().setUp()
        self.up = self.echo("up")
        self.start_gateway(self.docs("k-one"))

    def docs(self, key, extra=""):
        return [gateway_doc(self.port), backend_doc("up", self.up), route_doc("api", "/api", "up"),
                policy_doc("keys", "HTTPRoute", "api", (
                    f"  apiKeyAuth:\n    consumers: [{{name: app, key: {key}}}]\n" + extra))]

    def write(self, text):
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.config_path)

    def wait_key(self, key, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.get("/api/x", {"X-Api-Key": key})[0] == 200:
                return
            time.sleep(0.05)
        self.fail(self.gw.output()[-3000:])

    def test_policy_change_applies_without_dropping_connections(self):
        keep = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        self.addCleanup(keep.close)
        self.assertEqual(self.get("/api/x", {"X-Api-Key": "k-one"}, conn=keep)[0], 200)
        sock = keep.sock
        failures, stop = [], threading.Event()

        def load():
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            while not stop.is_set():
                try:
                    status = self.get("/api/y", {"X-Api-Key": "k-one"}, conn=c)[0]
                    if status not in (200, 401):
                        failures.append(status)
                except (OSError, http.client.HTTPException) as e:
                    failures.append(repr(e))
                    c.close()
                    c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            c.close()

        t = threading.Thread(target=load)
        t.start()
        try:
            self.write("---\n".join(self.docs("k-two")))
            self.wait_key("k-two")
        finally:
            stop.set()
            t.join()
        self.assertEqual(failures, [])
        self.assertEqual(self.get("/api/x", {"X-Api-Key": "k-one"}, conn=keep)[0], 401)
        self.assertEqual(self.get("/api/x", {"X-Api-Key": "k-two"}, conn=keep)[0], 200)
        self.assertIs(keep.sock, sock, "the keep-alive connection was dropped")
        keep.close()

    def test_invalid_policy_rejected_by_check_and_reload(self):
        bad_docs = self.docs("k-bad", extra=("  jwt:\n    providers:\n    - name: idp\n"
                                             "      bogusField: 1\n"
                                             "      localJWKS: {type: Inline, inline: '{}'}\n"))
        bad = "---\n".join(bad_docs)
        path = os.path.join(self.tmp, "bad.yaml")
        with open(path, "w") as f:
            f.write(bad)
        line = bad.splitlines().index("      bogusField: 1") + 1
        out = subprocess.run([BIN, "check", "-c", path], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertRegex(out.stderr, rf"(?m)^{re.escape(path)}:{line}:7: error: SecurityPolicy "
                                     r"default/keys: spec\.jwt\.providers\[0\]\.bogusField: ")
        # A bad value (not only an unknown field) names its line too.
        bad2 = "---\n".join(self.docs("k-bad", extra=(
            "  cors:\n    maxAge: soon\n")))
        with open(path, "w") as f:
            f.write(bad2)
        line2 = bad2.splitlines().index("    maxAge: soon") + 1
        out = subprocess.run([BIN, "check", "-c", path], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertRegex(out.stderr, rf"(?m)^{re.escape(path)}:{line2}:\d+: error: "
                                     r"SecurityPolicy default/keys: spec\.cors\.maxAge: ")
        # The running gateway keeps its last good config.
        self.write(bad)
        time.sleep(0.7)
        self.gw.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        self.assertEqual(self.get("/api/x", {"X-Api-Key": "k-one"})[0], 200)
        self.assertEqual(self.get("/api/x", {"X-Api-Key": "k-bad"})[0], 401)
        # Portico keeps the last good version of the resource (or of the whole config).
        self.assertRegex(self.gw.output(),
                         r"keeping (the running configuration|its last good version)")

    def test_valid_policy_passes_check(self):
        path = os.path.join(self.tmp, "good.yaml")
        with open(path, "w") as f:
            f.write("---\n".join(self.docs("k-good") + [
                route_doc("other", "/other", "up"),
                policy_doc("jwt", "HTTPRoute", "other", jwt_section(provider()))]))
        out = subprocess.run([BIN, "check", "-c", path], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertNotIn("error", out.stderr)


if __name__ == "__main__":
    unittest.main()
