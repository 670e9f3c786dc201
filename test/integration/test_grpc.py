"""gRPC through the proxy: grpcio client → proxy (h2c) → grpcio server (Backend protocol grpc).
Cases after gRPC's interop test descriptions (doc/interop-test-descriptions.md, the non-cloud
ones), errors the proxy produces itself (doc/http-grpc-status-mapping.md, PROTOCOL-HTTP2.md
trailers-only responses), GRPCRoute, and gRPC-Web over HTTP/1.1 (PROTOCOL-WEB.md).

Messages are raw bytes (generic handlers, no protoc): see grpc_peer.TestServer and request().
With H2_REFERENCE=nginx the same tests run against nginx's grpc_pass; `portico_only` marks
what nginx does not do."""

import base64
import queue
import struct
import subprocess
import time
import unittest

import grpc

from grpc_peer import (DATA, END_STREAM, HEADERS, RST_STREAM, SERVICE, H2Frames,
                       ResettingUpstream, TestServer, frame, portico_only, request,
                       start_proxy)
from harness import GatewayTestCase, free_port

SPECIAL = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"


def grpc_frame(msg, flag=0):
    return bytes([flag]) + struct.pack(">I", len(msg)) + msg


def split_grpc_frames(data):
    """[(flag, payload)]; fails on trailing garbage."""
    out = []
    while data:
        assert len(data) >= 5, f"truncated frame header: {data!r}"
        flag, length = data[0], struct.unpack(">I", data[1:5])[0]
        assert len(data) >= 5 + length, f"truncated frame: {data!r}"
        out.append((flag, data[5:5 + length]))
        data = data[5 + length:]
    return out


class GrpcBase(GatewayTestCase):
    """A TestServer behind the proxy. Routes: /grpc.testing.DownService/ → a closed port,
    /grpc.testing.TestService/ and /grpc.testing.OtherService/ → the server; any other path
    has no route."""

    def setUp(self):
        super().setUp()
        self.server = TestServer()
        self.addCleanup(self.server.close)
        self.dead_port = free_port()
        self.port = self.start_routes()
        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{self.port}",
            options=[("grpc.enable_http_proxy", 0),
                     ("grpc.max_receive_message_length", 16 << 20)])
        self.addCleanup(self.channel.close)

    def start_routes(self):
        # PathPrefix matches whole segments: one prefix per service.
        return start_proxy(self, [("/grpc.testing.DownService/", self.dead_port, "grpc"),
                                  (f"/{SERVICE}/", self.server.port, "grpc"),
                                  ("/grpc.testing.OtherService/", self.server.port, "grpc")])

    def unary(self, method, service=SERVICE):
        return self.channel.unary_unary(f"/{service}/{method}")

    def assertCode(self, err, code):
        self.assertEqual(err.code(), code, f"{err.code()} {err.details()!r}")

    def raw_grpc(self, path, extra=(), body=grpc_frame(b"")):
        """One gRPC request with a raw h2 client: returns [(frame, headers or None)] of the
        response stream."""
        c = H2Frames(self.port, timeout=10)
        self.addCleanup(c.close)
        c.handshake()
        c.send(c.headers(1, [(":method", "POST"), (":scheme", "http"), (":path", path),
                             (":authority", "grpc.example"), ("content-type", "application/grpc"),
                             ("te", "trailers"), *extra], end_stream=False))
        c.send(frame(DATA, END_STREAM, 1, body))
        out = []
        while True:
            f = c.frames(lambda f: f.stream_id == 1, seconds=10)
            self.assertIsNotNone(f, f"the stream did not end: {c.seen}")
            out.append((f, dict(f.decoded) if f.type == HEADERS else None))
            if f.flags & END_STREAM or f.type == RST_STREAM:
                return out


class Interop(GrpcBase):
    def test_empty_unary(self):
        self.assertEqual(self.unary("EmptyCall")(b"", timeout=10), b"")
        self.assertEqual(self.server.calls, ["EmptyCall"])
        md = self.server.metadata[0]
        self.assertNotIn("connection", md)

    def test_large_unary(self):
        resp = self.unary("UnaryCall")(request(size=314159, payload=bytes(271828)), timeout=10)
        self.assertEqual(resp, bytes(314159))

    def test_client_streaming(self):
        call = self.channel.stream_unary(f"/{SERVICE}/StreamingInputCall")
        sizes = [27182, 8, 1828, 45904]
        self.assertEqual(call(iter([bytes(n) for n in sizes]), timeout=10), b"74922")

    def test_server_streaming(self):
        call = self.channel.unary_stream(f"/{SERVICE}/StreamingOutputCall")
        sizes = [31415, 9, 2653, 58979]
        got = [len(m) for m in call(request(sizes=sizes), timeout=10)]
        self.assertEqual(got, sizes)

    def test_ping_pong(self):
        call = self.channel.stream_stream(f"/{SERVICE}/FullDuplexCall")
        q = queue.Queue()
        responses = call(iter(q.get, None), timeout=10)
        for size, payload in zip([31415, 9, 2653, 58979], [27182, 8, 1828, 45904]):
            q.put(request(size=size, payload=bytes(payload)))
            self.assertEqual(len(next(responses)), size)  # each answer before the next ask
        q.put(None)
        self.assertEqual(list(responses), [])
        self.assertEqual(responses.code(), grpc.StatusCode.OK)

    def test_empty_stream(self):
        call = self.channel.stream_stream(f"/{SERVICE}/FullDuplexCall")
        responses = call(iter([]), timeout=10)
        self.assertEqual(list(responses), [])
        self.assertEqual(responses.code(), grpc.StatusCode.OK)

    def test_timeout_on_sleeping_server(self):
        start = time.time()
        with self.assertRaises(grpc.RpcError) as cm:
            self.unary("UnaryCall")(request(sleep=8), timeout=0.5)
        self.assertCode(cm.exception, grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertLess(time.time() - start, 3)
        self.assertTrue(self.server.cancelled_event.wait(5), "the server never saw the cancel")
        self.assertIn("UnaryCall", self.server.cancelled)
        # grpc-timeout reached the server: its deadline is the client's (0.5 s, give or take
        # the clocks' and the encoding's rounding), not unbounded.
        remaining = self.server.time_remaining[0]
        self.assertIsNotNone(remaining)
        self.assertLess(remaining, 1.0)

    def test_cancel_after_begin(self):
        call = self.channel.stream_unary(f"/{SERVICE}/StreamingInputCall")
        q = queue.Queue()
        fut = call.future(iter(q.get, None), timeout=10)
        deadline = time.time() + 5
        while "StreamingInputCall" not in self.server.calls and time.time() < deadline:
            time.sleep(0.02)
        self.assertIn("StreamingInputCall", self.server.calls)
        fut.cancel()
        with self.assertRaises(grpc.FutureCancelledError):
            fut.result()
        self.assertEqual(fut.code(), grpc.StatusCode.CANCELLED)
        self.assertTrue(self.server.cancelled_event.wait(5), "the server never saw the cancel")
        self.assertIn("StreamingInputCall", self.server.cancelled)
        q.put(None)

    def test_cancel_after_first_response(self):
        call = self.channel.stream_stream(f"/{SERVICE}/FullDuplexCall")
        q = queue.Queue()
        responses = call(iter(q.get, None), timeout=10)
        q.put(request(size=31415, payload=bytes(27182)))
        self.assertEqual(len(next(responses)), 31415)
        responses.cancel()
        self.assertEqual(responses.code(), grpc.StatusCode.CANCELLED)
        self.assertTrue(self.server.cancelled_event.wait(5), "the server never saw the cancel")
        self.assertIn("FullDuplexCall", self.server.cancelled)
        q.put(None)

    def test_status_code_and_message(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.unary("UnaryCall")(request(code=2, message="test status message"), timeout=10)
        self.assertCode(cm.exception, grpc.StatusCode.UNKNOWN)
        self.assertEqual(cm.exception.details(), "test status message")
        call = self.channel.stream_stream(f"/{SERVICE}/FullDuplexCall")
        responses = call(iter([request(code=2, message="test status message")]), timeout=10)
        self.assertEqual(list(_drain(responses)), [])
        self.assertEqual(responses.code(), grpc.StatusCode.UNKNOWN)
        self.assertEqual(responses.details(), "test status message")

    def test_special_status_message(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.unary("UnaryCall")(request(code=2, message=SPECIAL), timeout=10)
        self.assertCode(cm.exception, grpc.StatusCode.UNKNOWN)
        self.assertEqual(cm.exception.details(), SPECIAL)

    def test_unimplemented_method(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.unary("UnimplementedCall")(b"", timeout=10)
        self.assertCode(cm.exception, grpc.StatusCode.UNIMPLEMENTED)

    def test_custom_metadata(self):
        md = [("x-grpc-test-echo-initial", "test_initial_metadata_value"),
              ("x-grpc-test-echo-trailing-bin", b"\x0a\x0b\x0a\x0b\x0a\x0b")]
        resp, call = self.unary("UnaryCall").with_call(request(size=314159,
                                                               payload=bytes(271828)),
                                                       metadata=md, timeout=10)
        self.assertEqual(len(resp), 314159)
        self.assertIn(md[0], list(call.initial_metadata()))
        self.assertIn(md[1], list(call.trailing_metadata()))
        stream = self.channel.stream_stream(f"/{SERVICE}/FullDuplexCall")
        responses = stream(iter([request(size=314159, payload=bytes(271828))]), metadata=md,
                           timeout=10)
        self.assertEqual([len(m) for m in responses], [314159])
        self.assertIn(md[0], list(responses.initial_metadata()))
        self.assertIn(md[1], list(responses.trailing_metadata()))

    def test_200_concurrent_unary_rpcs_on_one_channel(self):
        call = self.unary("UnaryCall")
        futures = [call.future(request(size=i * 10, payload=bytes(i)), timeout=15)
                   for i in range(200)]
        for i, f in enumerate(futures):
            self.assertEqual(f.result(), bytes(i * 10))
        self.assertEqual(self.server.calls.count("UnaryCall"), 200)


def _drain(it):
    try:
        yield from it
    except grpc.RpcError:
        return


class ProxyErrors(GrpcBase):
    """Errors the proxy answers itself (http-grpc-status-mapping.md: a gRPC client maps HTTP
    404 to UNIMPLEMENTED and 502/503 to UNAVAILABLE, so a plain HTTP error passes the
    grpcio-level checks; Portico must answer in gRPC terms, checked with a raw client)."""

    def test_no_route_is_unimplemented(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.unary("Call", service="other.Service")(b"", timeout=10)
        self.assertCode(cm.exception, grpc.StatusCode.UNIMPLEMENTED)
        self.assertEqual(self.server.calls, [])

    def test_backend_down_is_unavailable(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.unary("Call", service="grpc.testing.DownService")(b"", timeout=10)
        self.assertCode(cm.exception, grpc.StatusCode.UNAVAILABLE)

    def assertTrailersOnly(self, out, status):
        self.assertEqual(len(out), 1, f"not a trailers-only response: {out}")
        f, hdrs = out[0]
        self.assertEqual(f.type, HEADERS, f)
        self.assertTrue(f.flags & END_STREAM, f)
        self.assertEqual(hdrs[":status"], "200")
        self.assertTrue(hdrs.get("content-type", "").startswith("application/grpc"), hdrs)
        self.assertEqual(hdrs.get("grpc-status"), str(status), hdrs)
        return hdrs

    @portico_only("nginx answers a plain HTTP 404")
    def test_no_route_trailers_only_raw(self):
        hdrs = self.assertTrailersOnly(self.raw_grpc("/other.Service/Call"), 12)
        self.assertIn("grpc-message", hdrs)

    @portico_only("nginx answers a plain HTTP 502")
    def test_backend_down_trailers_only_raw(self):
        self.assertTrailersOnly(self.raw_grpc("/grpc.testing.DownService/Call"), 14)

    @portico_only("nginx does not read grpc-timeout")
    def test_grpc_timeout_header_is_the_deadline(self):
        # The client never cancels: the proxy enforces grpc-timeout and cancels upstream.
        start = time.time()
        out = self.raw_grpc(f"/{SERVICE}/UnaryCall", extra=[("grpc-timeout", "300m")],
                            body=grpc_frame(request(sleep=8)))
        self.assertLess(time.time() - start, 3)
        f, hdrs = out[-1]
        self.assertEqual(f.type, HEADERS, out)
        self.assertEqual(hdrs.get("grpc-status"), "4", out)  # DEADLINE_EXCEEDED
        self.assertTrue(self.server.cancelled_event.wait(5), "the server never saw the cancel")


class UpstreamReset(GatewayTestCase):
    """The upstream resets a stream after its first message: the client must learn promptly
    that the call failed (PROTOCOL-HTTP2.md: RST_STREAM CANCEL maps to CANCELLED; a proxy may
    instead end the call with its own error), never see it succeed or hang."""

    def test_upstream_rst_stream_reaches_the_client(self):
        up = ResettingUpstream(error_code=8)  # CANCEL
        self.addCleanup(up.close)
        port = start_proxy(self, [(f"/{SERVICE}/", up.port, "grpc")])
        channel = grpc.insecure_channel(f"127.0.0.1:{port}",
                                        options=[("grpc.enable_http_proxy", 0)])
        self.addCleanup(channel.close)
        call = channel.unary_stream(f"/{SERVICE}/StreamingOutputCall")
        start = time.time()
        got = []
        with self.assertRaises(grpc.RpcError) as cm:
            for m in call(b"", timeout=10):
                got.append(m)
        self.assertLess(time.time() - start, 5)
        self.assertIn(cm.exception.code(), (grpc.StatusCode.CANCELLED,
                                            grpc.StatusCode.UNAVAILABLE,
                                            grpc.StatusCode.INTERNAL), cm.exception.details())
        self.assertEqual(got, [b"reset"], "the message sent before the reset was lost")


class GrpcRouteMatch(GrpcBase):
    """A GRPCRoute whose only rule matches grpc.testing.TestService: anything else is answered
    UNIMPLEMENTED by the proxy (the server's OtherService would answer)."""

    def start_routes(self):
        return start_proxy(self, grpc_routes=[(SERVICE, None, self.server.port)])

    @portico_only("GRPCRoute is a Gateway API resource")
    def test_matched_service_reaches_server(self):
        self.assertEqual(self.unary("EmptyCall")(b"", timeout=10), b"")
        self.assertEqual(self.server.calls, ["EmptyCall"])

    @portico_only("GRPCRoute is a Gateway API resource")
    def test_unimplemented_service(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.unary("Call", service="grpc.testing.OtherService")(b"", timeout=10)
        self.assertCode(cm.exception, grpc.StatusCode.UNIMPLEMENTED)
        self.assertEqual(self.server.calls, [])
        out = self.raw_grpc("/grpc.testing.OtherService/Call")
        self.assertEqual(len(out), 1, out)
        self.assertEqual(out[0][1].get("grpc-status"), "12", out)
        self.assertEqual(out[0][1][":status"], "200", out)


class GrpcMethodRoute(GrpcBase):
    def start_routes(self):
        return start_proxy(self, grpc_routes=[(SERVICE, "EmptyCall", self.server.port)])

    @portico_only("GRPCRoute is a Gateway API resource")
    def test_method_match(self):
        self.assertEqual(self.unary("EmptyCall")(b"", timeout=10), b"")
        with self.assertRaises(grpc.RpcError) as cm:
            self.unary("UnaryCall")(request(size=1), timeout=10)
        self.assertCode(cm.exception, grpc.StatusCode.UNIMPLEMENTED)
        self.assertEqual(self.server.calls, ["EmptyCall"])


def decode_web_text(body):
    """grpc-web-text responses may be several base64 segments, each padded: decode 4 chars at
    a time."""
    body = body.replace(b"\r", b"").replace(b"\n", b"")
    assert len(body) % 4 == 0, body
    return b"".join(base64.b64decode(body[i:i + 4]) for i in range(0, len(body), 4))


class GrpcWeb(GrpcBase):
    """gRPC-Web by curl over HTTP/1.1 (PROTOCOL-WEB.md): the proxy speaks gRPC upstream and puts
    the trailers in a body frame flagged 0x80."""

    def curl(self, path, content_type, body, accept=None, headers=()):
        args = ["curl", "-sS", "--http1.1", "-D", "-", "--max-time", "10",
                "-H", f"content-type: {content_type}", "-H", "x-grpc-web: 1",
                *[a for h in headers for a in ("-H", h)],
                "--data-binary", "@-", f"http://127.0.0.1:{self.port}{path}"]
        if accept:
            args[-1:-1] = ["-H", f"accept: {accept}"]
        r = subprocess.run(args, input=body, capture_output=True, timeout=15)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        head, _, payload = r.stdout.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        return int(lines[0].split()[1]), hdrs, payload

    def check_frames(self, frames, message, status="0"):
        """frames: [(flag, payload)]: the message frame(s), then exactly one trailer frame."""
        self.assertGreaterEqual(len(frames), 1, frames)
        data = [p for f, p in frames if f == 0x00]
        trailers = [p for f, p in frames if f == 0x80]
        self.assertEqual([f for f, _ in frames][-1], 0x80, "the last frame is not trailers")
        self.assertEqual(len(trailers), 1, frames)
        if message is not None:
            self.assertEqual(data, [message])
        fields = {}
        for line in trailers[0].split(b"\r\n"):
            if line:
                k, sep, v = line.partition(b":")
                self.assertTrue(sep, line)
                self.assertEqual(k, k.lower(), "trailer names are lower case")
                fields[k.decode()] = v.strip().decode()
        self.assertEqual(fields.get("grpc-status"), status, trailers[0])
        return fields

    @portico_only("nginx has no gRPC-Web")
    def test_grpc_web_proto(self):
        msg = request(size=1000, payload=b"abc")
        status, hdrs, body = self.curl(f"/{SERVICE}/UnaryCall", "application/grpc-web+proto",
                                       grpc_frame(msg))
        self.assertEqual(status, 200)
        self.assertTrue(hdrs["content-type"].startswith("application/grpc-web"), hdrs)
        frames = split_grpc_frames(body)
        self.check_frames(frames, bytes(1000))
        # Byte by byte: message frame, then the trailer frame header.
        self.assertEqual(body[:5], b"\x00\x00\x00\x03\xe8")
        self.assertEqual(body[5:1005], bytes(1000))
        self.assertEqual(body[1005], 0x80)
        self.assertEqual(struct.unpack(">I", body[1006:1010])[0], len(body) - 1010)
        self.assertEqual(self.server.calls, ["UnaryCall"])
        md = self.server.metadata[0]
        self.assertEqual(md.get("content-type", "application/grpc")[:16], "application/grpc")
        self.assertNotIn("grpc-web", md.get("content-type", ""))

    @portico_only("nginx has no gRPC-Web")
    def test_grpc_web_metadata(self):
        # Initial metadata comes back as HTTP headers, trailing metadata in the trailer frame
        # (binary values base64-encoded, as on the wire).
        status, hdrs, body = self.curl(
            f"/{SERVICE}/UnaryCall", "application/grpc-web+proto", grpc_frame(request(size=3)),
            headers=["x-grpc-test-echo-initial: web-initial",
                     "x-grpc-test-echo-trailing-bin: CgsKCwoL"])
        self.assertEqual(status, 200)
        self.assertEqual(hdrs.get("x-grpc-test-echo-initial"), "web-initial", hdrs)
        fields = self.check_frames(split_grpc_frames(body), bytes(3))
        value = fields.get("x-grpc-test-echo-trailing-bin", "")
        self.assertEqual(base64.b64decode(value + "=" * (-len(value) % 4)),
                         b"\x0a\x0b\x0a\x0b\x0a\x0b", fields)
        md = self.server.metadata[0]
        self.assertEqual(md.get("x-grpc-test-echo-trailing-bin"), b"\x0a\x0b\x0a\x0b\x0a\x0b")

    @portico_only("nginx has no gRPC-Web")
    def test_grpc_web_text(self):
        msg = request(size=300, payload=b"xyz")
        status, hdrs, body = self.curl(f"/{SERVICE}/UnaryCall", "application/grpc-web-text",
                                       base64.b64encode(grpc_frame(msg)),
                                       accept="application/grpc-web-text")
        self.assertEqual(status, 200)
        self.assertTrue(hdrs["content-type"].startswith("application/grpc-web-text"), hdrs)
        raw = decode_web_text(body)
        self.assertEqual(raw[:5 + 300], b"\x00\x00\x00\x01\x2c" + bytes(300))
        self.check_frames(split_grpc_frames(raw), bytes(300))
        self.assertEqual(self.server.calls, ["UnaryCall"])

    @portico_only("nginx has no gRPC-Web")
    def test_grpc_web_error_status(self):
        status, hdrs, body = self.curl(f"/{SERVICE}/UnaryCall", "application/grpc-web+proto",
                                       grpc_frame(request(code=2, message="web failure")))
        self.assertEqual(status, 200)
        if "grpc-status" in hdrs:  # trailers-only: the status may travel in the headers
            self.assertEqual((hdrs["grpc-status"], hdrs.get("grpc-message")),
                             ("2", "web failure"))
            self.assertEqual(body, b"")
        else:
            fields = self.check_frames(split_grpc_frames(body), None, status="2")
            self.assertEqual(fields.get("grpc-message"), "web failure")


@portico_only("Portico's retry policy on the HTTP/2 path")
class ConnectFailureRetry(GatewayTestCase):
    """Backend with a live gRPC endpoint and a dead one: with a TrafficPolicy retrying connect
    failures, every call succeeds (sent again to the live endpoint); without it, calls that
    picked the dead endpoint fail UNAVAILABLE."""

    def config(self, port, live, dead, retry):
        policy = ("---\napiVersion: portico.dev/v1alpha1\nkind: TrafficPolicy\n"
                  "metadata: {name: retry}\nspec:\n  targetRefs: [{group: "
                  "gateway.networking.k8s.io, kind: Gateway, name: gw}]\n"
                  "  retry: {numRetries: 2, retryOn: {triggers: [connect-failure]}}\n"
                  if retry else "")
        return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  listeners: [{{name: http, port: {port}, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: rpc}}
spec:
  parentRefs: [{{name: gw}}]
  rules: [{{backendRefs: [{{group: portico.dev, kind: Backend, name: rpc}}]}}]
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {{name: rpc}}
spec:
  protocol: grpc
  loadBalancer: {{type: Random}}
  endpoints: [{{address: 127.0.0.1, port: {live}}}, {{address: 127.0.0.1, port: {dead}}}]
{policy}"""

    def calls(self, port, n=40):
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.addCleanup(channel.close)
        call = channel.unary_unary("/grpc.testing.OtherService/Call")
        ok = failed = 0
        for _ in range(n):
            try:
                call(b"x", timeout=5)
                ok += 1
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.UNAVAILABLE)
                failed += 1
        return ok, failed

    def test_connect_failures_go_to_the_live_endpoint(self):
        server = TestServer()
        self.addCleanup(server.close)
        dead = free_port()  # nothing listens there
        port = free_port()
        self.gateway(self.config(port, server.port, dead, retry=True))
        self.assertEqual(self.calls(port), (40, 0))
        port = free_port()  # a second gateway, without the policy
        self.gateway(self.config(port, server.port, dead, retry=False))
        ok, failed = self.calls(port)
        self.assertGreater(failed, 0)


if __name__ == "__main__":
    unittest.main()
