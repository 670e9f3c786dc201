// Private to the evaluator (evaluator.cc, evaluator_request.cc, evaluator_rules.cc): the
// per-request context and the request-reading helpers both halves use.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "security/evaluator.h"

namespace portico::security::internal {

bool equalsIgnoreCase(std::string_view a, std::string_view b);
bool startsWithIgnoreCase(std::string_view s, std::string_view prefix);

// The value of the first header named `name` (lowercase), or nullptr.
const std::string_view* findHeader(const Request& req, std::string_view name);

// The value of the query parameter `name` ("" when absent; `found` says whether it was).
std::string_view queryParam(std::string_view query, std::string_view name, bool* found);

// The value of cookie `name` across all Cookie headers.
std::string_view cookieValue(const Request& req, std::string_view name, bool* found);

// A credential from `src`: header (with its prefix stripped), query parameter or cookie.
// "" when the source has none.
std::string_view extractCredential(const Request& req, const CredentialSource& src);

// %XX sequences decoded (others kept as they are).
std::string percentDecode(std::string_view s);

// Strict RFC 4648 base64 with padding (canonical, nothing else); appends to `out`.
bool base64Decode(std::string_view in, std::string& out);

// `"` and `\` escaped, control characters dropped: safe inside a quoted-string.
void appendQuoted(std::string& out, std::string_view s);

struct Ctx {
  const Layers& layers;
  const Request& req;
  int64_t now;
  Outcome* out;
  Trace* trace;
  std::vector<std::string>* spare_strings;  // recycled capacity (WorkerState)
  std::vector<HeaderAdd>* spare_adds;

  void removeHeader(std::string_view name);
  void removeQueryParam(std::string_view name);
  void addHeader(std::string_view name, std::string_view value);
  void respond(int status, std::string_view reason, std::string_view body);
  void note(std::string line) {
    if (trace) trace->push_back(std::move(line));
  }
};

// CORS (step 1). Sets out->cors_response_headers for an actual request from an allowed
// origin; answers a preflight (returns false: stop).
bool runCors(Ctx& c, const Cors& cors);
// The actual-request lines for `origin`; "" when the origin is not allowed.
void appendCorsActual(const Cors& cors, std::string_view origin, std::string& out);

// Access rules (step 3); false when the request is denied (answered 403).
bool runAccess(Ctx& c, const Authorization& authz, uint32_t xff_hops, const nlohmann::json* claims);

}  // namespace portico::security::internal
