"""DNS endpoints through the real gateway and a real DNS server (dns_server.py, Debian's
python3-dnslib): names resolve off the workers, every address is an endpoint, answers are
re-resolved by TTL and traffic follows them; a failing resolver keeps the last answer."""

import http.client
import json
import textwrap
import threading
import time
import unittest

from dns_server import DnsServer
from harness import GatewayTestCase, HttpPeer, QuietHandler, free_port


class NamedServer:
    """An HTTP server on (ip, port) answering its name."""

    def __init__(self, ip, port, name):
        body = name.encode()

        class Handler(QuietHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.peer = HttpPeer(Handler, ip, port)
        self.port = self.peer.port

    def close(self):
        self.peer.close()


def get(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", "/", headers={"Host": "example.com"})
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


class DnsEndpoints(GatewayTestCase):
    def test_traffic_follows_the_answers(self):
        a = NamedServer("127.0.0.1", 0, "a")
        self.addCleanup(a.close)
        b = NamedServer("127.0.0.2", a.port, "b")  # same port, another loopback address
        self.addCleanup(b.close)
        dns = DnsServer({"api.test": {"a": ["127.0.0.1"], "ttl": 1}})
        dns.__enter__()
        self.addCleanup(dns.__exit__, None, None, None)
        port = free_port()
        self.gateway(textwrap.dedent(f"""\
            apiVersion: gateway.networking.k8s.io/v1
            kind: Gateway
            metadata: {{name: gw}}
            spec:
              addresses: [{{type: IPAddress, value: 127.0.0.1}}]
              listeners: [{{name: http, port: {port}, protocol: HTTP}}]
            ---
            apiVersion: portico.dev/v1alpha1
            kind: Backend
            metadata: {{name: api}}
            spec:
              endpoints: [{{address: api.test, port: {a.port}}}]
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {{name: r}}
            spec:
              parentRefs: [{{name: gw}}]
              rules: [{{backendRefs: [{{name: api}}]}}]
            """), extra=("--dns-server", dns.address))

        def until(expect, timeout=10):
            deadline = time.time() + timeout
            seen = None
            while time.time() < deadline:
                seen = get(port)
                if seen == expect:
                    return
                time.sleep(0.1)
            self.fail(f"waited for {expect}, last answer {seen}")

        until((200, "a"))
        _, backends = self.admin_get("/backends")
        api = [b for b in json.loads(backends)["backends"] if b["name"] == "default/api"][0]
        self.assertEqual([(e["address"], e["hostname"]) for e in api["endpoints"]],
                         [(f"127.0.0.1:{a.port}", "api.test")])
        # The answer changes: within the TTL and a re-resolution, traffic moves.
        dns.set({"api.test": {"a": ["127.0.0.2"], "ttl": 1}})
        until((200, "b"))
        # Two addresses: two endpoints, both get traffic.
        dns.set({"api.test": {"a": ["127.0.0.1", "127.0.0.2"], "ttl": 1}})
        deadline = time.time() + 10
        names = set()
        while time.time() < deadline and names != {"a", "b"}:
            names.add(get(port)[1])
            time.sleep(0.05)
        self.assertEqual(names, {"a", "b"})
        # The resolver fails: the last good answer stays in use.
        dns.set({"api.test": {"rcode": "SERVFAIL"}})
        time.sleep(2.5)
        self.assertEqual({get(port)[1] for _ in range(20)}, {"a", "b"})
        self.assertGreater(dns.queries("api.test"), 3)


if __name__ == "__main__":
    unittest.main()
