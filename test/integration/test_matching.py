"""HTTPRoute matching through the real gateway, as a request → expected-backend table
(Gateway API v1 semantics: path types, headers, query params, method, precedence)."""

import http.client
import json
import os
import textwrap
import unittest

from harness import GatewayTestCase, free_port


class Matching(GatewayTestCase):
    def setUp(self):
        super().setUp()
        names = ["exact", "prefix", "long", "regex", "hdr", "hdr_re", "query", "post", "old",
                 "new", "host"]
        self.ports = {n: self.echo(n) for n in names}
        self.port = free_port()
        backends = "".join(
            f"---\napiVersion: portico.dev/v1alpha1\nkind: Backend\nmetadata: {{name: {n.replace('_', '-')}}}\n"
            f"spec:\n  endpoints: [{{address: 127.0.0.1, port: {p}}}]\n"
            for n, p in self.ports.items())
        config = textwrap.dedent(f"""\
            apiVersion: gateway.networking.k8s.io/v1
            kind: Gateway
            metadata: {{name: gw}}
            spec:
              addresses: [{{type: IPAddress, value: 127.0.0.1}}]
              listeners: [{{name: http, port: {self.port}, protocol: HTTP}}]
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {{name: paths}}
            spec:
              parentRefs: [{{name: gw}}]
              rules:
              - matches: [{{path: {{type: PathPrefix, value: /}}}}]
                backendRefs: [{{name: prefix}}]
              - matches: [{{path: {{type: PathPrefix, value: /api/v1}}}}]
                backendRefs: [{{name: long}}]
              - matches: [{{path: {{type: Exact, value: /api}}}}]
                backendRefs: [{{name: exact}}]
              - matches: [{{path: {{type: RegularExpression, value: "/items/[0-9]+"}}}}]
                backendRefs: [{{name: regex}}]
              - matches:
                - path: {{type: PathPrefix, value: /api}}
                  headers: [{{name: X-Env, value: canary}}]
                backendRefs: [{{name: hdr}}]
              - matches:
                - path: {{type: PathPrefix, value: /api}}
                  headers: [{{name: x-user, type: RegularExpression, value: "adm.*"}}]
                  queryParams: [{{name: debug, value: "1"}}]
                backendRefs: [{{name: hdr-re}}]
              - matches: [{{path: {{type: PathPrefix, value: /api}}, queryParams: [{{name: v, value: "2"}}]}}]
                backendRefs: [{{name: query}}]
              - matches: [{{path: {{type: PathPrefix, value: /api}}, method: POST}}]
                backendRefs: [{{name: post}}]
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {{name: b-newer, creationTimestamp: "2024-02-01T00:00:00Z"}}
            spec:
              parentRefs: [{{name: gw}}]
              rules: [{{matches: [{{path: {{type: PathPrefix, value: /tie}}}}], backendRefs: [{{name: new}}]}}]
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {{name: z-older, creationTimestamp: "2024-01-01T00:00:00Z"}}
            spec:
              parentRefs: [{{name: gw}}]
              rules: [{{matches: [{{path: {{type: PathPrefix, value: /tie}}}}], backendRefs: [{{name: old}}]}}]
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {{name: by-host}}
            spec:
              parentRefs: [{{name: gw}}]
              hostnames: ["*.example.com"]
              rules: [{{backendRefs: [{{name: host}}]}}]
            """) + backends
        self.gateway(config)

    def who(self, path, method="GET", headers=None, host="other.test"):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        c.request(method, path, headers={"Host": host, **(headers or {})})
        r = c.getresponse()
        body = r.read()
        c.close()
        return json.loads(body)["name"] if r.status == 200 else r.status

    def test_table(self):
        table = [
            # (method, path, headers, host, expected backend)
            ("GET", "/", {}, "other.test", "prefix"),
            ("GET", "/api", {}, "other.test", "exact"),             # Exact beats every prefix
            ("GET", "/api/", {}, "other.test", "prefix"),           # Exact is exact
            ("GET", "/api/v1/users", {}, "other.test", "long"),      # longest prefix
            ("GET", "/api/v10", {}, "other.test", "prefix"),         # segment semantics
            ("GET", "/items/42", {}, "other.test", "regex"),
            ("GET", "/items/4x", {}, "other.test", "prefix"),        # full match only
            ("GET", "/api/x", {"x-env": "canary"}, "other.test", "hdr"),  # names any case
            ("GET", "/api/x", {"X-Env": "prod"}, "other.test", "prefix"),
            ("GET", "/api/x?debug=1", {"X-User": "admin"}, "other.test", "hdr_re"),  # 2 conds
            ("GET", "/api/x?debug=0", {"X-User": "admin"}, "other.test", "prefix"),
            ("GET", "/api/x?v=2", {}, "other.test", "query"),
            ("POST", "/api/x", {}, "other.test", "post"),
            ("POST", "/api/x", {"x-env": "canary"}, "other.test", "post"),  # method before headers
            ("GET", "/tie", {}, "other.test", "old"),                # oldest creationTimestamp
            ("GET", "/api", {}, "shop.example.com", "host"),         # hostname specificity first
        ]
        for method, path, headers, host, want in table:
            with self.subTest(method=method, path=path, headers=headers, host=host):
                self.assertEqual(self.who(path, method, headers, host), want)


if __name__ == "__main__":
    unittest.main()
