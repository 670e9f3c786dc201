"""The admin listener: /ready, /stats/prometheus accepted by promtool, /config_dump."""

import json
import shutil
import subprocess
import unittest
import urllib.request

from harness import BIN, GatewayTestCase, free_port, gateway_yaml


class Admin(GatewayTestCase):
    def setUp(self):
        super().setUp()
        self.api = self.echo("api")
        self.port = free_port()
        self.gateway(gateway_yaml(self.port, [("PathPrefix", "/api", [("api", None, 1)]),
                                              ("PathPrefix", "/gone", [("missing", None, 1)])],
                                  {"api": [self.api]}))

    def test_ready(self):
        self.assertEqual(self.admin_get("/ready"), (200, "LIVE\n"))

    @unittest.skipUnless(shutil.which("promtool"), "promtool is not installed")
    def test_prometheus_passes_promtool(self):
        for _ in range(3):
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/x", timeout=5).read()
        status, text = self.admin_get("/stats/prometheus")
        self.assertEqual(status, 200)
        out = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                             capture_output=True)
        self.assertEqual(out.returncode, 0, out.stderr.decode())
        self.assertIn('portico_route_responses_total{route="default/test",code_class="2xx"} 3',
                      text)
        self.assertIn('portico_backend_requests_total{backend="default/api"} 3', text)
        self.assertIn("portico_request_duration_seconds_bucket{le=\"+Inf\"} 3", text)

    def test_unresolved_backend_is_500_and_reported(self):
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/gone", timeout=5)
        self.assertEqual(e.exception.code, 500)
        status, text = self.admin_get("/config_dump")
        self.assertEqual(status, 200)
        dump = json.loads(text)
        self.assertIn("missing", text)
        self.assertTrue(dump)

    def test_bad_config_fails_with_position(self):
        path = f"{self.tmp}/bad.yaml"
        with open(path, "w") as f:
            f.write("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
                    "metadata: {name: g}\nspec:\n  listeners:\n  - {name: h, port: 99999}\n")
        out = subprocess.run([BIN, "gateway", "-c", path, "--admin", "none"],
                             capture_output=True, timeout=10)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn(f"{path}:6:", out.stderr.decode())
        self.assertIn("Gateway default/g: spec.listeners[0].port", out.stderr.decode())


if __name__ == "__main__":
    unittest.main()
