"""Real peers for the SecurityPolicy tests (test_security.py): signing keys and tokens made by
an independent JOSE implementation (Debian python3-jwt and python3-cryptography), a JWKS HTTP
server, an external authorization server, a counting upstream and htpasswd files written by
the real `htpasswd` (apache2-utils).

Nothing here knows Portico's code: the tokens and key sets are what an identity provider would
publish, the authorization server answers as a real one would.
"""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import threading
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import HMACAlgorithm, OKPAlgorithm, RSAAlgorithm

from harness import HttpPeer, QuietHandler

ISSUER = "https://idp.example.com"
AUDIENCE = "devices-api"
HMAC_SECRET = b"portico-test-hmac-secret-" + b"0123456789abcdef" * 5  # >= 64 bytes (HS512)

RSA_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
ALL_ALGS = RSA_ALGS + ["ES256", "ES384", "EdDSA", "HS256", "HS384", "HS512"]


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(obj):
    return b64url(json.dumps(obj, separators=(",", ":")))


def openssl_rsa_key(path):
    """An RSA key written by `openssl genpkey` (an implementation independent of Python's)."""
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", path], check=True, capture_output=True)
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


class SigningKey:
    """A private key, its kid and its public JWK."""

    def __init__(self, kid, private, kind):
        self.kid = kid
        self.private = private  # cryptography key object, or bytes for HMAC
        self.kind = kind        # "RSA", "EC256", "EC384", "OKP", "oct"

    def jwk(self):
        if self.kind == "RSA":
            d = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        elif self.kind in ("EC256", "EC384"):
            # By hand: PyJWT 2.6 drops leading zero bytes of x/y (RFC 7518 §6.2.1.2 wants the
            # full coordinate length), which a strict verifier rightly refuses.
            n = 32 if self.kind == "EC256" else 48
            pub = self.private.public_key().public_numbers()
            d = {"kty": "EC", "crv": "P-256" if n == 32 else "P-384",
                 "x": b64url(pub.x.to_bytes(n, "big")), "y": b64url(pub.y.to_bytes(n, "big"))}
        elif self.kind == "OKP":
            d = json.loads(OKPAlgorithm.to_jwk(self.private.public_key()))
        else:
            d = json.loads(HMACAlgorithm.to_jwk(self.private))
        d["kid"] = self.kid
        return d

    def public_pem(self):
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def secrets(self):
        """Strings that must never appear in an answer: the key material."""
        if self.kind == "oct":
            return [self.private.decode(), b64url(self.private)]
        out = [v for k, v in self.jwk().items() if k in ("n", "x", "y")]
        out.append("BEGIN PUBLIC KEY")
        out.append("BEGIN PRIVATE KEY")
        return out


def new_key(kind, kid, tmpdir=None):
    if kind == "RSA":
        if tmpdir:
            return SigningKey(kid, openssl_rsa_key(os.path.join(tmpdir, f"{kid}.pem")), kind)
        return SigningKey(kid, rsa.generate_private_key(65537, 2048), kind)
    if kind == "EC256":
        return SigningKey(kid, ec.generate_private_key(ec.SECP256R1()), kind)
    if kind == "EC384":
        return SigningKey(kid, ec.generate_private_key(ec.SECP384R1()), kind)
    if kind == "OKP":
        return SigningKey(kid, ed25519.Ed25519PrivateKey.generate(), kind)
    if kind == "oct":
        return SigningKey(kid, HMAC_SECRET, kind)
    raise ValueError(kind)


def kind_for(alg):
    if alg in RSA_ALGS:
        return "RSA"
    return {"ES256": "EC256", "ES384": "EC384", "EdDSA": "OKP"}.get(alg, "oct")


class KeySet:
    """One key per kind (RSA from openssl genpkey, P-256, P-384, Ed25519, an HMAC secret)."""

    def __init__(self, tmpdir=None, prefix="k"):
        self.keys = {kind: new_key(kind, f"{prefix}-{kind.lower()}",
                                   tmpdir if kind == "RSA" else None)
                     for kind in ("RSA", "EC256", "EC384", "OKP", "oct")}

    def jwks(self, kinds=None):
        return {"keys": [k.jwk() for kind, k in self.keys.items()
                         if kinds is None or kind in kinds]}

    def jwks_json(self, kinds=None):
        return json.dumps(self.jwks(kinds), separators=(",", ":"))

    def key(self, alg):
        return self.keys[kind_for(alg)]

    def token(self, alg="RS256", kid=None, **claims):
        k = self.key(alg)
        return make_token(k.private, alg, k.kid if kid is None else kid, **claims)

    def secrets(self):
        return [s for k in self.keys.values() for s in k.secrets()]


def claims(**extra):
    """Standard valid claims: iss, aud, exp in an hour, iat now, sub; `extra` adds/overrides.
    A value of None removes the claim."""
    now = int(time.time())
    c = {"iss": ISSUER, "aud": AUDIENCE, "sub": "device-7", "iat": now, "exp": now + 3600}
    c.update(extra)
    return {k: v for k, v in c.items() if v is not None}


def make_token(private, alg, kid, **extra):
    headers = {"kid": kid} if kid else {}
    return jwt.encode(claims(**extra), private, algorithm=alg, headers=headers)


# ---- Attacks (built by hand: PyJWT refuses to make most of them) ----------------------------

def token_alg_none(**extra):
    return b64url_json({"alg": "none", "typ": "JWT"}) + "." + b64url_json(claims(**extra)) + "."


def token_hmac_with_public_key(signing_key, alg="HS256", **extra):
    """HS256 signed with the RSA public key's PEM as the HMAC secret (the key-confusion attack),
    with the kid of the RSA key."""
    head = b64url_json({"alg": alg, "typ": "JWT", "kid": signing_key.kid})
    body = b64url_json(claims(**extra))
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    sig = hmac.new(signing_key.public_pem(), f"{head}.{body}".encode(), digest).digest()
    return f"{head}.{body}.{b64url(sig)}"


def token_stripped(token):
    head, body, _ = token.split(".")
    return f"{head}.{body}."


def token_tampered(token, **changes):
    """The payload changed after signing (the signature kept)."""
    head, body, sig = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload.update(changes)
    return f"{head}.{b64url_json(payload)}.{sig}"


# ---- JWKS server --------------------------------------------------------------------------

class JwksServer:
    """Serves a JWKS document at /jwks.json; set() replaces it (rotation), stop()/start() take
    the server down and up on the same port. `requests` counts the fetches."""

    def __init__(self, port, jwks=None, up=True):
        self.port = port
        self.body = json.dumps(jwks or {"keys": []}).encode()
        self.requests = 0
        self.lock = threading.Lock()
        self.peer = None
        if up:
            self.start()

    @property
    def uri(self):
        return f"http://127.0.0.1:{self.port}/jwks.json"

    def set(self, jwks):
        with self.lock:
            self.body = json.dumps(jwks).encode()

    def start(self):
        server = self

        class Handler(QuietHandler):
            def do_GET(self):
                with server.lock:
                    server.requests += 1
                    body = server.body
                if self.path.split("?")[0] != "/jwks.json":
                    self.send_response(404)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        # The port was picked free (or was ours a moment ago): retry while the kernel frees it.
        deadline = time.time() + 5
        while True:
            try:
                self.peer = HttpPeer(Handler, port=self.port)
                return
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self):
        if self.peer:
            self.peer.close()
            self.peer = None


# ---- External authorization server ---------------------------------------------------------

class AuthzServer:
    """An HTTP authorization service. The decision comes from the request's `x-authz` header:
      allow  -> 200, with x-user-id (copied upstream when listed in headersToBackend) and
                x-authz-internal (never listed: must not reach the upstream)
      slow   -> sleeps `slow_s` seconds, then 200 (for timeouts)
      other  -> 401, body "denied by authz: <reason>", headers x-deny-reason and
                www-authenticate: Custom realm="authz" (passed to the client as they are)
    Every request is recorded in `seen` (method, path, headers dict with lowercase names, body).
    """

    DENY_STATUS = 401
    DENY_BODY = b"denied by authz\n"

    def __init__(self, slow_s=1.5):
        self.slow_s = slow_s
        self.seen = []
        self.lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            def handle_any(self):
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n) if n else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                with server.lock:
                    server.seen.append({"method": self.command, "path": self.path,
                                        "headers": headers, "body": body})
                decision = headers.get("x-authz", "")
                if decision == "slow":
                    time.sleep(server.slow_s)
                    decision = "allow"
                if decision == "allow":
                    self.send_response(200)
                    self.send_header("x-user-id", "user-42")
                    self.send_header("x-authz-internal", "secret-detail")
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                self.send_response(server.DENY_STATUS)
                self.send_header("x-deny-reason", "policy-says-no")
                self.send_header("www-authenticate", 'Custom realm="authz"')
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(server.DENY_BODY)))
                self.end_headers()
                self.wfile.write(server.DENY_BODY)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = handle_any

            def do_HEAD(self):
                self.handle_any()

        self.peer = HttpPeer(Handler)
        self.port = self.peer.port

    def count(self):
        with self.lock:
            return len(self.seen)

    def last(self):
        with self.lock:
            return self.seen[-1] if self.seen else None

    def close(self):
        self.peer.close()


# ---- Counting upstream ---------------------------------------------------------------------

class CountingUpstream:
    """An upstream that answers like `portico echo` (JSON with method, path, query, headers)
    and counts the requests it gets (to prove what the gateway answered itself)."""

    def __init__(self, name="counting"):
        self.requests = []
        self.lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            def handle_any(self):
                n = int(self.headers.get("content-length") or 0)
                if n:
                    self.rfile.read(n)
                path, _, query = self.path.partition("?")
                doc = {"name": name, "method": self.command, "path": path, "query": query,
                       "headers": {k.lower(): v for k, v in self.headers.items()}}
                with server.lock:
                    server.requests.append(doc)
                body = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("x-request-id", "req-1")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = handle_any

        self.peer = HttpPeer(Handler)
        self.port = self.peer.port

    def count(self):
        with self.lock:
            return len(self.requests)

    def close(self):
        self.peer.close()


# ---- htpasswd ------------------------------------------------------------------------------

# Scheme name -> the htpasswd flag that writes it.
HTPASSWD_SCHEMES = {"bcrypt": "-B", "sha1": "-s", "apr1": "-m", "sha256": "-2", "sha512": "-5"}


def htpasswd_supports(flag):
    out = subprocess.run(["htpasswd"], capture_output=True, text=True)
    usage = out.stdout + out.stderr
    return f" {flag} " in usage or f"\n {flag}" in usage


def htpasswd(path, user, password, flag):
    """Adds `user` to the file at `path` (created if needed) with the real htpasswd."""
    args = ["htpasswd", "-b"]
    if not os.path.exists(path):
        args.append("-c")
    if flag == "-B":
        args += ["-B", "-C", "5"]
    else:
        args.append(flag)
    subprocess.run(args + [path, user, password], check=True, capture_output=True)


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
