#include "proxy/rewrite.h"

#include "proxy/http_util.h"

namespace portico::proxy {

void appendPrefixReplaced(std::string_view path, std::string_view prefix,
                          std::string_view replacement, Buffer& out) {
  if (path.substr(0, prefix.size()) != prefix) {
    out.append(path);
    return;
  }
  std::string_view rest = path.substr(prefix.size());  // "" or starts with '/'
  while (!replacement.empty() && replacement.back() == '/') replacement.remove_suffix(1);
  if (replacement.empty() && rest.empty()) {
    out.append("/");
    return;
  }
  out.append(replacement);
  out.append(rest);
}

void appendModifiedPath(const config::PathModifier& modifier, std::string_view path,
                        std::string_view prefix, Buffer& out) {
  switch (modifier.kind) {
    case config::PathModifierKind::kNone:
      out.append(path);
      break;
    case config::PathModifierKind::kReplaceFullPath:
      out.append(modifier.value);
      break;
    case config::PathModifierKind::kReplacePrefixMatch:
      appendPrefixReplaced(path, prefix, modifier.value, out);
      break;
  }
}

std::string_view hostWithoutPort(std::string_view host) {
  if (!host.empty() && host[0] == '[') {
    size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  size_t colon = host.rfind(':');
  return colon == std::string_view::npos ? host : host.substr(0, colon);
}

void appendRedirectLocation(const config::Redirect& redirect, std::string_view host,
                            uint16_t listener_port, std::string_view path, std::string_view query,
                            std::string_view prefix, Buffer& out, std::string_view request_scheme) {
  std::string_view scheme =
      redirect.scheme.empty() ? request_scheme : std::string_view(redirect.scheme);
  uint16_t port = redirect.port;
  if (port == 0) {
    if (!redirect.scheme.empty()) {
      port = scheme == "https" ? 443 : 80;
    } else {
      port = listener_port;
    }
  }
  out.append(scheme);
  out.append("://");
  out.append(redirect.hostname.empty() ? hostWithoutPort(host)
                                       : std::string_view(redirect.hostname));
  bool default_port = (scheme == "http" && port == 80) || (scheme == "https" && port == 443);
  if (!default_port) {
    out.append(":");
    appendDecimal(out, port);
  }
  appendModifiedPath(redirect.path, path, prefix, out);
  if (!query.empty()) {
    out.append("?");
    out.append(query);
  }
}

}  // namespace portico::proxy
