"""Slow clients cannot hold a worker: 5,000 slowloris connections from slowhttptest while a
normal client keeps getting answers; each slow connection is closed within the header timeout
plus one second."""

import csv
import glob
import http.client
import os
import resource
import shutil
import socket
import threading
import time
import unittest

from harness import GatewayTestCase, free_port, gateway_yaml

HEADER_TIMEOUT_S = 2


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))


@unittest.skipUnless(shutil.which("slowhttptest"), "slowhttptest is not installed")
class SlowClients(GatewayTestCase):
    def test_slowloris_5000_connections(self):
        api = self.echo("api")
        port = free_port()
        path = os.path.join(self.tmp, "gateway.yaml")
        with open(path, "w") as f:
            f.write(gateway_yaml(port, [("PathPrefix", "/", [("api", None, 1)])],
                                 {"api": [api]}, timeouts=f"{{requestHeaders: {HEADER_TIMEOUT_S}s}}"))
        from harness import BIN
        self.admin_port = free_port()
        self.start([BIN, "gateway", "-c", path, "--workers", "2", "--admin",
                    f"127.0.0.1:{self.admin_port}"], "gateway", self.admin_port,
                   preexec=raise_nofile)

        # A normal client, answered all along.
        stop = threading.Event()
        results = []

        def normal():
            while not stop.is_set():
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
                    c.request("GET", "/ping")
                    r = c.getresponse()
                    r.read()
                    results.append(r.status)
                    c.close()
                except Exception as e:  # noqa: BLE001
                    results.append(repr(e))
                time.sleep(0.05)

        # Our own slow probes, timed precisely.
        probe_times = []

        def probe():
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            t0 = time.time()
            s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n")
            try:
                while True:
                    s.sendall(b"X-a: b\r\n")
                    if s.recv(4096) == b"":
                        break
            except (socket.timeout, OSError):
                pass
            probe_times.append(time.time() - t0)
            s.close()

        def probe_loop():
            s_list = []
            for _ in range(20):
                t = threading.Thread(target=probe)
                t.start()
                s_list.append(t)
                time.sleep(0.25)
            for t in s_list:
                t.join()

        stats_prefix = os.path.join(self.tmp, "slow")
        t_normal = threading.Thread(target=normal)
        t_normal.start()
        t_probe = threading.Thread(target=probe_loop)
        attack = self.start(["slowhttptest", "-H", "-c", "5000", "-r", "1000", "-i", "1",
                             "-l", "12", "-x", "16", "-p", "3", "-s", "8192", "-g", "-o",
                             stats_prefix, "-u", f"http://127.0.0.1:{port}/"], "slowhttptest",
                            preexec=raise_nofile)
        time.sleep(2)
        t_probe.start()
        attack.proc.wait(60)
        t_probe.join()
        stop.set()
        t_normal.join()

        self.assertTrue(results, "the normal client made no request")
        self.assertEqual([r for r in results if r != 200], [])
        self.assertEqual(len(probe_times), 20)
        self.assertLessEqual(max(probe_times), HEADER_TIMEOUT_S + 1, probe_times)

        # slowhttptest's own view: never more connections open than ~rate x (timeout + 1).
        rows = list(csv.reader(open(glob.glob(stats_prefix + "*.csv")[0])))
        header, data = rows[0], rows[1:]
        connected = header.index("connected") if "connected" in header else 3
        peak = max(int(r[connected]) for r in data if r and r[connected].isdigit())
        self.assertLess(peak, 1000 * (HEADER_TIMEOUT_S + 1) + 500, f"peak {peak}")
        _, metrics = self.admin_get("/stats/prometheus")
        timeouts = [l for l in metrics.splitlines()
                    if l.startswith("portico_downstream_timeouts_total")]
        self.assertGreater(int(timeouts[0].split()[1]), 1000)


if __name__ == "__main__":
    unittest.main()
