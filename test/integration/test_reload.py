"""Hot reload: file changes are picked up (inotify) and SIGHUP reloads; an invalid file never
replaces a valid config; reloads under load fail no request and close no connection."""

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import unittest

from harness import GatewayTestCase, free_port, gateway_yaml


class Reload(GatewayTestCase):
    def setUp(self):
        super().setUp()
        self.a = self.echo("a")
        self.b = self.echo("b")
        self.port = free_port()
        self.gateway(self.config("a"), workers=2)
        self.path = os.path.join(self.tmp, "gateway.yaml")

    def config(self, target):
        return gateway_yaml(self.port, [("PathPrefix", "/", [(target, None, 1)])],
                            {"a": [self.a], "b": [self.b]})

    def write(self, text):
        # Write then rename, as editors and config management tools do.
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.path)

    def served_by(self, conn=None):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        c.request("GET", "/who")
        r = c.getresponse()
        body = r.read()
        if conn is None:
            c.close()
        return r.status, json.loads(body)["name"] if r.status == 200 else body

    def wait_for(self, name, timeout=3.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.served_by() == (200, name):
                return True
            time.sleep(0.02)
        return False

    def test_file_change_is_applied_without_closing_connections(self):
        keep = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        self.assertEqual(self.served_by(keep), (200, "a"))
        self.write(self.config("b"))
        self.assertTrue(self.wait_for("b"), self.gw.output())
        # The keep-alive connection opened before the reload still works, on the new config.
        self.assertEqual(self.served_by(keep), (200, "b"))

    def test_invalid_config_never_replaces_a_valid_one(self):
        self.write("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n: : broken [\n")
        time.sleep(0.5)
        self.assertEqual(self.served_by(), (200, "a"))
        self.assertIn("keeping the running configuration", self.gw.output())
        self.gw.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        self.assertEqual(self.served_by(), (200, "a"))

    def two_routes(self, one, two, two_weight=1):
        base = self.config("a").split("---")
        gateway, backends = base[0], "---".join(base[2:])
        routes = "".join(f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}}}
spec:
  parentRefs: [{{name: test}}]
  rules: [{{matches: [{{path: {{type: PathPrefix, value: /{name}}}}}],
           backendRefs: [{{name: {target}, weight: {weight}}}]}}]
""" for name, target, weight in (("one", one, 1), ("two", two, two_weight)))
        return gateway + routes + "---" + backends

    def path_served_by(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        return json.loads(body)["name"] if r.status == 200 else r.status

    def wait_applied(self, version, timeout=3.0):
        deadline = time.time() + timeout
        while f"configuration version {version} applied" not in self.gw.output():
            self.assertLess(time.time(), deadline, self.gw.output())
            time.sleep(0.02)

    def test_a_route_that_becomes_invalid_keeps_its_last_good_version(self):
        self.write(self.two_routes("a", "a"))
        self.wait_applied(2)
        self.assertEqual(self.path_served_by("/two"), "a")
        # Route one changes validly, route two becomes invalid (negative weight).
        self.write(self.two_routes("b", "b", two_weight=-5))
        self.wait_applied(3)
        self.assertEqual(self.path_served_by("/one"), "b")
        self.assertEqual(self.path_served_by("/two"), "a", self.gw.output())
        self.assertIn("HTTPRoute default/two is invalid: keeping its last good version",
                      self.gw.output())

    def applied_line(self, version):
        for line in self.gw.output().splitlines():
            if f"configuration version {version} applied" in line:
                return line
        return ""

    def test_a_reload_compiles_only_the_routes_that_changed(self):
        self.write(self.two_routes("a", "a"))
        self.wait_applied(2)
        # Only route one changes: route two keeps its compiled form.
        self.write(self.two_routes("b", "a"))
        self.wait_applied(3)
        self.assertEqual(self.path_served_by("/one"), "b")
        self.assertEqual(self.path_served_by("/two"), "a")
        self.assertIn("(1 reused, 1 compiled)", self.applied_line(3))
        # A Backend changes (b now points at a's echo): every route is compiled again.
        self.write(self.two_routes("b", "a").replace(f"port: {self.b}", f"port: {self.a}"))
        self.wait_applied(4)
        self.assertEqual(self.path_served_by("/one"), "a")
        self.assertEqual(self.path_served_by("/two"), "a")
        self.assertIn("(0 reused, 2 compiled)", self.applied_line(4))
        dump = json.loads(self.admin_get("/config_dump")[1])
        parents = {r["metadata"]["name"]: r["status"]["parents"][0]["conditions"][0]["status"]
                   for r in dump["resources"] if r["kind"] == "HTTPRoute"}
        self.assertEqual(parents, {"one": "True", "two": "True"})

    def test_sighup_reloads(self):
        # Change the file where inotify cannot see it being written... it will; so check that
        # SIGHUP on an unchanged file is harmless and a changed one is applied.
        self.gw.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        self.assertEqual(self.served_by(), (200, "a"))
        self.write(self.config("b"))
        self.gw.proc.send_signal(signal.SIGHUP)
        self.assertTrue(self.wait_for("b"))

    @unittest.skipUnless(shutil.which("wrk"), "wrk is not installed")
    def test_listener_added_and_removed_under_load(self):
        extra = free_port()
        base = self.config("a")
        listener = f"listeners: [{{name: http, port: {self.port}, protocol: HTTP}}]"
        self.assertIn(listener, base)
        with_extra = base.replace(listener, f"listeners: [{{name: http, port: {self.port}, "
                                             f"protocol: HTTP}}, {{name: extra, port: {extra}, "
                                             f"protocol: HTTP}}]")
        wrk = subprocess.Popen(["wrk", "-t1", "-c20", "-d6s", f"http://127.0.0.1:{self.port}/"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(1)
        self.write(with_extra)
        self.wait_applied(2)
        c = http.client.HTTPConnection("127.0.0.1", extra, timeout=5)
        c.request("GET", "/on-extra")
        r = c.getresponse()
        self.assertEqual((r.status, json.loads(r.read())["path"]), (200, "/on-extra"))
        c.close()
        self.write(base)
        self.wait_applied(3)
        time.sleep(0.2)
        with self.assertRaises(OSError):
            c = http.client.HTTPConnection("127.0.0.1", extra, timeout=2)
            c.request("GET", "/gone")
            c.getresponse()
        out = wrk.communicate(timeout=30)[0].decode()
        self.assertNotIn("Socket errors", out, out)
        self.assertNotIn("Non-2xx", out, out)

    @unittest.skipUnless(shutil.which("wrk"), "wrk is not installed")
    def test_ten_reloads_under_load_fail_nothing(self):
        # Keep-alive load from wrk (50 connections) and a one-connection-per-request client,
        # while the route flips between two backends 10 times in ~10 s.
        failures = []
        done = threading.Event()
        served = {"a": 0, "b": 0}

        def one_per_connection():
            while not done.is_set():
                try:
                    c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                    c.request("GET", "/fresh", headers={"Connection": "close"})
                    r = c.getresponse()
                    body = r.read()
                    if r.status != 200:
                        failures.append(r.status)
                    else:
                        served[json.loads(body)["name"]] += 1
                    c.close()
                except Exception as e:  # noqa: BLE001
                    failures.append(repr(e))

        wrk = subprocess.Popen(["wrk", "-t1", "-c50", "-d13s", f"http://127.0.0.1:{self.port}/"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        client = threading.Thread(target=one_per_connection)
        client.start()
        time.sleep(1)
        for i in range(10):
            self.write(self.config("b" if i % 2 == 0 else "a"))
            time.sleep(1)
        out = wrk.communicate(timeout=30)[0].decode()
        done.set()
        client.join()
        self.assertEqual(failures, [])
        self.assertGreater(served["a"], 0)
        self.assertGreater(served["b"], 0)
        self.assertNotIn("Socket errors", out, out)
        self.assertNotIn("Non-2xx", out, out)
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        self.assertGreater(requests, 1000, out)
        self.assertGreaterEqual(self.gw.output().count("applied"), 10, self.gw.output())


if __name__ == "__main__":
    unittest.main()
