"""Upstream selection through the real gateway: load-balancing algorithms (RoundRobin weights,
Random, LeastRequest), hash policies (RingHash and Maglev on a header, cookie or query
parameter; consistency across workers and across an endpoint removal), active health checks
(HTTP and TCP), passive outlier ejection, circuit breakers, zone-aware routing, priority
failover and connection pool limits. Upstreams are `portico echo` and Python http.server peers
started by the tests; the gateway's admin /backends JSON is checked as we go."""

import collections
import http.client
import json
import os
import socket
import textwrap
import threading
import time
import unittest

from harness import BIN, GatewayTestCase, HttpPeer, QuietHandler, free_port


class Upstream:
    """http.server upstream named `name`: answers `status` (200) after `delay` seconds with an
    `x-echo-name` header like `portico echo`; GET `health_path` answers `health_status`.
    Records the client port of every (non-health) request; counts requests."""

    def __init__(self, name, status=200, delay=0.0, health_path="/healthz"):
        self.name = name
        self.status = status
        self.delay = delay
        self.health_status = 200
        self.health_checks = 0
        self.health_hosts = []
        self.health_delay = 0.0
        self.count = 0
        self.ports = []
        lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            disable_nagle_algorithm = True  # head and body are two writes

            def handle_any(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == health_path:
                    with lock:
                        server.health_checks += 1
                        server.health_hosts.append(self.headers.get("Host"))
                    if server.health_delay:
                        time.sleep(server.health_delay)
                    status = server.health_status
                else:
                    with lock:
                        server.count += 1
                        server.ports.append(self.client_address[1])
                    if server.delay:
                        time.sleep(server.delay)
                    status = server.status
                body = f"{server.name}\n".encode()
                self.send_response(status)
                self.send_header("x-echo-name", server.name)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_HEAD = handle_any

        self.peer = HttpPeer(Handler, "127.0.0.1")
        self.port = self.peer.port

    def close(self):
        self.peer.close()


def ep(port, **fields):
    extra = "".join(f", {k}: {v}" for k, v in fields.items())
    return f"{{address: 127.0.0.1, port: {port}{extra}}}"


def backend(name, endpoints, spec=""):
    """A Backend document; `endpoints` are ep() strings, `spec` extra YAML under spec (indented
    by the caller's dedent)."""
    doc = (f"apiVersion: portico.dev/v1alpha1\nkind: Backend\nmetadata: {{name: {name}}}\n"
           f"spec:\n  endpoints: [{', '.join(endpoints)}]\n")
    if spec:
        doc += textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ") + "\n"
    return doc


def config(port, backends, routes=None):
    """Gateway + one HTTPRoute. routes: [(path_prefix, backend_name)]; default: / → the first
    backend."""
    names = [b.split("metadata: {name: ", 1)[1].split("}", 1)[0] for b in backends]
    routes = routes or [("/", names[0])]
    rules = "\n".join(f"  - matches: [{{path: {{type: PathPrefix, value: {p}}}}}]\n"
                      f"    backendRefs: [{{name: {b}}}]" for p, b in routes)
    docs = [textwrap.dedent(f"""\
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {{name: gw}}
        spec:
          addresses: [{{type: IPAddress, value: 127.0.0.1}}]
          listeners: [{{name: http, port: {port}, protocol: HTTP}}]
        """),
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n"
            "spec:\n  parentRefs: [{name: gw}]\n  rules:\n" + rules + "\n"]
    return "---\n".join(docs + list(backends))


def get(port, path="/", headers=None, conn=None, timeout=10):
    """One GET; a fresh connection unless `conn` is given. Returns (status, headers, body)."""
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Host": "example.com", **(headers or {})})
        r = c.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        if conn is None:
            c.close()


def served_by(port, path="/", headers=None, conn=None):
    status, h, _ = get(port, path, headers, conn)
    return h.get("x-echo-name") if status == 200 else f"status {status}"


def tally(port, n, path="/", keep_alive=True):
    """Sends n GETs (one keep-alive connection, reopened on close); returns a Counter of the
    x-echo-name that answered."""
    out = collections.Counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10) if keep_alive else None
    try:
        for _ in range(n):
            out[served_by(port, path, conn=conn)] += 1
    finally:
        if conn:
            conn.close()
    return out


def metric(text, name, label):
    for line in text.splitlines():
        if line.startswith(name + "{") and label in line:
            return float(line.split()[-1])
    return 0.0


class UpstreamCase(GatewayTestCase):
    def upstream(self, name, **kw):
        u = Upstream(name, **kw)
        self.addCleanup(u.close)
        return u

    def backends(self):
        _, text = self.admin_get("/backends")
        return {b["name"]: b for b in json.loads(text)["backends"]}

    def endpoint(self, backend_name, port):
        b = self.backends()[f"default/{backend_name}"]
        for e in b["endpoints"]:
            if e["address"] == f"127.0.0.1:{port}":
                return e
        raise AssertionError(f"no endpoint 127.0.0.1:{port} in {b}")

    def wait_for(self, what, predicate, timeout=5.0, interval=0.05):
        """Polls predicate() until it returns a truthy value; fails with `what` after timeout."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        self.fail(f"timed out after {timeout}s waiting for {what}")

    def until_ejected(self, backend_name, port, max_requests=40):
        """Sends requests one by one until the endpoint shows as ejected; returns the statuses."""
        statuses = []
        for _ in range(max_requests):
            if self.endpoint(backend_name, port)["ejected"]:
                return statuses
            statuses.append(get(self.port)[0])
            time.sleep(0.01)  # the ejection is decided on the main thread
        self.fail(f"not ejected after {max_requests} requests: {statuses}")

    def write_config(self, text):
        path = os.path.join(self.tmp, "gateway.yaml")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, path)


CHECK = """\
    healthCheck:
      active: {type: HTTP, http: {path: /healthz}, interval: 100ms, timeout: 500ms,
               unhealthyThreshold: 2, healthyThreshold: 1}
    """

PASSIVE = """\
    healthCheck:
      passive: {consecutive5XxErrors: 3, baseEjectionTime: 1s, maxEjectionPercent: 50}
    """


def abort_clients(port, n, after=0.1):
    """n clients send a request and close their connection `after` seconds later."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n")
        socks.append(s)
    time.sleep(after)
    for s in socks:
        s.close()


class LoadBalancing(UpstreamCase):
    def test_round_robin_follows_weights_and_backends_json_shape(self):
        a, b, c = self.echo("a"), self.echo("b"), self.echo("c")
        port = free_port()
        self.gateway(config(port, [backend("w", [ep(a, weight=1), ep(b, weight=2),
                                                  ep(c, weight=3)])]))
        got = tally(port, 600)
        self.assertEqual(sum(got.values()), 600)
        self.assertEqual(set(got), {"a", "b", "c"}, got)
        # Smooth weighted round robin per worker: 100/200/300, give or take the worker split.
        self.assertTrue(80 <= got["a"] <= 120, got)
        self.assertTrue(170 <= got["b"] <= 230, got)
        self.assertTrue(260 <= got["c"] <= 340, got)
        # /backends: the shape of one backend.
        w = self.backends()["default/w"]
        self.assertEqual(set(w), {"name", "load_balancer", "endpoints", "circuit_breaker"})
        self.assertEqual(w["load_balancer"], "RoundRobin")
        self.assertEqual([e["address"] for e in w["endpoints"]],
                         [f"127.0.0.1:{p}" for p in (a, b, c)])
        self.assertEqual([e["weight"] for e in w["endpoints"]], [1, 2, 3])
        for e in w["endpoints"]:
            self.assertEqual((e["priority"], e["zone"], e["healthy"], e["active_unhealthy"],
                              e["ejected"]), (0, "", True, False, False), e)
            self.assertNotIn("health_check", e)  # no active check configured
            self.assertNotIn("ejections", e)     # never ejected
        self.assertEqual(w["circuit_breaker"], {
            "connections": {"current": w["circuit_breaker"]["connections"]["current"],
                            "max": 1024},
            "pending_requests": {"current": 0, "max": 1024},
            "requests": {"current": 0, "max": 1024},
            "retries": {"current": 0, "max": 1024}})
        self.assertLessEqual(w["circuit_breaker"]["connections"]["current"], 6)  # idle, pooled

    def test_weights_change_on_reload(self):
        a, b = self.echo("a"), self.echo("b")
        port = free_port()
        self.gateway(config(port, [backend("w", [ep(a), ep(b)])]), workers=1)
        self.assertEqual(tally(port, 40), collections.Counter({"a": 20, "b": 20}))
        self.write_config(config(port, [backend("w", [ep(a, weight=1), ep(b, weight=3)])]))
        self.wait_for("the reload",
                      lambda: self.backends()["default/w"]["endpoints"][1]["weight"] == 3)
        self.assertEqual(tally(port, 40), collections.Counter({"a": 10, "b": 30}))

    def test_algorithm_change_on_reload(self):
        ports = [self.echo(n) for n in "abc"]
        port = free_port()
        eps = [ep(p) for p in ports]
        self.gateway(config(port, [backend("w", eps)]))
        self.write_config(config(port, [backend(
            "w", eps, "loadBalancer: {type: RingHash, hashOn: {header: x-user}}")]))
        self.wait_for("the reload",
                      lambda: self.backends()["default/w"]["load_balancer"] == "RingHash")
        for k in range(10):
            self.assertEqual(len({served_by(port, "/", {"x-user": f"k{k}"}) for _ in range(4)}),
                             1)

    def test_random_roughly_by_weight(self):
        a, b, c = self.echo("a"), self.echo("b"), self.echo("c")
        port = free_port()
        self.gateway(config(port, [backend("w", [ep(a, weight=1), ep(b, weight=2),
                                                  ep(c, weight=3)],
                                           "loadBalancer: {type: Random}")]))
        self.assertEqual(self.backends()["default/w"]["load_balancer"], "Random")
        got = tally(port, 600)
        # Expected 100/200/300; the bounds are more than 5 standard deviations wide.
        self.assertTrue(45 <= got["a"] <= 165, got)
        self.assertTrue(130 <= got["b"] <= 270, got)
        self.assertTrue(220 <= got["c"] <= 380, got)

    def test_least_request_avoids_the_slow_endpoint(self):
        slow = self.upstream("slow", delay=0.2)
        fast1, fast2 = self.upstream("fast1"), self.upstream("fast2")
        port = free_port()
        self.gateway(config(port, [backend("lr", [ep(slow.port), ep(fast1.port), ep(fast2.port)],
                                           "loadBalancer: {type: LeastRequest}")]), workers=1)
        self.assertEqual(self.backends()["default/lr"]["load_balancer"], "LeastRequest")
        results = collections.Counter()
        lock = threading.Lock()

        def client():
            got = tally(port, 30)
            with lock:
                results.update(got)

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        total = sum(results.values())
        self.assertEqual(total, 240, results)
        self.assertEqual(set(results), {"slow", "fast1", "fast2"}, results)
        # Round robin would give the slow one 80 requests.
        self.assertLess(results["slow"], total * 0.2, results)

    def test_least_request_respects_weights_when_idle(self):
        # Docs: weight is the "share of the traffic (round robin, random, least request,
        # hashing)". With no request in flight, weights 1:3 should give about 25% / 75%.
        a, b = self.upstream("a"), self.upstream("b")
        port = free_port()
        self.gateway(config(port, [backend("lr", [ep(a.port, weight=1), ep(b.port, weight=3)],
                                           "loadBalancer: {type: LeastRequest}")]), workers=1)
        got = tally(port, 400)
        self.assertTrue(50 <= got["a"] <= 150, got)

    def test_least_request_active_counts_released_when_clients_abort(self):
        a, b = self.upstream("a", delay=0.4), self.upstream("b", delay=0.4)
        port = free_port()
        self.gateway(config(port, [backend("lr", [ep(a.port), ep(b.port)],
                                           "loadBalancer: {type: LeastRequest}")]), workers=1)
        abort_clients(port, 6)
        time.sleep(0.6)  # the abandoned requests end when the upstream answers
        a.delay = b.delay = 0
        got = tally(port, 60)  # a leaked active count would starve one endpoint
        self.assertTrue(got["a"] > 10 and got["b"] > 10, got)


class HashPolicies(UpstreamCase):
    def three(self):
        return [self.echo("a"), self.echo("b"), self.echo("c")]

    def check_sticky(self, port, request_for, keys=30, repeats=4):
        """Every key goes to one endpoint over `repeats` fresh connections; returns key→name."""
        owner = {}
        for k in range(keys):
            names = {served_by(port, *request_for(f"user-{k}")) for _ in range(repeats)}
            self.assertEqual(len(names), 1, f"key user-{k} went to {names}")
            owner[k] = names.pop()
        spread = collections.Counter(owner.values())
        self.assertEqual(set(spread), {"a", "b", "c"}, spread)  # keys spread over endpoints
        return owner

    def test_header_hash_ring_and_maglev_consistent_across_workers(self):
        eps = [ep(p) for p in self.three()]
        port = free_port()
        self.gateway(config(port, [
            backend("ring", eps, "loadBalancer: {type: RingHash, hashOn: {header: X-User}}"),
            backend("maglev", eps, "loadBalancer: {type: Maglev, hashOn: {header: x-user}}")],
            [("/ring", "ring"), ("/maglev", "maglev")]), workers=2)
        b = self.backends()
        self.assertEqual(b["default/ring"]["load_balancer"], "RingHash")
        self.assertEqual(b["default/maglev"]["load_balancer"], "Maglev")
        for path in ("/ring", "/maglev"):
            with self.subTest(path=path):
                self.check_sticky(port, lambda key: (path, {"x-user": key}))
                # On one keep-alive connection (one worker): the same answer as on others.
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                self.addCleanup(conn.close)
                first = served_by(port, path, {"x-user": "steady"})
                same = {served_by(port, path, {"x-user": "steady"}, conn) for _ in range(20)}
                self.assertEqual(same, {first})

    def test_cookie_and_query_parameter_hash(self):
        eps = [ep(p) for p in self.three()]
        port = free_port()
        self.gateway(config(port, [
            backend("cookie", eps, "loadBalancer: {type: Maglev, hashOn: {cookie: session}}"),
            backend("query", eps,
                    "loadBalancer: {type: RingHash, hashOn: {queryParameter: user}}"),
            backend("hdr", eps, "loadBalancer: {type: RingHash, hashOn: {header: x-user}}")],
            [("/cookie", "cookie"), ("/query", "query"), ("/hdr", "hdr")]), workers=2)
        by_cookie = self.check_sticky(
            port, lambda key: ("/cookie", {"cookie": f"theme=dark; session={key}; x=1"}))
        by_query = self.check_sticky(port, lambda key: (f"/query?a=1&user={key}&b=2", None))
        # Other cookies / parameters, even with the name as a suffix, take no part.
        for k in range(10):
            self.assertEqual(served_by(port, "/cookie",
                                       {"cookie": f"xsession=zz{k}; session=user-{k}"}),
                             by_cookie[k])
            self.assertEqual(served_by(port, "/cookie", {"cookie": f"a=b;session=user-{k}"}),
                             by_cookie[k])
            self.assertEqual(served_by(port, f"/query?xuser=zz{k}&user=user-{k}"), by_query[k])
        # The key is hashed alone: the same key gives the same endpoint whatever carries it
        # (same ring, same endpoints).
        for k in range(10):
            self.assertEqual(served_by(port, "/hdr", {"x-user": f"user-{k}"}), by_query[k])

    def test_source_ip_hash(self):
        ports = self.three()
        port = free_port()
        self.gateway(config(port, [backend(
            "h", [ep(p) for p in ports],
            "loadBalancer: {type: RingHash, hashOn: {sourceIP: true}}")]))
        owners = {}
        for i in range(2, 32):
            names = set()
            for _ in range(3):
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                               source_address=(f"127.0.0.{i}", 0))
                try:
                    names.add(served_by(port, "/", None, c))
                finally:
                    c.close()
            self.assertEqual(len(names), 1, (i, names))
            owners[i] = names.pop()
        self.assertEqual(set(owners.values()), {"a", "b", "c"}, owners)

    def test_request_without_key_is_spread(self):
        ports = self.three()
        port = free_port()
        self.gateway(config(port, [backend(
            "h", [ep(p) for p in ports],
            "loadBalancer: {type: Maglev, hashOn: {header: x-user}}")]))
        got = tally(port, 90)
        self.assertEqual(set(got), {"a", "b", "c"}, got)
        self.assertTrue(all(n >= 10 for n in got.values()), got)

    def test_hash_respects_weights(self):
        a, b = self.echo("a"), self.echo("b")
        port = free_port()
        self.gateway(config(port, [
            backend("ring", [ep(a, weight=1), ep(b, weight=3)],
                    "loadBalancer: {type: RingHash, hashOn: {header: x-user}}"),
            backend("maglev", [ep(a, weight=1), ep(b, weight=3)],
                    "loadBalancer: {type: Maglev, hashOn: {header: x-user}}")],
            [("/ring", "ring"), ("/maglev", "maglev")]), workers=1)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.addCleanup(conn.close)
        for path in ("/ring", "/maglev"):
            got = collections.Counter(served_by(port, path, {"x-user": f"k{i}"}, conn)
                                      for i in range(400))
            self.assertTrue(55 <= got["a"] <= 145, (path, got))

    def test_same_mapping_in_two_processes_whatever_the_endpoint_order(self):
        ports = self.three()
        lbs = [("/ring", "ring", "RingHash"), ("/maglev", "maglev", "Maglev")]

        def text(port, order):
            specs = [(name, f"loadBalancer: {{type: {lb}, hashOn: {{header: x-user}}}}")
                     for _, name, lb in lbs]
            return config(port, [backend(name, [ep(p) for p in order], spec)
                                 for name, spec in specs],
                          [(path, name) for path, name, _ in lbs])

        p1, p2 = free_port(), free_port()
        self.gateway(text(p1, ports))
        path2 = os.path.join(self.tmp, "second.yaml")
        with open(path2, "w") as f:
            f.write(text(p2, list(reversed(ports))))
        self.start([BIN, "gateway", "-c", path2, "--workers", "1", "--admin", "none"], "gw2", p2)
        for path, _, _ in lbs:
            m1 = {k: served_by(p1, path, {"x-user": f"u{k}"}) for k in range(40)}
            m2 = {k: served_by(p2, path, {"x-user": f"u{k}"}) for k in range(40)}
            self.assertEqual(m1, m2, path)
            self.assertEqual(set(m1.values()), {"a", "b", "c"})

    def removal_moves_few_keys(self, lb):
        ports = [self.echo(n) for n in "abcd"]
        port = free_port()
        spec = f"loadBalancer: {{type: {lb}, hashOn: {{header: x-user}}}}"
        self.gateway(config(port, [backend("h", [ep(p) for p in ports], spec)]), workers=2)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.addCleanup(conn.close)
        keys = [f"key-{i}" for i in range(300)]
        before = {k: served_by(port, "/", {"x-user": k}, conn) for k in keys}
        self.assertEqual(set(before.values()), {"a", "b", "c", "d"})
        self.write_config(config(port, [backend("h", [ep(p) for p in ports[:3]], spec)]))
        self.wait_for("the reload without d",
                      lambda: len(self.backends()["default/h"]["endpoints"]) == 3)
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.addCleanup(conn.close)
        after = {k: served_by(port, "/", {"x-user": k}, conn) for k in keys}
        self.assertEqual(set(after.values()), {"a", "b", "c"}, collections.Counter(after.values()))
        moved = [k for k in keys if before[k] != after[k]]
        on_d = [k for k in keys if before[k] == "d"]
        self.assertTrue(on_d)
        self.assertTrue(set(on_d) <= set(moved))  # d's keys moved (d is gone)
        # Consistent hashing: about 1/4 of the keys move (those of d), far below a rehash's 3/4.
        self.assertLess(len(moved), 300 * 2 / 4, f"{len(moved)} of 300 keys moved")
        return moved, on_d

    def test_ring_hash_endpoint_removal_moves_only_its_keys(self):
        moved, on_d = self.removal_moves_few_keys("RingHash")
        # A ring: the other endpoints' keys stay exactly where they were.
        self.assertEqual(sorted(moved), sorted(on_d))

    def test_maglev_endpoint_removal_moves_few_keys(self):
        self.removal_moves_few_keys("Maglev")

    def test_keys_of_an_unhealthy_endpoint_move_the_others_stay(self):
        ups = [self.upstream(n) for n in "abcd"]
        port = free_port()
        self.gateway(config(port, [backend(
            "h", [ep(u.port) for u in ups],
            CHECK + "loadBalancer: {type: RingHash, hashOn: {header: x-user}}")]))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.addCleanup(conn.close)
        keys = [f"k{i}" for i in range(100)]
        before = {k: served_by(port, "/", {"x-user": k}, conn) for k in keys}
        self.assertIn("d", before.values())
        ups[3].health_status = 503
        self.wait_for("d unhealthy", lambda: not self.endpoint("h", ups[3].port)["healthy"])
        after = {k: served_by(port, "/", {"x-user": k}, conn) for k in keys}
        self.assertNotIn("d", after.values())
        self.assertEqual([k for k in keys if before[k] != after[k]],
                         [k for k in keys if before[k] == "d"])
        ups[3].health_status = 200
        self.wait_for("d back", lambda: self.endpoint("h", ups[3].port)["healthy"])
        self.assertEqual({k: served_by(port, "/", {"x-user": k}, conn) for k in keys}, before)

    def test_hash_priority_failover(self):
        x, y, z = self.upstream("x"), self.upstream("y"), self.upstream("z")
        port = free_port()
        self.gateway(config(port, [backend(
            "p", [ep(x.port), ep(y.port), ep(z.port, priority=1)],
            CHECK + "loadBalancer: {type: Maglev, hashOn: {header: x-user}}")]))
        m = {k: served_by(port, "/", {"x-user": f"u{k}"}) for k in range(40)}
        self.assertEqual(set(m.values()), {"x", "y"})
        x.health_status = y.health_status = 503
        self.wait_for("level 0 down", lambda: not self.endpoint("p", x.port)["healthy"] and
                      not self.endpoint("p", y.port)["healthy"])
        m = {k: served_by(port, "/", {"x-user": f"u{k}"}) for k in range(40)}
        self.assertEqual(set(m.values()), {"z"})


class ActiveHealthChecks(UpstreamCase):
    def test_http_check_takes_endpoint_out_and_back(self):
        a, b, sick = self.upstream("a"), self.upstream("b"), self.upstream("sick")
        port = free_port()
        self.gateway(config(port, [backend("hc", [ep(a.port), ep(b.port), ep(sick.port)],
                                           CHECK)]))
        self.wait_for("first checks", lambda: all(
            e["health_check"]["checks"] >= 1 for e in self.backends()["default/hc"]["endpoints"]))
        e = self.endpoint("hc", sick.port)
        self.assertEqual((e["healthy"], e["active_unhealthy"]), (True, False))
        self.assertEqual(set(e["health_check"]), {"healthy", "last_result", "consecutive_successes",
                                                  "consecutive_failures", "checks"})
        self.assertEqual(e["health_check"]["last_result"], "HTTP 200")
        self.assertEqual(e["health_check"]["healthy"], True)
        self.assertGreater(tally(port, 30)["sick"], 0)

        sick.health_status = 503
        self.wait_for("the sick endpoint to be unhealthy",
                      lambda: not self.endpoint("hc", sick.port)["healthy"])
        e = self.endpoint("hc", sick.port)
        self.assertEqual((e["active_unhealthy"], e["ejected"]), (True, False))
        self.assertEqual(e["health_check"]["last_result"], "HTTP 503")
        self.assertFalse(e["health_check"]["healthy"])
        self.assertGreaterEqual(e["health_check"]["consecutive_failures"], 2)
        self.assertEqual(e["health_check"]["consecutive_successes"], 0)
        self.assertTrue(self.endpoint("hc", a.port)["healthy"])
        before = sick.count
        got = tally(port, 60)
        self.assertEqual(sick.count, before, got)
        self.assertEqual(got, collections.Counter({"a": 30, "b": 30}))

        sick.health_status = 200
        self.wait_for("the sick endpoint to come back",
                      lambda: self.endpoint("hc", sick.port)["healthy"])
        e = self.endpoint("hc", sick.port)
        self.assertEqual(e["health_check"]["last_result"], "HTTP 200")
        self.assertEqual(e["active_unhealthy"], False)
        self.assertGreater(tally(port, 30)["sick"], 0)

    def test_healthy_threshold(self):
        a, sick = self.upstream("a"), self.upstream("sick")
        sick.health_status = 503
        port = free_port()
        self.gateway(config(port, [backend("hc", [ep(a.port), ep(sick.port)], """\
            healthCheck:
              active: {type: HTTP, http: {path: /healthz}, interval: 100ms,
                       unhealthyThreshold: 1, healthyThreshold: 3}
            """)]))
        self.wait_for("sick unhealthy", lambda: not self.endpoint("hc", sick.port)["healthy"])
        sick.health_status = 200
        seen = []

        def back():
            hc = self.endpoint("hc", sick.port)
            seen.append((hc["health_check"]["consecutive_successes"], hc["healthy"]))
            return hc["healthy"]

        self.wait_for("sick back", back, interval=0.02)
        # Still out after one and two successes; back with the third.
        self.assertIn((1, False), seen)
        self.assertIn((2, False), seen)
        self.assertGreaterEqual(seen[-1][0], 3)

    def test_tcp_check_of_a_closed_port(self):
        a, b = self.upstream("a"), self.upstream("b")
        dead = free_port()
        port = free_port()
        self.gateway(config(port, [backend(
            "tcp", [ep(a.port), ep(b.port), ep(dead)],
            "healthCheck: {active: {type: TCP, interval: 100ms, timeout: 500ms, "
            "unhealthyThreshold: 1}}")]))
        self.wait_for("the closed port to be unhealthy",
                      lambda: not self.endpoint("tcp", dead)["healthy"])
        e = self.endpoint("tcp", dead)
        self.assertTrue(e["active_unhealthy"])
        self.assertIn("refused", e["health_check"]["last_result"])
        live = self.endpoint("tcp", a.port)
        self.assertTrue(live["healthy"])
        self.assertEqual(live["health_check"]["last_result"], "connected")
        self.assertEqual(a.health_checks, 0)  # a TCP check sends no HTTP request
        self.assertEqual(tally(port, 40), collections.Counter({"a": 20, "b": 20}))

    def test_expected_statuses_and_host(self):
        a, b, c = self.upstream("a"), self.upstream("b"), self.upstream("c")
        b.health_status = c.health_status = 204
        port = free_port()
        self.gateway(config(port, [
            backend("e", [ep(a.port), ep(b.port)], """\
                healthCheck:
                  active: {type: HTTP, http: {path: /healthz, host: hc.example,
                           expectedStatuses: [204]}, interval: 100ms, unhealthyThreshold: 1}
                """),
            backend("d", [ep(c.port)], """\
                healthCheck:
                  active: {type: HTTP, http: {path: /healthz}, interval: 100ms,
                           unhealthyThreshold: 1}
                """)]))
        self.wait_for("a unhealthy for e (200 is not expected)",
                      lambda: not self.endpoint("e", a.port)["healthy"])
        self.assertEqual(self.endpoint("e", a.port)["health_check"]["last_result"], "HTTP 200")
        self.assertTrue(self.endpoint("e", b.port)["healthy"])
        self.assertEqual(set(a.health_hosts), {"hc.example"})
        # Default: any 2xx, Host is the endpoint's ip:port.
        self.wait_for("checks of d", lambda: self.endpoint("d", c.port)["health_check"]["checks"])
        self.assertEqual(self.endpoint("d", c.port)["health_check"]["last_result"], "HTTP 204")
        self.assertTrue(self.endpoint("d", c.port)["healthy"])
        self.assertEqual(set(c.health_hosts), {f"127.0.0.1:{c.port}"})

    def test_health_is_per_backend(self):
        # Two Backends list the same address; only `checked` has an active check, and it
        # fails for a (200 is not in expectedStatuses). `plain` has no health check at all:
        # its endpoints should stay in rotation.
        a, b = self.upstream("a"), self.upstream("b")
        b.health_status = 204
        port = free_port()
        self.gateway(config(port, [
            backend("checked", [ep(a.port), ep(b.port)], """\
                healthCheck:
                  active: {type: HTTP, http: {path: /healthz, expectedStatuses: [204]},
                           interval: 100ms, unhealthyThreshold: 1}
                """),
            backend("plain", [ep(a.port), ep(b.port)])],
            [("/checked", "checked"), ("/plain", "plain")]), workers=1)
        self.wait_for("a unhealthy in checked",
                      lambda: not self.endpoint("checked", a.port)["healthy"])
        self.assertEqual(tally(port, 20, "/checked"), collections.Counter({"b": 20}))
        self.assertEqual(tally(port, 20, "/plain"), collections.Counter({"a": 10, "b": 10}))
        plain_a = self.endpoint("plain", a.port)
        self.assertTrue(plain_a["healthy"], plain_a)
        self.assertNotIn("health_check", plain_a)

    def test_check_timeout(self):
        a, slow = self.upstream("a"), self.upstream("slow")
        slow.health_delay = 1.0
        port = free_port()
        self.gateway(config(port, [backend("hc", [ep(a.port), ep(slow.port)], """\
            healthCheck:
              active: {type: HTTP, http: {path: /healthz}, interval: 100ms, timeout: 200ms,
                       unhealthyThreshold: 1}
            """)]))
        self.wait_for("slow unhealthy", lambda: not self.endpoint("hc", slow.port)["healthy"])
        self.assertEqual(self.endpoint("hc", slow.port)["health_check"]["last_result"], "timeout")

    def test_verdict_kept_across_a_reload(self):
        a, b, sick = self.upstream("a"), self.upstream("b"), self.upstream("sick")
        sick.health_status = 503
        port = free_port()
        text = config(port, [backend("hc", [ep(a.port), ep(b.port), ep(sick.port)], CHECK)])
        self.gateway(text)
        self.wait_for("sick unhealthy", lambda: not self.endpoint("hc", sick.port)["healthy"])
        # A changed check restarts its counters but keeps the verdict until checks decide.
        self.write_config(text.replace("interval: 100ms", "interval: 2s"))
        deadline = time.monotonic() + 1.5
        states = []
        while time.monotonic() < deadline:
            e = self.endpoint("hc", sick.port)
            states.append((e["healthy"], e["health_check"]["checks"]))
            time.sleep(0.01)
        self.assertNotIn(True, [h for h, _ in states], states)
        self.assertLess(min(c for _, c in states), 2)  # the reload happened (counters restart)
        self.assertEqual(tally(port, 20)["sick"], 0)


class OutlierDetection(UpstreamCase):
    def test_5xx_endpoint_is_ejected_then_returns(self):
        good, bad = self.upstream("good"), self.upstream("bad", status=500)
        self.port = port = free_port()
        self.gateway(config(port, [backend("o", [ep(good.port), ep(bad.port)], PASSIVE)]),
                     workers=1)
        self.assertNotIn("ejections", self.endpoint("o", bad.port))
        statuses = self.until_ejected("o", bad.port)
        self.assertEqual(statuses.count(500), 3, statuses)  # the third 500 in a row ejects
        ejected_at = time.monotonic()
        e = self.endpoint("o", bad.port)
        self.assertEqual((e["healthy"], e["active_unhealthy"], e.get("ejections")),
                         (False, False, 1))
        self.assertTrue(self.endpoint("o", good.port)["healthy"])
        before = bad.count
        self.assertEqual(tally(port, 20), collections.Counter({"good": 20}))
        self.assertEqual(bad.count, before)
        self.wait_for("the return", lambda: not self.endpoint("o", bad.port)["ejected"],
                      timeout=5)
        self.assertGreater(time.monotonic() - ejected_at, 0.6)
        e = self.endpoint("o", bad.port)
        self.assertTrue(e["healthy"])
        self.assertEqual(e["ejections"], 1)
        self.assertIn(500, {get(port)[0] for _ in range(4)})  # it gets traffic again

    def test_second_ejection_lasts_twice_as_long(self):
        good, bad = self.upstream("good"), self.upstream("bad", status=500)
        self.port = port = free_port()
        self.gateway(config(port, [backend("o", [ep(good.port), ep(bad.port)], PASSIVE)]),
                     workers=1)
        durations = []
        for n in (1, 2):
            self.until_ejected("o", bad.port)
            t = time.monotonic()
            self.assertEqual(self.endpoint("o", bad.port)["ejections"], n)
            self.wait_for("the return", lambda: not self.endpoint("o", bad.port)["ejected"],
                          timeout=6)
            durations.append(time.monotonic() - t)
        self.assertTrue(0.7 <= durations[0] <= 1.6, durations)
        self.assertTrue(1.7 <= durations[1] <= 2.8, durations)

    def test_max_ejection_percent_keeps_one_of_two(self):
        bad1, bad2 = self.upstream("bad1", status=500), self.upstream("bad2", status=500)
        port = free_port()
        self.gateway(config(port, [backend("o", [ep(bad1.port), ep(bad2.port)], PASSIVE)]),
                     workers=1)
        for _ in range(20):
            get(port)
        time.sleep(0.2)
        eps = self.backends()["default/o"]["endpoints"]
        self.assertEqual([e["ejected"] for e in eps].count(True), 1, eps)  # never both

    def test_blocked_ejection_is_not_reported_as_one(self):
        # outlier_detector.h: state() is "nullptr when the endpoint was never ejected", so
        # /backends has no "ejections" for an endpoint the percent limit kept in.
        bad1, bad2 = self.upstream("bad1", status=500), self.upstream("bad2", status=500)
        port = free_port()
        self.gateway(config(port, [backend("o", [ep(bad1.port), ep(bad2.port)], PASSIVE)]),
                     workers=1)
        for _ in range(20):
            get(port)
        time.sleep(0.2)
        kept = [e for e in self.backends()["default/o"]["endpoints"] if not e["ejected"]]
        self.assertEqual(len(kept), 1)
        self.assertNotIn("ejections", kept[0])

    def test_max_ejection_percent_zero_still_allows_one(self):
        # Docs: "at most this share of the endpoints is ejected at once (at least one)".
        good, bad = self.upstream("good"), self.upstream("bad", status=500)
        port = free_port()
        self.gateway(config(port, [backend(
            "o", [ep(good.port), ep(bad.port)],
            "healthCheck: {passive: {consecutive5XxErrors: 2, baseEjectionTime: 10s, "
            "maxEjectionPercent: 0}}")]), workers=1)
        for _ in range(12):
            get(port)
        time.sleep(0.2)
        self.assertTrue(self.endpoint("o", bad.port)["ejected"], self.endpoint("o", bad.port))

    def test_default_max_ejection_percent_allows_one(self):
        good, bad = self.upstream("good"), self.upstream("bad", status=500)
        self.port = port = free_port()
        self.gateway(config(port, [backend(
            "o", [ep(good.port), ep(bad.port)],
            "healthCheck: {passive: {consecutive5XxErrors: 2, baseEjectionTime: 10s}}")]),
            workers=1)
        self.until_ejected("o", bad.port)

    def test_gateway_errors_and_local_failures(self):
        good = self.upstream("good")
        unavailable = self.upstream("unavailable", status=503)
        failing = self.upstream("failing", status=500)
        dead = free_port()
        self.port = port = free_port()
        gw_only = ("healthCheck: {passive: {consecutive5XxErrors: 0, consecutiveGatewayErrors: 2,"
                   " baseEjectionTime: 10s, maxEjectionPercent: 50}}")
        self.gateway(config(port, [
            backend("g503", [ep(good.port), ep(unavailable.port)], gw_only),
            backend("g500", [ep(good.port), ep(failing.port)], gw_only),
            backend("dead", [ep(good.port), ep(dead)],
                    "healthCheck: {passive: {consecutive5XxErrors: 2, baseEjectionTime: 10s, "
                    "maxEjectionPercent: 50}}")],
            [("/g503", "g503"), ("/g500", "g500"), ("/dead", "dead")]), workers=1)
        for path, name, p in (("/g503", "g503", unavailable.port), ("/dead", "dead", dead)):
            statuses = []
            for _ in range(20):
                if self.endpoint(name, p)["ejected"]:
                    break
                statuses.append(get(port, path)[0])
                time.sleep(0.01)
            self.assertTrue(self.endpoint(name, p)["ejected"], (name, statuses))
            self.assertEqual(statuses.count(503), 2, (name, statuses))
            self.assertEqual(tally(port, 10, path), collections.Counter({"good": 10}))
        # 500 is not a gateway error.
        for _ in range(12):
            get(port, "/g500")
        time.sleep(0.2)
        self.assertFalse(self.endpoint("g500", failing.port)["ejected"])

    def test_ejection_is_per_backend(self):
        # Two Backends list the same address; only `watched` has passive detection. An
        # ejection there should not take the endpoint out of `plain`.
        good, bad = self.upstream("good"), self.upstream("bad", status=500)
        self.port = port = free_port()
        self.gateway(config(port, [
            backend("watched", [ep(good.port), ep(bad.port)], PASSIVE.replace("1s", "10s")),
            backend("plain", [ep(good.port), ep(bad.port)])],
            [("/", "watched"), ("/plain", "plain")]), workers=1)
        self.until_ejected("watched", bad.port)
        self.assertEqual(tally(port, 20, "/plain"),
                         collections.Counter({"good": 10, "status 500": 10}))
        self.assertFalse(self.endpoint("plain", bad.port)["ejected"])

    def test_errors_are_counted_per_worker(self):
        # Documented: "Passive detection counts errors per worker; when one worker sees the
        # threshold in a row, the endpoint is ejected for every worker." So with W workers the
        # endpoint answers between 3 and W × 2 + 1 errors before it is ejected.
        good, bad = self.upstream("good"), self.upstream("bad", status=500)
        port = free_port()
        self.gateway(config(port, [backend("o", [ep(good.port), ep(bad.port)], PASSIVE)]),
                     workers=4)
        seen = 0
        for _ in range(60):
            if self.endpoint("o", bad.port)["ejected"]:
                break
            seen += get(port)[0] == 500
            time.sleep(0.01)
        self.assertTrue(self.endpoint("o", bad.port)["ejected"])
        self.assertTrue(3 <= seen <= 9, seen)

    def test_ejection_kept_across_a_reload(self):
        good, bad = self.upstream("good"), self.upstream("bad", status=500)
        self.port = port = free_port()
        spec = PASSIVE.replace("1s", "10s")
        self.gateway(config(port, [backend("o", [ep(good.port), ep(bad.port)], spec)]), workers=1)
        self.until_ejected("o", bad.port)
        self.write_config(config(port, [backend("o", [ep(good.port), ep(bad.port)], spec),
                                        backend("other", [ep(good.port)])]))
        self.wait_for("the reload", lambda: "default/other" in self.backends())
        self.assertTrue(self.endpoint("o", bad.port)["ejected"])
        self.assertEqual(tally(port, 10), collections.Counter({"good": 10}))


class CircuitBreakers(UpstreamCase):
    def test_max_parallel_requests_overflow_and_recovery(self):
        slow = self.upstream("slow", delay=1.0)
        port = free_port()
        self.gateway(config(port, [backend("cb", [ep(slow.port)],
                                           "circuitBreaker: {maxParallelRequests: 2}")]))
        cb = self.backends()["default/cb"]["circuit_breaker"]
        self.assertEqual(cb["requests"], {"current": 0, "max": 2})
        results = []
        lock = threading.Lock()

        def client(i):
            t = time.monotonic()
            status, h, _ = get(port, f"/{i}")
            with lock:
                results.append((status, h.get("x-portico-overloaded"), time.monotonic() - t))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
            time.sleep(0.02)
        self.wait_for(
            "two requests in flight",
            lambda: self.backends()["default/cb"]["circuit_breaker"]["requests"]["current"] == 2,
            timeout=1)
        for t in threads:
            t.join(10)
        ok = [r for r in results if r[0] == 200]
        shed = [r for r in results if r[0] == 503]
        self.assertEqual((len(ok), len(shed)), (2, 4), results)
        for status, header, elapsed in shed:
            self.assertEqual(header, "maxParallelRequests")
            self.assertLess(elapsed, 0.5)  # answered at once, not after the upstream
        for status, header, elapsed in ok:
            self.assertIsNone(header)
            self.assertGreater(elapsed, 0.9)
        self.assertEqual(slow.count, 2)
        _, metrics = self.admin_get("/stats/prometheus")
        self.assertEqual(metric(metrics, "portico_backend_overflows_total", "cb"), 4)
        # Recovery: the units were given back.
        self.assertEqual(self.backends()["default/cb"]["circuit_breaker"]["requests"]["current"],
                         0)
        slow.delay = 0.0
        self.assertEqual([get(port)[0] for _ in range(5)], [200] * 5)

    def test_max_connections(self):
        slow = self.upstream("slow", delay=0.8)
        port = free_port()
        self.gateway(config(port, [backend("cb", [ep(slow.port)],
                                           "circuitBreaker: {maxConnections: 1}")]), workers=2)
        results = []

        def client():
            s, h, _ = get(port)
            results.append((s, h.get("x-portico-overloaded")))

        threads = [threading.Thread(target=client) for _ in range(3)]
        for t in threads:
            t.start()
            time.sleep(0.05)
        for t in threads:
            t.join(10)
        self.assertEqual(sorted(results, key=str),
                         sorted([(200, None), (503, "maxConnections"), (503, "maxConnections")],
                                key=str))
        cb = self.backends()["default/cb"]["circuit_breaker"]
        self.assertEqual(cb["connections"]["max"], 1)
        self.assertLessEqual(cb["connections"]["current"], 1)
        _, metrics = self.admin_get("/stats/prometheus")
        self.assertEqual(metric(metrics, "portico_backend_overflows_total", "cb"), 2)

    def test_max_parallel_retries(self):
        flaky = self.upstream("f", status=503, delay=0.3)
        port = free_port()
        text = config(port, [backend("r", [ep(flaky.port)],
                                     "circuitBreaker: {maxParallelRetries: 1}")])
        text += textwrap.dedent("""\
            ---
            apiVersion: portico.dev/v1alpha1
            kind: TrafficPolicy
            metadata: {name: p}
            spec:
              targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}]
              retry: {numRetries: 2, retryOn: {httpStatusCodes: [503]},
                      perRetry: {backOff: {baseInterval: 1ms, maxInterval: 2ms}}}
            """)
        self.gateway(text)
        results = []
        threads = [threading.Thread(target=lambda: results.append(get(port)[0]))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        self.assertEqual(results, [503] * 4)
        # Without the breaker: 4 × 3 upstream requests.
        self.assertLess(flaky.count, 12)
        _, m = self.admin_get("/stats/prometheus")
        self.assertGreater(metric(m, "portico_backend_overflows_total", "r"), 0)
        self.assertEqual(self.backends()["default/r"]["circuit_breaker"]["retries"],
                         {"current": 0, "max": 1})

    def test_units_released_after_timeouts_and_client_aborts(self):
        slow = self.upstream("slow", delay=0.6)
        port = free_port()
        text = config(port, [backend("cb", [ep(slow.port)],
                                     "circuitBreaker: {maxParallelRequests: 2}")])
        text = text.replace("    backendRefs: [{name: cb}]",
                            "    timeouts: {request: 200ms}\n    backendRefs: [{name: cb}]")
        self.gateway(text)
        self.assertEqual([get(port)[0] for _ in range(3)], [504] * 3)
        abort_clients(port, 2, after=0.05)
        self.wait_for("units released", lambda: self.backends()["default/cb"]["circuit_breaker"]
                      ["requests"]["current"] == 0, timeout=3)
        slow.delay = 0.0
        self.assertEqual([get(port)[0] for _ in range(3)], [200] * 3)


class Locality(UpstreamCase):
    FAST = CHECK.replace("unhealthyThreshold: 2", "unhealthyThreshold: 1")

    def test_zone_aware_routing_prefers_local_zone_and_spills(self):
        ups = {z: self.upstream(z) for z in "abc"}
        port = free_port()
        self.gateway(config(port, [backend(
            "z", [ep(ups[z].port, zone=z) for z in "abc"], self.FAST)]), extra=("--zone", "a"))
        self.assertEqual([e["zone"] for e in self.backends()["default/z"]["endpoints"]],
                         ["a", "b", "c"])
        self.assertEqual(tally(port, 60), collections.Counter({"a": 60}))
        ups["a"].health_status = 503
        self.wait_for("a to be unhealthy",
                      lambda: not self.endpoint("z", ups["a"].port)["healthy"])
        got = tally(port, 60)
        self.assertEqual(got["a"], 0, got)
        self.assertEqual(got["b"] + got["c"], 60, got)
        self.assertGreater(got["b"], 10, got)
        self.assertGreater(got["c"], 10, got)
        ups["a"].health_status = 200
        self.wait_for("a to be back", lambda: self.endpoint("z", ups["a"].port)["healthy"])
        self.assertEqual(tally(port, 30), collections.Counter({"a": 30}))

    def test_hash_ignores_zones(self):
        ports = {z: self.echo(z) for z in "abc"}
        port = free_port()
        self.gateway(config(port, [backend(
            "h", [ep(ports[z], zone=z) for z in "abc"],
            "loadBalancer: {type: Maglev, hashOn: {header: x-user}}")]), extra=("--zone", "a"))
        got = collections.Counter(served_by(port, "/", {"x-user": f"k{i}"}) for i in range(60))
        self.assertEqual(set(got), {"a", "b", "c"}, got)

    def test_partial_local_zone_spills_by_overprovisioning(self):
        a1, a2, b, c = (self.upstream(n) for n in ("a1", "a2", "b", "c"))
        port = free_port()
        self.gateway(config(port, [backend(
            "z", [ep(a1.port, zone="a"), ep(a2.port, zone="a"), ep(b.port, zone="b"),
                  ep(c.port, zone="c")], self.FAST)]), extra=("--zone", "a"))
        self.assertEqual(set(tally(port, 40)), {"a1", "a2"})
        a1.health_status = 503
        self.wait_for("a1 unhealthy", lambda: not self.endpoint("z", a1.port)["healthy"])
        got = tally(port, 300)
        # The local zone's health 1/2 × 1.4 = 70% stays local, 30% spills to b and c.
        self.assertEqual(got["a1"], 0, got)
        self.assertTrue(170 <= got["a2"] <= 250, got)
        self.assertTrue(got["b"] > 15 and got["c"] > 15, got)

    def test_without_local_zone_traffic_spreads(self):
        ups = {z: self.upstream(z) for z in "abc"}
        port = free_port()
        self.gateway(config(port, [backend("z", [ep(ups[z].port, zone=z) for z in "abc"])]),
                     workers=1)
        self.assertEqual(tally(port, 60), collections.Counter({"a": 20, "b": 20, "c": 20}))
        # A --zone no endpoint is in changes nothing.
        self.gw.stop()
        self.procs.remove(self.gw)
        self.gateway(config(port, [backend("z", [ep(ups[z].port, zone=z) for z in "bc"])]),
                     workers=1, extra=("--zone", "a"))
        self.assertEqual(tally(port, 40), collections.Counter({"b": 20, "c": 20}))

    def test_priority_failover(self):
        x, y, z = self.upstream("x"), self.upstream("y"), self.upstream("z")
        port = free_port()
        self.gateway(config(port, [backend(
            "p", [ep(x.port, priority=0), ep(y.port, priority=0), ep(z.port, priority=1)],
            self.FAST)]))
        self.assertEqual([e["priority"] for e in self.backends()["default/p"]["endpoints"]],
                         [0, 0, 1])
        got = tally(port, 40)
        self.assertEqual(got["z"], 0, got)
        self.assertEqual(got["x"] + got["y"], 40, got)
        # Half of level 0 down: its health is 1/2 × 1.4 = 70%, the other 30% go to level 1.
        x.health_status = 503
        self.wait_for("x to be unhealthy", lambda: not self.endpoint("p", x.port)["healthy"])
        got = tally(port, 200)
        self.assertEqual(got["x"], 0, got)
        self.assertTrue(30 <= got["z"] <= 95, got)  # ~60 expected
        self.assertEqual(got["y"] + got["z"], 200, got)
        # All of level 0 down: everything goes to level 1.
        y.health_status = 503
        self.wait_for("y to be unhealthy", lambda: not self.endpoint("p", y.port)["healthy"])
        self.assertEqual(tally(port, 40), collections.Counter({"z": 40}))
        x.health_status = y.health_status = 200
        self.wait_for("level 0 back", lambda: all(
            e["healthy"] for e in self.backends()["default/p"]["endpoints"]))
        self.assertEqual(tally(port, 40)["z"], 0)

    def test_panic_mode_and_panic_threshold_zero(self):
        ups = [self.upstream(n) for n in ("h", "s1", "s2")]
        port = free_port()
        eps = [ep(u.port) for u in ups]
        self.gateway(config(port, [
            backend("panic", eps, self.FAST),
            backend("nopanic", eps, self.FAST + "loadBalancer: {panicThresholdPercent: 0}")],
            [("/panic", "panic"), ("/nopanic", "nopanic")]))
        ups[1].health_status = ups[2].health_status = 503
        self.wait_for("two of three unhealthy", lambda: [
            e["healthy"] for e in self.backends()["default/panic"]["endpoints"]] ==
            [True, False, False])
        # 1 of 3 healthy (33% < 50%): panic, health is ignored and all three get traffic.
        self.assertEqual(tally(port, 60, "/panic"),
                         collections.Counter({"h": 20, "s1": 20, "s2": 20}))
        # panicThresholdPercent 0: no panic while one endpoint is healthy...
        self.assertEqual(tally(port, 30, "/nopanic"), collections.Counter({"h": 30}))
        # ... but with none healthy, every endpoint is tried rather than failing requests.
        ups[0].health_status = 503
        self.wait_for("all unhealthy", lambda: not any(
            e["healthy"] for e in self.backends()["default/nopanic"]["endpoints"]))
        self.assertEqual(tally(port, 30, "/nopanic"),
                         collections.Counter({"h": 10, "s1": 10, "s2": 10}))


class ConnectionPool(UpstreamCase):
    def test_max_requests_per_connection(self):
        limited, free = self.upstream("limited"), self.upstream("free")
        port = free_port()
        self.gateway(config(port, [
            backend("limited", [ep(limited.port)],
                    "connectionPool: {maxRequestsPerConnection: 2}"),
            backend("free", [ep(free.port)])], [("/limited", "limited"), ("/free", "free")]),
            workers=1)
        for path, up in (("/limited", limited), ("/free", free)):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            self.addCleanup(conn.close)
            self.assertEqual([served_by(port, path, conn=conn) for _ in range(10)],
                             [up.name] * 10)
        self.assertEqual(len(limited.ports), 10)
        self.assertGreaterEqual(len(set(limited.ports)), 5, limited.ports)
        # Each connection carries at most 2 requests.
        self.assertLessEqual(max(collections.Counter(limited.ports).values()), 2, limited.ports)
        # Without the limit the pooled connection is reused.
        self.assertLessEqual(len(set(free.ports)), 2, free.ports)

    def test_idle_timeout_and_max_idle(self):
        idle, many = self.upstream("idle"), self.upstream("many", delay=0.3)
        port = free_port()
        self.gateway(config(port, [
            backend("idle", [ep(idle.port)], "connectionPool: {idleTimeout: 200ms}"),
            backend("many", [ep(many.port)], "connectionPool: {maxIdleConnectionsPerWorker: 1}")],
            [("/idle", "idle"), ("/many", "many")]), workers=1)
        get(port, "/idle")
        get(port, "/idle")
        self.assertEqual(len(set(idle.ports)), 1, idle.ports)
        time.sleep(0.6)
        get(port, "/idle")
        self.assertEqual(len(set(idle.ports)), 2, idle.ports)  # the idle one was closed
        threads = [threading.Thread(target=get, args=(port, "/many")) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        self.assertEqual(len(set(many.ports)), 4)
        _, m = self.admin_get("/stats/prometheus")
        self.assertEqual(metric(m, "portico_backend_connections_active", '"default/many"'), 1)


if __name__ == "__main__":
    unittest.main()
