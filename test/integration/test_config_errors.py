"""Invalid manifests → the exact diagnostic of `portico check` (text and `-o json`).

Each row is one manifest (appended after a valid 9-line Gateway `gw`, so the row's resource
starts on line 11) and the diagnostic the spec calls for:
`file:line:col: severity: Kind ns/name: field.path: message`, the exit code, and optionally
the status condition it must leave (Gateway API reasons). Rows marked `exact=False` assert
the parts of the message that matter, not its wording.

Some rows assert the behaviour the Gateway API / Kubernetes conventions call for where
Portico deviates today (see the comments `DEVIATION`); they fail until Portico is fixed.
"""

import collections
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import BIN

GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  listeners:
  - name: http
    port: 8080
    protocol: HTTP
---
"""  # 10 lines: the row's resource starts on line 11

ROUTE_HEAD = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
spec:
  parentRefs:
  - name: gw
"""  # lines 11-17

POLICY_HEAD = """\
apiVersion: portico.dev/v1alpha1
kind: TrafficPolicy
metadata:
  name: tp
spec:
  targetRefs:
  - group: gateway.networking.k8s.io
    kind: Gateway
"""  # lines 11-18

# pos: "line:col"; resource: "Kind ns/name" (None for file-level errors); field: the field
# path (None when absent); message: the whole message when exact, else a list of substrings.
# condition: (type, status, reason) expected among the resource's status conditions.
Case = collections.namedtuple(
    "Case", "name text pos severity resource field message exact exit condition",
    defaults=(True, 1, None))

CASES = [
    # --- YAML syntax ---
    Case("yaml_tab", "kind: HTTPRoute\n\tmetadata: {name: r}\n", "12:1", "error", None, None,
         "invalid YAML: illegal tab when looking for indentation"),
    # DEVIATION: a double-quoted scalar left open at the end of the file is a YAML syntax
    # error; Portico (yaml-cpp) swallows the rest of the file into the name.
    Case("yaml_unterminated_quote", ROUTE_HEAD.replace("name: r", 'name: "r') ,
         "14:9", "error", None, None, ["invalid YAML"], exact=False),
    # --- envelope ---
    Case("missing_kind", "apiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: r}\n"
         "spec: {}\n", "11:1", "error", None, "kind", "Required value"),
    Case("unknown_kind", ROUTE_HEAD.replace("kind: HTTPRoute", "kind: HTTPRouter"), "12:7",
         "error", "HTTPRouter default/r", "kind",
         ["Unsupported value", "HTTPRouter", "Gateway", "HTTPRoute", "Backend",
          "TrafficPolicy"], exact=False),
    # DEVIATION: the wrong field is apiVersion (line 11, col 13), not kind.
    Case("bad_api_version", ROUTE_HEAD.replace("/v1", "/v2"), "11:13", "error",
         "HTTPRoute default/r", "apiVersion",
         ['Unsupported value: "gateway.networking.k8s.io/v2"'], exact=False),
    Case("bad_name", ROUTE_HEAD.replace("name: r", "name: My_Route"), "14:9", "error",
         "HTTPRoute default/My_Route", "metadata.name",
         "Invalid value: \"My_Route\": a lowercase RFC 1123 subdomain must consist of lower "
         "case alphanumeric characters, '-' or '.', and must start and end with an "
         "alphanumeric character"),
    Case("bad_timestamp", ROUTE_HEAD.replace("  name: r\n", "  name: r\n  creationTimestamp: "
                                                          "yesterday\n"),
         "15:22", "error", "HTTPRoute default/r", "metadata.creationTimestamp",
         "Invalid value: \"yesterday\": must be an RFC 3339 date-time like "
         "\"2024-05-01T10:00:00Z\""),
    Case("duplicate_resource", GATEWAY.replace("8080", "8081").rstrip("-\n") + "\n", "14:9",
         "error", "Gateway default/gw", "metadata.name",
         ["Duplicate value", "Gateway default/gw is already defined at", ":1"], exact=False),
    # --- strict decoding ---
    Case("unknown_field", ROUTE_HEAD + "  rules:\n  - matches:\n"
         "    - path: {type: PathPrefix, value: /a}\n      methd: GET\n", "21:7", "error",
         "HTTPRoute default/r", "spec.rules[0].matches[0].methd",
         'unknown field "methd"; did you mean "method"?'),
    Case("quoted_integer", ROUTE_HEAD + "  rules:\n  - backendRefs:\n    - name: api\n"
         '      port: "80"\n', "21:13", "error", "HTTPRoute default/r",
         "spec.rules[0].backendRefs[0].port",
         'Invalid value: "80": must be an integer, not a quoted string'),
    Case("map_for_list", ROUTE_HEAD.replace("  parentRefs:\n  - name: gw\n",
                                            "  parentRefs: {name: gw}\n"),
         "16:15", "error", "HTTPRoute default/r", "spec.parentRefs",
         "must be a list, not a mapping"),
    Case("list_for_string", ROUTE_HEAD.replace("- name: gw", "- name: [gw]"), "17:11", "error",
         "HTTPRoute default/r", "spec.parentRefs[0].name", "must be a string, not a list"),
    # DEVIATION: Kubernetes decoding rejects a boolean where a string is required
    # (`value: true`); Portico accepts it silently (also `value: 2` and `hostnames: [42]`).
    Case("bool_for_string", ROUTE_HEAD + "  rules:\n  - matches:\n    - headers:\n"
         "      - name: x-canary\n        value: true\n", "22:16", "error",
         "HTTPRoute default/r", "spec.rules[0].matches[0].headers[0].value",
         ["string"], exact=False),
    # --- required fields ---
    Case("missing_parent_name", ROUTE_HEAD.replace("- name: gw", "- sectionName: http"),
         "17:5", "error", "HTTPRoute default/r", "spec.parentRefs[0].name", "Required value"),
    Case("missing_listener_port", "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
         "metadata:\n  name: gw2\nspec:\n  listeners:\n  - name: http\n    protocol: HTTP\n",
         "17:5", "error", "Gateway default/gw2", "spec.listeners[0].port", "Required value"),
    Case("header_without_value", ROUTE_HEAD + "  rules:\n  - matches:\n    - headers:\n"
         "      - name: x-a\n", "21:9", "error", "HTTPRoute default/r",
         "spec.rules[0].matches[0].headers[0].value", "Required value"),
    Case("no_listeners", "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
         "metadata:\n  name: gw2\nspec:\n  listeners: []\n", "16:14", "error",
         "Gateway default/gw2", "spec.listeners", "Required value: at least one listener"),
    # --- values ---
    Case("path_double_slash", ROUTE_HEAD + "  rules:\n  - matches:\n    - path:\n"
         "        type: PathPrefix\n        value: /a//b\n", "22:16", "error",
         "HTTPRoute default/r", "spec.rules[0].matches[0].path.value",
         "Invalid value: \"/a//b\": must not contain '//'"),
    Case("path_encoded_slash", ROUTE_HEAD + "  rules:\n  - matches:\n"
         "    - path: {type: Exact, value: \"/a%2Fb\"}\n", "20:34", "error",
         "HTTPRoute default/r", "spec.rules[0].matches[0].path.value",
         "Invalid value: \"/a%2Fb\": must not contain an encoded '/' (%2F)"),
    Case("path_type", ROUTE_HEAD + "  rules:\n  - matches:\n    - path:\n"
         "        type: Prefix\n        value: /a\n", "21:15", "error", "HTTPRoute default/r",
         "spec.rules[0].matches[0].path.type",
         'Unsupported value: "Prefix": supported values: "Exact", "PathPrefix", '
         '"RegularExpression"'),
    Case("invalid_regex", ROUTE_HEAD + "  rules:\n  - matches:\n    - headers:\n"
         "      - name: x-a\n        type: RegularExpression\n        value: \"a(b\"\n",
         "23:16", "error", "HTTPRoute default/r", "spec.rules[0].matches[0].headers[0].value",
         "Invalid value: \"a(b\": invalid RE2 regular expression: missing ): a(b"),
    Case("method_lowercase", ROUTE_HEAD + "  rules:\n  - matches:\n    - method: get\n",
         "20:15", "error", "HTTPRoute default/r", "spec.rules[0].matches[0].method",
         'Unsupported value: "get": supported values: GET, HEAD, POST, PUT, DELETE, CONNECT, '
         'OPTIONS, TRACE, PATCH'),
    Case("hostname_uppercase", ROUTE_HEAD + "  hostnames:\n  - Foo.Example.com\n", "19:5",
         "error", "HTTPRoute default/r", "spec.hostnames[0]",
         'Invalid value: "Foo.Example.com": must be lowercase'),
    Case("hostname_ip", ROUTE_HEAD + "  hostnames:\n  - \"10.0.0.1\"\n", "19:5", "error",
         "HTTPRoute default/r", "spec.hostnames[0]",
         'Invalid value: "10.0.0.1": must be a DNS name, not an IP address'),
    Case("hostname_inner_wildcard", ROUTE_HEAD + "  hostnames:\n  - \"foo.*.com\"\n", "19:5",
         "error", "HTTPRoute default/r", "spec.hostnames[0]",
         'Invalid value: "foo.*.com": a wildcard is allowed only as the whole first label '
         '("*.example.com")'),
    Case("listener_bare_wildcard", "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
         "metadata:\n  name: gw2\nspec:\n  listeners:\n  - name: http\n    port: 8081\n"
         "    protocol: HTTP\n    hostname: \"*\"\n", "20:15", "error", "Gateway default/gw2",
         "spec.listeners[0].hostname",
         ['Invalid value: "*"', "wildcard"], exact=False),
    Case("duration_fraction", ROUTE_HEAD + "  rules:\n  - timeouts:\n      request: 1.5s\n",
         "20:16", "error", "HTTPRoute default/r", "spec.rules[0].timeouts.request",
         'Invalid value: "1.5s": must be a duration of 1 to 4 parts like "1h30m", "10s" or '
         '"500ms" (units h, m, s, ms; no fractions)'),
    # DEVIATION (message): Kubernetes field errors read `Invalid value: <value>: <detail>`;
    # Portico prints no value ("Invalid value: backendRequest timeout cannot be ...").
    Case("backend_request_over_request", ROUTE_HEAD + "  rules:\n  - timeouts:\n"
         "      request: 1s\n      backendRequest: 2s\n", "21:23", "error",
         "HTTPRoute default/r", "spec.rules[0].timeouts.backendRequest",
         ['Invalid value: "2s": ', "request"], exact=False),
    Case("weight_negative", ROUTE_HEAD + "  rules:\n  - backendRefs:\n    - name: api\n"
         "      weight: -1\n", "21:15", "error", "HTTPRoute default/r",
         "spec.rules[0].backendRefs[0].weight",
         "Invalid value: -1: must be an integer between 0 and 1000000, inclusive"),
    Case("weight_too_big", ROUTE_HEAD + "  rules:\n  - backendRefs:\n    - name: api\n"
         "      weight: 1000001\n", "21:15", "error", "HTTPRoute default/r",
         "spec.rules[0].backendRefs[0].weight",
         "Invalid value: 1000001: must be an integer between 0 and 1000000, inclusive"),
    # --- listeners ---
    Case("duplicate_listener_name", "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
         "metadata:\n  name: gw2\nspec:\n  listeners:\n  - name: http\n    port: 8081\n"
         "    protocol: HTTP\n  - name: http\n    port: 8082\n    protocol: HTTP\n", "20:11",
         "error", "Gateway default/gw2", "spec.listeners[1].name",
         'Duplicate value: "http": listener names must be unique'),
    Case("listener_port_conflict", "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
         "metadata:\n  name: gw2\nspec:\n  listeners:\n  - name: a\n    port: 8081\n"
         "    protocol: HTTP\n  - name: b\n    port: 8081\n    protocol: HTTP\n", "20:5",
         "error", "Gateway default/gw2", "spec.listeners[1]",
         ["Conflicted", "port 8081", "default/gw2/a"], exact=False),
    # Across Gateways: gw (alphabetically first) keeps port 8080, gw0 loses it.
    Case("listener_conflict_across_gateways", "apiVersion: gateway.networking.k8s.io/v1\n"
         "kind: Gateway\nmetadata:\n  name: gw0\nspec:\n  listeners:\n  - name: other\n"
         "    port: 8080\n    protocol: HTTP\n", "17:5", "error", "Gateway default/gw0",
         "spec.listeners[0]", ["Conflicted", "port 8080", "default/gw/http"], exact=False),
    Case("allowed_routes_selector", "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
         "metadata:\n  name: gw2\nspec:\n  listeners:\n  - name: http\n    port: 8081\n"
         "    protocol: HTTP\n    allowedRoutes:\n      namespaces:\n        from: Selector\n",
         "22:15", "error", "Gateway default/gw2",
         "spec.listeners[0].allowedRoutes.namespaces.from", ["Selector", "not supported yet"],
         exact=False),
    Case("tls_listener_skipped", "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
         "metadata:\n  name: gw2\nspec:\n  listeners:\n  - name: tls\n    port: 8443\n"
         "    protocol: TLS\n", "19:15", "warning", "Gateway default/gw2",
         "spec.listeners[0].protocol",
         "protocol TLS is not supported yet; listener skipped", exit=0),
    Case("https_listener_needs_tls", "apiVersion: gateway.networking.k8s.io/v1\n"
         "kind: Gateway\nmetadata:\n  name: gw2\nspec:\n  listeners:\n  - name: https\n"
         "    port: 8443\n    protocol: HTTPS\n", "17:5", "error", "Gateway default/gw2",
         "spec.listeners[0].tls", "Required value: protocol HTTPS needs tls with certificateRefs"),
    # --- filters ---
    Case("unknown_filter_type", ROUTE_HEAD + "  rules:\n  - filters:\n"
         "    - type: RequestRewrite\n", "20:13", "error", "HTTPRoute default/r",
         "spec.rules[0].filters[0].type",
         ['Unsupported value: "RequestRewrite"', "RequestHeaderModifier", "URLRewrite"],
         exact=False),
    Case("filter_not_implemented", ROUTE_HEAD + "  rules:\n  - filters:\n"
         "    - type: CORS\n      cors: {allowOrigins: [\"https://a.example\"]}\n",
         "20:13", "error", "HTTPRoute default/r", "spec.rules[0].filters[0].type",
         ["CORS", "not implemented yet"], exact=False),
    Case("rule_retry_not_supported", ROUTE_HEAD + "  rules:\n  - retry:\n"
         "      attempts: 2\n", "19:5", "error", "HTTPRoute default/r", "spec.rules[0].retry",
         ["retry", "not supported yet"], exact=False),
    Case("filter_config_missing", ROUTE_HEAD + "  rules:\n  - filters:\n"
         "    - type: RequestHeaderModifier\n", "20:7", "error", "HTTPRoute default/r",
         "spec.rules[0].filters[0].requestHeaderModifier", "Required value"),
    Case("duplicate_filter", ROUTE_HEAD + "  rules:\n  - filters:\n"
         "    - type: RequestHeaderModifier\n      requestHeaderModifier: {remove: [a]}\n"
         "    - type: RequestHeaderModifier\n      requestHeaderModifier: {remove: [b]}\n",
         "22:13", "error", "HTTPRoute default/r", "spec.rules[0].filters[1].type",
         'Duplicate value: "RequestHeaderModifier": at most one per rule'),
    Case("modify_host_header", ROUTE_HEAD + "  rules:\n  - filters:\n"
         "    - type: RequestHeaderModifier\n      requestHeaderModifier:\n        set:\n"
         "        - name: Host\n          value: x\n", "23:17", "error",
         "HTTPRoute default/r", "spec.rules[0].filters[0].requestHeaderModifier.set[0].name",
         'Forbidden: header "Host" cannot be modified by a filter'),
    # DEVIATION (status): Gateway API has a dedicated reason, Accepted=False/
    # IncompatibleFilters; Portico reports UnsupportedValue (and the message reads
    # "Invalid value: IncompatibleFilters: ...").
    Case("redirect_with_rewrite", ROUTE_HEAD + "  rules:\n  - filters:\n"
         "    - type: RequestRedirect\n      requestRedirect: {statusCode: 301}\n"
         "    - type: URLRewrite\n      urlRewrite: {hostname: a.example.com}\n", "20:5",
         "error", "HTTPRoute default/r", "spec.rules[0].filters",
         ["RequestRedirect and URLRewrite cannot both be set in one rule"], exact=False,
         condition=("Accepted", "False", "IncompatibleFilters")),
    Case("redirect_with_backends", ROUTE_HEAD + "  rules:\n  - filters:\n"
         "    - type: RequestRedirect\n      requestRedirect: {statusCode: 301}\n"
         "    backendRefs:\n    - name: api\n", "20:5", "error", "HTTPRoute default/r",
         "spec.rules[0].filters",
         "Invalid value: a rule with a RequestRedirect filter must not have backendRefs"),
    Case("redirect_status_code", ROUTE_HEAD + "  rules:\n  - filters:\n"
         "    - type: RequestRedirect\n      requestRedirect: {statusCode: 305}\n", "21:37",
         "error", "HTTPRoute default/r", "spec.rules[0].filters[0].requestRedirect.statusCode",
         ["Unsupported value", "305", "301, 302, 303, 307, 308"], exact=False),
    Case("replace_prefix_without_prefix", ROUTE_HEAD + "  rules:\n  - matches:\n"
         "    - path: {type: Exact, value: /a}\n    filters:\n    - type: URLRewrite\n"
         "      urlRewrite:\n        path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}\n",
         "22:5", "error", "HTTPRoute default/r", "spec.rules[0].filters",
         "Invalid value: ReplacePrefixMatch requires exactly one match, of type PathPrefix, in "
         "the rule"),
    Case("rewrite_wildcard_hostname", ROUTE_HEAD + "  rules:\n  - filters:\n"
         "    - type: URLRewrite\n      urlRewrite:\n        hostname: \"*.example.com\"\n",
         "22:19", "error", "HTTPRoute default/r", "spec.rules[0].filters[0].urlRewrite.hostname",
         'Invalid value: "*.example.com": wildcards are not allowed here'),
    # --- references (warnings: the configuration is served, status says why) ---
    Case("parent_gateway_missing", ROUTE_HEAD.replace("name: gw", "name: nope")
         + "  rules:\n  - backendRefs: [{name: api}]\n", "17:5", "warning",
         "HTTPRoute default/r", "spec.parentRefs[0]",
         "Accepted=False/NoMatchingParent: Gateway default/nope not found", exit=0,
         condition=("Accepted", "False", "NoMatchingParent")),
    Case("backend_missing", ROUTE_HEAD + "  rules:\n  - backendRefs:\n    - name: ghost\n"
         "      port: 80\n", "20:7", "warning", "HTTPRoute default/r",
         "spec.rules[0].backendRefs[0]",
         "ResolvedRefs=False/BackendNotFound: Backend default/ghost not found; its share of "
         "the traffic answers 500", exit=0,
         condition=("ResolvedRefs", "False", "BackendNotFound")),
    Case("backend_bad_address", "apiVersion: portico.dev/v1alpha1\nkind: Backend\n"
         "metadata:\n  name: api\nspec:\n  endpoints:\n  - address: api_internal\n"
         "    port: 80\n", "17:14", "error", "Backend default/api", "spec.endpoints[0].address",
         'Invalid value: "api_internal": must be an IPv4 or IPv6 address or a DNS name'),
    # --- TrafficPolicy ---
    Case("policy_limit_out_of_range", POLICY_HEAD + "    name: gw\n  clientLimits:\n"
         "    maxRequestHeaders: 5000\n", "21:24", "error", "TrafficPolicy default/tp",
         "spec.clientLimits.maxRequestHeaders",
         "Invalid value: 5000: must be an integer between 1 and 1000, inclusive"),
    Case("policy_duration_without_unit", POLICY_HEAD + "    name: gw\n  timeouts:\n"
         "    idle: 10\n", "21:11", "error", "TrafficPolicy default/tp", "spec.timeouts.idle",
         ['Invalid value: ', "10", "duration"], exact=False),
    Case("policy_duration_too_long", POLICY_HEAD + "    name: gw\n  timeouts:\n"
         "    request: 100000s\n", "21:14", "error", "TrafficPolicy default/tp",
         "spec.timeouts.request", ['Invalid value: "100000s"', "duration"], exact=False),
    Case("policy_target_kind", POLICY_HEAD.replace("kind: Gateway", "kind: GRPCRoute")
         + "    name: r\n", "18:11", "error", "TrafficPolicy default/tp",
         "spec.targetRefs[0]", ["GRPCRoute", "must name a gateway.networking.k8s.io Gateway or "
                                "HTTPRoute"], exact=False),
    Case("policy_target_missing", POLICY_HEAD + "    name: nope\n", "17:5", "warning",
         "TrafficPolicy default/tp", "spec.targetRefs[0]",
         "Accepted=False/TargetNotFound: Gateway default/nope not found", exit=0),
]


class ConfigErrors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="portico-config-errors-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_check(self, path, *extra):
        p = subprocess.run([BIN, "check", "-c", path, *extra], capture_output=True, text=True,
                           timeout=30)
        return p.returncode, p.stdout, p.stderr

    def expected_prefix(self, case):
        s = f"{case.pos}: {case.severity}: "
        if case.resource:
            s += f"{case.resource}: "
        if case.field:
            s += f"{case.field}: "
        return s

    def assertMessage(self, case, message):
        if case.exact:
            self.assertEqual(message, case.message)
        else:
            for part in case.message:
                self.assertIn(part, message)

    def test_table(self):
        self.assertGreaterEqual(len(CASES), 15)
        self.assertEqual(len({c.name for c in CASES}), len(CASES))
        for case in CASES:
            with self.subTest(case.name):
                path = os.path.join(self.tmp, case.name + ".yaml")
                with open(path, "w") as f:
                    f.write(GATEWAY + case.text)
                # Text output: exit code, one diagnostic at the right place.
                code, out, err = self.run_check(path)
                self.assertEqual(code, case.exit, out + err)
                want = f"{path}:{self.expected_prefix(case)}"
                lines = [l for l in err.splitlines() if l.startswith(want)]
                self.assertEqual(len(lines), 1, f"want a line starting {want!r}:\n{err}")
                self.assertMessage(case, lines[0][len(want):])
                # JSON output: the same diagnostic, field by field.
                code, out, _ = self.run_check(path, "-o", "json")
                self.assertEqual(code, case.exit)
                doc = json.loads(out)
                self.assertEqual(doc["valid"], case.exit == 0)
                line, col = map(int, case.pos.split(":"))
                kind, _, nsname = (case.resource or "").partition(" ")
                ns, _, name = nsname.partition("/")
                found = [d for d in doc["diagnostics"]
                         if (d["line"], d["column"], d["severity"]) == (line, col, case.severity)]
                self.assertEqual(len(found), 1, doc["diagnostics"])
                d = found[0]
                self.assertEqual(d["file"], path)
                if case.resource:
                    self.assertEqual((d["kind"], d["namespace"], d["name"]), (kind, ns, name))
                else:
                    self.assertEqual(d["kind"], "")
                self.assertEqual(d["fieldPath"], case.field or "")
                self.assertMessage(case, d["message"])
                if case.condition:
                    res = [r for r in doc["resources"]
                           if (r["kind"], r["namespace"], r["name"]) == (kind, ns, name)]
                    self.assertEqual(len(res), 1, doc["resources"])
                    got = [(c["type"], c["status"], c["reason"]) for c in res[0]["conditions"]]
                    self.assertIn(case.condition, got)


if __name__ == "__main__":
    unittest.main()
