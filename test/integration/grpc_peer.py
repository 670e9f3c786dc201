"""Shared pieces of the HTTP/2 and gRPC suites (test_http2.py, test_grpc.py).

* `start_proxy`: the proxy under test. Portico by default; with `H2_REFERENCE=nginx` the same
  routes are served by nginx (h2c listener, proxy_pass / grpc_pass) so every test can be shown
  to pass against an independent implementation. Tests of what nginx cannot do (GRPCRoute,
  Portico's own gRPC errors, gRPC-Web) are marked with `portico_only`.
* `TestServer`: a grpcio server exposing `grpc.testing.TestService` with generic handlers (bytes
  in, bytes out; no protoc), shaped after gRPC's interop test server.
* `H2Frames`: a raw HTTP/2 client on a socket (frames built by hand, HPACK by python3-hpack) for
  conformance and hardening cases that a well-behaved client library refuses to send.
"""

import json
import os
import socket
import struct
import textwrap
import threading
import time
import unittest
from concurrent import futures

import hpack

from harness import wait_port

REFERENCE = os.environ.get("H2_REFERENCE", "")  # "" = Portico, "nginx" = reference run


def portico_only(reason):
    """Skips a test under the reference proxy: `reason` says what nginx does not do."""
    return unittest.skipIf(REFERENCE != "", f"{REFERENCE} reference: {reason}")


def start_proxy(tc, routes=(), grpc_routes=()):
    """Starts the proxy under test for GatewayTestCase `tc`; returns its (h2c) listener port.

    routes: [(path_prefix, upstream_port, protocol)], protocol "http" (HTTP/1.1 upstream),
    "http2" or "grpc". grpc_routes (Portico only): [(service, method_or_None, upstream_port)],
    routed with a GRPCRoute. A path matching nothing answers 404."""
    from harness import free_port
    port = free_port()
    if REFERENCE == "nginx":
        _start_nginx(tc, port, routes)
    elif REFERENCE:
        raise RuntimeError(f"unknown H2_REFERENCE={REFERENCE!r}")
    else:
        tc.gateway(portico_config(port, routes, grpc_routes))
    return port


def portico_config(port, routes=(), grpc_routes=()):
    docs = [textwrap.dedent(f"""\
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {{name: gw}}
        spec:
          gatewayClassName: portico
          addresses: [{{type: IPAddress, value: 127.0.0.1}}]
          listeners: [{{name: http, port: {port}, protocol: HTTP}}]
        """)]
    backends = {}

    def backend_name(upstream_port, protocol):
        key = (upstream_port, protocol)
        if key not in backends:
            backends[key] = f"b{len(backends)}"
        return backends[key]

    if routes:
        rules = []
        for prefix, upstream_port, protocol in routes:
            name = backend_name(upstream_port, protocol)
            rules.append(f"  - matches: [{{path: {{type: PathPrefix, value: {prefix}}}}}]\n"
                         f"    backendRefs: [{{group: portico.dev, kind: Backend, name: {name}}}]")
        docs.append("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
                    "metadata: {name: http}\nspec:\n  parentRefs: [{name: gw}]\n  rules:\n"
                    + "\n".join(rules) + "\n")
    if grpc_routes:
        rules = []
        for service, method, upstream_port in grpc_routes:
            name = backend_name(upstream_port, "grpc")
            m = f"service: {service}" + (f", method: {method}" if method else "")
            rules.append(f"  - matches: [{{method: {{{m}}}}}]\n"
                         f"    backendRefs: [{{group: portico.dev, kind: Backend, name: {name}}}]")
        docs.append("apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\n"
                    "metadata: {name: grpc}\nspec:\n  parentRefs: [{name: gw}]\n  rules:\n"
                    + "\n".join(rules) + "\n")
    for (upstream_port, protocol), name in backends.items():
        proto = "" if protocol == "http" else f"  protocol: {protocol}\n"
        docs.append("apiVersion: portico.dev/v1alpha1\nkind: Backend\n"
                    f"metadata: {{name: {name}}}\nspec:\n{proto}"
                    f"  endpoints: [{{address: 127.0.0.1, port: {upstream_port}}}]\n")
    return "---\n".join(docs)


def _start_nginx(tc, port, routes):
    locations = []
    for prefix, upstream_port, protocol in routes:
        if protocol == "grpc":
            body = f"grpc_pass grpc://127.0.0.1:{upstream_port};"
        elif protocol == "http":
            body = (f"proxy_pass http://127.0.0.1:{upstream_port}; proxy_http_version 1.1; "
                    "proxy_set_header Connection \"\"; proxy_set_header Host $host;")
        else:
            raise unittest.SkipTest("nginx cannot proxy to an HTTP/2 (non-gRPC) upstream")
        locations.append(f"location {prefix} {{ {body} }}")
    if not any(p == "/" for p, _, _ in routes):
        locations.append("location / { return 404; }")
    conf = os.path.join(tc.tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
daemon off; master_process off; worker_processes 1; pid {tc.tmp}/nginx.pid;
error_log {tc.tmp}/nginx.err info;
events {{ worker_connections 4096; }}
http {{ access_log off; client_body_temp_path {tc.tmp}; proxy_temp_path {tc.tmp};
  client_max_body_size 0; http2_max_concurrent_streams 128; proxy_request_buffering off;
  server {{ listen 127.0.0.1:{port} http2;
    {chr(10).join(locations)}
  }} }}
""")
    tc.start(["nginx", "-c", conf, "-p", tc.tmp], "nginx", port)
    # RSS checks read the proxy's own process: master_process off makes it a single process.
    tc.gw = tc.procs[-1]


def proxy_pid(tc):
    return tc.gw.proc.pid


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------------------------------
# grpcio TestService

SERVICE = "grpc.testing.TestService"


def request(size=0, payload=b"", **ctl):
    """A TestService request: a JSON control line, a NUL, then the payload. ctl keys: code,
    message (status to answer with), sleep (seconds, watching for cancellation), sizes (for
    streaming output)."""
    ctl["size"] = size
    return json.dumps(ctl).encode() + b"\0" + payload


def _parse(data):
    head, _, payload = data.partition(b"\0")
    return json.loads(head or b"{}"), payload


class TestServer:
    """grpcio server on a free port with `grpc.testing.TestService` (EmptyCall, UnaryCall,
    StreamingOutputCall, StreamingInputCall, FullDuplexCall) and, as a marker that a request
    got through, `grpc.testing.OtherService/Call` answering b"other". Records `calls` (method
    names) and `cancelled` (method names whose RPC the server saw cancelled)."""

    def __init__(self, port=None):
        import grpc
        self.grpc = grpc
        self.calls = []
        self.cancelled = []
        self.cancelled_event = threading.Event()
        self.metadata = []  # invocation metadata of each call, as dicts
        self.time_remaining = []  # UnaryCall: seconds left before the deadline (None: none)
        self.lock = threading.Lock()
        h = grpc
        handlers = {
            "EmptyCall": h.unary_unary_rpc_method_handler(self._empty),
            "UnaryCall": h.unary_unary_rpc_method_handler(self._unary),
            "StreamingOutputCall": h.unary_stream_rpc_method_handler(self._server_streaming),
            "StreamingInputCall": h.stream_unary_rpc_method_handler(self._client_streaming),
            "FullDuplexCall": h.stream_stream_rpc_method_handler(self._full_duplex),
        }
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=64),
                                  options=[("grpc.max_receive_message_length", 16 << 20),
                                           ("grpc.max_send_message_length", 16 << 20)])
        self.server.add_generic_rpc_handlers((
            grpc.method_handlers_generic_handler(SERVICE, handlers),
            grpc.method_handlers_generic_handler(
                "grpc.testing.OtherService",
                {"Call": h.unary_unary_rpc_method_handler(self._other)}),
        ))
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port or 0}")
        self.server.start()
        wait_port(self.port)

    def close(self):
        self.server.stop(grace=None).wait(5)

    # -- helpers

    def _enter(self, name, context):
        """Records the call; echoes the interop metadata; returns a `done()` to call when the
        handler finishes normally: an RPC that terminates before is recorded as cancelled."""
        finished = threading.Event()

        def on_terminate():
            if not finished.is_set():
                self._cancelled(name)

        if not context.add_callback(on_terminate):  # already over: cancelled before we ran
            self._cancelled(name)
        md = dict(context.invocation_metadata())
        with self.lock:
            self.calls.append(name)
            self.metadata.append(md)
        initial = [(k, v) for k, v in md.items() if k == "x-grpc-test-echo-initial"]
        if initial:
            context.send_initial_metadata(initial)
        trailing = [(k, v) for k, v in md.items() if k == "x-grpc-test-echo-trailing-bin"]
        if trailing:
            context.set_trailing_metadata(trailing)

        def done(settle=0.0):
            # A call cancelled by a connection close may end the request iterator as if the
            # client had half-closed, just before the RPC turns inactive: `settle` waits.
            time.sleep(settle)
            if context.is_active():
                finished.set()

        return done

    def _watch(self, name, context, seconds):
        """Sleeps up to `seconds`; True when the RPC was cancelled meanwhile (recorded)."""
        end = time.time() + seconds
        while time.time() < end:
            if not context.is_active():
                self._cancelled(name)
                return True
            time.sleep(0.02)
        return False

    def _cancelled(self, name):
        with self.lock:
            self.cancelled.append(name)
        self.cancelled_event.set()

    def _status(self, ctl, context):
        if ctl.get("code"):
            context.set_code(self.grpc.StatusCode(
                next(c for c in self.grpc.StatusCode if c.value[0] == ctl["code"])))
            context.set_details(ctl.get("message", ""))
            return True
        return False

    # -- handlers

    def _empty(self, data, context):
        self._enter("EmptyCall", context)()
        return b""

    def _other(self, data, context):
        self._enter("OtherService/Call", context)()
        return b"other"

    def _unary(self, data, context):
        done = self._enter("UnaryCall", context)
        with self.lock:
            self.time_remaining.append(context.time_remaining())
        ctl, payload = _parse(data)
        if ctl.get("sleep") and self._watch("UnaryCall", context, ctl["sleep"]):
            return b""
        done()
        if self._status(ctl, context):
            return b""
        return bytes(ctl.get("size", 0))

    def _server_streaming(self, data, context):
        done = self._enter("StreamingOutputCall", context)
        ctl, _ = _parse(data)
        for size in ctl.get("sizes", []):
            yield bytes(size)
            if ctl.get("sleep") and self._watch("StreamingOutputCall", context, ctl["sleep"]):
                return
        done()

    def _client_streaming(self, it, context):
        done = self._enter("StreamingInputCall", context)
        total = sum(len(m) for m in it)
        done(settle=0.2)
        return str(total).encode()

    def _full_duplex(self, it, context):
        done = self._enter("FullDuplexCall", context)
        for data in it:
            ctl, _ = _parse(data)
            if self._status(ctl, context):
                done()
                return
            yield bytes(ctl.get("size", 0))
        done(settle=0.2)


# ---------------------------------------------------------------------------------------------
# Raw HTTP/2 frames

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIO = 0x1, 0x1, 0x4, 0x8, 0x20
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, \
    FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, \
    ENHANCE_YOUR_CALM = range(12)
ERROR_NAMES = {v: k for k, v in dict(
    NO_ERROR=0, PROTOCOL_ERROR=1, INTERNAL_ERROR=2, FLOW_CONTROL_ERROR=3, SETTINGS_TIMEOUT=4,
    STREAM_CLOSED=5, FRAME_SIZE_ERROR=6, REFUSED_STREAM=7, CANCEL=8, COMPRESSION_ERROR=9,
    CONNECT_ERROR=10, ENHANCE_YOUR_CALM=11).items()}
FRAME_NAMES = ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING",
               "GOAWAY", "WINDOW_UPDATE", "CONTINUATION"]


def frame(ftype, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream_id & 0x7FFFFFFF) + payload


def settings(**kv):
    ids = dict(HEADER_TABLE_SIZE=1, ENABLE_PUSH=2, MAX_CONCURRENT_STREAMS=3,
               INITIAL_WINDOW_SIZE=4, MAX_FRAME_SIZE=5, MAX_HEADER_LIST_SIZE=6)
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", ids[k], v) for k, v in kv.items()))


class Frame:
    def __init__(self, ftype, flags, stream_id, payload):
        self.type, self.flags, self.stream_id, self.payload = ftype, flags, stream_id, payload

    @property
    def error_code(self):  # RST_STREAM, GOAWAY
        off = 0 if self.type == RST_STREAM else 4
        return struct.unpack(">I", self.payload[off:off + 4])[0]

    def __repr__(self):
        name = FRAME_NAMES[self.type] if self.type < len(FRAME_NAMES) else str(self.type)
        extra = ""
        if self.type in (RST_STREAM, GOAWAY):
            extra = " " + ERROR_NAMES.get(self.error_code, str(self.error_code))
        return (f"<{name} flags={self.flags:#x} stream={self.stream_id} "
                f"len={len(self.payload)}{extra}>")


class H2Frames:
    """A raw HTTP/2 client connection. `handshake()` sends the preface and SETTINGS and answers
    the server's SETTINGS; `read()` returns the next frame (None at EOF or timeout); received
    HEADERS blocks are decoded with `decode()`."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.eof = False

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def handshake(self, **client_settings):
        self.send(PREFACE + settings(**client_settings))
        # Read until the server's SETTINGS arrives; acknowledge it.
        while True:
            f = self.read()
            if f is None:
                raise AssertionError("no SETTINGS from the server")
            if f.type == SETTINGS and not f.flags & ACK:
                self.send(frame(SETTINGS, ACK, 0))
                return f

    def headers(self, stream_id, hdrs, end_stream=True, end_headers=True):
        block = self.encoder.encode(hdrs)
        flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
        return frame(HEADERS, flags, stream_id, block)

    def get(self, stream_id, path="/", authority="h2.example", extra=()):
        return self.headers(stream_id, [(":method", "GET"), (":scheme", "http"),
                                        (":path", path), (":authority", authority), *extra])

    def _fill(self, n):
        while len(self.buf) < n:
            try:
                b = self.sock.recv(65536)
            except socket.timeout:
                return False
            except OSError:  # reset, or closed by another thread
                self.eof = True
                return False
            if not b:
                self.eof = True
                return False
            self.buf += b
        return True

    def read(self):
        if not self._fill(9):
            return None
        length = struct.unpack(">I", b"\0" + self.buf[:3])[0]
        if not self._fill(9 + length):
            return None
        ftype, flags = self.buf[3], self.buf[4]
        sid = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
        payload = self.buf[9:9 + length]
        self.buf = self.buf[9 + length:]
        return Frame(ftype, flags, sid, payload)

    def decode(self, f):
        block = f.payload
        if f.flags & PADDED:
            pad = block[0]
            block = block[1:len(block) - pad]
        if f.flags & PRIO:
            block = block[5:]
        return self.decoder.decode(block)

    def frames(self, until, seconds=5.0):
        """Reads frames until `until(frame)` is true (returns that frame, with all frames read in
        self.seen) or EOF/timeout (returns None)."""
        self.seen = []
        end = time.time() + seconds
        while time.time() < end:
            f = self.read()
            if f is None:
                return None
            self.seen.append(f)
            if f.type == HEADERS:
                f.decoded = self.decode(f)
            if until(f):
                return f
        return None


class ResettingUpstream:
    """An h2c upstream (python3-h2 on a thread per connection) that answers every stream with
    gRPC response headers and one message, then resets the stream with `error_code`: the
    upstream-to-client direction of cancellation."""

    def __init__(self, error_code):
        from harness import ThreadedServer
        self.error_code = error_code
        self.server = ThreadedServer(self._serve)
        self.port = self.server.port

    def close(self):
        self.server.close()

    def _serve(self, sock):
        import h2.config
        import h2.connection
        import h2.events
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        while True:
            data = sock.recv(65536)
            if not data:
                return
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    sid = ev.stream_id
                    conn.send_headers(sid, [(":status", "200"),
                                            ("content-type", "application/grpc")])
                    conn.send_data(sid, b"\0\0\0\0\x05reset")
                    sock.sendall(conn.data_to_send())
                    time.sleep(0.2)
                    conn.reset_stream(sid, self.error_code)
                elif isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            sock.sendall(conn.data_to_send())
