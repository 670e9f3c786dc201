"""Active health checks of type GRPC (grpc.health.v1.Health/Check over h2c) against a real
grpcio server whose answers the test changes; and traffic following the verdict."""
import json
import os
import sys
import time
import unittest

from harness import BIN, GatewayTestCase, free_port

# A grpcio health server: answers Check with the bytes in STATE_FILE (a HealthCheckResponse),
# SERVING when the file is absent; NOT_FOUND for the service "bad".
HEALTH_SERVER = r'''
import grpc, os, sys
from concurrent import futures
state_file = sys.argv[2]
def check(req, ctx):
    if req == b"\x0a\x03bad":
        ctx.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
    if os.path.exists(state_file):
        return open(state_file, "rb").read()
    return b"\x08\x01"
def call(req, ctx):
    return sys.argv[1].encode()
h = grpc.method_handlers_generic_handler("grpc.health.v1.Health",
    {"Check": grpc.unary_unary_rpc_method_handler(check)})
t = grpc.method_handlers_generic_handler("t.S", {"U": grpc.unary_unary_rpc_method_handler(call)})
s = grpc.server(futures.ThreadPoolExecutor(4))
s.add_generic_rpc_handlers((h, t))
s.add_insecure_port("127.0.0.1:" + sys.argv[1])
s.start()
s.wait_for_termination()
'''


class GrpcHealthCheck(GatewayTestCase):
    def grpc_server(self):
        port = free_port()
        script = os.path.join(self.tmp, "health_server.py")
        with open(script, "w") as f:
            f.write(HEALTH_SERVER)
        state = os.path.join(self.tmp, f"state-{port}")
        self.start(["/usr/bin/python3", script, str(port), state], "grpc-health", port)
        return port, state

    def config(self, port, grpc_port, service="", second_port=None):
        second = f", {{address: 127.0.0.1, port: {second_port}}}" if second_port else ""
        return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: g}}
spec:
  listeners: [{{name: http, port: {port}, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: r}}
spec:
  parentRefs: [{{name: g}}]
  rules:
  - backendRefs: [{{group: portico.dev, kind: Backend, name: gb}}]
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {{name: gb}}
spec:
  protocol: grpc
  endpoints: [{{address: 127.0.0.1, port: {grpc_port}}}{second}]
  loadBalancer: {{panicThresholdPercent: 0}}   # no panic mode: unhealthy means no traffic
  healthCheck:
    active:
      type: GRPC
      interval: 100ms
      timeout: 500ms
      unhealthyThreshold: 2
      grpc: {{service: "{service}"}}
"""

    def endpoint(self, index=0):
        _, body = self.admin_get("/backends")
        return json.loads(body)["backends"][0]["endpoints"][index]

    def wait_for(self, pred, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            e = self.endpoint()
            if pred(e):
                return e
            time.sleep(0.05)
        self.fail(f"endpoint never reached the expected state: {e}")

    def test_serving_then_not_serving_then_serving(self):
        import grpc
        a_port, a_state = self.grpc_server()
        b_port, _ = self.grpc_server()
        port = free_port()
        self.gateway(self.config(port, a_port, second_port=b_port))
        e = self.wait_for(lambda e: e["health_check"]["checks"] >= 2)
        self.assertTrue(e["healthy"])
        self.assertEqual(e["health_check"]["last_result"], "gRPC SERVING")
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        call = channel.unary_unary("/t.S/U")
        self.assertEqual({call(b"x", timeout=5) for _ in range(20)},
                         {str(a_port).encode(), str(b_port).encode()})

        with open(a_state, "wb") as f:
            f.write(b"\x08\x02")  # NOT_SERVING
        e = self.wait_for(lambda e: not e["healthy"])
        self.assertEqual(e["health_check"]["last_result"], "gRPC NOT_SERVING")
        self.assertEqual({call(b"x", timeout=5) for _ in range(20)}, {str(b_port).encode()})

        os.remove(a_state)
        e = self.wait_for(lambda e: e["healthy"])
        self.assertEqual(e["health_check"]["last_result"], "gRPC SERVING")
        self.assertEqual({call(b"x", timeout=5) for _ in range(20)},
                         {str(a_port).encode(), str(b_port).encode()})
        channel.close()

    def test_unknown_service_and_non_grpc_endpoint_fail(self):
        grpc_port, _ = self.grpc_server()
        port = free_port()
        self.gateway(self.config(port, grpc_port, service="bad"))
        e = self.wait_for(lambda e: not e["healthy"])
        self.assertEqual(e["health_check"]["last_result"], "grpc-status 5")

        # An HTTP/1.1 server is not a gRPC server: the check fails.
        echo = self.echo("plain")
        port = free_port()
        self.gateway(self.config(port, echo))
        e = self.wait_for(lambda e: not e["healthy"])
        self.assertNotIn("gRPC", e["health_check"]["last_result"])


if __name__ == "__main__":
    unittest.main()
