"""Hostile and malformed requests: the right 4xx, a closed connection where framing is unsafe,
nothing smuggled to the upstream, and the gateway keeps serving."""

import socket
import time
import unittest

from harness import (GatewayTestCase, ThreadedServer, free_port, gateway_yaml, raw_request,
                     read_head, read_to_eof, status_of)

H = b"Host: a\r\n"

CASES = [
    # (name, request bytes, expected status)
    ("cl_and_te", b"POST / HTTP/1.1\r\n" + H +
     b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("two_content_lengths", b"POST / HTTP/1.1\r\n" + H +
     b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
    ("bad_content_length", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5x\r\n\r\nhello", 400),
    ("negative_content_length", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400),
    ("bad_chunk_size", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
    ("te_not_chunked_last", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked, identity\r\n\r\n", 400),
    ("obs_fold", b"GET / HTTP/1.1\r\n" + H + b"X-A: 1\r\n  folded\r\n\r\n", 400),
    ("space_before_colon", b"GET / HTTP/1.1\r\n" + H + b"X-A : 1\r\n\r\n", 400),
    ("bad_header_name", b"GET / HTTP/1.1\r\n" + H + b"X(A): 1\r\n\r\n", 400),
    ("ctl_in_value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x01b\r\n\r\n", 400),
    ("missing_host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two_hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("bad_version", b"GET / HTTP/1.x\r\n" + H + b"\r\n", 400),
    ("http2_version", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    ("long_request_line", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    ("huge_headers", b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"b" * 70000 + b"\r\n\r\n", 431),
    ("too_many_headers", b"GET / HTTP/1.1\r\n" + H +
     b"".join(b"X-%d: v\r\n" % i for i in range(120)) + b"\r\n", 431),
    ("bare_cr", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", 400),
]


class BadInput(GatewayTestCase):
    @classmethod
    def setUpClass(cls):
        cls.seen = []

        def recorder(conn):
            while True:
                head, _ = read_head(conn)
                if head is None:
                    return
                cls.seen.append(head)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        cls.upstream = ThreadedServer(recorder)

    @classmethod
    def tearDownClass(cls):
        cls.upstream.close()

    def setUp(self):
        super().setUp()
        self.port = free_port()
        self.gateway(gateway_yaml(self.port, [("PathPrefix", "/", [("up", None, 1)])],
                                  {"up": [self.upstream.port]}, timeouts="{requestHeaders: 2s}"))

    def test_each_bad_request_gets_its_status_and_a_close(self):
        for name, req, status in CASES:
            with self.subTest(name):
                before = len(self.seen)
                resp = raw_request(self.port, req, timeout=5)
                self.assertEqual(status_of(resp), status, resp[:200])
                self.assertIn(b"connection: close", resp.lower())
                body = resp.split(b"\r\n\r\n", 1)[1]
                self.assertTrue(0 < len(body) < 200, body)
                self.assertEqual(len(self.seen), before, "a bad request reached the upstream")
        # Still serving.
        resp = raw_request(self.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertEqual(status_of(resp), 200)

    def test_smuggled_request_never_reaches_upstream(self):
        # CL.TE desync attempt: a second request hidden in the body.
        smuggle = (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 44\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                   b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n")
        before = len(self.seen)
        resp = raw_request(self.port, smuggle)
        self.assertEqual(status_of(resp), 400)
        self.assertEqual(resp.count(b"HTTP/1.1"), 1)
        self.assertEqual(len(self.seen), before)

    def test_bad_request_after_good_one_on_same_connection(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n")
        first = s.recv(4096)
        self.assertEqual(status_of(first), 200)
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx")
        data = read_to_eof(s)
        self.assertEqual(status_of(data), 400)
        s.close()

    def test_header_timeout_closes_slow_client(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=15)
        s.sendall(b"GET / HTTP/1.1\r\n")
        t0 = time.time()
        data = read_to_eof(s)
        # requestHeaders: 2s (TrafficPolicy above); the wheel's resolution is 10 ms.
        self.assertEqual(status_of(data), 408)
        self.assertLess(time.time() - t0, 3.0)


if __name__ == "__main__":
    unittest.main()
