"""HTTP/2 downstream (h2c with prior knowledge) through the proxy to HTTP/1.1 upstreams, written
from RFC 9113 and RFC 7541: curl, nghttp, h2load and python3-h2 clients; conformance cases in
the manner of h2spec with a raw frame client; hardening against rapid reset, CONTINUATION and
PING floods and a client that never reads.

The proxy under test is Portico (default) or, with H2_REFERENCE=nginx, nginx with the same
routes (see grpc_peer.start_proxy): run both ways to show each assertion holds for a real
implementation. Tests of behaviour nginx lacks are marked `portico_only`."""

import base64
import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time
import unittest

import h2.config
import hpack
import h2.connection
import h2.events
import h2.settings

from grpc_peer import (ACK, CANCEL, COMPRESSION_ERROR, CONTINUATION, DATA, END_HEADERS,
                       END_STREAM, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, GOAWAY, HEADERS,
                       PING, PREFACE, PROTOCOL_ERROR, REFERENCE, RST_STREAM, SETTINGS,
                       STREAM_CLOSED, WINDOW_UPDATE, H2Frames, frame, portico_only, proxy_pid,
                       rss_kib, settings, start_proxy)
from harness import GatewayTestCase, HttpPeer, QuietHandler, ThreadedServer, free_port

BIG = 100 << 20


class Peer:
    """HTTP/1.1 upstream for the cases `portico echo` does not cover: a chunked response
    (/peer/chunked), hop-by-hop response headers (/peer/hop), a 100 MiB download (/peer/big,
    counting the bytes it managed to write)."""

    def __init__(self):
        self.big_written = 0
        peer = self

        class Handler(QuietHandler):
            def do_GET(self):
                if self.path == "/peer/chunked":
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(30):
                        chunk = bytes([65 + i % 26]) * (10000 + i)
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.write(b"0\r\n\r\n")
                elif self.path == "/peer/hop":
                    body = b"hop"
                    self.send_response(200)
                    self.send_header("Connection", "keep-alive, x-hop")
                    self.send_header("Keep-Alive", "timeout=5")
                    self.send_header("Proxy-Connection", "keep-alive")
                    self.send_header("X-Hop", "1")
                    self.send_header("X-End-To-End", "1")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif self.path == "/peer/big":
                    self.send_response(200)
                    self.send_header("Content-Length", str(BIG))
                    self.end_headers()
                    block = b"x" * 65536
                    for _ in range(BIG // len(block)):
                        self.wfile.write(block)
                        peer.big_written += len(block)
                else:
                    self.send_error(404)

        self.http = HttpPeer(Handler)
        self.port = self.http.port

    def close(self):
        self.http.close()


def chunked_body():
    return b"".join(bytes([65 + i % 26]) * (10000 + i) for i in range(30))


class Http2Base(GatewayTestCase):
    """Routes: /echo → `portico echo`, /peer → Peer; anything else has no route (404)."""

    def setUp(self):
        super().setUp()
        self.echo_port = self.echo("e1")
        self.peer = Peer()
        self.addCleanup(self.peer.close)
        # An upstream that never reads (flow-control cases): the proxy's buffers fill.
        self.stuck = ThreadedServer(lambda conn: time.sleep(30))
        self.addCleanup(self.stuck.close)
        self.port = start_proxy(self, [("/echo", self.echo_port, "http"),
                                       ("/peer", self.peer.port, "http"),
                                       ("/stuck", self.stuck.port, "http")])

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def curl(self, *args, timeout=15):
        r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", "10", *args],
                           capture_output=True, timeout=timeout)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        return r.stdout

    def raw(self, **client_settings):
        c = H2Frames(self.port)
        self.addCleanup(c.close)
        server_settings = c.handshake(**client_settings)
        c.server_settings = {}
        for i in range(0, len(server_settings.payload), 6):
            k, v = struct.unpack(">HI", server_settings.payload[i:i + 6])
            c.server_settings[k] = v
        return c

    def response(self, c, stream_id):
        """Reads frames until `stream_id` ends; returns (headers dict, body)."""
        hdrs, body = {}, b""
        while True:
            f = c.read()
            self.assertIsNotNone(f, f"stream {stream_id} did not end")
            if f.stream_id != stream_id:
                if f.type == HEADERS:
                    c.decode(f)
                continue
            self.assertNotEqual(f.type, RST_STREAM, f)
            if f.type == HEADERS:
                hdrs.update(c.decode(f))
            elif f.type == DATA:
                body += f.payload
                c.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", len(f.payload) or 1)))
                if f.payload:
                    c.send(frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", len(f.payload))))
            if f.flags & END_STREAM:
                return hdrs, body

    def expect_stream_error(self, c, stream_id, code):
        """RFC 9113 5.4.2: RST_STREAM(code) on `stream_id`, or a connection error GOAWAY(code)
        (an endpoint may escalate). A malformed request must not be answered 2xx (8.1.1 lets
        the server answer 4xx before resetting)."""
        f = c.frames(lambda f: (f.type == RST_STREAM and f.stream_id == stream_id)
                     or f.type == GOAWAY, seconds=5)
        for s in c.seen:
            if s.type == HEADERS and s.stream_id == stream_id:
                status = dict(s.decoded).get(":status", "")
                self.assertTrue(status.startswith("4"), f"malformed request answered {status}")
        self.assertIsNotNone(f, f"no RST_STREAM/GOAWAY for stream {stream_id}: {c.seen}")
        self.assertEqual(f.error_code, code, f)

    def expect_connection_error(self, c, codes):
        f = c.frames(lambda f: f.type == GOAWAY, seconds=5)
        self.assertIsNotNone(f, f"no GOAWAY: {c.seen}")
        self.assertIn(f.error_code, codes if isinstance(codes, tuple) else (codes,), f)
        # After GOAWAY with an error the server closes the connection.
        end = time.time() + 5
        while not c.eof and time.time() < end:
            if c.read() is None and not c.eof:
                break
        self.assertTrue(c.eof, "the connection stayed open after a connection error")

    def echo_json(self, body):
        return json.loads(body)


class Proxying(Http2Base):
    def test_curl_get(self):
        out = self.curl("-o", "-", "-w", "\n%{http_code} %{http_version}",
                        self.url("/echo/get?q=1"))
        body, _, tail = out.rpartition(b"\n")
        self.assertEqual(tail, b"200 2")
        j = self.echo_json(body)
        self.assertEqual((j["method"], j["path"], j["query"]), ("GET", "/echo/get", "q=1"))

    def test_curl_post_bodies(self):
        for size in (1, 1 << 20):
            data = base64.b64encode(os.urandom(size))[:size]
            path = os.path.join(self.tmp, "body")
            with open(path, "wb") as f:
                f.write(data)
            out = self.curl("--data-binary", f"@{path}", "-H", "content-type: application/x-test",
                            self.url("/echo/post"))
            j = self.echo_json(out)
            self.assertEqual(j["method"], "POST")
            self.assertEqual(j["body_bytes"], size)
            self.assertEqual(j["body"].encode(), data)

    def test_chunked_response_from_http1_upstream(self):
        out = self.curl("-D", os.path.join(self.tmp, "h"), self.url("/peer/chunked"))
        self.assertEqual(out, chunked_body())
        with open(os.path.join(self.tmp, "h"), "rb") as f:
            head = f.read().lower()
        self.assertTrue(head.startswith(b"http/2 200"), head)
        self.assertNotIn(b"transfer-encoding", head)

    def test_head(self):
        c = self.raw()
        c.send(c.headers(1, [(":method", "HEAD"), (":scheme", "http"), (":path", "/echo/head"),
                             (":authority", "h2.example")]))
        hdrs, body = self.response(c, 1)
        self.assertEqual(hdrs[":status"], "200")
        self.assertEqual(body, b"")
        self.assertGreater(int(hdrs.get("content-length", "1")), 0)

    def test_hundred_concurrent_streams_on_one_connection(self):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.addCleanup(sock.close)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
        sock.sendall(conn.data_to_send())
        # Learn the server's SETTINGS first (its MAX_CONCURRENT_STREAMS bounds what we open).
        got_settings = False
        while not got_settings:
            data = sock.recv(65536)
            self.assertTrue(data, "connection closed")
            for ev in conn.receive_data(data):
                got_settings |= isinstance(ev, h2.events.RemoteSettingsChanged)
            sock.sendall(conn.data_to_send())
        limit = 100
        pending = [(i, 2 * i + 1) for i in range(100)]
        open_streams, bodies, statuses = set(), {}, {}
        max_open = 0
        while pending or open_streams:
            window = min(limit, conn.remote_settings.max_concurrent_streams)
            while pending and len(open_streams) < window:
                i, sid = pending.pop(0)
                conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                                        (":path", f"/echo/s{i}"), (":authority", "h2.example")],
                                  end_stream=True)
                open_streams.add(sid)
                bodies[sid] = b""
            max_open = max(max_open, len(open_streams))
            sock.sendall(conn.data_to_send())
            data = sock.recv(65536)
            self.assertTrue(data, "connection closed")
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    statuses[ev.stream_id] = dict(ev.headers)[b":status"]
                elif isinstance(ev, h2.events.DataReceived):
                    bodies[ev.stream_id] += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    open_streams.discard(ev.stream_id)
                elif isinstance(ev, h2.events.StreamReset):
                    self.fail(f"stream {ev.stream_id} reset: {ev.error_code}")
            sock.sendall(conn.data_to_send())
        self.assertEqual(len(statuses), 100)
        self.assertEqual(set(statuses.values()), {b"200"})
        for i in range(100):
            self.assertEqual(self.echo_json(bodies[2 * i + 1])["path"], f"/echo/s{i}")
        self.assertGreaterEqual(max_open, 50, "streams were not concurrent")

    def test_nghttp(self):
        r = subprocess.run(["nghttp", "-nv", self.url("/echo/nghttp")], capture_output=True,
                           timeout=15)
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, out + r.stderr.decode())
        self.assertIn(":status: 200", out)
        self.assertIn("recv SETTINGS frame", out)
        self.assertIn("END_STREAM", out)

    def test_h2load(self):
        r = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "50", self.url("/echo/load")],
                           capture_output=True, timeout=20)
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, out + r.stderr.decode())
        self.assertIn("requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, "
                      "0 failed, 0 errored", out)
        self.assertIn("status codes: 2000 2xx, 0 3xx, 0 4xx, 0 5xx", out)

    def test_request_header_translation(self):
        c = self.raw()
        c.send(c.headers(1, [(":method", "GET"), (":scheme", "http"), (":path", "/echo/hdrs"),
                             (":authority", "h2.example"), ("cookie", "a=1"),
                             ("x-custom", "v"), ("cookie", "b=2"), ("te", "trailers")]))
        hdrs, body = self.response(c, 1)
        self.assertEqual(hdrs[":status"], "200")
        j = self.echo_json(body)
        self.assertEqual(j["version"], "HTTP/1.1")
        up = j["headers"]
        self.assertEqual(up["host"], "h2.example")
        self.assertEqual(up["x-custom"], "v")
        # RFC 9113 8.2.3: crumbs are joined with "; " into one field for HTTP/1.1 (the echo
        # joins repeated fields with ", ", which would show two fields).
        self.assertEqual(up["cookie"], "a=1; b=2")
        self.assertFalse([k for k in up if k.startswith(":")], up)
        for k in ("http2-settings", "upgrade", "keep-alive", "proxy-connection",
                  "transfer-encoding"):
            self.assertNotIn(k, up)
        self.assertIn(up.get("connection", "keep-alive").lower(), ("keep-alive", "close"))

    def test_response_hop_by_hop_headers_not_sent_to_h2_client(self):
        c = self.raw()
        c.send(c.get(1, "/peer/hop"))
        hdrs, body = self.response(c, 1)
        self.assertEqual((hdrs[":status"], body), ("200", b"hop"))
        self.assertEqual(hdrs.get("x-end-to-end"), "1")
        # RFC 9113 8.2.2: connection-specific fields are malformed in HTTP/2.
        for k in ("connection", "keep-alive", "transfer-encoding", "upgrade"):
            self.assertNotIn(k, hdrs)
        if not REFERENCE:  # nginx forwards both (a malformed HTTP/2 response)
            self.assertNotIn("proxy-connection", hdrs)  # RFC 9113 8.2.2 names it
            self.assertNotIn("x-hop", hdrs)  # RFC 9110 7.6.1: nominated by Connection

    def test_no_route_is_404(self):
        out = self.curl("-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                        self.url("/nothing"))
        self.assertEqual(out, b"404 2")
        self.assertEqual(self.curl("-o", "/dev/null", "-w", "%{http_code}",
                                   self.url("/echo/still-ok")), b"200")


class Conformance(Http2Base):
    """RFC 9113 cases in the manner of h2spec, with hand-built frames."""

    def test_invalid_preface(self):
        c = H2Frames(self.port)
        self.addCleanup(c.close)
        c.send(PREFACE[:-6] + b"XX\r\n\r\n" + settings())
        # 3.4: connection error PROTOCOL_ERROR (GOAWAY may be omitted); the server's own
        # SETTINGS may precede it. A port serving both versions learns "HTTP/2" from the
        # preface itself, so without the whole preface it may take the bytes for HTTP/1.1
        # (Portico does: 400), which the preface is designed to make fail: never 2xx.
        if c.sock.recv(4, socket.MSG_PEEK).startswith(b"HTTP"):
            data = c.sock.recv(65536)
            self.assertRegex(data[:12], rb"^HTTP/1\.[01] [45]", data)
            return
        f = c.frames(lambda f: f.type not in (SETTINGS, WINDOW_UPDATE), seconds=5)
        if f is not None:
            self.assertEqual((f.type, f.error_code), (GOAWAY, PROTOCOL_ERROR), f)
        else:
            self.assertTrue(c.eof, "the connection stayed open")

    def test_headers_frame_too_large(self):
        c = self.raw()
        max_frame = c.server_settings.get(5, 16384)
        if max_frame >= (1 << 24) - 1:
            self.skipTest("the server accepts frames of any size (MAX_FRAME_SIZE 2^24-1)")
        block = c.encoder.encode([(":method", "GET"), (":scheme", "http"), (":path", "/echo"),
                                  (":authority", "h2.example")])
        # Not Huffman-coded, so that the block really exceeds the limit.
        block += c.encoder.encode([("x-pad", "p" * (max_frame + 10 - len(block)))],
                                  huffman=False)
        self.assertGreater(len(block), max_frame)
        c.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, block))
        # 4.2: a frame carrying a field block that exceeds MAX_FRAME_SIZE: connection error.
        self.expect_connection_error(c, FRAME_SIZE_ERROR)

    def test_data_frame_too_large(self):
        c = self.raw()
        max_frame = c.server_settings.get(5, 16384)
        if max_frame >= (1 << 24) - 1:
            self.skipTest("the server accepts frames of any size (MAX_FRAME_SIZE 2^24-1)")
        c.send(c.headers(1, [(":method", "POST"), (":scheme", "http"), (":path", "/echo"),
                             (":authority", "h2.example")], end_stream=False))
        c.send(frame(DATA, END_STREAM, 1, b"d" * (max_frame + 1)))
        self.expect_stream_error(c, 1, FRAME_SIZE_ERROR)

    def test_headers_on_closed_stream(self):
        c = self.raw()
        c.send(c.get(1, "/echo/first"))
        hdrs, _ = self.response(c, 1)
        self.assertEqual(hdrs[":status"], "200")
        c.send(c.get(1, "/echo/again"))
        # 5.1 closed + 5.1.1 (identifier reuse): connection error STREAM_CLOSED or
        # PROTOCOL_ERROR.
        self.expect_connection_error(c, (STREAM_CLOSED, PROTOCOL_ERROR))

    def malformed(self, hdrs):
        c = self.raw()
        c.send(c.headers(1, hdrs))
        self.expect_stream_error(c, 1, PROTOCOL_ERROR)

    BASE = [(":method", "GET"), (":scheme", "http"), (":path", "/echo/m"),
            (":authority", "h2.example")]

    def test_uppercase_header_name(self):
        self.malformed(self.BASE + [("X-Upper", "1")])

    @portico_only("nginx answers such requests (200, or 400 without RST_STREAM)")
    def test_connection_header(self):
        self.malformed(self.BASE + [("connection", "keep-alive")])

    @portico_only("nginx answers such requests (200, or 400 without RST_STREAM)")
    def test_te_other_than_trailers(self):
        self.malformed(self.BASE + [("te", "gzip")])

    @portico_only("nginx answers such requests (200, or 400 without RST_STREAM)")
    def test_missing_path(self):
        self.malformed([h for h in self.BASE if h[0] != ":path"])

    @portico_only("nginx answers such requests (200, or 400 without RST_STREAM)")
    def test_missing_method(self):
        self.malformed([h for h in self.BASE if h[0] != ":method"])

    @portico_only("nginx answers such requests (200, or 400 without RST_STREAM)")
    def test_pseudo_header_after_regular_header(self):
        self.malformed([h for h in self.BASE if h[0] != ":path"] + [("x-a", "1"),
                                                                     (":path", "/echo/m")])

    def test_data_beyond_flow_control_window(self):
        c = self.raw()
        c.sock.settimeout(0.5)
        stream_window = c.server_settings.get(4, 65535)
        conn_window = 65535
        c.send(c.headers(1, [(":method", "POST"), (":scheme", "http"), (":path", "/stuck/upload"),
                             (":authority", "h2.example")], end_stream=False))
        chunk = 16384
        sent, deadline = 0, time.time() + 12
        while time.time() < deadline:
            credit = min(stream_window, conn_window)
            if credit > 0:
                n = min(chunk, credit)
                c.send(frame(DATA, 0, 1, b"u" * n))
                stream_window -= n
                conn_window -= n
                sent += n
                if sent < (64 << 20):
                    continue
            # Out of credit: wait a while for WINDOW_UPDATEs; none coming → overrun.
            c.sock.settimeout(0.5)
            while min(stream_window, conn_window) <= 0:
                f = c.read()
                if f is None:
                    break
                if f.type == WINDOW_UPDATE:
                    inc = struct.unpack(">I", f.payload)[0] & 0x7FFFFFFF
                    if f.stream_id == 0:
                        conn_window += inc
                    elif f.stream_id == 1:
                        stream_window += inc
                self.assertNotIn(f.type, (RST_STREAM, GOAWAY), f)
            if min(stream_window, conn_window) <= 0:
                break
        self.assertLess(sent, 64 << 20, "the proxy granted 64 MiB to an upstream that never "
                                        "reads")
        c.sock.settimeout(5)
        c.send(frame(DATA, 0, 1, b"o" * chunk))
        self.expect_stream_error(c, 1, FLOW_CONTROL_ERROR)

    def test_settings_enable_push_2(self):
        c = self.raw()
        c.send(settings(ENABLE_PUSH=2))
        self.expect_connection_error(c, PROTOCOL_ERROR)

    def test_settings_initial_window_too_large(self):
        c = self.raw()
        c.send(settings(INITIAL_WINDOW_SIZE=1 << 31))
        self.expect_connection_error(c, FLOW_CONTROL_ERROR)

    def test_settings_max_frame_size_too_small(self):
        c = self.raw()
        c.send(settings(MAX_FRAME_SIZE=16383))
        self.expect_connection_error(c, PROTOCOL_ERROR)

    def test_settings_max_frame_size_too_large(self):
        c = self.raw()
        c.send(settings(MAX_FRAME_SIZE=1 << 24))
        self.expect_connection_error(c, PROTOCOL_ERROR)

    def test_ping_answered_with_ack(self):
        c = self.raw()
        c.send(frame(PING, 0, 0, b"portico!"))
        f = c.frames(lambda f: f.type == PING and f.flags & ACK)
        self.assertIsNotNone(f, c.seen)
        self.assertEqual(f.payload, b"portico!")

    def test_window_update_of_zero(self):
        c = self.raw()
        c.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0)))
        self.expect_connection_error(c, PROTOCOL_ERROR)

    def test_stream_window_update_of_zero(self):
        c = self.raw()
        c.send(c.headers(1, [(":method", "POST"), (":scheme", "http"), (":path", "/stuck/w"),
                             (":authority", "h2.example")], end_stream=False))
        c.send(frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 0)))
        # 6.9: a stream error on a stream, or the connection error it may escalate to.
        self.expect_stream_error(c, 1, PROTOCOL_ERROR)

    def test_unknown_frame_type_ignored(self):
        c = self.raw()
        c.send(frame(0xEE, 0xFF, 0, b"unknown") + frame(0xEE, 0, 1, b"x"))
        c.send(frame(PING, 0, 0, b"afterunk"))
        f = c.frames(lambda f: f.type in (PING, GOAWAY) and f.flags & ACK or f.type == GOAWAY)
        self.assertIsNotNone(f, c.seen)
        self.assertEqual((f.type, f.payload), (PING, b"afterunk"))
        c.send(c.get(3, "/echo/after-unknown"))
        hdrs, _ = self.response(c, 3)
        self.assertEqual(hdrs[":status"], "200")

    def test_hpack_invalid_index(self):
        c = self.raw()
        block = c.encoder.encode(self.BASE) + bytes([0x80 | 70])  # index 70: dynamic table empty
        c.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, block))
        self.expect_connection_error(c, COMPRESSION_ERROR)


class Hardening(Http2Base):
    def rapid_reset(self, c, streams):
        """Opens and immediately cancels `streams` streams on raw connection `c` (a reader
        thread drains it); returns (streams sent before the connection broke, frames seen)."""
        seen = []

        def reader():
            c.sock.settimeout(15)
            while True:
                f = c.read()
                if f is None:
                    return
                if f.type == HEADERS:
                    c.decode(f)
                seen.append(f)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        sent = 0
        try:
            for batch in range(streams // 50):
                out = b""
                for i in range(50):
                    sid = 2 * (batch * 50 + i) + 1
                    out += c.get(sid, "/echo/rr") + frame(RST_STREAM, 0, sid,
                                                          struct.pack(">I", CANCEL))
                c.send(out)
                sent += 50
                if any(f.type == GOAWAY for f in seen):
                    break
        except OSError:
            pass
        return sent, seen, t

    @portico_only("nginx 1.22 refuses excess streams but never sends GOAWAY for rapid reset")
    def test_rapid_reset_gets_goaway(self):
        c = self.raw()
        sent, seen, t = self.rapid_reset(c, 20000)
        t.join(10)
        goaways = [f for f in seen if f.type == GOAWAY]
        self.assertTrue(goaways, f"no GOAWAY after {sent} rapid resets")
        last_stream = struct.unpack(">I", goaways[0].payload[:4])[0] & 0x7FFFFFFF
        self.assertLess(last_stream, 2000, "GOAWAY came after 1,000 streams")

    def test_rapid_reset_does_not_starve_other_connections(self):
        c = self.raw()
        stop = threading.Event()
        attack_results = []

        def attack():
            while not stop.is_set():
                try:
                    a = self.raw()
                except (OSError, AssertionError):
                    continue
                attack_results.append(self.rapid_reset(a, 4000)[0])
                a.close()

        t = threading.Thread(target=attack, daemon=True)
        t.start()
        sid = 1
        ok = 0
        start = time.time()
        while time.time() - start < 4:
            c.send(c.get(sid, "/echo/good"))
            hdrs, _ = self.response(c, sid)
            self.assertEqual(hdrs[":status"], "200")
            ok += 1
            sid += 2
            time.sleep(0.02)
        stop.set()
        t.join(10)
        self.assertGreater(sum(attack_results), 1000, "the attack did not run")
        # Served all along (each request also had to finish within the response timeout):
        # a starved client gets none or a handful; the sanitizer build on a loaded 2-core
        # machine serves ~15-150 in the 4 s, so the bound is low on purpose.
        self.assertGreaterEqual(ok, 5)

    @portico_only("nginx keeps reading (and skipping) an endless header block")
    def test_continuation_flood(self):
        c = self.raw()
        c.sock.settimeout(10)
        c.send(c.headers(1, self.BASE_HEADERS, end_headers=False))
        literal = bytes([0x40, 0x05]) + b"x-fld" + bytes([0x7F, 0x81, 0x7F]) + b"f" * 16382
        frag = literal[:16384]
        sent = 0
        closed = False
        start = time.time()
        try:
            while sent < (256 << 20) and time.time() - start < 15:
                c.send(frame(CONTINUATION, 0, 1, frag) * 16)
                sent += 16 * len(frag)
        except OSError:
            closed = True
        if not closed:
            # The server may have answered and stopped reading: it must close.
            f = c.frames(lambda f: f.type == GOAWAY, seconds=5)
            closed = f is not None or c.eof
        self.assertTrue(closed, f"still open after {sent >> 20} MiB of CONTINUATION")
        self.assertLess(sent, 64 << 20, "the server accepted 64 MiB of header block")

    BASE_HEADERS = [(":method", "GET"), (":scheme", "http"), (":path", "/echo/c"),
                    (":authority", "h2.example")]

    def test_ping_flood_without_reading(self):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", self.port))
        self.addCleanup(sock.close)
        pings = 1_000_000
        sock.sendall(PREFACE + settings() + frame(SETTINGS, ACK, 0)
                     + frame(PING, 0, 0, b"first!!!"))
        # The server speaks HTTP/2 (answers one PING) before the flood.
        first = b""
        while b"first!!!" not in first:
            b = sock.recv(65536)
            self.assertTrue(b, "closed before the first PING ACK")
            first += b
        batch = frame(PING, 0, 0, b"floodpng") * 5000
        sent = 0
        closed = False
        try:
            while sent < pings:
                sock.sendall(batch)
                sent += 5000
        except OSError:  # reset by the server, or timed out: the server stopped reading
            closed = True
        acks = 0
        buf = b""
        sock.settimeout(3)
        try:
            while True:
                b = sock.recv(1 << 20)
                if not b:
                    closed = True
                    break
                buf += b
        except socket.timeout:
            pass
        except OSError:
            closed = True
        acks = buf.count(b"floodpng")
        self.assertTrue(closed, f"the connection survived {sent} unread PINGs")
        self.assertLess(acks, sent, "every PING was answered: nothing bounded the queue")

    def test_client_that_never_reads(self):
        pid = proxy_pid(self)
        base = rss_kib(pid)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", self.port))
        self.addCleanup(sock.close)
        block = hpack.Encoder().encode([(":method", "GET"), (":scheme", "http"),
                                        (":path", "/peer/big"), (":authority", "h2.example")])
        # A huge window, then never read: only the proxy's own limits bound its buffering.
        sock.sendall(PREFACE + settings(INITIAL_WINDOW_SIZE=(1 << 31) - 1)
                     + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", (1 << 31) - 1 - 65535))
                     + frame(SETTINGS, ACK, 0) + frame(HEADERS, END_STREAM | END_HEADERS, 1,
                                                       block))
        peak = base
        end = time.time() + 6
        while time.time() < end:
            peak = max(peak, rss_kib(pid))
            time.sleep(0.1)
        self.assertGreater(self.peer.big_written, 0, "the download never started")
        self.assertLess(peak - base, 32 << 10,
                        f"RSS grew by {(peak - base) >> 10} MiB for a client that reads nothing "
                        f"(upstream wrote {self.peer.big_written >> 20} MiB)")


class Http2Upstream(GatewayTestCase):
    """Backend protocol http2: nginx as an h2c upstream (prior knowledge), reached by HTTP/1.1
    and HTTP/2 clients. nginx's WebDAV PUT stores request bodies, so uploads are read back."""

    def setUp(self):
        super().setUp()
        self.root = os.path.join(self.tmp, "www")
        os.makedirs(self.root)
        self.big = os.urandom(3 << 20)
        with open(os.path.join(self.root, "big"), "wb") as f:
            f.write(self.big)
        nport = free_port()
        conf = os.path.join(self.tmp, "upstream.conf")
        with open(conf, "w") as f:
            f.write(f"""
daemon off; master_process off; worker_processes 1; pid {self.tmp}/up.pid;
error_log {self.tmp}/up.err;
events {{ worker_connections 1024; }}
http {{ access_log off; client_body_temp_path {self.tmp}; client_max_body_size 0;
  server {{ listen 127.0.0.1:{nport} http2; root {self.root};
    location /info {{ return 200 "$server_protocol $request_method $host\n"; }}
    location /files/ {{ alias {self.root}/; dav_methods PUT; create_full_put_path on; }}
  }} }}
""")
        self.start(["nginx", "-c", conf, "-p", self.tmp], "upstream-nginx", nport)
        self.port = start_proxy(self, [("/", nport, "http2")])

    def test_http1_and_http2_clients_reach_an_h2_upstream(self):
        for flag in ("--http1.1", "--http2-prior-knowledge"):
            r = subprocess.run(["curl", "-sS", flag, "--max-time", "10", "-H", "host: up.example",
                                f"http://127.0.0.1:{self.port}/info"], capture_output=True,
                               timeout=15)
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertEqual(r.stdout, b"HTTP/2.0 GET up.example\n", flag)

    def test_large_download_and_upload(self):
        for flag in ("--http1.1", "--http2-prior-knowledge"):
            r = subprocess.run(["curl", "-sS", flag, "--max-time", "10",
                                f"http://127.0.0.1:{self.port}/files/big"], capture_output=True,
                               timeout=15)
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertEqual(r.stdout, self.big)
            data = os.urandom(2 << 20)
            src = os.path.join(self.tmp, "src")
            with open(src, "wb") as f:
                f.write(data)
            name = "up" + flag.strip("-").replace(".", "")
            r = subprocess.run(["curl", "-sS", flag, "--max-time", "10", "-T", src,
                                "-o", "/dev/null", "-w", "%{http_code}",
                                f"http://127.0.0.1:{self.port}/files/{name}"],
                               capture_output=True, timeout=15)
            self.assertEqual(r.stdout, b"201", r.stderr.decode())
            with open(os.path.join(self.root, name), "rb") as f:
                self.assertEqual(f.read(), data)


@portico_only("Portico's drain")
class Drain(GatewayTestCase):
    """SIGTERM: an HTTP/2 client gets GOAWAY naming the last stream Portico took; a stream in
    flight still completes; a new stream after GOAWAY is not served."""

    def test_goaway_on_drain_and_the_stream_in_flight_completes(self):
        release = threading.Event()

        class Slow(QuietHandler):
            def do_GET(self):
                release.wait(10)
                body = b"late answer"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        slow = HttpPeer(Slow)
        self.addCleanup(slow.close)
        port = start_proxy(self, [("/slow", slow.port, "http")])
        c = H2Frames(port)
        self.addCleanup(c.close)
        c.handshake()
        c.send(c.get(1, "/slow/x"))
        time.sleep(0.3)  # the request reached the upstream
        self.gw.proc.send_signal(signal.SIGTERM)
        goaway = c.frames(lambda f: f.type == GOAWAY, seconds=5)
        self.assertIsNotNone(goaway, c.seen)
        last_stream = struct.unpack(">I", goaway.payload[:4])[0] & 0x7FFFFFFF
        self.assertEqual(last_stream, 1)
        self.assertEqual(goaway.error_code, 0)  # NO_ERROR: a graceful shutdown
        release.set()
        hdrs, body = {}, b""
        while True:
            f = c.read()
            self.assertIsNotNone(f, "the stream in flight did not complete")
            if f.stream_id != 1:
                continue
            if f.type == HEADERS:
                hdrs.update(c.decode(f))
            elif f.type == DATA:
                body += f.payload
            if f.flags & END_STREAM:
                break
        self.assertEqual(hdrs.get(":status"), "200")
        self.assertEqual(body, b"late answer")
        # Then the connection closes (the drain is over for it).
        end = time.time() + 5
        while not c.eof and time.time() < end:
            c.read()
        self.assertTrue(c.eof)


@portico_only("Portico's header timeout on HTTP/2 streams")
class SlowHeaders(GatewayTestCase):
    """A header block that never completes (HEADERS without END_HEADERS, no CONTINUATION) is
    reset after the port's header timeout; the connection and its other streams live on."""

    def test_incomplete_header_block_is_reset_after_the_header_timeout(self):
        from grpc_peer import portico_config
        echo = self.echo("e")
        port = free_port()
        policy = ("apiVersion: portico.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: t}\n"
                  "spec:\n  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, "
                  "name: gw}]\n  timeouts: {requestHeaders: 1s}\n")
        self.gateway(portico_config(port, [("/echo", echo, "http")]) + "---\n" + policy)
        c = H2Frames(port)
        self.addCleanup(c.close)
        c.handshake()
        c.send(c.headers(1, [(":method", "GET"), (":scheme", "http"), (":path", "/echo"),
                             (":authority", "h2.example")], end_stream=True, end_headers=False))
        start = time.time()
        f = c.frames(lambda f: f.type in (RST_STREAM, GOAWAY), seconds=5)
        self.assertIsNotNone(f, c.seen)
        self.assertGreater(time.time() - start, 0.8)
        # The connection stays usable... unless the server ended it for the open header block:
        # a new stream cannot start while a header block is open, so GOAWAY is acceptable too.
        if f.type == RST_STREAM:
            self.assertEqual(f.stream_id, 1)


if __name__ == "__main__":
    unittest.main()
