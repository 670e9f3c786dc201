"""WebSocket (HTTP/1.1 Upgrade) through Portico: a real websockets server and client (Debian
python3-websockets) on both sides, plus raw sockets for the exact bytes on the wire."""

import asyncio
import http
import os
import socket
import threading
import time
import unittest

import websockets.client
import websockets.exceptions
import websockets.server

from harness import (GatewayTestCase, ThreadedServer, free_port, gateway_yaml, read_head,
                     status_of)


class WsServer:
    """A websockets server on its own thread and asyncio loop. It echoes every message; the
    message "close-me" makes it close with code 4001; a path starting with /forbidden is
    refused with 403. Remembers the request headers and the close codes it received."""

    def __init__(self):
        self.headers = []
        self.close_codes = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(5)

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)

        async def refuse(path, headers):
            if path.startswith("/ws/forbidden"):
                return (http.HTTPStatus.FORBIDDEN, [("Content-Type", "text/plain")],
                        b"forbidden\n")
            return None

        async def handler(ws):
            self.headers.append(ws.request_headers)
            try:
                async for msg in ws:
                    if msg == "close-me":
                        await ws.close(4001, "server bye")
                        break
                    await ws.send(msg)
            except websockets.exceptions.ConnectionClosed:
                pass
            self.close_codes.append(ws.close_code)

        async def main():
            self.server = await websockets.server.serve(handler, "127.0.0.1", 0,
                                                        process_request=refuse, max_size=None,
                                                        ping_interval=None)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        self.loop.run_until_complete(main())
        self.loop.run_forever()

    def close(self):
        def stop():
            self.server.close()
            self.loop.stop()
        self.loop.call_soon_threadsafe(stop)
        self.thread.join(5)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def connect(port, path="/ws/echo", **kw):
    return websockets.client.connect(f"ws://127.0.0.1:{port}{path}", max_size=None,
                                     ping_interval=None, open_timeout=5, **kw)


def read_response(sock):
    """Reads one response (Content-Length or chunked body); returns (head, body)."""
    head, rest = read_head(sock)
    if head is None:
        return None, b""
    lines = head.split(b"\r\n")
    fields = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        fields[k.strip().lower()] = v.strip()
    if b"content-length" in fields:
        n = int(fields[b"content-length"])
        while len(rest) < n:
            rest += sock.recv(65536)
        return head, rest[:n]
    if fields.get(b"transfer-encoding") == b"chunked":
        while not rest.endswith(b"0\r\n\r\n"):
            rest += sock.recv(65536)
        return head, rest
    return head, rest


UPGRADE_REQUEST = (b"GET /ws/raw HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
                   b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nKeep-Alive: 5\r\n\r\n")


class WebSocketProxy(GatewayTestCase):
    def setUp(self):
        super().setUp()
        self.ws = WsServer()
        self.addCleanup(self.ws.close)
        self.echo_port = self.echo("plain")
        self.raw_heads = []
        self.raw_conn_of = []  # the upstream connection number of each head
        self.raw_conns = 0
        self.lock = threading.Lock()
        self.raw = ThreadedServer(self.raw_upstream)
        self.addCleanup(self.raw.close)
        self.port = free_port()
        self.gateway(self.config(), workers=2)

    def config(self, extra_route="/extra", timeouts=""):
        dead = free_port()
        return gateway_yaml(self.port, [
            ("PathPrefix", "/ws/raw", [("raw", None, 1)]),
            ("PathPrefix", "/ws", [("ws", None, 1)]),
            ("PathPrefix", "/down", [("down", None, 1)]),
            ("PathPrefix", extra_route, [("plain", None, 1)]),
            ("PathPrefix", "/", [("plain", None, 1)]),
        ], {"ws": [self.ws.port], "raw": [self.raw.port], "plain": [self.echo_port],
            "down": [dead]}, timeouts=timeouts)

    def raw_upstream(self, conn):
        """Records each request head with the number of its connection; answers 101 to an
        upgrade, then echoes bytes until the gateway half-closes, then says "bye" and closes.
        Answers 200 (403 for /ws/raw/refuse) with keep-alive to anything else."""
        with self.lock:
            self.raw_conns += 1
            cid = self.raw_conns
        while True:
            head, rest = read_head(conn)
            if head is None:
                return
            self.raw_heads.append(head)
            self.raw_conn_of.append(cid)
            if head.startswith(b"GET /ws/raw/refuse "):
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 3\r\n\r\nno\n")
                continue
            if b"\r\nupgrade:" in head.lower():
                break
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n")
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nX-Up: yes\r\n\r\n" + rest.upper())
        if head.startswith(b"GET /ws/raw/flood "):  # 64 MiB as fast as the gateway takes it
            chunk = b"f" * (1 << 20)
            for _ in range(64):
                conn.sendall(chunk)
            conn.shutdown(socket.SHUT_WR)
            return
        while True:
            b = conn.recv(65536)
            if not b:
                break
            conn.sendall(b.upper())
        # /ws/raw/big: a long goodbye, more than the gateway buffers.
        conn.sendall(b"bye" * (3_500_000 if head.startswith(b"GET /ws/raw/big ") else 1))
        conn.shutdown(socket.SHUT_WR)

    async def open_and_close(self, path):
        async with connect(self.port, path):
            pass

    def metric(self, name):
        _, text = self.admin_get("/metrics")
        for line in text.splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[1]))
        return None

    # --- messages through a real client and server -------------------------------------

    def test_text_and_binary_messages_echo(self):
        async def go():
            async with connect(self.port) as ws:
                await ws.send("hello")
                self.assertEqual(await ws.recv(), "hello")
                await ws.send(b"\x00\x01\xff binary")
                self.assertEqual(await ws.recv(), b"\x00\x01\xff binary")
        run(go())
        self.assertEqual(self.metric("portico_downstream_upgrades_total"), 1)

    def test_one_mebibyte_message(self):
        payload = os.urandom(1 << 20)

        async def go():
            async with connect(self.port) as ws:
                await ws.send(payload)
                self.assertEqual(await ws.recv(), payload)
                await ws.send("x" * (1 << 20))
                self.assertEqual(await ws.recv(), "x" * (1 << 20))
        run(go())

    def test_many_messages(self):
        async def go():
            async with connect(self.port) as ws:
                for i in range(2000):  # all sent before any is read: buffers fill both ways
                    await ws.send(f"message {i}")
                for i in range(2000):
                    self.assertEqual(await ws.recv(), f"message {i}")
        run(go())

    def test_ping_pong(self):
        async def go():
            async with connect(self.port) as ws:
                pong = await ws.ping(b"are you there")
                await asyncio.wait_for(pong, 5)
                await ws.send("after ping")
                self.assertEqual(await ws.recv(), "after ping")
        run(go())

    def test_close_from_client_passes_the_code(self):
        async def go():
            async with connect(self.port) as ws:
                await ws.send("one")
                await ws.recv()
                await ws.close(4000, "client bye")
                self.assertEqual(ws.close_code, 4000)
        run(go())
        deadline = time.time() + 5
        while 4000 not in self.ws.close_codes and time.time() < deadline:
            time.sleep(0.02)
        self.assertIn(4000, self.ws.close_codes)
        self.assertTunnelsGone()

    def test_close_from_server_passes_the_code(self):
        async def go():
            async with connect(self.port) as ws:
                await ws.send("close-me")
                with self.assertRaises(websockets.exceptions.ConnectionClosed):
                    await ws.recv()
                self.assertEqual(ws.close_code, 4001)
                self.assertEqual(ws.close_reason, "server bye")
        run(go())
        self.assertTunnelsGone()

    def assertTunnelsGone(self):
        deadline = time.time() + 5
        while self.metric("portico_downstream_tunnels_active") != 0 and time.time() < deadline:
            time.sleep(0.02)
        self.assertEqual(self.metric("portico_downstream_tunnels_active"), 0)

    # --- refusals and failures ----------------------------------------------------------

    def test_upstream_refusal_is_a_normal_response_and_the_connection_goes_on(self):
        with self.assertRaises(websockets.exceptions.InvalidStatusCode) as cm:
            run(self.open_and_close("/ws/forbidden"))
        self.assertEqual(cm.exception.status_code, 403)
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            s.sendall(UPGRADE_REQUEST.replace(b"/ws/raw", b"/ws/forbidden"))
            head, body = read_response(s)
            self.assertEqual(status_of(head), 403, head)
            self.assertIn(b"forbidden", body)
            self.assertNotIn(b"\r\nupgrade:", head.lower())
            s.sendall(b"GET /after HTTP/1.1\r\nHost: example.com\r\n\r\n")
            head, _ = read_response(s)
            self.assertEqual(status_of(head), 200, head)
        finally:
            s.close()
        self.assertEqual(self.metric("portico_downstream_upgrades_total"), 0)

    def test_backend_down(self):
        with self.assertRaises(websockets.exceptions.InvalidStatusCode) as cm:
            run(self.open_and_close("/down"))
        self.assertIn(cm.exception.status_code, (502, 503))

    def test_upgrade_with_a_body_is_refused(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            s.sendall(UPGRADE_REQUEST.replace(b"Keep-Alive: 5\r\n", b"Content-Length: 4\r\n")
                      + b"abcd")
            head, _ = read_response(s)
            self.assertEqual(status_of(head), 400, head)
        finally:
            s.close()
        self.assertEqual(self.raw_heads, [])

    # --- the wire ----------------------------------------------------------------------

    def test_raw_upgrade_headers_tunnel_and_half_close(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            s.sendall(UPGRADE_REQUEST)
            head, rest = read_head(s)
            self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
            lines = head.lower().split(b"\r\n")
            self.assertIn(b"upgrade: websocket", lines)
            self.assertIn(b"connection: upgrade", lines)
            self.assertIn(b"x-up: yes", lines)
            up = self.raw_heads[0].split(b"\r\n")
            self.assertIn(b"Upgrade: websocket", up)
            self.assertIn(b"connection: upgrade", up)
            self.assertEqual(sum(1 for h in up if h.lower().startswith(b"connection:")), 1, up)
            self.assertFalse(any(h.lower().startswith(b"keep-alive:") for h in up), up)
            self.assertIn(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", up)
            # Bytes both ways, then the client's half-close reaches the upstream, whose last
            # bytes and close come back.
            s.sendall(b"abc")
            got = rest
            while len(got) < 3:
                got += s.recv(100)
            self.assertEqual(got, b"ABC")
            s.sendall(b"x" * 300_000)
            s.shutdown(socket.SHUT_WR)
            tail = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                tail += b
            self.assertEqual(tail, b"X" * 300_000 + b"bye")
        finally:
            s.close()

    def test_client_half_close_first_then_a_long_upstream_goodbye_to_a_slow_reader(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # a slow reader: small window
        s.settimeout(5)
        s.connect(("127.0.0.1", self.port))
        try:
            s.sendall(UPGRADE_REQUEST.replace(b"/ws/raw", b"/ws/raw/big"))
            head, rest = read_head(s)
            self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
            s.sendall(b"abc")
            s.shutdown(socket.SHUT_WR)
            time.sleep(0.5)  # the upstream closes while the gateway still holds its bytes
            tail = rest
            while True:
                b = s.recv(65536)
                if not b:
                    break
                tail += b
            self.assertEqual(tail, b"ABC" + b"bye" * 3_500_000)
        finally:
            s.close()
        self.assertTunnelsGone()

    def test_backpressure_bounds_what_the_gateway_holds(self):
        def rss():
            with open(f"/proc/{self.gw.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        before = rss()
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            s.sendall(UPGRADE_REQUEST.replace(b"/ws/raw", b"/ws/raw/flood"))
            head, rest = read_head(s)
            self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
            time.sleep(1)  # not reading: the upstream must be paused, not buffered
            self.assertLess(rss() - before, 24 << 20, "the tunnel buffered the flood")
            got = len(rest)
            while True:
                b = s.recv(1 << 20)
                if not b:
                    break
                got += len(b)
            self.assertEqual(got, 64 << 20)
        finally:
            s.close()

    def test_upgrades_use_fresh_connections_never_pooled(self):
        self.gw.stop()
        self.procs.remove(self.gw)
        self.port = free_port()
        self.gateway(self.config(), workers=1)  # one worker: one pool

        def exchange(s, request):
            s.sendall(request)
            head, _ = read_response(s)
            return status_of(head)

        get = b"GET /ws/raw/plain HTTP/1.1\r\nHost: example.com\r\n\r\n"
        refused = UPGRADE_REQUEST.replace(b"/ws/raw", b"/ws/raw/refuse")
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            self.assertEqual(exchange(s, get), 200)  # upstream connection 1, then pooled
            self.assertEqual(exchange(s, refused), 403)  # a new connection 2, then closed
            self.assertEqual(exchange(s, get), 200)  # connection 1 again
            self.assertEqual(exchange(s, get), 200)
            s.sendall(UPGRADE_REQUEST)  # a new connection 3
            head, _ = read_head(s)
            self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
        finally:
            s.close()
        self.assertEqual(self.raw_conn_of, [1, 2, 1, 1, 3])

    def test_h2c_upgrade_is_stripped(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            s.sendall(b"GET /ws/raw HTTP/1.1\r\nHost: example.com\r\n"
                      b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                      b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
            head, body = read_response(s)
            self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
            self.assertEqual(body, b"ok\n")
        finally:
            s.close()
        up = self.raw_heads[0].lower()
        self.assertNotIn(b"upgrade", up)
        self.assertNotIn(b"http2-settings", up)

    # --- lifetime ----------------------------------------------------------------------

    def test_tunnel_survives_a_config_reload(self):
        path = os.path.join(self.tmp, "gateway.yaml")

        async def go():
            async with connect(self.port) as ws:
                await ws.send("before")
                self.assertEqual(await ws.recv(), "before")
                with open(path + ".tmp", "w") as f:
                    f.write(self.config(extra_route="/other"))
                os.replace(path + ".tmp", path)
                deadline = time.time() + 5
                while "configuration version 2 applied" not in self.gw.output():
                    self.assertLess(time.time(), deadline, self.gw.output())
                    await asyncio.sleep(0.02)
                await ws.send("after")
                self.assertEqual(await ws.recv(), "after")
            # A new tunnel on the new config.
            async with connect(self.port) as ws:
                await ws.send("new")
                self.assertEqual(await ws.recv(), "new")
        run(go())

    def test_idle_tunnel_closes_after_the_idle_timeout(self):
        self.gw.stop()
        self.procs.remove(self.gw)
        self.port = free_port()
        self.gateway(self.config(timeouts="{idle: 1s}"), workers=1)

        async def go():
            async with connect(self.port) as ws:
                for i in range(6):  # traffic keeps it open past the timeout
                    await asyncio.sleep(0.4)
                    await ws.send(str(i))
                    self.assertEqual(await ws.recv(), str(i))
                started = time.time()
                with self.assertRaises(websockets.exceptions.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                self.assertLess(time.time() - started, 3)
        run(go())
        self.assertTunnelsGone()

    def test_drain_keeps_the_tunnel_until_the_drain_timeout(self):
        self.gw.stop()
        self.procs.remove(self.gw)
        self.port = free_port()
        self.gateway(self.config(), workers=1, extra=("--drain-timeout", "2s"))

        async def go():
            async with connect(self.port) as ws:
                self.gw.proc.send_signal(15)
                await asyncio.sleep(1)
                await ws.send("still here")
                self.assertEqual(await ws.recv(), "still here")
                with self.assertRaises(websockets.exceptions.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
        run(go())
        self.assertEqual(self.gw.proc.wait(5), 0)


if __name__ == "__main__":
    unittest.main()
