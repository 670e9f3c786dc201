"""Gateway API conformance-style suite (gateway.networking.k8s.io/v1), written from the spec.

Each test method is one bullet of the spec: a manifest plus a table of requests and the
expected outcome, run against the real gateway with `portico echo` upstreams (the echo names
itself in its JSON answer, so a row says which backend must answer).

A row is `Row(method, port, host, path, headers, status, backend, check)`:
`port` is a key of the test's port map, `backend` the echo name expected for a 200 (None for a
local answer) and `check` an optional callable `check(test, response)` for more assertions.
Only what Portico implements today is covered (see docs/configuration.md); RequestMirror,
backendRef filters, HTTPS and direct responses are not.
"""

import collections
import http.client
import json
import os
import subprocess
import textwrap
import time
import unittest

from harness import BIN, GatewayTestCase, ThreadedServer, free_port, read_head, wait_port

Row = collections.namedtuple("Row", "method port host path headers status backend check",
                             defaults=(None, None))
Response = collections.namedtuple("Response", "status headers body json")

GW = "apiVersion: gateway.networking.k8s.io/v1"


def backend_doc(name, port, namespace="default"):
    return (f"---\napiVersion: portico.dev/v1alpha1\nkind: Backend\n"
            f"metadata: {{name: {name}, namespace: {namespace}}}\n"
            f"spec:\n  endpoints: [{{address: 127.0.0.1, port: {port}}}]\n")


def header(name, value):
    """A check: the upstream saw header `name` (lowercase) with `value` (None: absent)."""
    def check(test, r):
        got = r.json["headers"].get(name) if r.json else None
        test.assertEqual(got, value, f"upstream header {name}: {r.json}")
    return check


def resp_header(name, value):
    """A check: the client got response header `name` with `value` (None: absent)."""
    def check(test, r):
        test.assertEqual(r.headers.get(name), value, f"response header {name}: {r.headers}")
    return check


def upstream_path(path):
    """A check: the upstream saw this request target (path and query)."""
    def check(test, r):
        got = r.json["path"] + (("?" + r.json["query"]) if r.json.get("query") else "")
        test.assertEqual(got, path, r.json)
    return check


def body_contains(text):
    def check(test, r):
        test.assertIn(text, r.body.decode(errors="replace"))
    return check


def all_of(*checks):
    def check(test, r):
        for c in checks:
            c(test, r)
    return check


class ConformanceCase(GatewayTestCase):
    """Starts echo upstreams, the gateway, and runs request tables."""

    def upstreams(self, *names, namespace="default"):
        """Starts one echo per name; returns the Backend documents (same names)."""
        return "".join(backend_doc(n, self.echo(n), namespace) for n in names)

    def start_gateway(self, config):
        self.config_text = config
        self.gateway(config, workers=2)
        # The admin port opens once the listeners are bound; wait for them too.
        for p in self.ports.values():
            wait_port(p)

    def send(self, port, method, host, path, headers=None, body=None, conn=None):
        c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        hs = {"Host": host, **(headers or {})}
        c.request(method, path, body=body, headers=hs)
        r = c.getresponse()
        data = r.read()
        if conn is None:
            c.close()
        parsed = None
        if r.status == 200 and r.getheader("x-echo-name") is not None:
            parsed = json.loads(data)
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data, parsed)

    def run_table(self, rows):
        for row in rows:
            with self.subTest(method=row.method, port=row.port, host=row.host, path=row.path,
                              headers=row.headers):
                r = self.send(self.ports[row.port], row.method, row.host, row.path, row.headers)
                self.assertEqual(r.status, row.status, r.body[:300])
                if row.backend is not None:
                    self.assertIsNotNone(r.json, r.body[:300])
                    self.assertEqual(r.json["name"], row.backend)
                if row.check:
                    row.check(self, r)

    def check_json(self):
        """`portico check -o json` on the running config: the status as the spec defines it."""
        path = os.path.join(self.tmp, "status.yaml")
        with open(path, "w") as f:
            f.write(self.config_text)
        p = subprocess.run([BIN, "check", "-c", path, "-o", "json"], capture_output=True,
                           text=True, timeout=30)
        return json.loads(p.stdout)

    def route_conditions(self, doc, name, namespace="default"):
        for r in doc["resources"]:
            if (r["kind"], r["namespace"], r["name"]) == ("HTTPRoute", namespace, name):
                return r["conditions"]
        self.fail(f"HTTPRoute {namespace}/{name} not in {doc['resources']}")

    def assertParentCondition(self, doc, route, ctype, status, reason, namespace="default",
                              parent=None):
        conds = [c for c in self.route_conditions(doc, route, namespace) if c["type"] == ctype]
        if parent is not None:
            conds = [c for c in conds if c.get("parentRef", {}).get("sectionName") == parent]
        self.assertTrue(conds, f"{route}: no {ctype} condition: "
                               f"{self.route_conditions(doc, route, namespace)}")
        self.assertIn((status, reason), [(c["status"], c["reason"]) for c in conds],
                      f"{route}: {conds}")


class Listeners(ConformanceCase):
    """Gateways, listeners, ports, listener hostnames, parentRefs, allowedRoutes, Host header."""

    def test_listeners_and_parent_refs(self):
        self.ports = {k: free_port() for k in ("p1", "p2", "p3", "p4", "p5")}
        p = self.ports
        ups = self.upstreams("exact", "wild", "wild-sub", "any", "by-port", "gw-b",
                             "infra-same", "shop-all")
        config = textwrap.dedent(f"""\
            {GW}
            kind: Gateway
            metadata: {{name: gw-a}}
            spec:
              addresses: [{{type: IPAddress, value: 127.0.0.1}}]
              listeners:
              - {{name: l-exact, port: {p['p1']}, protocol: HTTP, hostname: exact.example.com}}
              - {{name: l-wild, port: {p['p1']}, protocol: HTTP, hostname: "*.example.com"}}
              - {{name: l-wild-sub, port: {p['p1']}, protocol: HTTP, hostname: "*.sub.example.com"}}
              - {{name: l-any, port: {p['p1']}, protocol: HTTP}}
              - {{name: l-p2, port: {p['p2']}, protocol: HTTP, hostname: "*.other.org"}}
            ---
            {GW}
            kind: Gateway
            metadata: {{name: gw-b}}
            spec:
              addresses: [{{type: IPAddress, value: 127.0.0.1}}]
              listeners: [{{name: http, port: {p['p3']}, protocol: HTTP}}]
            ---
            {GW}
            kind: Gateway
            metadata: {{name: gw-c, namespace: infra}}
            spec:
              addresses: [{{type: IPAddress, value: 127.0.0.1}}]
              listeners:
              - {{name: same, port: {p['p4']}, protocol: HTTP}}
              - {{name: all, port: {p['p5']}, protocol: HTTP, allowedRoutes: {{namespaces: {{from: All}}}}}}
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: r-exact}}
            spec:
              parentRefs: [{{name: gw-a, sectionName: l-exact}}]
              rules: [{{backendRefs: [{{name: exact}}]}}]
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: r-wild}}
            spec:
              parentRefs: [{{name: gw-a, sectionName: l-wild}}]
              rules: [{{backendRefs: [{{name: wild}}]}}]
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: r-wild-sub}}
            spec:
              parentRefs: [{{name: gw-a, sectionName: l-wild-sub}}]
              rules: [{{backendRefs: [{{name: wild-sub}}]}}]
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: r-any}}
            spec:
              parentRefs: [{{name: gw-a, sectionName: l-any}}]
              rules: [{{backendRefs: [{{name: any}}]}}]
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: r-port}}
            spec:
              parentRefs: [{{name: gw-a, port: {p['p2']}}}]
              rules: [{{backendRefs: [{{name: by-port}}]}}]
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: r-b}}
            spec:
              parentRefs: [{{name: gw-b}}]
              rules: [{{backendRefs: [{{name: gw-b}}]}}]
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: r-infra, namespace: infra}}
            spec:
              parentRefs: [{{name: gw-c, sectionName: same}}]
              rules:
              - matches: [{{path: {{type: PathPrefix, value: /infra}}}}]
                backendRefs: [{{name: infra-same}}]
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: r-shop, namespace: shop}}
            spec:
              parentRefs: [{{name: gw-c, namespace: infra}}]
              rules: [{{backendRefs: [{{name: shop-all}}]}}]
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: r-refused, namespace: shop}}
            spec:
              parentRefs: [{{name: gw-c, namespace: infra, sectionName: same}}]
              rules: [{{backendRefs: [{{name: shop-all}}]}}]
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: r-bad-section}}
            spec:
              parentRefs: [{{name: gw-a, sectionName: nope}}]
              rules: [{{backendRefs: [{{name: any}}]}}]
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: r-bad-port}}
            spec:
              parentRefs: [{{name: gw-a, sectionName: l-any, port: {p['p2']}}}]
              rules: [{{backendRefs: [{{name: any}}]}}]
            """) + ups.replace("name: infra-same, namespace: default",
                               "name: infra-same, namespace: infra").replace(
            "name: shop-all, namespace: default", "name: shop-all, namespace: shop")
        self.start_gateway(config)
        p1 = p["p1"]
        self.run_table([
            # listener hostnames: exact, then the most specific wildcard, then none
            Row("GET", "p1", "exact.example.com", "/", None, 200, "exact"),
            Row("GET", "p1", "EXACT.Example.COM", "/", None, 200, "exact"),       # any case
            Row("GET", "p1", f"exact.example.com:{p1}", "/", None, 200, "exact"),  # with port
            Row("GET", "p1", f"Exact.Example.com:{p1}", "/", None, 200, "exact"),
            Row("GET", "p1", "foo.example.com", "/", None, 200, "wild"),
            Row("GET", "p1", "foo.bar.example.com", "/", None, 200, "wild"),      # 2 labels
            Row("GET", "p1", "a.sub.example.com", "/", None, 200, "wild-sub"),    # longest *.
            Row("GET", "p1", "a.b.sub.example.com", "/", None, 200, "wild-sub"),
            Row("GET", "p1", "sub.example.com", "/", None, 200, "wild"),
            Row("GET", "p1", "example.com", "/", None, 200, "any"),  # *.x does not match x
            Row("GET", "p1", "other.test", "/", None, 200, "any"),
            Row("GET", "p1", "127.0.0.1", "/", None, 200, "any"),
            # absolute-form target: its authority is the host (RFC 9112 3.2.2)
            Row("GET", "p1", "other.test", "http://exact.example.com/x", None, 200, "exact"),
            # parentRef port: r-port attaches to every listener of gw-a on p2
            Row("GET", "p2", "a.other.org", "/", None, 200, "by-port"),
            Row("GET", "p2", f"A.OTHER.ORG:{p['p2']}", "/x", None, 200, "by-port"),
            Row("GET", "p2", "other.org", "/", None, 404, None),     # no listener for the host
            Row("GET", "p2", "exact.example.com", "/", None, 404, None),
            # a second Gateway
            Row("GET", "p3", "anything.test", "/", None, 200, "gw-b"),
            # allowedRoutes Same: the shop route is refused on `same`, accepted on `all`
            Row("GET", "p4", "x.test", "/infra/a", None, 200, "infra-same"),
            Row("GET", "p4", "x.test", "/", None, 404, None),
            Row("GET", "p5", "x.test", "/", None, 200, "shop-all"),
            Row("GET", "p5", "x.test", "/infra/a", None, 200, "shop-all"),  # infra-same not there
        ])
        doc = self.check_json()
        self.assertParentCondition(doc, "r-refused", "Accepted", "False",
                                   "NotAllowedByListeners", namespace="shop")
        self.assertParentCondition(doc, "r-shop", "Accepted", "True", "Accepted",
                                   namespace="shop")
        self.assertParentCondition(doc, "r-bad-section", "Accepted", "False", "NoMatchingParent")
        self.assertParentCondition(doc, "r-bad-port", "Accepted", "False", "NoMatchingParent")
        gw_a = [r for r in doc["resources"] if r["kind"] == "Gateway" and r["name"] == "gw-a"][0]
        attached = {c["listener"]: c for c in gw_a["conditions"]
                    if c.get("listener") and c["type"] == "Accepted"}
        self.assertEqual(set(attached), {"l-exact", "l-wild", "l-wild-sub", "l-any", "l-p2"})

    def test_route_hostname_intersection(self):
        self.ports = {"p": free_port()}
        ups = self.upstreams("route-exact", "route-wild", "route-sub", "route-mixed",
                             "route-none-host", "route-broad")
        config = textwrap.dedent(f"""\
            {GW}
            kind: Gateway
            metadata: {{name: gw}}
            spec:
              addresses: [{{type: IPAddress, value: 127.0.0.1}}]
              listeners:
              - {{name: wild, port: {self.ports['p']}, protocol: HTTP, hostname: "*.example.com"}}
              - {{name: exact, port: {self.ports['p']}, protocol: HTTP, hostname: app.shop.io}}
              - {{name: any, port: {self.ports['p']}, protocol: HTTP}}
              - {{name: deep, port: {self.ports['p']}, protocol: HTTP, hostname: "*.deep.example.com"}}
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: route-broad}}
            spec:
              parentRefs: [{{name: gw, sectionName: deep}}]
              hostnames: ["*.example.com"]
              rules: [{{backendRefs: [{{name: route-broad}}]}}]
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: route-exact}}
            spec:
              parentRefs: [{{name: gw, sectionName: wild}}, {{name: gw, sectionName: exact}}]
              hostnames: [a.example.com]
              rules: [{{backendRefs: [{{name: route-exact}}]}}]
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: route-wild}}
            spec:
              parentRefs: [{{name: gw, sectionName: exact}}, {{name: gw, sectionName: any}}]
              hostnames: ["*.shop.io"]
              rules: [{{backendRefs: [{{name: route-wild}}]}}]
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: route-sub}}
            spec:
              parentRefs: [{{name: gw, sectionName: wild}}]
              hostnames: ["*.a.example.com"]
              rules: [{{backendRefs: [{{name: route-sub}}]}}]
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: route-mixed}}
            spec:
              parentRefs: [{{name: gw, sectionName: wild}}]
              hostnames: [c.example.com, other2.org]
              rules: [{{backendRefs: [{{name: route-mixed}}]}}]
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: route-none}}
            spec:
              parentRefs: [{{name: gw, sectionName: wild}}]
              hostnames: [other.org]
              rules: [{{backendRefs: [{{name: route-none-host}}]}}]
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: route-no-hostnames}}
            spec:
              parentRefs: [{{name: gw, sectionName: exact}}]
              rules:
              - matches: [{{path: {{type: PathPrefix, value: /nohost}}}}]
                backendRefs: [{{name: route-none-host}}]
            """) + ups
        self.start_gateway(config)
        self.run_table([
            # route exact hostname within a listener wildcard
            Row("GET", "p", "a.example.com", "/", None, 200, "route-exact"),
            Row("GET", "p", "A.Example.Com", "/", None, 200, "route-exact"),
            Row("GET", "p", "b.example.com", "/", None, 404, None,
                body_contains("wild")),                      # the listener is named
            # route wildcard beneath a listener wildcard
            Row("GET", "p", "x.a.example.com", "/", None, 200, "route-sub"),
            Row("GET", "p", "y.x.a.example.com", "/", None, 200, "route-sub"),
            # route wildcard above a listener exact hostname: serves that hostname
            Row("GET", "p", "app.shop.io", "/", None, 200, "route-wild"),
            # a route without hostnames takes the listener's
            Row("GET", "p", "app.shop.io", "/nohost/x", None, 200, "route-none-host"),
            # only the intersecting hostname of a route is served
            Row("GET", "p", "c.example.com", "/", None, 200, "route-mixed"),
            Row("GET", "p", "other2.org", "/", None, 404, None),
            # route wildcard broader than the listener's: the listener's hostname is served
            Row("GET", "p", "x.deep.example.com", "/", None, 200, "route-broad"),
            Row("GET", "p", "x.y.deep.example.com", "/", None, 200, "route-broad"),
            # no intersection: not attached
            Row("GET", "p", "other.org", "/", None, 404, None),
            # route wildcard on a listener without hostname: one or more labels, not the base
            Row("GET", "p", "zzz.shop.io", "/", None, 200, "route-wild"),
            Row("GET", "p", "a.b.shop.io", "/", None, 200, "route-wild"),
            Row("GET", "p", "shop.io", "/", None, 404, None),
        ])
        doc = self.check_json()
        self.assertParentCondition(doc, "route-none", "Accepted", "False",
                                   "NoMatchingListenerHostname")
        self.assertParentCondition(doc, "route-exact", "Accepted", "True", "Accepted",
                                   parent="wild")
        self.assertParentCondition(doc, "route-exact", "Accepted", "False",
                                   "NoMatchingListenerHostname", parent="exact")


def single_gateway(port, routes_yaml, listener_extra=""):
    return textwrap.dedent(f"""\
        {GW}
        kind: Gateway
        metadata: {{name: gw}}
        spec:
          addresses: [{{type: IPAddress, value: 127.0.0.1}}]
          listeners: [{{name: http, port: {port}, protocol: HTTP{listener_extra}}}]
        """) + routes_yaml


class Matching(ConformanceCase):
    def test_path_types(self):
        self.ports = {"p": free_port()}
        ups = self.upstreams("exact", "prefix", "prefix-slash", "regex", "root-exact")
        config = single_gateway(self.ports["p"], textwrap.dedent(f"""\
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: paths}}
            spec:
              parentRefs: [{{name: gw}}]
              rules:
              - matches: [{{path: {{type: Exact, value: /exact}}}}]
                backendRefs: [{{name: exact}}]
              - matches: [{{path: {{type: PathPrefix, value: /foo}}}}]
                backendRefs: [{{name: prefix}}]
              - matches: [{{path: {{type: PathPrefix, value: /bar/}}}}]
                backendRefs: [{{name: prefix-slash}}]
              - matches: [{{path: {{type: RegularExpression, value: "/items/[0-9]+"}}}}]
                backendRefs: [{{name: regex}}]
              - matches: [{{path: {{type: Exact, value: /}}}}]
                backendRefs: [{{name: root-exact}}]
            """)) + ups
        self.start_gateway(config)
        h = "site.test"
        self.run_table([
            Row("GET", "p", h, "/exact", None, 200, "exact"),
            Row("GET", "p", h, "/exact?q=1", None, 200, "exact"),      # query ignored
            Row("GET", "p", h, "/exact/", None, 404, None),            # Exact is exact
            Row("GET", "p", h, "/Exact", None, 404, None),             # case-sensitive
            Row("GET", "p", h, "/exactly", None, 404, None),
            Row("GET", "p", h, "/foo", None, 200, "prefix"),
            Row("GET", "p", h, "/foo/", None, 200, "prefix"),
            Row("GET", "p", h, "/foo/bar", None, 200, "prefix"),
            Row("GET", "p", h, "/foo?x=1", None, 200, "prefix"),
            Row("GET", "p", h, "/foobar", None, 404, None),            # whole segments
            Row("GET", "p", h, "/FOO", None, 404, None),
            Row("GET", "p", h, "/bar", None, 200, "prefix-slash"),     # trailing / ignored
            Row("GET", "p", h, "/bar/", None, 200, "prefix-slash"),
            Row("GET", "p", h, "/bar/x/y", None, 200, "prefix-slash"),
            Row("GET", "p", h, "/barx", None, 404, None),
            Row("GET", "p", h, "/items/42", None, 200, "regex"),
            Row("GET", "p", h, "/items/42?x=y", None, 200, "regex"),
            Row("GET", "p", h, "/items/42/x", None, 404, None),        # full match
            Row("GET", "p", h, "/items/x", None, 404, None),
            Row("GET", "p", h, "/", None, 200, "root-exact"),
            Row("GET", "p", h, "/other", None, 404, None,
                body_contains("default/gw/http")),                     # names the listener
        ])

    def test_headers_query_method(self):
        self.ports = {"p": free_port()}
        ups = self.upstreams("default", "hdr", "hdr-re", "query", "query-re", "method", "or",
                             "and")
        config = single_gateway(self.ports["p"], textwrap.dedent(f"""\
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: conditions}}
            spec:
              parentRefs: [{{name: gw}}]
              rules:
              - backendRefs: [{{name: default}}]
              - matches: [{{path: {{type: PathPrefix, value: /h}}, headers: [{{name: X-Team, value: blue}}]}}]
                backendRefs: [{{name: hdr}}]
              - matches:
                - path: {{type: PathPrefix, value: /h}}
                  headers: [{{name: x-version, type: RegularExpression, value: "v[0-9]+"}}]
                backendRefs: [{{name: hdr-re}}]
              - matches: [{{path: {{type: PathPrefix, value: /q}}, queryParams: [{{name: lang, value: fr}}]}}]
                backendRefs: [{{name: query}}]
              - matches:
                - path: {{type: PathPrefix, value: /q}}
                  queryParams: [{{name: id, type: RegularExpression, value: "[0-9]{{3}}"}}]
                backendRefs: [{{name: query-re}}]
              - matches: [{{path: {{type: PathPrefix, value: /m}}, method: DELETE}}]
                backendRefs: [{{name: method}}]
              - matches:
                - path: {{type: Exact, value: /or1}}
                - path: {{type: Exact, value: /or2}}
                  method: PUT
                - headers: [{{name: x-or, value: "yes"}}]
                backendRefs: [{{name: or}}]
              - matches:
                - path: {{type: Exact, value: /and}}
                  method: POST
                  headers: [{{name: x-a, value: "1"}}, {{name: x-b, value: "2"}}]
                  queryParams: [{{name: k, value: v}}]
                backendRefs: [{{name: and}}]
            """)) + ups
        self.start_gateway(config)
        h = "site.test"
        self.run_table([
            # headers: names case-insensitive, Exact values case-sensitive, regex whole value
            Row("GET", "p", h, "/h", {"X-Team": "blue"}, 200, "hdr"),
            Row("GET", "p", h, "/h", {"x-team": "blue"}, 200, "hdr"),
            Row("GET", "p", h, "/h", {"X-TEAM": "blue"}, 200, "hdr"),
            Row("GET", "p", h, "/h", {"X-Team": "Blue"}, 200, "default"),
            Row("GET", "p", h, "/h", {"X-Team": "blue2"}, 200, "default"),
            Row("GET", "p", h, "/h", {"X-Version": "v12"}, 200, "hdr-re"),
            Row("GET", "p", h, "/h", {"x-version": "v12x"}, 200, "default"),
            Row("GET", "p", h, "/h", {"x-version": "V12"}, 200, "default"),
            Row("GET", "p", h, "/h", None, 200, "default"),
            # query params: names case-sensitive, values exact, regex whole value
            Row("GET", "p", h, "/q?lang=fr", None, 200, "query"),
            Row("GET", "p", h, "/q?x=1&lang=fr&y", None, 200, "query"),
            Row("GET", "p", h, "/q?lang=FR", None, 200, "default"),
            Row("GET", "p", h, "/q?Lang=fr", None, 200, "default"),
            Row("GET", "p", h, "/q?id=123", None, 200, "query-re"),
            Row("GET", "p", h, "/q?id=1234", None, 200, "default"),
            Row("GET", "p", h, "/q", None, 200, "default"),
            # method
            Row("DELETE", "p", h, "/m", None, 200, "method"),
            Row("GET", "p", h, "/m", None, 200, "default"),
            Row("POST", "p", h, "/m/x", None, 200, "default"),
            # matches are OR'ed
            Row("GET", "p", h, "/or1", None, 200, "or"),
            Row("PUT", "p", h, "/or2", None, 200, "or"),
            Row("GET", "p", h, "/or2", None, 200, "default"),
            Row("GET", "p", h, "/anything", {"x-or": "yes"}, 200, "or"),  # path defaults to /
            # conditions of one match are AND'ed
            Row("POST", "p", h, "/and?k=v", {"x-a": "1", "x-b": "2"}, 200, "and"),
            Row("GET", "p", h, "/and?k=v", {"x-a": "1", "x-b": "2"}, 200, "default"),
            Row("POST", "p", h, "/and", {"x-a": "1", "x-b": "2"}, 200, "default"),
            Row("POST", "p", h, "/and?k=v", {"x-a": "1"}, 200, "default"),
            Row("POST", "p", h, "/and?k=w", {"x-a": "1", "x-b": "2"}, 200, "default"),
        ])


class Precedence(ConformanceCase):
    """The tie-break order across the routes of one listener (httproute_types.go)."""

    def test_tie_breaks(self):
        self.ports = {"p": free_port()}
        names = ["host-exact", "host-wild", "host-wild-long", "host-none", "exact", "regex",
                 "prefix", "prefix-long", "method", "headers2", "h1", "h2", "q1", "q2", "hq",
                 "old", "new", "ts", "no-ts", "ns-a", "ns-b", "name-one", "name-two",
                 "rule-first", "rule-second"]
        ups = self.upstreams(*names)
        ups += backend_doc("ns-b", self.echo("ns-b-other"), "ns-b")  # ns-b/ns-b is the other

        def route(name, rules, hostnames=None, ts=None, ns=None):
            meta = f"name: {name}"
            if ns:
                meta += f", namespace: {ns}"
            if ts:
                meta += f', creationTimestamp: "{ts}"'
            host = f"  hostnames: {json.dumps(hostnames)}\n" if hostnames else ""
            body = "".join(f"  - {r}\n" for r in rules)
            return (f"---\n{GW}\nkind: HTTPRoute\nmetadata: {{{meta}}}\nspec:\n"
                    f"  parentRefs: [{{name: gw, namespace: default}}]\n{host}  rules:\n{body}")

        def rule(match, backend, ns=None):
            ref = f"name: {backend}" + (f", namespace: {ns}" if ns else "")
            return f"{{matches: [{match}], backendRefs: [{{{ref}}}]}}"

        pre = lambda v: f"{{path: {{type: PathPrefix, value: {v}}}}}"       # noqa: E731
        ts1, ts2 = "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"
        routes = "".join([
            # 1. hostnames: exact, then the longest wildcard, then no hostname; beats paths
            route("a-host-exact", [rule(pre("/"), "host-exact")], ["api.example.com"]),
            route("a-host-wild", [rule("{path: {type: Exact, value: /p}}", "host-wild")],
                  ["*.example.com"]),
            route("a-host-wild-long", [rule(pre("/"), "host-wild-long")],
                  ["*.sub.example.com"]),
            route("a-host-none", [rule("{path: {type: Exact, value: /p}}", "host-none")]),
            # 2. Exact path, then (ours) RegularExpression, then PathPrefix
            route("z-exact", [rule("{path: {type: Exact, value: /x/exact}}", "exact")], ts=ts2),
            route("b-regex", [rule("{path: {type: RegularExpression, value: '/x/.*'}}",
                                   "regex")], ts=ts1),
            route("a-prefix", [rule(pre("/x/exact"), "prefix-long")], ts=ts1),
            # 3. longest prefix
            route("a-pre", [rule(pre("/pre"), "prefix")], ts=ts1),
            route("z-pre-long", [rule(pre("/pre/long"), "prefix-long")], ts=ts2),
            # 4. a method before header counts
            route("a-headers", [rule("{path: {type: PathPrefix, value: /m}, headers: "
                                     "[{name: x-a, value: '1'}, {name: x-b, value: '2'}]}",
                                     "headers2")], ts=ts1),
            route("z-method", [rule("{path: {type: PathPrefix, value: /m}, method: GET}",
                                    "method")], ts=ts2),
            # 5. most headers; 6. most query params; headers before query params
            route("a-h1", [rule("{path: {type: PathPrefix, value: /hd}, headers: "
                                "[{name: x-a, value: '1'}]}", "h1")], ts=ts1),
            route("z-h2", [rule("{path: {type: PathPrefix, value: /hd}, headers: "
                                "[{name: x-a, value: '1'}, {name: x-b, value: '2'}]}", "h2")],
                  ts=ts2),
            route("a-q1", [rule("{path: {type: PathPrefix, value: /qp}, queryParams: "
                                "[{name: a, value: '1'}]}", "q1")], ts=ts1),
            route("z-q2", [rule("{path: {type: PathPrefix, value: /qp}, queryParams: "
                                "[{name: a, value: '1'}, {name: b, value: '2'}]}", "q2")],
                  ts=ts2),
            route("z-hq", [rule("{path: {type: PathPrefix, value: /qp}, headers: "
                                "[{name: x-a, value: '1'}]}", "hq")], ts=ts2),
            # 7. oldest creationTimestamp; a route without one counts as newest (ours)
            route("a-new", [rule(pre("/ts"), "new")], ts=ts2),
            route("z-old", [rule(pre("/ts"), "old")], ts=ts1),
            route("a-no-ts", [rule(pre("/nots"), "no-ts")]),
            route("z-ts", [rule(pre("/nots"), "ts")], ts=ts2),
            # 8. then namespace/name alphabetical
            route("zzz", [rule(pre("/alpha"), "ns-a", ns="ns-a")], ns="ns-a", ts=ts1),
            route("aaa", [rule(pre("/alpha"), "ns-b", ns="ns-b")], ns="ns-b", ts=ts1),
            route("name-two", [rule(pre("/name"), "name-two")], ts=ts1),
            route("name-one", [rule(pre("/name"), "name-one")], ts=ts1),
            # 9. then rule order within a route
            route("rules", [rule(pre("/rule"), "rule-first"),
                            rule(pre("/rule"), "rule-second")]),
        ])
        ups = ups.replace("name: ns-a, namespace: default", "name: ns-a, namespace: ns-a")
        config = single_gateway(self.ports["p"], routes,
                                ", allowedRoutes: {namespaces: {from: All}}") + ups
        self.start_gateway(config)
        h = "site.test"
        self.run_table([
            # 1. hostname specificity first
            Row("GET", "p", "api.example.com", "/p", None, 200, "host-exact"),
            Row("GET", "p", "x.example.com", "/p", None, 200, "host-wild"),
            Row("GET", "p", "x.sub.example.com", "/p", None, 200, "host-wild-long"),
            Row("GET", "p", h, "/p", None, 200, "host-none"),
            # 2. Exact over RegularExpression over PathPrefix, whatever the age
            Row("GET", "p", h, "/x/exact", None, 200, "exact"),
            Row("GET", "p", h, "/x/exact/y", None, 200, "regex"),
            # 3. longest prefix
            Row("GET", "p", h, "/pre/long/x", None, 200, "prefix-long"),
            Row("GET", "p", h, "/pre/longer", None, 200, "prefix"),
            Row("GET", "p", h, "/pre", None, 200, "prefix"),
            # 4. method over header count
            Row("GET", "p", h, "/m", {"x-a": "1", "x-b": "2"}, 200, "method"),
            Row("POST", "p", h, "/m", {"x-a": "1", "x-b": "2"}, 200, "headers2"),
            # 5. most headers
            Row("GET", "p", h, "/hd", {"x-a": "1", "x-b": "2"}, 200, "h2"),
            Row("GET", "p", h, "/hd", {"x-a": "1"}, 200, "h1"),
            # 6. most query params, after headers
            Row("GET", "p", h, "/qp?a=1&b=2", None, 200, "q2"),
            Row("GET", "p", h, "/qp?a=1", None, 200, "q1"),
            Row("GET", "p", h, "/qp?a=1&b=2", {"x-a": "1"}, 200, "hq"),
            # 7. oldest route
            Row("GET", "p", h, "/ts", None, 200, "old"),
            Row("GET", "p", h, "/nots", None, 200, "ts"),
            # 8. namespace/name
            Row("GET", "p", h, "/alpha", None, 200, "ns-a"),
            Row("GET", "p", h, "/name", None, 200, "name-one"),
            # 9. rule order
            Row("GET", "p", h, "/rule", None, 200, "rule-first"),
        ])


class Filters(ConformanceCase):
    def test_filters(self):
        self.ports = {"p": free_port()}
        port = self.ports["p"]
        ups = self.upstreams("up")
        config = single_gateway(port, textwrap.dedent(f"""\
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: filters}}
            spec:
              parentRefs: [{{name: gw}}]
              rules:
              - matches: [{{path: {{type: PathPrefix, value: /req}}}}]
                filters:
                - type: RequestHeaderModifier
                  requestHeaderModifier:
                    set: [{{name: X-Set, value: s}}]
                    add: [{{name: X-Add, value: a}}]
                    remove: [x-remove]
                backendRefs: [{{name: up}}]
              - matches: [{{path: {{type: PathPrefix, value: /resp}}}}]
                filters:
                - type: ResponseHeaderModifier
                  responseHeaderModifier:
                    set: [{{name: x-echo-name, value: masked}}]
                    add: [{{name: X-Extra, value: e}}]
                    remove: [content-type]
                backendRefs: [{{name: up}}]
              - matches: [{{path: {{type: PathPrefix, value: /redir}}}}]
                filters: [{{type: RequestRedirect, requestRedirect: {{}}}}]
              - matches: [{{path: {{type: PathPrefix, value: /secure}}}}]
                filters:
                - type: RequestRedirect
                  requestRedirect: {{scheme: https, hostname: www.example.com, statusCode: 301}}
              - matches: [{{path: {{type: PathPrefix, value: /moved}}}}]
                filters:
                - type: RequestRedirect
                  requestRedirect:
                    statusCode: 308
                    port: 8443
                    path: {{type: ReplacePrefixMatch, replacePrefixMatch: /new}}
              - matches: [{{path: {{type: PathPrefix, value: /full}}}}]
                filters:
                - type: RequestRedirect
                  requestRedirect: {{path: {{type: ReplaceFullPath, replaceFullPath: /landing}}}}
              - matches: [{{path: {{type: PathPrefix, value: /rw}}}}]
                filters:
                - type: URLRewrite
                  urlRewrite:
                    hostname: internal.svc
                    path: {{type: ReplacePrefixMatch, replacePrefixMatch: /v2}}
                backendRefs: [{{name: up}}]
              - matches: [{{path: {{type: PathPrefix, value: /strip}}}}]
                filters:
                - type: URLRewrite
                  urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /}}}}
                backendRefs: [{{name: up}}]
              - matches: [{{path: {{type: PathPrefix, value: /whole}}}}]
                filters:
                - type: URLRewrite
                  urlRewrite: {{path: {{type: ReplaceFullPath, replaceFullPath: /fixed}}}}
                backendRefs: [{{name: up}}]
            """)) + ups
        self.start_gateway(config)
        h = "site.test"
        loc = lambda v: resp_header("location", v)    # noqa: E731
        self.run_table([
            # RequestHeaderModifier
            Row("GET", "p", h, "/req", {"X-Set": "old", "X-Add": "first", "X-Remove": "1"},
                200, "up", all_of(header("x-set", "s"), header("x-add", "first,a"),
                                  header("x-remove", None))),
            Row("GET", "p", h, "/req", None, 200, "up",
                all_of(header("x-set", "s"), header("x-add", "a"))),
            # ResponseHeaderModifier
            Row("GET", "p", h, "/resp", None, 200, None,
                all_of(resp_header("x-echo-name", "masked"), resp_header("x-extra", "e"),
                       resp_header("content-type", None))),
            Row("GET", "p", h, "/req", None, 200, "up",
                resp_header("content-type", "application/json")),   # other rules untouched
            # RequestRedirect (302 default, listener port, query kept)
            Row("GET", "p", h, "/redir/a?x=1", None, 302, None,
                loc(f"http://site.test:{port}/redir/a?x=1")),
            Row("GET", "p", f"Site.test:{port}", "/redir", None, 302, None,
                loc(f"http://Site.test:{port}/redir")),   # the Host as sent
            Row("GET", "p", h, "/secure/b", None, 301, None,
                loc("https://www.example.com/secure/b")),       # https: port 443 left out
            Row("GET", "p", h, "/moved/c?d=e", None, 308, None,
                loc("http://site.test:8443/new/c?d=e")),
            Row("GET", "p", h, "/moved", None, 308, None, loc("http://site.test:8443/new")),
            Row("POST", "p", h, "/full/x", None, 302, None, loc(f"http://site.test:{port}/landing")),
            # URLRewrite
            Row("GET", "p", h, "/rw/a/b?q=1", None, 200, "up",
                all_of(upstream_path("/v2/a/b?q=1"), header("host", "internal.svc"))),
            Row("GET", "p", h, "/rw", None, 200, "up", upstream_path("/v2")),
            Row("GET", "p", h, "/strip/a", None, 200, "up",
                all_of(upstream_path("/a"), header("host", "site.test"))),
            Row("GET", "p", h, "/strip", None, 200, "up", upstream_path("/")),
            Row("GET", "p", h, "/whole/a?z=1", None, 200, "up", upstream_path("/fixed?z=1")),
        ])


class Backends(ConformanceCase):
    def test_weights(self):
        self.ports = {"p": free_port()}
        ups = self.upstreams("heavy", "light", "never", "only")
        config = single_gateway(self.ports["p"], textwrap.dedent(f"""\
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: weights}}
            spec:
              parentRefs: [{{name: gw}}]
              rules:
              - matches: [{{path: {{type: PathPrefix, value: /split}}}}]
                backendRefs:
                - {{name: heavy, weight: 3}}
                - {{name: light, weight: 1}}
                - {{name: never, weight: 0}}
              - matches: [{{path: {{type: PathPrefix, value: /single}}}}]
                backendRefs: [{{name: never, weight: 0}}, {{name: only, weight: 7}}]
            """)) + ups
        self.start_gateway(config)
        conn = http.client.HTTPConnection("127.0.0.1", self.ports["p"], timeout=5)
        counts = collections.Counter()
        for i in range(200):
            r = self.send(self.ports["p"], "GET", "site.test", f"/split/{i}", conn=conn)
            counts[r.json["name"] if r.status == 200 else r.status] += 1
        single = collections.Counter()
        for i in range(30):
            r = self.send(self.ports["p"], "GET", "site.test", "/single", conn=conn)
            single[r.json["name"] if r.status == 200 else r.status] += 1
        conn.close()
        self.assertEqual(counts["never"], 0, counts)
        self.assertEqual(counts["heavy"] + counts["light"], 200, counts)
        self.assertTrue(120 <= counts["heavy"] <= 180, counts)   # expected 150
        self.assertTrue(20 <= counts["light"] <= 80, counts)     # expected 50
        self.assertEqual(single, {"only": 30})

    def test_unresolved_backends_and_no_route(self):
        self.ports = {"p": free_port()}
        ups = self.upstreams("ok")
        config = single_gateway(self.ports["p"], textwrap.dedent(f"""\
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: refs}}
            spec:
              parentRefs: [{{name: gw}}]
              rules:
              - matches: [{{path: {{type: PathPrefix, value: /missing}}}}]
                backendRefs: [{{name: does-not-exist}}]
              - matches: [{{path: {{type: PathPrefix, value: /ok}}}}]
                backendRefs: [{{name: ok}}]
              - matches: [{{path: {{type: PathPrefix, value: /zero}}}}]
                backendRefs: [{{name: ok, weight: 0}}]
              - matches: [{{path: {{type: PathPrefix, value: /none}}}}]
              - matches: [{{path: {{type: PathPrefix, value: /kind}}}}]
                backendRefs: [{{name: ok, group: example.com, kind: Thing}}]
              - matches: [{{path: {{type: PathPrefix, value: /half}}}}]
                backendRefs: [{{name: ok}}, {{name: also-missing}}]
            """)) + ups
        self.start_gateway(config)
        h = "site.test"
        self.run_table([
            Row("GET", "p", h, "/missing", None, 500, None),
            Row("GET", "p", h, "/ok/x", None, 200, "ok"),       # same route, other rule works
            Row("GET", "p", h, "/zero", None, 500, None),       # every weight 0
            Row("GET", "p", h, "/none", None, 500, None),       # no backendRefs
            Row("GET", "p", h, "/kind", None, 500, None),       # unsupported kind
            Row("GET", "p", h, "/nothing", None, 404, None, body_contains("listener default/gw/http")),
            Row("POST", "p", h, "/nothing", None, 404, None, body_contains("listener default/gw/http")),
        ])
        # An invalid ref keeps its weight: about half the requests answer 500.
        statuses = collections.Counter(
            self.send(self.ports["p"], "GET", h, "/half").status for _ in range(40))
        self.assertEqual(set(statuses), {200, 500}, statuses)
        self.assertTrue(8 <= statuses[500] <= 32, statuses)
        doc = self.check_json()
        self.assertParentCondition(doc, "refs", "ResolvedRefs", "False", "BackendNotFound")
        self.assertParentCondition(doc, "refs", "Accepted", "True", "Accepted")


class Timeouts(ConformanceCase):
    def test_request_timeout(self):
        def slow(conn):
            head, _ = read_head(conn)
            if head is None:
                return
            time.sleep(3)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nslow")

        up = ThreadedServer(slow)
        self.addCleanup(up.close)
        self.ports = {"p": free_port()}
        ups = self.upstreams("fast") + backend_doc("slow", up.port)
        config = single_gateway(self.ports["p"], textwrap.dedent(f"""\
            ---
            {GW}
            kind: HTTPRoute
            metadata: {{name: timeouts}}
            spec:
              parentRefs: [{{name: gw}}]
              rules:
              - matches: [{{path: {{type: PathPrefix, value: /slow}}}}]
                backendRefs: [{{name: slow}}]
                timeouts: {{request: 500ms}}
              - matches: [{{path: {{type: PathPrefix, value: /slow-backend}}}}]
                backendRefs: [{{name: slow}}]
                timeouts: {{request: 10s, backendRequest: 300ms}}
              - matches: [{{path: {{type: PathPrefix, value: /fast}}}}]
                backendRefs: [{{name: fast}}]
                timeouts: {{request: 500ms}}
            """)) + ups
        self.start_gateway(config)
        for path, want_status, max_seconds in [("/slow", 504, 2.0),
                                               ("/slow-backend", 504, 2.0),
                                               ("/fast", 200, 1.0)]:
            with self.subTest(path=path):
                t0 = time.monotonic()
                r = self.send(self.ports["p"], "GET", "site.test", path)
                elapsed = time.monotonic() - t0
                self.assertEqual(r.status, want_status, r.body[:200])
                self.assertLess(elapsed, max_seconds)
                if want_status == 504:
                    self.assertGreater(elapsed, 0.25)


if __name__ == "__main__":
    unittest.main()
