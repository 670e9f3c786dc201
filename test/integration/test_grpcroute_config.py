"""GRPCRoute and Backend spec.protocol on the config side: `portico check` diagnostics (text
and `-o json`, same row format as test_config_errors.py), statuses, and `portico explain`
naming the GRPCRoute and the backend protocol. The gRPC data path is tested elsewhere."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest
import urllib.request

from harness import BIN, GatewayTestCase, free_port
from test_config_errors import GATEWAY, Case

GRPC_HEAD = """\
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: g
spec:
  parentRefs:
  - name: gw
"""  # lines 11-17

BACKEND = """\
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata:
  name: api
spec:
"""  # lines 11-15

ONLY_HTTP_GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw2
spec:
  listeners:
  - name: http
    port: 8081
    protocol: HTTP
    allowedRoutes:
      kinds:
      - kind: HTTPRoute
---
"""  # lines 11-23

CASES = [
    Case("grpc_service_chars", GRPC_HEAD + "  rules:\n  - matches:\n    - method:\n"
         "        service: pkg/Svc\n", "21:18", "error", "GRPCRoute default/g",
         "spec.rules[0].matches[0].method.service",
         'Invalid value: "pkg/Svc": service must only contain valid characters (matching '
         r'^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$)',
         condition=("Accepted", "False", "UnsupportedValue")),
    Case("grpc_method_chars", GRPC_HEAD + "  rules:\n  - matches:\n    - method:\n"
         "        service: pkg.Svc\n        method: Get/All\n", "22:17", "error",
         "GRPCRoute default/g", "spec.rules[0].matches[0].method.method",
         'Invalid value: "Get/All": method must only contain valid characters (matching '
         '^[A-Za-z_][A-Za-z_0-9]*$)'),
    Case("grpc_method_neither", GRPC_HEAD + "  rules:\n  - matches:\n    - method:\n"
         "        type: Exact\n", "21:9", "error", "GRPCRoute default/g",
         "spec.rules[0].matches[0].method",
         "Invalid value: One or both of 'service' or 'method' must be specified"),
    Case("grpc_method_type", GRPC_HEAD + "  rules:\n  - matches:\n    - method:\n"
         "        type: Prefix\n        service: a\n", "21:15", "error", "GRPCRoute default/g",
         "spec.rules[0].matches[0].method.type",
         'Unsupported value: "Prefix": supported values: "Exact", "RegularExpression"'),
    Case("grpc_method_regex", GRPC_HEAD + "  rules:\n  - matches:\n    - method:\n"
         "        type: RegularExpression\n        method: \"Get(\"\n", "22:17", "error",
         "GRPCRoute default/g", "spec.rules[0].matches[0].method.method",
         'Invalid value: "Get(": invalid RE2 regular expression: missing ): Get('),
    Case("grpc_unknown_match_field", GRPC_HEAD + "  rules:\n  - matches:\n"
         "    - path: {value: /a}\n", "20:7", "error", "GRPCRoute default/g",
         "spec.rules[0].matches[0].path", ['unknown field "path"'], exact=False),
    Case("grpc_filter_type", GRPC_HEAD + "  rules:\n  - filters:\n"
         "    - type: URLRewrite\n      urlRewrite: {hostname: a.example.com}\n", "20:13",
         "error", "GRPCRoute default/g", "spec.rules[0].filters[0].type",
         'Unsupported value: "URLRewrite": supported values: RequestHeaderModifier, '
         'ResponseHeaderModifier, RequestMirror, ExtensionRef'),
    Case("grpc_header_regex", GRPC_HEAD + "  rules:\n  - matches:\n    - headers:\n"
         "      - name: x-a\n        type: RegularExpression\n        value: \"a(b\"\n",
         "23:16", "error", "GRPCRoute default/g", "spec.rules[0].matches[0].headers[0].value",
         "Invalid value: \"a(b\": invalid RE2 regular expression: missing ): a(b"),
    Case("grpc_api_version", GRPC_HEAD.replace("/v1", "/v1alpha2"), "11:13", "error",
         "GRPCRoute default/g", "apiVersion",
         'Unsupported value: "gateway.networking.k8s.io/v1alpha2": GRPCRoute is served as '
         'gateway.networking.k8s.io/v1'),
    Case("grpc_kind_not_allowed", ONLY_HTTP_GATEWAY + GRPC_HEAD.replace("name: gw\n",
                                                                        "name: gw2\n"),
         "30:5", "warning", "GRPCRoute default/g", "spec.parentRefs[0]",
         'Accepted=False/NotAllowedByListeners: Gateway default/gw2: allowedRoutes.kinds does '
         'not include GRPCRoute', exit=0),
    Case("backend_protocol", BACKEND + "  protocol: h2c\n  endpoints:\n  - address: 10.0.0.1\n"
         "    port: 80\n", "16:13", "error", "Backend default/api", "spec.protocol",
         'Unsupported value: "h2c": supported values: "http1", "http2", "grpc"'),
]

VALID = GATEWAY + BACKEND + """\
  protocol: grpc
  endpoints:
  - address: 127.0.0.1
    port: 50051
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: g
spec:
  parentRefs:
  - name: gw
  rules:
  - matches:
    - method: {service: helloworld.Greeter, method: SayHello}
    backendRefs:
    - name: api
  - matches:
    - method: {service: helloworld.Greeter}
      headers:
      - {name: x-canary, value: "yes"}
    backendRefs:
    - name: api
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
spec:
  parentRefs:
  - name: gw
  rules:
  - backendRefs:
    - name: api
"""


class GrpcRouteConfig(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="portico-grpcroute-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.tmp, name + ".yaml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def run_bin(self, *args):
        p = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=30)
        return p.returncode, p.stdout, p.stderr

    def assertMessage(self, case, message):
        if case.exact:
            self.assertEqual(message, case.message)
        else:
            for part in case.message:
                self.assertIn(part, message)

    def test_error_table(self):
        for case in CASES:
            with self.subTest(case.name):
                path = self.write(case.name, GATEWAY + case.text)
                code, out, err = self.run_bin("check", "-c", path)
                self.assertEqual(code, case.exit, out + err)
                want = f"{path}:{case.pos}: {case.severity}: {case.resource}: {case.field}: "
                lines = [l for l in err.splitlines() if l.startswith(want)]
                self.assertEqual(len(lines), 1, f"want a line starting {want!r}:\n{err}")
                self.assertMessage(case, lines[0][len(want):])
                code, out, _ = self.run_bin("check", "-c", path, "-o", "json")
                self.assertEqual(code, case.exit)
                doc = json.loads(out)
                line, col = map(int, case.pos.split(":"))
                kind, _, nsname = case.resource.partition(" ")
                ns, _, name = nsname.partition("/")
                found = [d for d in doc["diagnostics"]
                         if (d["line"], d["column"], d["severity"]) == (line, col, case.severity)]
                self.assertEqual(len(found), 1, doc["diagnostics"])
                d = found[0]
                self.assertEqual((d["kind"], d["namespace"], d["name"]), (kind, ns, name))
                self.assertEqual(d["fieldPath"], case.field)
                self.assertMessage(case, d["message"])
                if case.condition:
                    res = [r for r in doc["resources"]
                           if (r["kind"], r["namespace"], r["name"]) == (kind, ns, name)]
                    self.assertEqual(len(res), 1, doc["resources"])
                    got = [(c["type"], c["status"], c["reason"]) for c in res[0]["conditions"]]
                    self.assertIn(case.condition, got)

    def test_valid_route_is_accepted(self):
        path = self.write("valid", VALID)
        code, out, err = self.run_bin("check", "-c", path, "-o", "json")
        self.assertEqual(code, 0, out + err)
        doc = json.loads(out)
        self.assertEqual(doc["diagnostics"], [])
        route = [r for r in doc["resources"] if r["kind"] == "GRPCRoute"]
        self.assertEqual(len(route), 1, doc["resources"])
        got = [(c["type"], c["status"]) for c in route[0]["conditions"]]
        self.assertIn(("Accepted", "True"), got)
        self.assertIn(("ResolvedRefs", "True"), got)
        # The listener admits both kinds and counts both routes.
        code, out, _ = self.run_bin("check", "-c", path)
        self.assertIn("GRPCRoute default/g: Accepted=True", out)

    def test_explain_names_the_grpcroute_and_the_backend_protocol(self):
        path = self.write("explain", VALID)
        code, out, err = self.run_bin("explain", "-c", path, "--host", "grpc.example",
                                      "--path", "/helloworld.Greeter/SayHello", "-X", "POST")
        self.assertEqual(code, 0, out + err)
        self.assertIn("result: GRPCRoute default/g rule 0 match 0", out)
        self.assertIn("matches Exact /helloworld.Greeter/SayHello", out)
        self.assertIn("backend default/api protocol grpc weight 1", out)
        # Service-only match with a header: rule 1; without the header the HTTPRoute (the
        # GRPCRoute does not match) serves it.
        code, out, _ = self.run_bin("explain", "-c", path, "--host", "grpc.example", "--path",
                                    "/helloworld.Greeter/Other", "-X", "POST",
                                    "-H", "x-canary: yes", "-o", "json")
        self.assertEqual(code, 0)
        doc = json.loads(out)[0]
        self.assertEqual(doc["match"]["route"], "GRPCRoute default/g", doc)
        self.assertEqual(doc["match"]["rule"], 1, doc)
        self.assertEqual(doc["backends"][0]["protocol"], "grpc")
        code, out, _ = self.run_bin("explain", "-c", path, "--host", "grpc.example", "--path",
                                    "/helloworld.Greeter/Other", "-X", "POST", "-o", "json")
        doc = json.loads(out)[0]
        self.assertEqual(doc["match"]["route"], "default/web", doc)
        misses = {(m["route"], m["rule"]): m["reason"] for m in doc["near_misses"]}
        self.assertIn("header x-canary: absent", misses[("GRPCRoute default/g", 1)])


class GrpcRouteServed(GatewayTestCase):
    """A running gateway routes by the GRPCRoute's mapped paths (over HTTP/1.1 until the
    HTTP/2 data path lands) and reports the route and the backend protocol."""

    def test_grpcroute_routes_requests_and_reports_status(self):
        # Routing only: the backends are HTTP/1.1 echo servers (gRPC over HTTP/2 end to end
        # is test_grpc.py's).
        greeter, canary, web = self.echo("greeter"), self.echo("canary"), self.echo("web")
        port = free_port()
        self.gateway(f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  addresses: [{{type: IPAddress, value: 127.0.0.1}}]
  listeners: [{{name: http, port: {port}, protocol: HTTP}}]
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {{name: greeter}}
spec:
  endpoints: [{{address: 127.0.0.1, port: {greeter}}}]
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {{name: canary}}
spec:
  endpoints: [{{address: 127.0.0.1, port: {canary}}}]
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {{name: web}}
spec:
  endpoints: [{{address: 127.0.0.1, port: {web}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: g}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - matches: [{{method: {{service: helloworld.Greeter}}}}]
    backendRefs: [{{name: greeter}}]
  - matches: [{{method: {{service: helloworld.Greeter}}, headers: [{{name: x-canary, value: "yes"}}]}}]
    backendRefs: [{{name: canary}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - backendRefs: [{{name: web}}]
""")

        def post(path, headers=None):
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=b"\0\0\0\0\0",
                                         headers={"content-type": "application/grpc",
                                                  **(headers or {})}, method="POST")
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.headers["x-echo-name"]

        self.assertEqual(post("/helloworld.Greeter/SayHello"), "greeter")
        self.assertEqual(post("/helloworld.Greeter/SayHello", {"X-Canary": "yes"}), "canary")
        self.assertEqual(post("/helloworld.GreeterX/SayHello"), "web")
        self.assertEqual(post("/index.html"), "web")

        _, text = self.admin_get("/config_dump")
        dump = json.loads(text)
        [route] = [r for r in dump["resources"] if r["kind"] == "GRPCRoute"]
        [parent] = route["status"]["parents"]
        got = {(c["type"], c["status"]) for c in parent["conditions"]}
        self.assertIn(("Accepted", "True"), got)
        self.assertIn(("ResolvedRefs", "True"), got)
        [gw] = [r for r in dump["resources"] if r["kind"] == "Gateway"]
        listener = gw["status"]["listeners"][0]
        self.assertEqual(listener["attachedRoutes"], 2)
        self.assertEqual([k["kind"] for k in listener["supportedKinds"]],
                         ["HTTPRoute", "GRPCRoute"])
        protocols = {b["name"]: b["protocol"] for b in dump["backends"]}
        self.assertEqual(protocols, {"default/greeter": "http1", "default/canary": "http1",
                                     "default/web": "http1"})
        routes = dump["ports"][0]["listeners"][0]["routes"]
        self.assertEqual(sorted(routes), ["GRPCRoute default/g", "default/web"])


if __name__ == "__main__":
    unittest.main()
