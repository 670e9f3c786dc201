"""The gateway proxying real traffic between real clients and real upstreams on loopback."""

import hashlib
import http.client
import json
import os
import socket
import subprocess
import threading
import time
import unittest

from harness import (GatewayTestCase, ThreadedServer, free_port, gateway_yaml, parse_responses,
                     raw_request, read_head, read_to_eof, sha256, status_of)


class RoutingAndHeaders(GatewayTestCase):
    def setUp(self):
        super().setUp()
        self.api = self.echo("api")
        self.web = self.echo("web")
        self.port = free_port()
        self.gateway(gateway_yaml(self.port, [
            ("PathPrefix", "/api", [("api", None, 1)]),
            ("Exact", "/web/index.html", [("web", None, 1)]),
        ], {"api": [self.api], "web": [self.web]}))

    def get(self, path, headers=None, method="GET", body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r, data

    def test_routes_by_prefix_and_exact(self):
        r, data = self.get("/api/users?id=7")
        self.assertEqual(r.status, 200)
        j = json.loads(data)
        self.assertEqual(j["name"], "api")
        self.assertEqual(j["path"], "/api/users")
        self.assertEqual(j["query"], "id=7")
        r, data = self.get("/web/index.html")
        self.assertEqual(json.loads(data)["name"], "web")

    def test_prefix_is_segment_based_and_404_names_listener(self):
        r, data = self.get("/apix")
        self.assertEqual(r.status, 404)
        self.assertIn(b"default/test/http", data)
        r, _ = self.get("/web/index.html/extra")
        self.assertEqual(r.status, 404)

    def test_forwarded_headers_and_hop_by_hop_removal(self):
        r, data = self.get("/api", headers={
            "X-Forwarded-For": "10.0.0.1", "Connection": "keep-alive, x-secret",
            "X-Secret": "drop me", "Keep-Alive": "timeout=5", "TE": "trailers",
            "X-Forwarded-Proto": "https", "X-Custom": "kept"})
        h = json.loads(data)["headers"]
        self.assertEqual(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1")
        self.assertEqual(h["x-forwarded-proto"], "http")
        self.assertEqual(h["x-custom"], "kept")
        for gone in ("x-secret", "keep-alive", "te", "connection"):
            self.assertNotIn(gone, h)
        self.assertEqual(h["host"], f"127.0.0.1:{self.port}")

    def test_post_body_content_length_and_chunked(self):
        body = b"x" * 100000
        r, data = self.get("/api/upload", method="POST", body=body)
        j = json.loads(data)
        self.assertEqual(j["body_bytes"], len(body))
        self.assertNotIn("transfer-encoding", j["headers"])
        self.assertEqual(j["headers"]["content-length"], str(len(body)))
        # Chunked with extensions and trailers, by hand.
        req = (b"POST /api/c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: close\r\n\r\n"
               b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        resp = raw_request(self.port, req)
        self.assertEqual(status_of(resp), 200)
        j = json.loads(resp.split(b"\r\n\r\n", 1)[1])
        self.assertEqual(j["body"], "hello world")
        self.assertEqual(j["headers"]["transfer-encoding"], "chunked")

    def test_pipelined_requests_answered_in_order(self):
        req = b"".join(
            b"GET /api/%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(5))
        req += b"GET /api/last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        resp = raw_request(self.port, req)
        paths = [json.loads(body)["path"] for status, body in parse_responses(resp)]
        self.assertEqual(paths, ["/api/0", "/api/1", "/api/2", "/api/3", "/api/4", "/api/last"])

    def test_http10_and_expect_continue(self):
        resp = raw_request(self.port, b"GET /api/old HTTP/1.0\r\n\r\n")
        self.assertEqual(status_of(resp), 200)
        self.assertTrue(resp.startswith(b"HTTP/1.1 200"), resp[:100])
        self.assertNotIn(b"transfer-encoding", resp.lower())
        # The upstream always gets HTTP/1.1, with a Host made up from the endpoint.
        self.assertIn(b'"version": "HTTP/1.1"', resp)
        # curl sends Expect: 100-continue for large bodies; the gateway answers 100 itself.
        path = os.path.join(self.tmp, "big")
        with open(path, "wb") as f:
            f.write(os.urandom(2 * 1024 * 1024))
        out = subprocess.run(
            ["curl", "-sS", "-H", "Expect: 100-continue", "--data-binary", f"@{path}",
             "-w", "\n%{http_code}", f"http://127.0.0.1:{self.port}/api/up"],
            capture_output=True, timeout=30)
        text = out.stdout.decode()
        self.assertTrue(text.endswith("\n200"), text[-200:])
        self.assertEqual(json.loads(text[:text.rfind("\n")])["body_bytes"], 2 * 1024 * 1024)

    def test_many_concurrent_keepalive_clients(self):
        errors = []
        counts = [0] * 50

        def client(i):
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                for n in range(40):
                    c.request("GET", f"/api/c{i}/{n}")
                    r = c.getresponse()
                    body = r.read()
                    if r.status != 200 or json.loads(body)["path"] != f"/api/c{i}/{n}":
                        errors.append((i, n, r.status))
                    counts[i] += 1
                c.close()
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                errors.append((i, repr(e)))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(sum(counts), 50 * 40)
        _, metrics = self.admin_get("/stats/prometheus")
        self.assertIn('portico_route_requests_total{route="default/test"}', metrics)

    def test_client_half_close_still_gets_its_response(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(b"GET /api/half HTTP/1.1\r\nHost: a\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        data = read_to_eof(s)
        s.close()
        [(status, body)] = parse_responses(data)
        self.assertEqual((status, json.loads(body)["path"]), (200, "/api/half"))

    def test_head_request_keeps_content_length(self):
        r, data = self.get("/api/x", method="HEAD")
        self.assertEqual(r.status, 200)
        self.assertEqual(data, b"")
        self.assertGreater(int(r.getheader("content-length")), 0)


class LargeBodies(GatewayTestCase):
    """Bodies far larger than any buffer, checked byte for byte in both directions."""

    SIZE = 64 * 1024 * 1024

    def test_large_bodies_stream_both_ways(self):
        payload = os.urandom(1024 * 1024)

        def handler(conn):
            while True:
                head, rest = read_head(conn)
                if head is None:
                    return
                lines = head.split(b"\r\n")
                if lines[0].startswith(b"GET"):
                    # Download: SIZE bytes, chunked, built from the payload block.
                    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    for _ in range(self.SIZE // len(payload)):
                        conn.sendall(b"%x\r\n" % len(payload) + payload + b"\r\n")
                    conn.sendall(b"0\r\n\r\n")
                    continue
                # Upload: hash the body (Content-Length or chunked) and answer the digest.
                h = hashlib.sha256()
                lower = head.lower()
                if b"transfer-encoding: chunked" in lower:
                    buf = rest
                    while True:
                        while b"\r\n" not in buf:
                            buf += conn.recv(1 << 20)
                        size_line, buf = buf.split(b"\r\n", 1)
                        size = int(size_line.split(b";")[0], 16)
                        while len(buf) < size + 2:
                            b = conn.recv(1 << 20)
                            if not b:
                                return
                            buf += b
                        h.update(buf[:size])
                        buf = buf[size + 2:]
                        if size == 0:
                            break
                else:
                    length = int([l.split(b":")[1] for l in lines
                                  if l.lower().startswith(b"content-length")][0])
                    h.update(rest)
                    got = len(rest)
                    while got < length:
                        b = conn.recv(1 << 20)
                        if not b:
                            return
                        h.update(b)
                        got += len(b)
                digest = h.hexdigest().encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(digest)
                             + digest)

        up = ThreadedServer(handler)
        self.addCleanup(up.close)
        port = free_port()
        self.gateway(gateway_yaml(port, [("PathPrefix", "/", [("big", None, 1)])],
                                  {"big": [up.port]}), workers=1)
        # Download through curl and hash.
        out = subprocess.run(["curl", "-sS", f"http://127.0.0.1:{port}/file"],
                             capture_output=True, timeout=120)
        self.assertEqual(len(out.stdout), self.SIZE)
        self.assertEqual(sha256(out.stdout), sha256(payload * (self.SIZE // len(payload))))
        # Upload (chunked from curl: the gateway streams it upstream re-framed).
        path = os.path.join(self.tmp, "upload")
        with open(path, "wb") as f:
            for _ in range(self.SIZE // len(payload)):
                f.write(payload)
        expect = sha256(payload * (self.SIZE // len(payload)))
        for extra in ([], ["-H", "Transfer-Encoding: chunked"]):
            out = subprocess.run(["curl", "-sS", *extra, "--data-binary", f"@{path}",
                                  f"http://127.0.0.1:{port}/up"], capture_output=True,
                                 timeout=120)
            self.assertEqual(out.stdout.decode(), expect, extra)
        _, rss = self._rss()
        self.assertLess(rss, 200 * 1024 * 1024, "a body was buffered whole")

    def _rss(self):
        with open(f"/proc/{self.gw.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return line, int(line.split()[1]) * 1024
        return "", 0


class UpstreamFailures(GatewayTestCase):
    def config(self, up_port, policy_timeouts="{connect: 1s, request: 1s}"):
        port = free_port()
        self.gateway(gateway_yaml(port, [("PathPrefix", "/", [("up", None, 1)])],
                                  {"up": [up_port]}, timeouts=policy_timeouts), workers=1)
        return port

    def test_connect_refused_is_503(self):
        port = self.config(free_port())
        resp = raw_request(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertEqual(status_of(resp), 503)

    def test_connect_timeout_is_503(self):
        # A listener whose accept queue is full: connects hang until the timeout.
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(0)
        self.addCleanup(blocker.close)
        fillers = []
        for _ in range(8):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(blocker.getsockname())
            fillers.append(f)
        self.addCleanup(lambda: [f.close() for f in fillers])
        port = self.config(blocker.getsockname()[1])
        t0 = time.time()
        resp = raw_request(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertEqual(status_of(resp), 503)
        self.assertIn(b"timeout", resp)
        self.assertLess(time.time() - t0, 2.5)

    def test_slow_upstream_is_504(self):
        def slow(conn):
            read_head(conn)
            time.sleep(3)
        up = ThreadedServer(slow)
        self.addCleanup(up.close)
        port = self.config(up.port)
        t0 = time.time()
        resp = raw_request(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertEqual(status_of(resp), 504)
        self.assertLess(time.time() - t0, 2.9)

    def test_route_backend_request_timeout_is_504(self):
        def slow(conn):
            read_head(conn)
            time.sleep(3)
        up = ThreadedServer(slow)
        self.addCleanup(up.close)
        port = free_port()
        config = gateway_yaml(port, [("PathPrefix", "/", [("up", None, 1)])], {"up": [up.port]})
        config = config.replace("    backendRefs: [{name: up, weight: 1}]",
                                "    backendRefs: [{name: up, weight: 1}]\n"
                                "    timeouts: {request: 10s, backendRequest: 1s}")
        self.assertIn("backendRequest", config)
        self.gateway(config, workers=1)
        t0 = time.time()
        resp = raw_request(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertEqual(status_of(resp), 504)
        self.assertLess(time.time() - t0, 2.5)

    def test_upstream_reset_is_502(self):
        def reset(conn):
            read_head(conn)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        up = ThreadedServer(reset)
        self.addCleanup(up.close)
        port = self.config(up.port)
        resp = raw_request(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertEqual(status_of(resp), 502)

    def test_upstream_garbage_is_502(self):
        def garbage(conn):
            read_head(conn)
            conn.sendall(b"HTTP/1.1 2OO nonsense\r\n\r\n")
        up = ThreadedServer(garbage)
        self.addCleanup(up.close)
        port = self.config(up.port)
        resp = raw_request(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertEqual(status_of(resp), 502)

    def test_stale_pooled_connection_is_retried_once(self):
        # Answers the first request of each connection, then closes on the next one without a
        # byte: the race a keep-alive pool meets when an upstream times a connection out.
        served = []

        def one_per_connection(conn):
            head, _ = read_head(conn)
            if head is None:
                return
            served.append(head.split(b"\r\n")[0])
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            read_head(conn)  # the next request on this connection: close without answering
        up = ThreadedServer(one_per_connection)
        self.addCleanup(up.close)
        port = self.config(up.port)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for i in range(5):
            c.request("GET", f"/r{i}")
            r = c.getresponse()
            self.assertEqual((r.status, r.read()), (200, b"ok"))
        self.assertEqual(len(served), 5)
        _, metrics = self.admin_get("/stats/prometheus")
        retries = [l for l in metrics.splitlines() if l.startswith("portico_upstream_retries_total")]
        self.assertTrue(retries and int(retries[0].split()[1]) >= 1, retries)


class FramingAndLimits(GatewayTestCase):
    """Re-framing between HTTP/1.0 and 1.1, absolute-form targets, configurable limits and
    the downstream idle timeout."""

    def setUp(self):
        super().setUp()

        def upstream(conn):
            while True:
                head, _ = read_head(conn)
                if head is None:
                    return
                path = head.split(b" ")[1]
                if path.endswith(b"/chunked"):
                    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
                elif path.endswith(b"/until-close"):
                    conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nstreamed")
                    return
                else:
                    host = [l for l in head.split(b"\r\n") if l.lower().startswith(b"host:")]
                    body = host[0][5:].strip() if host else b"-"
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
                                 + body)
        self.up = ThreadedServer(upstream)
        self.addCleanup(self.up.close)
        self.port = free_port()
        self.gateway(gateway_yaml(self.port, [("PathPrefix", "/", [("up", None, 1)])],
                                  {"up": [self.up.port]}, timeouts="{idle: 1s}",
                                  client_limits="{maxRequestHeaders: 8, maxRequestLineBytes: 300}"))

    def test_chunked_response_to_http10_client_is_close_delimited(self):
        resp = raw_request(self.port, b"GET /chunked HTTP/1.0\r\n\r\n")
        head, body = resp.split(b"\r\n\r\n", 1)
        self.assertNotIn(b"transfer-encoding", head.lower())
        self.assertIn(b"connection: close", head.lower())
        self.assertEqual(body, b"hello world")

    def test_until_close_response_is_chunked_for_http11_client(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(b"GET /until-close HTTP/1.1\r\nHost: a\r\n\r\n")
        data = b""
        while not data.endswith(b"0\r\n\r\n"):
            b = s.recv(65536)
            if not b:
                break
            data += b
        head, body = data.split(b"\r\n\r\n", 1)
        self.assertIn(b"transfer-encoding: chunked", head.lower())
        self.assertEqual(body, b"8\r\nstreamed\r\n0\r\n\r\n")
        # The client connection stays usable.
        s.sendall(b"GET /again HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(status_of(s.recv(65536)), 200)
        s.close()

    def test_absolute_form_target_replaces_host(self):
        resp = raw_request(self.port, b"GET http://other.example:81/x?q=1 HTTP/1.1\r\n"
                                      b"Host: ignored\r\nConnection: close\r\n\r\n")
        [(status, body)] = parse_responses(resp)
        self.assertEqual((status, body), (200, b"other.example:81"))

    def test_configured_limits(self):
        many = b"".join(b"X-%d: v\r\n" % i for i in range(9))
        resp = raw_request(self.port, b"GET / HTTP/1.1\r\nHost: a\r\n" + many + b"\r\n")
        self.assertEqual(status_of(resp), 431)
        resp = raw_request(self.port, b"GET /" + b"a" * 350 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(status_of(resp), 414)

    def test_idle_keepalive_connection_is_closed(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(status_of(s.recv(65536)), 200)
        t0 = time.time()
        self.assertEqual(s.recv(1), b"")  # closed by the idle timeout
        self.assertGreater(time.time() - t0, 0.8)
        self.assertLess(time.time() - t0, 2.5)
        s.close()


class WithNginxUpstream(GatewayTestCase):
    """nginx as an independent upstream: static files of many sizes, byte for byte."""

    def test_nginx_files(self):
        root = os.path.join(self.tmp, "www")
        os.makedirs(root)
        files = {}
        for size in (0, 1, 4095, 65536, 1000003):
            data = os.urandom(size)
            files[size] = data
            with open(os.path.join(root, f"f{size}"), "wb") as f:
                f.write(data)
        nport = free_port()
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""
daemon off; worker_processes 1; pid {self.tmp}/nginx.pid; error_log {self.tmp}/nginx.err;
events {{ worker_connections 1024; }}
http {{ access_log off; client_body_temp_path {self.tmp};
  server {{ listen 127.0.0.1:{nport}; root {root}; keepalive_requests 3; }} }}
""")
        self.start(["nginx", "-c", conf, "-p", self.tmp], "nginx", nport)
        port = free_port()
        self.gateway(gateway_yaml(port, [("PathPrefix", "/", [("files", None, 1)])],
                                  {"files": [nport]}))
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(3):  # keepalive_requests 3 makes nginx close pooled connections
            for size, data in files.items():
                c.request("GET", f"/f{size}")
                r = c.getresponse()
                self.assertEqual(r.status, 200)
                self.assertEqual(r.read(), data)
        c.request("GET", "/missing")
        r = c.getresponse()
        r.read()
        self.assertEqual(r.status, 404)


class Drain(GatewayTestCase):
    def test_sigterm_drains_in_flight_requests(self):
        def slow(conn):
            while True:
                head, _ = read_head(conn)
                if head is None:
                    return
                time.sleep(1.5)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone")
        up = ThreadedServer(slow)
        self.addCleanup(up.close)
        port = free_port()
        self.gateway(gateway_yaml(port, [("PathPrefix", "/", [("slow", None, 1)])],
                                  {"slow": [up.port]}), workers=2,
                     extra=("--drain-timeout", "10s"))
        results = []

        def client(i):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
                c.request("GET", f"/{i}")
                r = c.getresponse()
                results.append((r.status, r.read()))
            except Exception as e:  # noqa: BLE001
                results.append(repr(e))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(100)]
        for t in threads:
            t.start()
        time.sleep(0.7)  # all 100 are in flight at the upstream
        t0 = time.time()
        self.gw.proc.send_signal(15)
        time.sleep(0.2)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).recv(1)
        for t in threads:
            t.join()
        self.assertEqual(results, [(200, b"done")] * 100)
        self.gw.proc.wait(12)
        self.assertLess(time.time() - t0, 10)
        self.assertEqual(self.gw.proc.returncode, 0)


if __name__ == "__main__":
    unittest.main()
