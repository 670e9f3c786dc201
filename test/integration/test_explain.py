"""`portico explain` and admin /explain: the answer to "why 404"."""

import json
import os
import subprocess
import unittest
import urllib.parse

from harness import BIN, GatewayTestCase, free_port, gateway_yaml


class Explain(GatewayTestCase):
    def setUp(self):
        super().setUp()
        self.api = self.echo("api")
        self.port = free_port()
        self.config = gateway_yaml(self.port, [("PathPrefix", "/api", [("api", None, 3)]),
                                               ("Exact", "/health", [("api", None, 1)])],
                                   {"api": [self.api]})
        self.path = os.path.join(self.tmp, "explain.yaml")
        with open(self.path, "w") as f:
            f.write(self.config)

    def cli(self, *args):
        return subprocess.run([BIN, "explain", "-c", self.path, *args], capture_output=True,
                              timeout=10)

    def test_match_names_route_rule_and_backend(self):
        out = self.cli("--host", "a.example", "--path", "/api/users?id=1")
        self.assertEqual(out.returncode, 0, out.stderr)
        text = out.stdout.decode()
        self.assertIn("default/test rule 0", text)
        self.assertIn("PathPrefix /api", text)
        self.assertIn("backend default/api weight 3", text)
        self.assertIn(f"127.0.0.1:{self.api}", text)

    def test_404_lists_near_misses_with_reasons(self):
        out = self.cli("--host", "a.example", "--path", "/apix", "-o", "json")
        self.assertEqual(out.returncode, 0, out.stderr)
        [report] = json.loads(out.stdout)
        self.assertIsNone(report["match"])
        reasons = [m["reason"] for m in report["near_misses"]]
        self.assertIn("path /apix does not match PathPrefix /api", reasons)
        self.assertTrue(any("/health" in r for r in reasons), reasons)

    def test_usage_and_unreadable(self):
        self.assertEqual(subprocess.run([BIN, "explain", "-c", self.path],
                                        capture_output=True).returncode, 64)
        self.assertEqual(subprocess.run([BIN, "explain", "-c", "/nonexistent.yaml", "--host",
                                         "a", "--path", "/"], capture_output=True).returncode, 2)

    def test_admin_explain_on_running_gateway(self):
        self.gateway(self.config)
        q = urllib.parse.urlencode({"host": "a.example", "path": "/health", "method": "GET",
                                    "format": "json"})
        status, body = self.admin_get(f"/explain?{q}")
        self.assertEqual(status, 200)
        [report] = json.loads(body)
        self.assertEqual(report["match"]["route"], "default/test")
        self.assertEqual(report["match"]["rule"], 1)
        status, text = self.admin_get("/explain?host=a.example&path=/nowhere")
        self.assertIn("404", text)


if __name__ == "__main__":
    unittest.main()
