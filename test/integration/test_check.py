"""`portico check`: offline validation of a config file or folder; exit codes, GNU-style
diagnostics with file:line:col and field path, per-resource status lines, and -o json."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import BIN

GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  listeners:
  - name: http
    port: 8080
    protocol: HTTP
"""  # 9 lines

BACKEND = """\
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata:
  name: api
spec:
  endpoints:
  - address: 127.0.0.1
    port: 9001
"""


def route(name, path="/api", backend="api"):
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: {name}
spec:
  parentRefs:
  - name: gw
  rules:
  - matches:
    - path: {{type: PathPrefix, value: {path}}}
    backendRefs:
    - name: {backend}
"""


VALID = GATEWAY + "---\n" + route("store") + "---\n" + BACKEND

# (name, YAML text, expected "line:col", expected field path, expected text in the message)
INVALID = [
    ("unknown_field", GATEWAY + "---\n" + """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: store
spec:
  parentRefs:
  - name: gw
  bogus: 1
""", "18:3", "spec.bogus", 'unknown field "bogus"'),
    ("bad_port", """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  listeners:
  - name: http
    port: 70000
    protocol: HTTP
""", "8:11", "spec.listeners[0].port", "70000"),
    ("bad_hostname", """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  listeners:
  - name: http
    port: 8080
    protocol: HTTP
    hostname: "bad_host!"
""", "10:15", "spec.listeners[0].hostname", "bad_host!"),
    ("duplicate_listener", """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  listeners:
  - name: http
    port: 8080
    protocol: HTTP
  - name: http
    port: 8081
    protocol: HTTP
""", "10:11", "spec.listeners[1].name", "Duplicate value"),
]


class CheckTestCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="portico-check-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def check(self, *args):
        p = subprocess.run([BIN, "check", *args], capture_output=True, text=True, timeout=30)
        return p.returncode, p.stdout, p.stderr

    def check_json(self, path):
        code, out, err = self.check("-c", path, "-o", "json")
        return code, json.loads(out)


class Check(CheckTestCase):
    def test_valid_config_is_ok(self):
        path = self.write("gw.yaml", VALID)
        code, out, err = self.check("-c", path)
        self.assertEqual(code, 0, out + err)
        self.assertEqual(err, "")
        lines = out.splitlines()
        self.assertEqual(lines[-1],
                         f"configuration '{path}' OK: 3 resources, 0 errors, 0 warnings")
        self.assertIn("Gateway default/gw: Accepted=True Programmed=True", lines)
        self.assertIn("  listener http: Accepted=True ResolvedRefs=True Programmed=True", lines)
        self.assertIn("HTTPRoute default/store: Accepted=True ResolvedRefs=True", lines)
        self.assertIn("Backend default/api: Accepted=True", lines)

    def test_folder(self):
        folder = os.path.join(self.tmp, "conf")
        os.mkdir(folder)
        with open(os.path.join(folder, "1-gateway.yaml"), "w") as f:
            f.write(GATEWAY)
        with open(os.path.join(folder, "2-routes.yml"), "w") as f:
            f.write(route("store") + "---\n" + BACKEND)
        code, out, err = self.check("--config", folder)
        self.assertEqual(code, 0, out + err)
        self.assertTrue(out.endswith(f"configuration '{folder}' OK: 3 resources, 0 errors, "
                                     "0 warnings\n"), out)

    def test_invalid_manifests(self):
        for name, text, pos, field, message in INVALID:
            with self.subTest(name):
                path = self.write(f"{name}.yaml", text)
                code, out, err = self.check("-c", path)
                self.assertEqual(code, 1, out + err)
                prefix = f"{path}:{pos}: error: "
                lines = [l for l in err.splitlines() if l.startswith(prefix)]
                self.assertEqual(len(lines), 1, err)
                self.assertIn(f": {field}: ", lines[0])
                self.assertIn(message, lines[0])
                self.assertRegex(out.splitlines()[-1],
                                 rf"^configuration '{path}' invalid: \d+ resources?, "
                                 r"[1-9]\d* errors?, \d+ warnings?$")

    def test_unresolved_backend_is_a_warning(self):
        path = self.write("gw.yaml", GATEWAY + "---\n" + route("store", backend="missing"))
        code, out, err = self.check("-c", path)
        self.assertEqual(code, 0, out + err)
        self.assertRegex(err, rf"^{path}:22:7: warning: HTTPRoute default/store: "
                              r"spec\.rules\[0\]\.backendRefs\[0\]: .*not found")
        self.assertIn("HTTPRoute default/store: Accepted=True ResolvedRefs=False "
                      "(BackendNotFound: Backend default/missing not found)", out)
        self.assertTrue(out.endswith("OK: 2 resources, 0 errors, 1 warning\n"), out)

    def test_yaml_syntax_error(self):
        path = self.write("bad.yaml", GATEWAY + "---\nkind: HTTPRoute\nmetadata: {name: x\n"
                                                "spec: [\n")
        code, out, err = self.check("-c", path)
        self.assertEqual(code, 1, out + err)
        # The flow mapping opened on line 12 is cut by "[" at line 13, column 5.
        self.assertEqual(err.splitlines(),
                         [f"{path}:13:5: error: invalid YAML: end of map flow not found"])
        self.assertIn("invalid:", out.splitlines()[-1])

    def test_missing_path_is_unreadable(self):
        path = os.path.join(self.tmp, "nope.yaml")
        code, out, err = self.check("-c", path)
        self.assertEqual(code, 2)
        self.assertEqual(out, "")
        self.assertIn(f"{path}: error: cannot read configuration", err)
        code, doc = self.check_json(path)
        self.assertEqual(code, 2)
        self.assertFalse(doc["valid"])
        self.assertEqual(doc["result"], "unreadable")
        self.assertEqual(doc["resources"], [])

    def test_usage_errors(self):
        for args in ([], ["-c"], ["-c", "x.yaml", "-o", "yaml"], ["--frobnicate"]):
            with self.subTest(args=args):
                code, out, err = self.check(*args)
                self.assertEqual(code, 64, err)
                self.assertIn("portico check", err)
        code, _, err = self.check("--help")
        self.assertEqual(code, 0)
        self.assertIn("usage: portico check", err)

    def test_no_listener_is_invalid(self):
        path = self.write("routes.yaml", route("store") + "---\n" + BACKEND)
        code, out, err = self.check("-c", path)
        self.assertEqual(code, 1, out + err)
        self.assertIn(f"{path}: error: the configuration defines no usable listener", err)

    def test_json_output(self):
        path = self.write("gw.yaml", GATEWAY + "---\n" + route("store", backend="missing")
                          + "---\n" + "kind: HTTPRoute\nmetadata: {name: x}\n")
        code, doc = self.check_json(path)
        self.assertEqual(code, 1)
        self.assertEqual(doc["path"], path)
        self.assertIs(doc["valid"], False)
        self.assertEqual(doc["result"], "invalid")
        self.assertGreaterEqual(doc["errors"], 1)
        self.assertEqual(doc["warnings"], 1)
        self.assertEqual(doc["errors"] + doc["warnings"], len(doc["diagnostics"]))
        for d in doc["diagnostics"]:
            self.assertEqual(set(d), {"file", "line", "column", "severity", "kind", "namespace",
                                      "name", "fieldPath", "message"})
        warning = [d for d in doc["diagnostics"] if d["severity"] == "warning"][0]
        self.assertEqual((warning["file"], warning["line"], warning["column"]), (path, 22, 7))
        self.assertEqual((warning["kind"], warning["namespace"], warning["name"]),
                         ("HTTPRoute", "default", "store"))
        self.assertEqual(warning["fieldPath"], "spec.rules[0].backendRefs[0]")
        kinds = [(r["kind"], r["namespace"], r["name"]) for r in doc["resources"]]
        self.assertEqual(kinds, [("Gateway", "default", "gw"), ("HTTPRoute", "default", "store")])
        gw, store = doc["resources"]
        self.assertEqual(gw["file"], path)
        self.assertEqual(gw["line"], 1)
        self.assertIn({"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                       "listener": "http"}, gw["conditions"])
        resolved = [c for c in store["conditions"] if c["type"] == "ResolvedRefs"]
        self.assertEqual(len(resolved), 1)
        self.assertEqual(resolved[0]["status"], "False")
        self.assertEqual(resolved[0]["reason"], "BackendNotFound")
        self.assertEqual(resolved[0]["parentRef"]["name"], "gw")

    def test_json_valid(self):
        code, doc = self.check_json(self.write("gw.yaml", VALID))
        self.assertEqual(code, 0)
        self.assertIs(doc["valid"], True)
        self.assertEqual((doc["errors"], doc["warnings"], doc["diagnostics"]), (0, 0, []))
        self.assertEqual(len(doc["resources"]), 3)

    def test_one_bad_route_among_good_ones(self):
        text = (GATEWAY + "---\n" + route("a", "/a") + "---\n" + route("b", "no-slash")
                + "---\n" + route("c", "/c") + "---\n" + BACKEND)
        path = self.write("gw.yaml", text)
        code, out, err = self.check("-c", path)
        self.assertEqual(code, 1, out + err)
        errors = [l for l in err.splitlines() if ": error: " in l]
        self.assertTrue(errors, err)
        for line in errors:
            self.assertIn(" HTTPRoute default/b: ", line)
        # Route b starts on line 24; its path value is on its 10th line.
        self.assertEqual(errors, [f"{path}:33:39: error: HTTPRoute default/b: "
                                  "spec.rules[0].matches[0].path.value: Invalid value: "
                                  "\"no-slash\": must be an absolute path starting with '/'"])
        lines = out.splitlines()
        self.assertIn("HTTPRoute default/a: Accepted=True ResolvedRefs=True", lines)
        self.assertIn("HTTPRoute default/c: Accepted=True ResolvedRefs=True", lines)
        self.assertRegex(out, r"(?m)^HTTPRoute default/b: Accepted=False ")
        self.assertIn("Gateway default/gw: Accepted=True Programmed=True", lines)
        self.assertEqual(lines[-1],
                         f"configuration '{path}' invalid: 5 resources, {len(errors)} error"
                         + ("" if len(errors) == 1 else "s") + ", 0 warnings")


if __name__ == "__main__":
    unittest.main()
