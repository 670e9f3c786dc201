"""RequestMirror, per-backendRef filters, direct responses (HTTPRouteFilter) and the
per-Gateway responseOverride (404 page) through the real gateway, with real HTTP peers:
`portico echo` upstreams and a Python http.server that records what the mirror receives."""

import hashlib
import http.client
import json
import queue
import textwrap
import threading
import time
import unittest

from harness import GatewayTestCase, HttpPeer, QuietHandler, free_port


class Recorder:
    """An HTTP/1.1 server (http.server) recording every request; `hang` never answers."""

    def __init__(self, hang=False):
        self.requests = queue.Queue()
        recorder = self

        class Handler(QuietHandler):
            def handle_one(self):
                body = b""
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b""):
                                pass
                            break
                        body += self.rfile.read(size)
                        self.rfile.readline()
                else:
                    body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                recorder.requests.put((self.command, self.path,
                                       {k.lower(): v for k, v in self.headers.items()}, body))
                if hang:
                    time.sleep(30)
                    return
                self.send_response(200)
                self.send_header("Content-Length", "6")
                self.end_headers()
                self.wfile.write(b"mirror")

            do_GET = do_POST = do_PUT = do_HEAD = handle_one

        self.peer = HttpPeer(Handler, "127.0.0.1")
        self.port = self.peer.port

    def get(self, timeout=5):
        return self.requests.get(timeout=timeout)

    def close(self):
        self.peer.close()


def request(port, method, path, body=None, headers=None, host="example.com", chunked=False):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, body=body, headers={"Host": host, **(headers or {})},
                  encode_chunked=chunked)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def gateway_doc(port):
    return textwrap.dedent(f"""\
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {{name: gw}}
        spec:
          addresses: [{{type: IPAddress, value: 127.0.0.1}}]
          listeners: [{{name: http, port: {port}, protocol: HTTP}}]
        """)


def backend_doc(name, port):
    return (f"apiVersion: portico.dev/v1alpha1\nkind: Backend\nmetadata: {{name: {name}}}\n"
            f"spec:\n  endpoints: [{{address: 127.0.0.1, port: {port}}}]\n")


class Mirror(GatewayTestCase):
    def setUp(self):
        super().setUp()
        self.up = self.echo("up")
        self.rec = Recorder()
        self.hang = Recorder(hang=True)
        self.addCleanup(self.rec.close)
        self.addCleanup(self.hang.close)
        self.port = free_port()
        self.dead = free_port()  # nothing listens: connect refused
        route = textwrap.dedent("""\
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: mirrored}
            spec:
              parentRefs: [{name: gw}]
              rules:
              - matches: [{path: {type: PathPrefix, value: /copy}}]
                filters:
                - type: RequestHeaderModifier
                  requestHeaderModifier: {set: [{name: x-rule, value: "1"}]}
                - type: RequestMirror
                  requestMirror: {backendRef: {name: rec}}
                backendRefs: [{name: up}]
              - matches: [{path: {type: PathPrefix, value: /broken-mirrors}}]
                filters:
                - type: RequestMirror
                  requestMirror: {backendRef: {name: dead}}
                - type: RequestMirror
                  requestMirror: {backendRef: {name: hang}}
                backendRefs: [{name: up}]
              - matches: [{path: {type: PathPrefix, value: /half}}]
                filters:
                - type: RequestMirror
                  requestMirror: {backendRef: {name: rec}, fraction: {numerator: 1, denominator: 2}}
                backendRefs: [{name: up}]
              - matches: [{path: {type: PathPrefix, value: /none}}]
                filters:
                - type: RequestMirror
                  requestMirror: {backendRef: {name: rec}, percent: 0}
                backendRefs: [{name: up}]
            """)
        self.gateway("---\n".join([
            gateway_doc(self.port), route, backend_doc("up", self.up),
            backend_doc("rec", self.rec.port), backend_doc("dead", self.dead),
            backend_doc("hang", self.hang.port)]))

    def test_mirror_gets_a_copy_of_head_and_body(self):
        body = bytes(range(256)) * 400  # 100 KiB
        status, _, resp = request(self.port, "POST", "/copy/a?x=1", body=body,
                                  headers={"X-Client": "c"})
        self.assertEqual(status, 200)
        echoed = json.loads(resp)
        self.assertEqual(echoed["name"], "up")
        method, path, headers, got = self.rec.get()
        self.assertEqual((method, path), ("POST", "/copy/a?x=1"))
        self.assertEqual(headers.get("x-client"), "c")
        self.assertEqual(headers.get("x-rule"), "1")  # filters before the mirror apply
        self.assertEqual(headers.get("host"), "example.com")
        self.assertEqual(hashlib.sha256(got).hexdigest(), hashlib.sha256(body).hexdigest())

        # Chunked request bodies are mirrored re-framed, like the real request.
        def chunks():
            yield b"hello "
            yield b"mirror"
        status, _, _ = request(self.port, "PUT", "/copy/chunked", body=chunks(),
                               headers={"Transfer-Encoding": "chunked"}, chunked=True)
        self.assertEqual(status, 200)
        method, path, headers, got = self.rec.get()
        self.assertEqual((method, path, got), ("PUT", "/copy/chunked", b"hello mirror"))

    def test_failing_or_hanging_mirrors_do_not_touch_the_real_request(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        for i in range(20):
            c.request("POST", f"/broken-mirrors/{i}", body=b"x" * 1000,
                      headers={"Host": "example.com"})
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertEqual(json.loads(r.read())["path"], f"/broken-mirrors/{i}")
        c.close()
        self.hang.get()  # the hanging mirror did receive the copies
        _, metrics = self.admin_get("/stats/prometheus")
        failed = [ln for ln in metrics.splitlines()
                  if ln.startswith('portico_mirror_requests_total{result="failed"}')]
        self.assertEqual(len(failed), 1)
        self.assertGreaterEqual(int(failed[0].split()[-1]), 20)  # every refused copy

    def test_explain_lists_the_filters(self):
        _, text = self.admin_get("/explain?host=example.com&path=/copy/x")
        self.assertIn("filter RequestHeaderModifier: set x-rule", text)
        self.assertIn("filter RequestMirror to default/rec", text)
        _, text = self.admin_get("/explain?host=example.com&path=/half&format=json")
        self.assertEqual(json.loads(text)[0]["filters"],
                         ["RequestMirror to default/rec (50% of requests)"])

    def test_fraction_and_zero_percent(self):
        for i in range(200):
            self.assertEqual(request(self.port, "GET", f"/half/{i}")[0], 200)
            self.assertEqual(request(self.port, "GET", f"/none/{i}")[0], 200)
        # Copies arrive asynchronously: collect until 2 s pass without one (at most 20 s).
        deadline = time.time() + 20
        seen = []
        while time.time() < deadline:
            try:
                seen.append(self.rec.get(timeout=2)[1])
            except queue.Empty:
                break
        self.assertFalse([p for p in seen if p.startswith("/none")])
        self.assertTrue(60 <= len(seen) <= 140, f"{len(seen)} of 200 mirrored at 1/2")


class BackendRefFilters(GatewayTestCase):
    def test_filters_apply_only_to_the_chosen_backend_after_the_rules(self):
        a, b = self.echo("a"), self.echo("b")
        port = free_port()
        route = textwrap.dedent("""\
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: split}
            spec:
              parentRefs: [{name: gw}]
              rules:
              - matches: [{path: {type: PathPrefix, value: /api}}]
                filters:
                - type: RequestHeaderModifier
                  requestHeaderModifier:
                    set: [{name: x-rule, value: r}, {name: x-over, value: rule}]
                - type: ResponseHeaderModifier
                  responseHeaderModifier: {set: [{name: x-resp-rule, value: "1"}]}
                backendRefs:
                - name: a
                  weight: 1
                  filters:
                  - type: RequestHeaderModifier
                    requestHeaderModifier:
                      set: [{name: x-over, value: a}]
                      add: [{name: x-rule, value: plus-a}]
                  - type: ResponseHeaderModifier
                    responseHeaderModifier: {add: [{name: x-resp-a, value: yes}]}
                - name: b
                  weight: 1
                  filters:
                  - type: URLRewrite
                    urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}
            """)
        self.gateway("---\n".join([gateway_doc(port), route, backend_doc("a", a),
                                   backend_doc("b", b)]))
        seen = set()
        for i in range(60):
            status, headers, body = request(port, "GET", f"/api/x{i}")
            self.assertEqual(status, 200)
            e = json.loads(body)
            h = {k.lower(): v for k, v in e["headers"].items()} if isinstance(
                e["headers"], dict) else {k.lower(): v for k, v in e["headers"]}
            seen.add(e["name"])
            self.assertEqual(headers.get("x-resp-rule"), "1")
            if e["name"] == "a":
                self.assertEqual(e["path"], f"/api/x{i}")
                self.assertEqual(h.get("x-over"), "a")
                self.assertEqual(h.get("x-rule"), "r,plus-a")
                self.assertEqual(headers.get("x-resp-a"), "yes")
            else:
                self.assertEqual(e["path"], f"/v2/x{i}")
                self.assertEqual(h.get("x-over"), "rule")
                self.assertEqual(h.get("x-rule"), "r")
                self.assertNotIn("x-resp-a", headers)
        self.assertEqual(seen, {"a", "b"})


class DirectResponses(GatewayTestCase):
    def setUp(self):
        super().setUp()
        self.up = self.echo("up")
        self.port = free_port()
        docs = [gateway_doc(self.port), backend_doc("up", self.up), textwrap.dedent("""\
            apiVersion: portico.dev/v1alpha1
            kind: HTTPRouteFilter
            metadata: {name: maintenance}
            spec:
              directResponse:
                statusCode: 503
                contentType: application/json
                body: {type: Inline, inline: '{"status":"maintenance"}'}
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: r}
            spec:
              parentRefs: [{name: gw}]
              rules:
              - matches: [{path: {type: PathPrefix, value: /maint}}]
                filters:
                - type: ExtensionRef
                  extensionRef: {group: portico.dev, kind: HTTPRouteFilter, name: maintenance}
              - matches: [{path: {type: PathPrefix, value: /missing-filter}}]
                filters:
                - type: ExtensionRef
                  extensionRef: {group: portico.dev, kind: HTTPRouteFilter, name: nope}
              - matches: [{path: {type: PathPrefix, value: /broken}}]
                backendRefs: [{name: not-there}]
              - matches: [{path: {type: PathPrefix, value: /ok}}]
                backendRefs: [{name: up}]
            ---
            apiVersion: portico.dev/v1alpha1
            kind: TrafficPolicy
            metadata: {name: pages}
            spec:
              targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
              responseOverride:
              - match: {statusCodes: [{type: Value, value: 404}]}
                response:
                  contentType: text/html
                  body: {type: Inline, inline: "<h1>Nothing here</h1>\\n"}
              - match: {statusCodes: [{type: Range, range: {start: 500, end: 502}}]}
                response:
                  statusCode: 503
                  body: {type: Inline, inline: "try later\\n"}
            """)]
        self.gateway("---\n".join(docs))

    def test_direct_response(self):
        status, headers, body = request(self.port, "GET", "/maint/x")
        self.assertEqual(status, 503)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(json.loads(body), {"status": "maintenance"})
        status, headers, body = request(self.port, "HEAD", "/maint/x")
        self.assertEqual((status, body), (503, b""))
        self.assertEqual(headers["content-length"], str(len('{"status":"maintenance"}')))

    def test_unresolved_extension_ref_answers_500_and_others_work(self):
        # 500 is in the overridden range: the page and status of the override apply.
        status, headers, body = request(self.port, "GET", "/missing-filter")
        self.assertEqual((status, body), (503, b"try later\n"))
        self.assertEqual(request(self.port, "GET", "/ok")[0], 200)

    def test_not_found_page_and_overrides(self):
        status, headers, body = request(self.port, "GET", "/nowhere")
        self.assertEqual((status, body), (404, b"<h1>Nothing here</h1>\n"))
        self.assertEqual(headers["content-type"], "text/html")
        status, _, body = request(self.port, "GET", "/broken")  # unresolved backend: 500
        self.assertEqual((status, body), (503, b"try later\n"))
        # Upstream responses are not overridden.
        self.assertEqual(request(self.port, "GET", "/ok/x")[0], 200)

    def test_check_reports_the_unresolved_filter(self):
        import subprocess
        from harness import BIN
        out = subprocess.run([BIN, "check", "-c", self.tmp + "/gateway.yaml", "-o", "json"],
                             capture_output=True, text=True)
        self.assertIn("HTTPRouteFilter default/nope not found", out.stdout)


if __name__ == "__main__":
    unittest.main()
