#include "proxy/security_stage.h"

#include <ctime>

namespace portico::proxy {

namespace {

bool equalsLower(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

}  // namespace

bool applyHeaderEdits(const std::vector<std::string>& remove,
                      const std::vector<security::HeaderAdd>& adds,
                      const std::vector<security::HeaderAdd>& extra, http1::Header* headers,
                      uint32_t* count, uint32_t capacity) {
  if (!remove.empty() || !extra.empty()) {
    uint32_t kept = 0;
    for (uint32_t i = 0; i < *count; ++i) {
      bool removed = false;
      for (const std::string& name : remove) {
        if (equalsLower(headers[i].name, name)) {
          removed = true;
          break;
        }
      }
      for (const security::HeaderAdd& a : extra) {  // the service's value replaces the client's
        if (!removed && equalsLower(headers[i].name, a.name)) removed = true;
      }
      if (!removed) headers[kept++] = headers[i];
    }
    *count = kept;
  }
  if (*count + adds.size() + extra.size() > capacity) return false;
  for (const std::vector<security::HeaderAdd>* list : {&adds, &extra}) {
    for (const security::HeaderAdd& a : *list) {
      http1::Header& h = headers[(*count)++];
      h.name = a.name;
      h.value = a.value;
      h.tag = http1::HeaderTag::kOther;
    }
  }
  return true;
}

namespace {

template <typename T>
const T* section(const security::Layers& l, std::shared_ptr<const T> security::Policy::*field) {
  for (const security::Policy* p : {l.override_, l.rule, l.defaults}) {
    if (p != nullptr && p->*field) return (p->*field).get();
  }
  return nullptr;
}

uint32_t xffHops(const security::Layers& l) {
  for (const security::Policy* p : {l.override_, l.rule, l.defaults}) {
    if (p != nullptr && p->xff_set) return p->xff_trusted_hops;
  }
  return 0;
}

}  // namespace

bool sameSections(const security::Layers& a, const security::Layers& b) {
  using P = security::Policy;
  return section(a, &P::jwt) == section(b, &P::jwt) &&
         section(a, &P::api_key) == section(b, &P::api_key) &&
         section(a, &P::basic) == section(b, &P::basic) &&
         section(a, &P::ext_authz) == section(b, &P::ext_authz) &&
         section(a, &P::authorization) == section(b, &P::authorization) &&
         section(a, &P::cors) == section(b, &P::cors) && xffHops(a) == xffHops(b);
}

int64_t unixSeconds() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return ts.tv_sec;
}

std::string securityAnswerHeaders(const security::Outcome& out) {
  // The evaluator's CORS lines for an allowed origin (a preflight's are in response_headers).
  std::string lines = out.response_headers;
  if (out.reason != "cors_preflight" && out.reason != "cors_origin_denied")
    lines += out.cors_response_headers;
  return lines;
}

}  // namespace portico::proxy
