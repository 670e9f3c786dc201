"""HTTPRoute filters through the real gateway: RequestHeaderModifier, ResponseHeaderModifier,
RequestRedirect and URLRewrite (Gateway API v1 semantics)."""

import http.client
import json
import textwrap
import unittest

from harness import GatewayTestCase, free_port, raw_request, status_of


class Filters(GatewayTestCase):
    def setUp(self):
        super().setUp()
        self.up = self.echo("up")
        self.port = free_port()
        config = textwrap.dedent(f"""\
            apiVersion: gateway.networking.k8s.io/v1
            kind: Gateway
            metadata: {{name: gw}}
            spec:
              addresses: [{{type: IPAddress, value: 127.0.0.1}}]
              listeners: [{{name: http, port: {self.port}, protocol: HTTP}}]
            ---
            apiVersion: portico.dev/v1alpha1
            kind: Backend
            metadata: {{name: up}}
            spec:
              endpoints: [{{address: 127.0.0.1, port: {self.up}}}]
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {{name: filters}}
            spec:
              parentRefs: [{{name: gw}}]
              rules:
              - matches: [{{path: {{type: PathPrefix, value: /headers}}}}]
                filters:
                - type: RequestHeaderModifier
                  requestHeaderModifier:
                    set: [{{name: X-Env, value: prod}}, {{name: x-new, value: "1"}}]
                    add: [{{name: My-Header, value: a}}, {{name: x-added, value: b}}]
                    remove: [X-Debug]
                - type: ResponseHeaderModifier
                  responseHeaderModifier:
                    set: [{{name: x-echo-name, value: hidden}}]
                    add: [{{name: content-type, value: x}}, {{name: x-resp, value: "2"}}]
                    remove: [X-Nope]
                backendRefs: [{{name: up}}]
              - matches: [{{path: {{type: PathPrefix, value: /strip}}}}]
                filters:
                - type: ResponseHeaderModifier
                  responseHeaderModifier: {{remove: [Content-Type]}}
                backendRefs: [{{name: up}}]
              - matches: [{{path: {{type: Exact, value: /redir/default}}}}]
                filters: [{{type: RequestRedirect, requestRedirect: {{}}}}]
              - matches: [{{path: {{type: Exact, value: /redir/https}}}}]
                filters:
                - type: RequestRedirect
                  requestRedirect: {{scheme: https, hostname: new.example.com, statusCode: 301}}
              - matches: [{{path: {{type: Exact, value: /redir/port}}}}]
                filters:
                - type: RequestRedirect
                  requestRedirect: {{scheme: http, port: 8081, statusCode: 308,
                                    path: {{type: ReplaceFullPath, replaceFullPath: /new}}}}
              - matches: [{{path: {{type: Exact, value: /redir/http80}}}}]
                filters:
                - type: RequestRedirect
                  requestRedirect: {{port: 80}}
              - matches: [{{path: {{type: PathPrefix, value: /old}}}}]
                filters:
                - type: RequestRedirect
                  requestRedirect: {{statusCode: 307, path: {{type: ReplacePrefixMatch, replacePrefixMatch: /new/}}}}
              - matches: [{{path: {{type: PathPrefix, value: /host}}}}]
                filters: [{{type: URLRewrite, urlRewrite: {{hostname: internal.svc}}}}]
                backendRefs: [{{name: up}}]
              - matches: [{{path: {{type: PathPrefix, value: /full}}}}]
                filters:
                - type: URLRewrite
                  urlRewrite: {{path: {{type: ReplaceFullPath, replaceFullPath: /replaced}}}}
                backendRefs: [{{name: up}}]
              - matches: [{{path: {{type: PathPrefix, value: /foo/}}}}]
                filters:
                - type: URLRewrite
                  urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /xyz}}}}
                backendRefs: [{{name: up}}]
              - matches: [{{path: {{type: PathPrefix, value: /gone}}}}]
                filters:
                - type: URLRewrite
                  urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /}}}}
                backendRefs: [{{name: up}}]
              - matches: [{{path: {{type: PathPrefix, value: /empty}}}}]
                filters:
                - type: URLRewrite
                  urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: ""}}}}
                backendRefs: [{{name: up}}]
            """)
        self.gateway(config)

    def request(self, path, headers=None, host="site.test"):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        c.request("GET", path, headers={"Host": host, **(headers or {})})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r, body

    def echoed(self, path, headers=None, host="site.test"):
        r, body = self.request(path, headers, host)
        self.assertEqual(r.status, 200, body)
        return json.loads(body)

    def test_request_headers(self):
        got = self.echoed("/headers", {"x-env": "dev", "My-Header": "foo", "X-DEBUG": "1",
                                       "x-keep": "k"})
        h = got["headers"]
        self.assertEqual(h["x-env"], "prod")                  # set overwrites
        self.assertEqual(h["x-new"], "1")                     # set adds when absent
        self.assertEqual(h["my-header"], "foo,a")             # add appends
        self.assertEqual(h["x-added"], "b")                   # add when absent
        self.assertNotIn("x-debug", h)                        # remove, any case
        self.assertEqual(h["x-keep"], "k")
        self.assertEqual(h["host"], "site.test")

    def test_request_headers_repeated_fields(self):
        # Repeated fields: set leaves one field, add appends to the combined value, remove
        # drops them all.
        resp = raw_request(self.port, b"GET /headers HTTP/1.1\r\nHost: site.test\r\n"
                           b"X-Env: one\r\nx-env: two\r\nmy-header: p\r\nMy-Header: q\r\n"
                           b"x-debug: 1\r\nX-Debug: 2\r\nConnection: close\r\n\r\n")
        self.assertEqual(status_of(resp), 200, resp)
        h = json.loads(resp.split(b"\r\n\r\n", 1)[1])["headers"]
        self.assertEqual(h["x-env"], "prod")
        self.assertEqual(h["my-header"], "p, q,a")
        self.assertNotIn("x-debug", h)

    def test_response_headers(self):
        r, body = self.request("/headers")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("x-echo-name"), "hidden")
        self.assertEqual(r.getheader("content-type"), "application/json,x")
        self.assertEqual(r.getheader("x-resp"), "2")
        json.loads(body)  # body intact (content-length kept)
        r, body = self.request("/strip")
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.getheader("content-type"))
        self.assertEqual(r.getheader("x-echo-name"), "up")

    def test_redirects(self):
        p = self.port
        table = [
            # path, status, Location
            ("/redir/default?a=1", 302, f"http://site.test:{p}/redir/default?a=1"),
            ("/redir/https", 301, "https://new.example.com/redir/https"),
            ("/redir/port", 308, "http://site.test:8081/new"),
            ("/redir/http80", 302, "http://site.test/redir/http80"),
            ("/old/a/b?x=y", 307, f"http://site.test:{p}/new/a/b?x=y"),
            ("/old", 307, f"http://site.test:{p}/new"),
        ]
        for path, status, location in table:
            with self.subTest(path=path):
                r, body = self.request(path, host=f"site.test:{p}")
                self.assertEqual(r.status, status)
                self.assertEqual(r.getheader("location"), location)
                self.assertEqual(body, b"")

    def test_rewrite_hostname(self):
        got = self.echoed("/host/x?q=1")
        self.assertEqual(got["headers"]["host"], "internal.svc")
        self.assertEqual(got["path"], "/host/x")
        self.assertEqual(got["query"], "q=1")

    def test_rewrite_paths(self):
        table = [
            ("/full/a/b?q=1", "/replaced", "q=1"),
            ("/foo/bar", "/xyz/bar", ""),
            ("/foo", "/xyz", ""),
            ("/foo/", "/xyz/", ""),
            ("/gone/bar?z=2", "/bar", "z=2"),
            ("/gone", "/", ""),
            ("/empty", "/", ""),
            ("/empty/a", "/a", ""),
        ]
        for path, want, query in table:
            with self.subTest(path=path):
                got = self.echoed(path)
                self.assertEqual(got["path"], want)
                self.assertEqual(got["query"], query)
                self.assertEqual(got["headers"]["host"], "site.test")


if __name__ == "__main__":
    unittest.main()
