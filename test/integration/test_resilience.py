"""Upstream resilience through the real gateway: TrafficPolicy attachment (Gateway, HTTPRoute,
one rule by sectionName; defaults and overrides), retries (triggers, status codes,
Retry-After, body replay, non-idempotent methods, the retry budget) and timeouts. Upstreams
are `portico echo` and Python http.server peers started by the tests."""

import http.client
import json
import signal
import subprocess
import textwrap
import threading
import time
import unittest

from harness import BIN, GatewayTestCase, HttpPeer, QuietHandler, free_port


class FlakyServer:
    """http.server upstream: answers `fail_status` to the requests for which fail(n) is true
    (n counts requests from 0), 200 with the received body otherwise; counts requests."""

    def __init__(self, fail=lambda n: False, fail_status=503, retry_after=None, delay=0.0):
        self.count = 0
        self.bodies = []
        lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            def handle_any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    n = server.count
                    server.count += 1
                if delay:
                    time.sleep(delay)
                if fail(n):
                    self.send_response(fail_status)
                    if retry_after is not None:
                        self.send_header("Retry-After", str(retry_after))
                    self.send_header("Content-Length", "4")
                    self.end_headers()
                    self.wfile.write(b"fail")
                    return
                with lock:
                    server.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = handle_any

        self.peer = HttpPeer(Handler, "127.0.0.1")
        self.port = self.peer.port

    def close(self):
        self.peer.close()


def request(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        c.request(method, path, body=body, headers={"Host": "example.com"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def config(port, backends, routes, policies=""):
    docs = [textwrap.dedent(f"""\
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {{name: gw}}
        spec:
          addresses: [{{type: IPAddress, value: 127.0.0.1}}]
          listeners: [{{name: http, port: {port}, protocol: HTTP}}]
        """)]
    for name, ports in backends.items():
        eps = ", ".join(f"{{address: 127.0.0.1, port: {p}}}" for p in ports)
        docs.append(f"apiVersion: portico.dev/v1alpha1\nkind: Backend\nmetadata: {{name: {name}}}"
                    f"\nspec:\n  endpoints: [{eps}]\n")
    docs.append(textwrap.dedent(routes))
    if policies:
        docs.append(textwrap.dedent(policies))
    return "---\n".join(docs)


def metric(text, name, label):
    for line in text.splitlines():
        if line.startswith(name + "{") and label in line:
            return float(line.split()[-1])
    return 0.0


class Retries(GatewayTestCase):
    def serve(self, server):
        self.addCleanup(server.close)
        return server

    def test_connect_failure_is_retried_on_another_endpoint(self):
        up = self.echo("up")
        dead = free_port()
        port = free_port()
        routes = """\
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: api}
            spec:
              parentRefs: [{name: gw}]
              rules:
              - name: retried
                matches: [{path: {type: PathPrefix, value: /retried}}]
                backendRefs: [{name: pair}]
              - name: plain
                matches: [{path: {type: PathPrefix, value: /plain}}]
                backendRefs: [{name: pair}]
            """
        policies = """\
            apiVersion: portico.dev/v1alpha1
            kind: TrafficPolicy
            metadata: {name: api-resilience}
            spec:
              targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: api,
                            sectionName: retried}]
              timeout: {http: {requestTimeout: 5s}, tcp: {connectTimeout: 1s}}
              retry:
                numRetries: 3
                retryOn: {triggers: [connect-failure, reset, gateway-error], httpStatusCodes: [503]}
                perRetry: {timeout: 1s, backOff: {baseInterval: 10ms, maxInterval: 50ms}}
            """
        self.gateway(config(port, {"pair": [dead, up]}, routes, policies))
        statuses = [request(port, "GET", f"/retried/{i}")[0] for i in range(40)]
        self.assertEqual(statuses, [200] * 40)
        plain = [request(port, "GET", f"/plain/{i}")[0] for i in range(40)]
        self.assertIn(503, plain)  # the rule without the policy sees the dead endpoint
        _, metrics = self.admin_get("/stats/prometheus")
        self.assertGreaterEqual(metric(metrics, "portico_backend_retries_total", "pair"), 10)
        # The policy's status names its target, and explain shows where the retry comes from.
        _, dump = self.admin_get("/config_dump")
        policy = [r for r in json.loads(dump)["resources"] if r["kind"] == "TrafficPolicy"][0]
        ref = policy["status"]["ancestors"][0]["ancestorRef"]
        self.assertEqual((ref["kind"], ref["name"], ref["sectionName"]),
                         ("HTTPRoute", "api", "retried"))
        _, text = self.admin_get("/explain?host=example.com&path=/retried/x")
        self.assertIn("policy retry 3 retries on gateway-error,reset,connect-failure,503", text)
        self.assertIn("TrafficPolicy default/api-resilience (rule retried default)", text)

    def test_status_retry_with_retry_after_body_replay_and_methods(self):
        # Every other request fails with 503 and Retry-After: 0.
        flaky = self.serve(FlakyServer(fail=lambda n: n % 2 == 0, retry_after=0))
        port = free_port()
        routes = """\
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: api}
            spec:
              parentRefs: [{name: gw}]
              rules:
              - name: safe
                matches: [{path: {type: PathPrefix, value: /safe}}]
                backendRefs: [{name: flaky}]
              - name: unsafe
                matches: [{path: {type: PathPrefix, value: /unsafe}}]
                backendRefs: [{name: flaky}]
            """
        policies = """\
            apiVersion: portico.dev/v1alpha1
            kind: TrafficPolicy
            metadata: {name: retry-503}
            spec:
              targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: api}]
              retry: {numRetries: 2, retryOn: {httpStatusCodes: [503]}}
            ---
            apiVersion: portico.dev/v1alpha1
            kind: TrafficPolicy
            metadata: {name: unsafe-ok}
            spec:
              targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: api,
                            sectionName: unsafe}]
              retry: {numRetries: 2, retryOn: {httpStatusCodes: [503]}, retryNonIdempotent: true}
            """
        self.gateway(config(port, {"flaky": [flaky.port]}, routes, policies))
        for i in range(10):
            body = (b"payload-%d-" % i) * 100
            status, got = request(port, "PUT", f"/safe/{i}", body)
            self.assertEqual((status, got), (200, body))  # replayed whole on the retry
        # POST is not idempotent: after its bytes reached the upstream it is not retried...
        results = [request(port, "POST", "/safe/p", b"x")[0] for _ in range(10)]
        self.assertIn(503, results)
        # ... unless the policy says so (the rule-level policy wins over the route's).
        results = [request(port, "POST", "/unsafe/p", b"x")[0] for _ in range(10)]
        self.assertEqual(results, [200] * 10)

    def test_retry_budget_bounds_upstream_requests_in_an_outage(self):
        down = self.serve(FlakyServer(fail=lambda n: True, delay=0.05))
        port = free_port()
        routes = """\
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: api}
            spec:
              parentRefs: [{name: gw}]
              rules: [{backendRefs: [{name: down}]}]
            """
        policies = """\
            apiVersion: portico.dev/v1alpha1
            kind: TrafficPolicy
            metadata: {name: p}
            spec:
              targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: api}]
              retry:
                numRetries: 3
                retryOn: {triggers: [5xx]}
                perRetry: {backOff: {baseInterval: 1ms, maxInterval: 2ms}}
                budget: {percent: 20, minRetryConcurrency: 1}
            """
        self.gateway(config(port, {"down": [down.port]}, routes, policies), workers=1)
        clients, per_client = 20, 5
        statuses = []

        def client():
            for _ in range(per_client):
                statuses.append(request(port, "GET", "/x")[0])

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sent = clients * per_client
        self.assertEqual(statuses, [503] * sent)  # the last upstream answer is passed on
        # Without a budget this storm would send 4× the requests upstream.
        self.assertLess(down.count, sent * 2, f"{down.count} upstream requests for {sent}")
        _, metrics = self.admin_get("/stats/prometheus")
        self.assertGreater(metric(metrics, "portico_backend_retries_denied_total", "down"), 0)


class PolicyAttachment(GatewayTestCase):
    def test_overrides_beat_route_settings_and_defaults_lose(self):
        slow = FlakyServer(delay=1.5)
        self.addCleanup(slow.close)
        port = free_port()
        routes = """\
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: api}
            spec:
              parentRefs: [{name: gw}]
              rules:
              - name: own
                matches: [{path: {type: PathPrefix, value: /own}}]
                timeouts: {request: 10s}
                backendRefs: [{name: slow}]
              - name: other
                matches: [{path: {type: PathPrefix, value: /other}}]
                backendRefs: [{name: slow}]
            """
        gateway_defaults = """\
            apiVersion: portico.dev/v1alpha1
            kind: TrafficPolicy
            metadata: {name: platform}
            spec:
              targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
              defaults: {timeout: {http: {requestTimeout: 300ms}}}
            ---
            apiVersion: portico.dev/v1alpha1
            kind: TrafficPolicy
            metadata: {name: team}
            spec:
              targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: api}]
              timeout: {http: {requestTimeout: 400ms}}
            """
        path = f"{self.tmp}/g.yaml"
        text = config(port, {"slow": [slow.port]}, routes, gateway_defaults)
        self.gateway(text)
        # /own: the route's own 10s beats the policies' defaults; /other: the route-level
        # default (400ms) beats the Gateway default.
        t = time.monotonic()
        self.assertEqual(request(port, "GET", "/own")[0], 200)
        self.assertGreater(time.monotonic() - t, 1.0)
        t = time.monotonic()
        self.assertEqual(request(port, "GET", "/other")[0], 504)
        self.assertLess(time.monotonic() - t, 1.4)
        with open(path, "w") as f:
            f.write(text)
        out = subprocess.run([BIN, "explain", "-c", path, "--host", "x", "--path", "/other",
                              "-o", "json"], capture_output=True, text=True)
        self.assertEqual(json.loads(out.stdout)[0]["policies"],
                         ["request timeout 400ms from TrafficPolicy default/team "
                          "(HTTPRoute default)"])
        # An override on the HTTPRoute beats the route's own timeouts.request.
        with open(path, "w") as f:
            f.write(text.replace("timeout: {http: {requestTimeout: 400ms}}",
                                 "overrides: {timeout: {http: {requestTimeout: 400ms}}}"))
        out = subprocess.run([BIN, "explain", "-c", path, "--host", "x", "--path", "/own",
                              "-o", "json"], capture_output=True, text=True)
        self.assertEqual(json.loads(out.stdout)[0]["policies"],
                         ["request timeout 400ms from TrafficPolicy default/team "
                          "(HTTPRoute override)"])

    def test_policy_for_a_missing_rule_is_not_accepted(self):
        path = f"{self.tmp}/c.yaml"
        with open(path, "w") as f:
            f.write(config(free_port(), {"b": [1]}, """\
                apiVersion: gateway.networking.k8s.io/v1
                kind: HTTPRoute
                metadata: {name: api}
                spec:
                  parentRefs: [{name: gw}]
                  rules: [{name: a, backendRefs: [{name: b}]}]
                """, """\
                apiVersion: portico.dev/v1alpha1
                kind: TrafficPolicy
                metadata: {name: p}
                spec:
                  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: api,
                                sectionName: nope}]
                  retry: {numRetries: 1}
                """))
        out = subprocess.run([BIN, "check", "-c", path], capture_output=True, text=True)
        self.assertIn('TargetNotFound: HTTPRoute default/api has no rule named "nope"', out.stderr)


if __name__ == "__main__":
    unittest.main()


class EndpointRestarts(GatewayTestCase):
    def test_killed_and_restarted_endpoints_fail_no_request(self):
        """Three endpoints; under steady load, two are killed and restarted in turn. With
        retries on connect-failure and reset, no client request fails."""
        ports = [free_port() for _ in range(3)]
        procs = {}

        def start(i):
            procs[i] = self.start([BIN, "echo", "--port", str(ports[i]), "--name", f"e{i}"],
                                  f"echo-{i}", ports[i])

        for i in range(3):
            start(i)
        port = free_port()
        self.gateway(config(port, {"api": ports}, """\
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: api}
            spec:
              parentRefs: [{name: gw}]
              rules: [{backendRefs: [{name: api}]}]
            """, """\
            apiVersion: portico.dev/v1alpha1
            kind: TrafficPolicy
            metadata: {name: p}
            spec:
              targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: api}]
              retry:
                numRetries: 3
                retryOn: {triggers: [connect-failure, reset]}
                perRetry: {backOff: {baseInterval: 5ms, maxInterval: 20ms}}
                budget: {percent: 100, minRetryConcurrency: 10}
            """))
        stop = threading.Event()
        results = []

        def client():
            while not stop.is_set():
                try:
                    results.append(request(port, "GET", "/x")[0])
                except OSError as e:
                    results.append(repr(e))

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for victim in (0, 1, 0):
            time.sleep(0.4)
            procs[victim].stop(signal.SIGKILL)  # a crash: connections reset, port refused
            self.procs.remove(procs[victim])
            time.sleep(0.4)
            start(victim)
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join()
        self.assertGreater(len(results), 100)
        self.assertEqual([r for r in results if r != 200], [])
        _, metrics = self.admin_get("/stats/prometheus")
        self.assertGreater(metric(metrics, "portico_backend_retries_total", "api"), 0)
