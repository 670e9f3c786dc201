"""TLS termination on HTTPS listeners: certificates by SNI (exact, wildcard, default), Secrets
with base64 `data` and `stringData`, PEM files, TLS 1.2 and 1.3, ALPN, session resumption,
client certificates (mTLS) with x-forwarded-client-cert, bad certificates, rotation by reload,
plain HTTP sent to a TLS port. Certificates are made by the `openssl` CLI in a temp dir."""

import base64
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import textwrap
import time
import unittest

import http.server
import threading

from harness import (BIN, GatewayTestCase, HttpPeer, QuietHandler, free_port, raw_request,
                     sha256, status_of)


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=30, **kw)


class Pki:
    """A test CA in `directory` that issues server and client certificates."""

    def __init__(self, directory, name="ca"):
        self.dir = directory
        self.ca_key = os.path.join(directory, f"{name}.key")
        self.ca_crt = os.path.join(directory, f"{name}.crt")
        self.serial = 1
        self._ok(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.ca_key, "-out",
                  self.ca_crt, "-subj", f"/CN=Portico Test {name}", "-days", "2"])

    def _ok(self, args):
        p = run(args)
        if p.returncode != 0:
            raise AssertionError(f"{args}: {p.stderr}")

    def issue(self, name, cn, dns=(), uris=(), client=False):
        """Returns (cert path, key path) for a certificate with these names."""
        key = os.path.join(self.dir, f"{name}.key")
        csr = os.path.join(self.dir, f"{name}.csr")
        crt = os.path.join(self.dir, f"{name}.crt")
        ext = os.path.join(self.dir, f"{name}.ext")
        sans = [f"DNS:{d}" for d in dns] + [f"URI:{u}" for u in uris]
        with open(ext, "w") as f:
            if sans:
                f.write("subjectAltName=" + ",".join(sans) + "\n")
            f.write("extendedKeyUsage=" + ("clientAuth" if client else "serverAuth") + "\n")
        self._ok(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={cn}"])
        self.serial += 1
        self._ok(["openssl", "x509", "-req", "-in", csr, "-CA", self.ca_crt, "-CAkey",
                  self.ca_key, "-set_serial", str(self.serial), "-out", crt, "-days", "2",
                  "-extfile", ext])
        return crt, key


def read(path):
    with open(path) as f:
        return f.read()


def secret_data(name, crt, key):
    """A kubernetes.io/tls Secret with base64 `data`."""
    b64 = lambda p: base64.b64encode(read(p).encode()).decode()
    return (f"apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\n"
            f"type: kubernetes.io/tls\ndata:\n  tls.crt: {b64(crt)}\n  tls.key: {b64(key)}\n")


def secret_string_data(name, crt, key):
    """A kubernetes.io/tls Secret with plain PEM `stringData`."""
    ind = lambda p: textwrap.indent(read(p), "    ")
    return (f"apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\n"
            f"type: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{ind(crt)}"
            f"  tls.key: |\n{ind(key)}")


def config_map_ca(name, crt):
    ind = textwrap.indent(read(crt), "    ")
    return (f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n"
            f"data:\n  ca.crt: |\n{ind}")


class TlsTestCase(GatewayTestCase):
    def setUp(self):
        super().setUp()
        self.pki = Pki(self.tmp)
        self.echo_port = self.echo("echo")
        self.port = free_port()

    def yaml(self, listeners, *extra):
        """A Gateway with `listeners` (YAML list items), a catch-all route and extra docs."""
        gw = ("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\n"
              "spec:\n  addresses: [{type: IPAddress, value: 127.0.0.1}]\n  listeners:\n"
              + "".join(textwrap.indent(l, "  ") for l in listeners))
        route = ("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
                 "metadata: {name: all}\nspec:\n  parentRefs: [{name: gw}]\n"
                 "  rules:\n  - backendRefs: [{name: echo}]\n")
        backend = ("apiVersion: portico.dev/v1alpha1\nkind: Backend\nmetadata: {name: echo}\n"
                   f"spec:\n  endpoints: [{{address: 127.0.0.1, port: {self.echo_port}}}]\n")
        return "---\n".join([gw, route, backend, *extra])

    def listener(self, name, hostname=None, refs=(), options=None, ca_refs=(), port=None):
        text = f"- name: {name}\n  port: {port or self.port}\n  protocol: HTTPS\n"
        if hostname:
            text += f"  hostname: {hostname}\n"
        text += "  tls:\n    mode: Terminate\n"
        if refs:
            text += "    certificateRefs:\n" + "".join(f"    - {{kind: Secret, name: {r}}}\n"
                                                     for r in refs)
        if ca_refs:
            text += "    frontendValidation:\n      caCertificateRefs:\n" + "".join(
                f"      - {{group: '', kind: ConfigMap, name: {r}}}\n" for r in ca_refs)
        if options:
            text += "    options:\n" + "".join(f"      {k}: \"{v}\"\n"
                                              for k, v in options.items())
        return text

    def curl(self, host, path="/", extra=(), cert=None):
        """(exit code, HTTP status, body) of an HTTPS request to `host` on the gateway port."""
        args = ["curl", "-sS", "--max-time", "5", "--cacert", self.pki.ca_crt, "--resolve",
                f"{host}:{self.port}:127.0.0.1", "-o", "-", "-w", "\n%{http_code}", *extra]
        if cert:
            args += ["--cert", cert[0], "--key", cert[1]]
        p = run(args + [f"https://{host}:{self.port}{path}"])
        body, _, code = p.stdout.rpartition("\n")
        return p.returncode, int(code) if code.isdigit() else 0, body + p.stderr

    def s_client(self, servername=None, extra=(), request=None):
        """openssl s_client's output; with `request`, sent and read until the server closes."""
        args = ["openssl", "s_client", "-connect", f"127.0.0.1:{self.port}", *extra]
        if servername:
            args += ["-servername", servername]
        if request is None:
            return run(args, stdin=subprocess.DEVNULL).stdout
        return run(args + ["-ign_eof"], input=request).stdout

    def served_subject(self, servername):
        out = self.s_client(servername)
        for line in out.splitlines():
            if line.startswith("subject="):
                return line.split("CN", 1)[1].lstrip(" =")
        raise AssertionError(out)

    def echoed(self, body):
        return json.loads(body)


class Sni(TlsTestCase):
    def test_two_listeners_two_certificates_by_sni(self):
        a = self.pki.issue("a", "a.example.com", dns=["a.example.com"])
        b = self.pki.issue("b", "b.example.com", dns=["b.example.com"])
        self.gateway(self.yaml([self.listener("a", "a.example.com", ["cert-a"]),
                                self.listener("b", "b.example.com", ["cert-b"])],
                               secret_data("cert-a", *a), secret_string_data("cert-b", *b)))
        for host in ("a.example.com", "b.example.com"):
            code, status, body = self.curl(host)
            self.assertEqual((code, status), (0, 200), body)
            self.assertEqual(self.echoed(body)["headers"]["x-forwarded-proto"], "https")
            self.assertEqual(self.served_subject(host), host)
        # An unknown name gets the port's first listener's certificate.
        self.assertEqual(self.served_subject("other.test"), "a.example.com")

    def test_wildcard_exact_and_default_certificate(self):
        exact = self.pki.issue("exact", "api.example.com", dns=["api.example.com"])
        wild = self.pki.issue("wild", "wildcard", dns=["*.apps.example.com"])
        self.gateway(self.yaml([self.listener("https", None, ["exact", "wild"])],
                               secret_data("exact", *exact), secret_data("wild", *wild)))
        self.assertEqual(self.served_subject("api.example.com"), "api.example.com")
        self.assertEqual(self.served_subject("x.apps.example.com"), "wildcard")
        self.assertEqual(self.served_subject("unknown.test"), "api.example.com")  # default
        code, status, body = self.curl("shop.apps.example.com")
        self.assertEqual((code, status), (0, 200), body)

    def test_redirect_keeps_the_https_scheme(self):
        crt = self.pki.issue("m", "moved.example.com", dns=["moved.example.com"])
        moved = ("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
                 "metadata: {name: moved}\nspec:\n  parentRefs: [{name: gw}]\n"
                 "  hostnames: [moved.example.com]\n  rules:\n  - filters:\n"
                 "    - {type: RequestRedirect, requestRedirect: {hostname: new.example.com}}\n")
        self.gateway(self.yaml([self.listener("https", None, ["m"])], secret_data("m", *crt),
                               moved))
        code, status, out = self.curl("moved.example.com", "/x?y=1", extra=["-i"])
        self.assertEqual((code, status), (0, 302), out)
        self.assertIn(f"location: https://new.example.com:{self.port}/x?y=1", out.lower())

    def test_certificate_from_files_relative_to_the_config(self):
        crt, key = self.pki.issue("file", "files.example.com", dns=["files.example.com"])
        self.gateway(self.yaml([self.listener(
            "https", None, options={"portico.dev/certificate-file": os.path.basename(crt),
                                    "portico.dev/key-file": os.path.basename(key)})]))
        code, status, body = self.curl("files.example.com")
        self.assertEqual((code, status), (0, 200), body)


class Protocol(TlsTestCase):
    def setUp(self):
        super().setUp()
        self.cert = self.pki.issue("srv", "srv.example.com", dns=["srv.example.com"])

    def test_tls12_and_tls13(self):
        self.gateway(self.yaml([self.listener("https", None, ["srv"])],
                               secret_data("srv", *self.cert)))
        for flags in (["--tlsv1.2", "--tls-max", "1.2"], ["--tlsv1.3"]):
            code, status, body = self.curl("srv.example.com", extra=flags)
            self.assertEqual((code, status), (0, 200), f"{flags}: {body}")
        self.assertIn("Protocol  : TLSv1.2",
                      self.s_client("srv.example.com", ["-tls1_2"]).replace("Protocol :",
                                                                            "Protocol  :"))

    def test_min_version_13_refuses_tls12(self):
        self.gateway(self.yaml([self.listener("https", None, ["srv"],
                                              options={"portico.dev/min-version": "1.3"})],
                               secret_data("srv", *self.cert)))
        code, _, _ = self.curl("srv.example.com", extra=["--tlsv1.2", "--tls-max", "1.2"])
        self.assertNotEqual(code, 0)
        code, status, body = self.curl("srv.example.com", extra=["--tlsv1.3"])
        self.assertEqual((code, status), (0, 200), body)

    def test_alpn_h2_and_http11(self):
        self.gateway(self.yaml([self.listener("https", None, ["srv"])],
                               secret_data("srv", *self.cert)))
        out = self.s_client("srv.example.com", ["-alpn", "h2,http/1.1"])
        self.assertIn("ALPN protocol: h2", out)
        out = self.s_client("srv.example.com", ["-alpn", "http/1.1"])
        self.assertIn("ALPN protocol: http/1.1", out)
        code, status, body = self.curl("srv.example.com", extra=["--http2"])
        self.assertEqual((code, status), (0, 200), body)
        code, status, body = self.curl("srv.example.com", extra=["--http1.1"])
        self.assertEqual((code, status), (0, 200), body)

    def test_session_resumption(self):
        self.gateway(self.yaml([self.listener("https", None, ["srv"])],
                               secret_data("srv", *self.cert)))
        for version in ("-tls1_2", "-tls1_3"):
            sess = os.path.join(self.tmp, f"session{version}")
            # The request lets the client read the session tickets before it exits.
            request = "GET / HTTP/1.1\r\nHost: srv.example.com\r\nConnection: close\r\n\r\n"
            first = self.s_client("srv.example.com", [version, "-sess_out", sess], request)
            self.assertIn("New,", first)
            second = self.s_client("srv.example.com", [version, "-sess_in", sess], request)
            self.assertIn("Reused,", second, version)
            self.assertIn("HTTP/1.1 200 OK", second)
        # The ticket key is the process's: sessions resume across a reload.
        applied = self.gw.output().count("applied")
        self.gw.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while time.time() < deadline and self.gw.output().count("applied") == applied:
            time.sleep(0.05)
        third = self.s_client("srv.example.com", ["-tls1_3", "-sess_in", sess], request)
        self.assertIn("Reused,", third)

    def test_large_bodies_both_ways_over_tls(self):
        size = 8 << 20
        payload = os.urandom(size)

        class Big(QuietHandler):
            def do_GET(h):
                h.send_response(200)
                h.send_header("content-length", str(size))
                h.end_headers()
                h.wfile.write(payload)

        big = HttpPeer(Big)
        self.addCleanup(big.close)
        backend = ("apiVersion: portico.dev/v1alpha1\nkind: Backend\nmetadata: {name: big}\n"
                   f"spec:\n  endpoints: [{{address: 127.0.0.1, port: {big.port}}}]\n")
        route = ("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
                 "metadata: {name: big}\nspec:\n  parentRefs: [{name: gw}]\n"
                 "  hostnames: [big.example.com]\n  rules:\n  - backendRefs: [{name: big}]\n")
        self.gateway(self.yaml([self.listener("https", None, ["srv"])],
                               secret_data("srv", *self.cert), backend, route))
        ctx = ssl.create_default_context(cafile=self.pki.ca_crt)
        ctx.check_hostname = False
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=30)
        c.request("GET", "/", headers={"Host": "big.example.com"})
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(sha256(r.read()), sha256(payload))
        # Upload on the same connection: the echo counts the bytes.
        c.request("POST", "/up", body=payload, headers={"Host": "srv.example.com"})
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(json.loads(r.read())["body_bytes"], size)
        c.close()

    def test_plain_http_to_the_tls_port_is_refused_and_the_port_keeps_serving(self):
        self.gateway(self.yaml([self.listener("https", None, ["srv"])],
                               secret_data("srv", *self.cert)))
        answer = raw_request(self.port, b"GET / HTTP/1.1\r\nHost: srv.example.com\r\n\r\n")
        self.assertEqual(status_of(answer), 400, answer)
        self.assertIn(b"plain HTTP request sent to an HTTPS port", answer)
        # Garbage that is not HTTP either: the connection is closed.
        self.assertEqual(raw_request(self.port, b"\x00\x01garbage\r\n\r\n"), b"")
        code, status, body = self.curl("srv.example.com")
        self.assertEqual((code, status), (0, 200), body)

    def test_a_stalled_handshake_is_closed_at_the_header_timeout(self):
        policy = ("apiVersion: portico.dev/v1alpha1\nkind: TrafficPolicy\n"
                  "metadata: {name: p}\nspec:\n"
                  "  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]\n"
                  "  timeouts: {requestHeaders: 1s}\n")
        self.gateway(self.yaml([self.listener("https", None, ["srv"])],
                               secret_data("srv", *self.cert), policy))
        start = time.time()
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"\x16\x03\x01\x00\xff")  # the start of a ClientHello, never finished
            self.assertEqual(s.recv(100), b"")
        self.assertLess(time.time() - start, 3)
        code, status, body = self.curl("srv.example.com")
        self.assertEqual((code, status), (0, 200), body)

    def test_http_and_https_listeners_on_one_port_conflict(self):
        path = os.path.join(self.tmp, "gw.yaml")
        http_listener = f"- name: plain\n  port: {self.port}\n  protocol: HTTP\n"
        with open(path, "w") as f:
            f.write(self.yaml([self.listener("https", None, ["srv"]), http_listener],
                              secret_data("srv", *self.cert)))
        p = run([BIN, "check", "-c", path])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("spec.listeners[1]: Conflicted", p.stdout + p.stderr)


class Http2OverTls(TlsTestCase):
    """ALPN h2: HTTP/2 clients and gRPC over TLS on an HTTPS listener."""

    def test_curl_http2_over_tls(self):
        crt, key = self.pki.issue("srv", "srv.example.com", dns=["srv.example.com"])
        self.gateway(self.yaml([self.listener("https", None, ["srv"])],
                               secret_data("srv", crt, key)))
        p = run(["curl", "-sS", "--max-time", "5", "--cacert", self.pki.ca_crt, "--http2",
                 "--resolve", f"srv.example.com:{self.port}:127.0.0.1", "-D", "-",
                 f"https://srv.example.com:{self.port}/h2?x=1"])
        self.assertEqual(p.returncode, 0, p.stderr)
        head, _, body = p.stdout.replace("\r\n", "\n").partition("\n\n")
        self.assertTrue(head.startswith("HTTP/2 200"), head)
        echoed = self.echoed(body)
        self.assertEqual(echoed["path"], "/h2")
        self.assertEqual(echoed["headers"]["x-forwarded-proto"], "https")

    def test_grpc_over_tls(self):
        import grpc
        from grpc_peer import TestServer
        server = TestServer()
        self.addCleanup(server.close)
        crt, key = self.pki.issue("srv", "srv.example.com", dns=["srv.example.com"])
        grpc_backend = ("apiVersion: portico.dev/v1alpha1\nkind: Backend\nmetadata: {name: rpc}\n"
                        f"spec:\n  protocol: grpc\n  endpoints: [{{address: 127.0.0.1, "
                        f"port: {server.port}}}]\n")
        grpc_route = ("apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\n"
                      "metadata: {name: rpc}\nspec:\n  parentRefs: [{name: gw}]\n  rules:\n"
                      "  - matches: [{method: {service: grpc.testing.OtherService}}]\n"
                      "    backendRefs: [{group: portico.dev, kind: Backend, name: rpc}]\n")
        self.gateway(self.yaml([self.listener("https", None, ["srv"])],
                               secret_data("srv", crt, key), grpc_backend, grpc_route))
        with open(self.pki.ca_crt, "rb") as f:
            creds = grpc.ssl_channel_credentials(f.read())
        channel = grpc.secure_channel(f"127.0.0.1:{self.port}", creds,
                                      options=[("grpc.ssl_target_name_override",
                                                "srv.example.com")])
        self.addCleanup(channel.close)
        reply = channel.unary_unary("/grpc.testing.OtherService/Call")(b"", timeout=5)
        self.assertEqual(reply, b"other")
        self.assertEqual(server.calls, ["OtherService/Call"] if server.calls and
                         "/" in server.calls[0] else server.calls)


class ClientCertificates(TlsTestCase):
    def setUp(self):
        super().setUp()
        self.cert = self.pki.issue("srv", "srv.example.com", dns=["srv.example.com"])
        self.client = self.pki.issue("client", "client", dns=["client.example.com"],
                                     uris=["spiffe://example.com/client"], client=True)
        other = Pki(self.tmp, "other-ca")
        self.stranger = other.issue("stranger", "stranger", client=True)

    def start_mtls(self, mode=None):
        options = {"portico.dev/client-certificate-mode": mode} if mode else None
        self.gateway(self.yaml([self.listener("https", None, ["srv"], options=options,
                                              ca_refs=["client-ca"])],
                               secret_data("srv", *self.cert),
                               config_map_ca("client-ca", self.pki.ca_crt)))

    def test_required_client_certificate(self):
        self.start_mtls()
        code, _, out = self.curl("srv.example.com")
        self.assertNotEqual(code, 0, "no client certificate must fail the handshake")
        code, _, out = self.curl("srv.example.com", cert=self.stranger)
        self.assertNotEqual(code, 0, "a certificate from another CA must fail")
        s = self.s_client("srv.example.com", ["-tls1_3"])
        self.assertNotIn("Verify return code: 0 (ok)\n---\nDONE", s)
        code, status, body = self.curl("srv.example.com", cert=self.client,
                                       extra=["-H", "X-Forwarded-Client-Cert: Subject=forged"])
        self.assertEqual((code, status), (0, 200), body)
        xfcc = self.echoed(body)["headers"]["x-forwarded-client-cert"]
        self.assertIn('Subject="CN=client"', xfcc)
        self.assertIn("URI=spiffe://example.com/client", xfcc)
        self.assertIn("DNS=client.example.com", xfcc)
        self.assertRegex(xfcc, r"^Hash=[0-9a-f]{64};")
        self.assertNotIn("forged", xfcc)

    def test_http2_client_certificate_reaches_the_upstream(self):
        # The same over HTTP/2 (ALPN h2): the verified certificate, never the client's header.
        self.start_mtls()
        p = run(["curl", "-sS", "--max-time", "5", "--cacert", self.pki.ca_crt, "--http2",
                 "--cert", self.client[0], "--key", self.client[1], "-H",
                 "X-Forwarded-Client-Cert: forged", "--resolve",
                 f"srv.example.com:{self.port}:127.0.0.1", "-D", "-",
                 f"https://srv.example.com:{self.port}/"])
        self.assertEqual(p.returncode, 0, p.stderr)
        head, _, body = p.stdout.replace("\r\n", "\n").partition("\n\n")
        self.assertTrue(head.startswith("HTTP/2 200"), head)
        headers = self.echoed(body)["headers"]
        self.assertIn('Subject="CN=client"', headers["x-forwarded-client-cert"])
        self.assertNotIn("forged", headers["x-forwarded-client-cert"])
        self.assertEqual(headers["x-forwarded-proto"], "https")

    def test_required_handshake_fails_with_certificate_required_alert(self):
        self.start_mtls()
        ctx = ssl.create_default_context(cafile=self.pki.ca_crt)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="srv.example.com") as s:
                # TLS 1.3: the client learns of the refusal on its first read.
                with self.assertRaises(ssl.SSLError) as caught:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: srv.example.com\r\n\r\n")
                    s.recv(100)
        self.assertIn("CERTIFICATE_REQUIRED", str(caught.exception).upper())

    def test_optional_client_certificate(self):
        self.start_mtls("Optional")
        code, status, body = self.curl("srv.example.com",
                                       extra=["-H", "x-forwarded-client-cert: By=forged"])
        self.assertEqual((code, status), (0, 200), body)
        self.assertNotIn("x-forwarded-client-cert", self.echoed(body)["headers"])
        code, status, body = self.curl("srv.example.com", cert=self.client)
        self.assertEqual((code, status), (0, 200), body)
        self.assertIn('Subject="CN=client"',
                      self.echoed(body)["headers"]["x-forwarded-client-cert"])

    def test_plain_port_strips_client_sent_xfcc(self):
        plain = f"- name: plain\n  port: {self.port}\n  protocol: HTTP\n"
        self.gateway(self.yaml([plain]))
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        c.request("GET", "/", headers={"X-Forwarded-Client-Cert": "Subject=forged"})
        body = self.echoed(c.getresponse().read())
        self.assertNotIn("x-forwarded-client-cert", body["headers"])
        self.assertEqual(body["headers"]["x-forwarded-proto"], "http")


class BadCertificates(TlsTestCase):
    def test_bad_certificate_rejects_only_its_listener(self):
        good = self.pki.issue("good", "good.example.com", dns=["good.example.com"])
        other = self.pki.issue("other", "other.example.com", dns=["other.example.com"])
        bad = ("apiVersion: v1\nkind: Secret\nmetadata: {name: bad}\ntype: kubernetes.io/tls\n"
               "stringData:\n  tls.crt: not a certificate\n  tls.key: not a key\n")
        listeners = [self.listener("good", "good.example.com", ["good"]),
                     self.listener("bad", "bad.example.com", ["bad"]),
                     self.listener("mismatch", "mismatch.example.com", ["mismatch"]),
                     self.listener("missing", "missing.example.com", ["nowhere"])]
        # A key that belongs to another certificate.
        mismatch = secret_data("mismatch", good[0], other[1])
        text = self.yaml(listeners, secret_data("good", *good), bad, mismatch)
        path = os.path.join(self.tmp, "gw.yaml")
        with open(path, "w") as f:
            f.write(text)
        p = run([BIN, "check", "-c", path])
        self.assertNotEqual(p.returncode, 0)
        out = p.stdout + p.stderr
        lines = text.splitlines()
        bad_line = next(i for i, l in enumerate(lines) if "name: bad}" in l) + 1
        self.assertIn(f"{path}:{bad_line}:9: error: Gateway default/gw: "
                      "spec.listeners[1].tls.certificateRefs[0]: "
                      "ResolvedRefs=False/InvalidCertificateRef: Secret default/bad", out)
        self.assertIn("tls.crt: no PEM certificate", out)
        # The Secret itself is in error too, at its field (a reload keeps its last good version).
        crt_line = next(i for i, l in enumerate(lines) if "tls.crt: not a certificate" in l) + 1
        self.assertIn(f"{path}:{crt_line}:12: error: Secret default/bad: stringData.tls.crt: "
                      "tls.crt: no PEM certificate could be read", out)
        self.assertIn("spec.listeners[2].tls.certificateRefs[0]: ResolvedRefs=False/"
                      "InvalidCertificateRef", out)
        self.assertIn("tls.key does not match the certificate", out)
        self.assertIn("Secret default/nowhere not found", out)

        self.gateway(text)
        code, status, body = self.curl("good.example.com")
        self.assertEqual((code, status), (0, 200), body)
        _, dump = self.admin_get("/config_dump")
        # Secrets are listed, never their content.
        self.assertNotIn(base64.b64encode(read(good[1]).encode()).decode()[:40], dump)
        self.assertNotIn("not a key", dump)
        port = json.loads(dump)["ports"][0]
        self.assertEqual(port["tls"]["alpn"], ["h2", "http/1.1"])
        self.assertEqual(port["tls"]["listeners"][0]["certificates"][0]["names"],
                         ["good.example.com"])
        gw = next(r for r in json.loads(dump)["resources"] if r["kind"] == "Gateway")
        bad_status = gw["status"]["listeners"][1]
        refs = next(c for c in bad_status["conditions"] if c["type"] == "ResolvedRefs")
        self.assertEqual((refs["status"], refs["reason"]), ("False", "InvalidCertificateRef"))
        programmed = next(c for c in bad_status["conditions"] if c["type"] == "Programmed")
        self.assertEqual(programmed["status"], "False")

    def test_host_of_an_mtls_listener_on_another_listeners_connection_is_misdirected(self):
        a = self.pki.issue("a", "a.example.com", dns=["a.example.com"])
        b = self.pki.issue("b", "b.example.com", dns=["b.example.com"])
        mtls = self.listener("b", "b.example.com", ["cert-b"], ca_refs=["client-ca"])
        self.gateway(self.yaml([self.listener("a", "a.example.com", ["cert-a"]), mtls],
                               secret_data("cert-a", *a), secret_data("cert-b", *b),
                               config_map_ca("client-ca", self.pki.ca_crt)))
        # SNI a.example.com (no client certificate asked), Host b.example.com (mTLS).
        code, status, body = self.curl("a.example.com", extra=["-H", "Host: b.example.com"])
        self.assertEqual((code, status), (0, 421), body)
        code, status, body = self.curl("a.example.com")
        self.assertEqual((code, status), (0, 200), body)

    def test_passthrough_is_not_supported_yet(self):
        path = os.path.join(self.tmp, "gw.yaml")
        listener = self.listener("tls", None, ["x"]).replace("Terminate", "Passthrough")
        with open(path, "w") as f:
            f.write(self.yaml([listener]))
        p = run([BIN, "check", "-c", path])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("spec.listeners[0].tls.mode: mode Passthrough is not supported yet",
                      p.stdout + p.stderr)


class Rotation(TlsTestCase):
    def test_certificate_file_change_reloads_by_itself(self):
        # One file with the certificate and its key: replaced by one rename.
        crt, key = self.pki.issue("v1", "v1.example.com", dns=["rot.example.com"])
        live = os.path.join(self.tmp, "site.pem")
        with open(live, "w") as f:
            f.write(read(crt) + read(key))
        self.gateway(self.yaml([self.listener(
            "https", None, options={"portico.dev/certificate-file": "site.pem"})]))
        self.assertEqual(self.served_subject("rot.example.com"), "v1.example.com")
        crt2, key2 = self.pki.issue("v2", "v2.example.com", dns=["rot.example.com"])
        with open(live + ".tmp", "w") as f:
            f.write(read(crt2) + read(key2))
        os.rename(live + ".tmp", live)
        deadline = time.time() + 5
        while time.time() < deadline and self.served_subject("rot.example.com") != "v2.example.com":
            time.sleep(0.05)
        self.assertEqual(self.served_subject("rot.example.com"), "v2.example.com",
                         self.gw.output())

    def test_a_bad_secret_on_reload_keeps_the_last_good_certificate(self):
        good = self.pki.issue("good", "good.example.com", dns=["good.example.com"])
        listeners = [self.listener("https", None, ["cert"])]
        self.gateway(self.yaml(listeners, secret_data("cert", *good)))
        self.assertEqual(self.served_subject("good.example.com"), "good.example.com")
        other = self.pki.issue("other", "other.example.com", dns=["other.example.com"])
        path = os.path.join(self.tmp, "gateway.yaml")
        with open(path + ".tmp", "w") as f:
            f.write(self.yaml(listeners, secret_data("cert", good[0], other[1])))
        os.rename(path + ".tmp", path)
        deadline = time.time() + 5
        while time.time() < deadline and "keeping its last good" not in self.gw.output():
            time.sleep(0.05)
        self.assertIn("Secret default/cert is invalid: keeping its last good version",
                      self.gw.output())
        code, status, body = self.curl("good.example.com")
        self.assertEqual((code, status), (0, 200), body)

    def test_reload_rotates_the_certificate_and_keeps_open_connections(self):
        crt, key = self.pki.issue("v1", "v1.example.com", dns=["rot.example.com"])
        live_crt, live_key = os.path.join(self.tmp, "live.crt"), os.path.join(self.tmp, "live.key")
        os.rename(crt, live_crt)
        os.rename(key, live_key)
        self.gateway(self.yaml([self.listener(
            "https", None, options={"portico.dev/certificate-file": "live.crt",
                                    "portico.dev/key-file": "live.key"})]))
        self.assertEqual(self.served_subject("rot.example.com"), "v1.example.com")
        ctx = ssl.create_default_context(cafile=self.pki.ca_crt)
        keep = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=5)
        keep._tunnel_host = None
        keep.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.port)),
                                    server_hostname="rot.example.com")
        keep.request("GET", "/before", headers={"Host": "rot.example.com"})
        self.assertEqual(keep.getresponse().read() and 200, 200)

        crt2, key2 = self.pki.issue("v2", "v2.example.com", dns=["rot.example.com"])
        os.rename(key2, live_key)
        os.rename(crt2, live_crt)
        self.gw.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while time.time() < deadline and self.served_subject("rot.example.com") != "v2.example.com":
            time.sleep(0.05)
        self.assertEqual(self.served_subject("rot.example.com"), "v2.example.com")
        keep.request("GET", "/after", headers={"Host": "rot.example.com"})
        r = keep.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(json.loads(r.read())["path"], "/after")
        keep.close()


class TlsUpstream:
    """An HTTPS/1.1 peer that answers JSON with the SNI and client certificate it saw."""

    def __init__(self, cert, client_ca=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*cert)
        self.sni = []
        ctx.sni_callback = lambda sock, name, c: self.sni.append(name)
        if client_ca:
            ctx.load_verify_locations(client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED

        class Handler(QuietHandler):
            def do_GET(h):
                peer = h.connection.getpeercert()
                client = dict(x[0] for x in peer["subject"])["commonName"] if peer else ""
                body = json.dumps({"path": h.path, "client": client}).encode()
                h.send_response(200)
                h.send_header("content-length", str(len(body)))
                h.end_headers()
                h.wfile.write(body)

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class UpstreamTls(TlsTestCase):
    def setUp(self):
        super().setUp()
        self.up_cert = self.pki.issue("up", "upstream.example.com", dns=["upstream.example.com"])
        self.gw_client = self.pki.issue("gwc", "portico-gw", client=True)
        self.upstream = TlsUpstream(self.up_cert, client_ca=self.pki.ca_crt)
        self.addCleanup(self.upstream.close)

    def config(self, tls):
        listener = f"- name: plain\n  port: {self.port}\n  protocol: HTTP\n"
        route = ("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
                 "metadata: {name: secure}\nspec:\n  parentRefs: [{name: gw}]\n"
                 "  hostnames: [secure.test]\n  rules:\n  - backendRefs: [{name: secure}]\n")
        backend = ("apiVersion: portico.dev/v1alpha1\nkind: Backend\nmetadata: {name: secure}\n"
                   f"spec:\n  endpoints: [{{address: 127.0.0.1, port: {self.upstream.port}}}]\n"
                   f"  tls: {tls}\n")
        return self.yaml([listener], route, backend, config_map_ca("upstream-ca", self.pki.ca_crt),
                         secret_data("gw-client", *self.gw_client))

    def get(self, conn, path="/"):
        conn.request("GET", path, headers={"Host": "secure.test"})
        r = conn.getresponse()
        return r.status, r.read()

    def test_http2_client_to_a_tls_backend(self):
        # The HTTP/2 stream path takes the Backend's TLS too (h2c client, HTTP/1.1 over TLS up).
        self.gateway(self.config("{sni: upstream.example.com, caCertificateRefs: [{group: '', "
                                 "kind: ConfigMap, name: upstream-ca}], clientCertificateRef: "
                                 "{name: gw-client}}"))
        p = run(["curl", "-sS", "--max-time", "5", "--http2-prior-knowledge", "-H",
                 "host: secure.test", "-D", "-", f"http://127.0.0.1:{self.port}/via-h2"])
        self.assertEqual(p.returncode, 0, p.stderr)
        head, _, body = p.stdout.replace("\r\n", "\n").partition("\n\n")
        self.assertTrue(head.startswith("HTTP/2 200"), head + body)

    def test_verified_tls_with_sni_and_client_certificate_pooled(self):
        self.gateway(self.config("{sni: upstream.example.com, caCertificateRefs: [{group: '', "
                                 "kind: ConfigMap, name: upstream-ca}], clientCertificateRef: "
                                 "{name: gw-client}}"))
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        for i in range(3):
            status, body = self.get(c, f"/r{i}")
            self.assertEqual(status, 200, body)
            self.assertEqual(json.loads(body), {"path": f"/r{i}", "client": "portico-gw"})
        self.assertEqual(self.upstream.sni, ["upstream.example.com"])  # one pooled connection

    def test_wrong_server_name_or_ca_fails_and_insecure_skip_verify_does_not_check(self):
        self.gateway(self.config("{sni: other.example.com, caCertificateRefs: [{group: '', "
                                 "kind: ConfigMap, name: upstream-ca}], clientCertificateRef: "
                                 "{name: gw-client}}"))
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        status, body = self.get(c)
        self.assertEqual(status, 502, body)
        self.gw.stop()
        self.procs.remove(self.gw)
        self.gateway(self.config("{insecureSkipVerify: true, clientCertificateRef: "
                                 "{name: gw-client}}"))
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        status, body = self.get(c)
        self.assertEqual(status, 200, body)

    def test_unresolved_ca_rejects_the_backend(self):
        path = os.path.join(self.tmp, "gw.yaml")
        with open(path, "w") as f:
            f.write(self.config("{caCertificateRefs: [{group: '', kind: ConfigMap, name: nope}]}"))
        p = run([BIN, "check", "-c", path])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("error: Backend default/secure: spec.tls.caCertificateRefs[0]: "
                      "ResolvedRefs=False/InvalidCACertificateRef: ConfigMap default/nope not found",
                      p.stdout + p.stderr)


class GrpcUpstreamTls(TlsTestCase):
    """A gRPC Backend over TLS (spec.tls + protocol grpc): HTTP/2 with ALPN h2 to a grpcio
    server with a certificate, verified against the CA, from a plaintext gRPC client."""

    def test_grpc_backend_over_tls(self):
        import grpc
        from concurrent import futures
        crt, key = self.pki.issue("grpc-up", "grpc.example.com", dns=["grpc.example.com"])
        server = grpc.server(futures.ThreadPoolExecutor(4))
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "t.S", {"U": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req + b"!")}),))
        creds = grpc.ssl_server_credentials([(read(key).encode(), read(crt).encode())])
        up_port = server.add_secure_port("127.0.0.1:0", creds)
        server.start()
        self.addCleanup(lambda: server.stop(None))
        listener = f"- name: plain\n  port: {self.port}\n  protocol: HTTP\n"
        route = ("apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\n"
                 "metadata: {name: rpc}\nspec:\n  parentRefs: [{name: gw}]\n"
                 "  rules:\n  - backendRefs: [{group: portico.dev, kind: Backend, name: rpc}]\n")
        backend = ("apiVersion: portico.dev/v1alpha1\nkind: Backend\nmetadata: {name: rpc}\n"
                   f"spec:\n  protocol: grpc\n  endpoints: [{{address: 127.0.0.1, port: {up_port}}}]\n"
                   "  tls: {sni: grpc.example.com, caCertificateRefs: [{group: '', kind: ConfigMap, "
                   "name: upstream-ca}]}\n")
        self.gateway(self.yaml([listener], route, backend,
                               config_map_ca("upstream-ca", self.pki.ca_crt)))
        channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.addCleanup(channel.close)
        self.assertEqual(channel.unary_unary("/t.S/U")(b"secure", timeout=5), b"secure!")


if __name__ == "__main__":
    unittest.main()
