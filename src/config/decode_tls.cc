// Decoding of TLS configuration: a Gateway listener's `tls`, and the core v1 Secret and
// ConfigMap kinds that hold certificates, keys and CA bundles.
#include <string_view>

#include "config/model.h"
#include "config/syntax.h"

namespace portico::config {
namespace {

constexpr size_t kMaxCertificateRefs = 16;
constexpr size_t kMaxSecretEntries = 256;
constexpr int kTls12 = 0x0303;  // TLS1_2_VERSION
constexpr int kTls13 = 0x0304;  // TLS1_3_VERSION

constexpr std::string_view kCertificateFile = "portico.dev/certificate-file";
constexpr std::string_view kKeyFile = "portico.dev/key-file";
constexpr std::string_view kClientCaFile = "portico.dev/client-ca-file";
constexpr std::string_view kClientMode = "portico.dev/client-certificate-mode";
constexpr std::string_view kMinVersion = "portico.dev/min-version";

// RFC 4648 base64 (standard alphabet, padding optional, whitespace ignored).
std::optional<std::string> decodeBase64(std::string_view in) {
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+') {
      v = 62;
    } else if (c == '/') {
      v = 63;
    } else if (c == '=') {
      ++pad;
      continue;
    } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
      continue;
    } else {
      return std::nullopt;
    }
    if (pad > 0) return std::nullopt;  // data after padding
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  if (bits >= 6 || pad > 2) return std::nullopt;
  return out;
}

// The value of a top-level field of the document (undefined node when absent).
YAML::Node topField(const YAML::Node& doc, std::string_view key) {
  if (doc.IsMap()) {
    for (auto it = doc.begin(); it != doc.end(); ++it)
      if (it->first.IsScalar() && it->first.Scalar() == key) return it->second;
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

// Reads a string->string mapping, calling fn(key, value, value mark, path) per entry.
void forEachEntry(Reporter& r, const YAML::Node& node, const std::string& path,
                  const std::function<void(const std::string&, const std::string&,
                                           const YAML::Mark&, const std::string&)>& fn) {
  if (isAbsent(node)) return;
  if (!node.IsMap()) {
    r.error(markOf(node), path, "Invalid value: must be a mapping of strings");
    return;
  }
  if (node.size() > kMaxSecretEntries) {
    r.error(markOf(node), path,
            "Too many: " + std::to_string(node.size()) + ": at most " +
                std::to_string(kMaxSecretEntries) + " entries");
    return;
  }
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) {
      r.error(markOf(it->first), path, "Invalid value: keys must be strings");
      continue;
    }
    const std::string& key = it->first.Scalar();
    std::string child = fieldPath(path, key);
    std::optional<std::string> value = readString(r, it->second, child);
    if (value) fn(key, *value, markOf(it->second), child);
  }
}

void storeEntry(SecretModel* s, const std::string& key, std::string value, Where where) {
  s->entries.emplace_back(key, value);
  s->entry_where.push_back(where);
  if (key == "tls.crt") {
    s->tls_crt = std::move(value);
    s->tls_crt_where = std::move(where);
    s->has_tls_crt = true;
  } else if (key == "tls.key") {
    s->tls_key = std::move(value);
    s->tls_key_where = std::move(where);
    s->has_tls_key = true;
  } else if (key == "ca.crt") {
    s->ca_crt = std::move(value);
    s->ca_crt_where = std::move(where);
    s->has_ca_crt = true;
  }
}

std::optional<CertificateRefModel> decodeRef(Reporter& r, const YAML::Node& item,
                                             const std::string& path,
                                             std::string_view default_kind) {
  MapReader m(r, item, path);
  CertificateRefModel ref;
  ref.where = Where{markOf(item), path};
  ref.group = m.string("group").value_or("");
  std::optional<std::string> kind =
      m.string("kind", default_kind.empty() ? Need::kRequired : Need::kOptional);
  ref.kind = kind.value_or(std::string(default_kind));
  std::optional<std::string> name = m.string("name", Need::kRequired);
  ref.ns = m.string("namespace").value_or("");
  m.finish();
  if (!name) return std::nullopt;
  ref.name = *name;
  bool ok_kind = ref.group.empty() &&
                 (ref.kind == "Secret" || (default_kind.empty() && ref.kind == "ConfigMap"));
  if (!ok_kind) {
    r.error(m.markOf("kind"), m.childPath("kind"),
            "Unsupported value: \"" + (ref.group.empty() ? "" : ref.group + "/") + ref.kind +
                "\": supported values: \"Secret\"" +
                (default_kind.empty() ? ", \"ConfigMap\" (core group)" : " (core group)"));
    return std::nullopt;
  }
  return ref;
}

void decodeOptions(Reporter& r, const YAML::Node& node, const std::string& path,
                   ListenerTlsModel* tls, bool* has_mode) {
  forEachEntry(
      r, node, path,
      [&](const std::string& key, const std::string& value, const YAML::Mark& mark,
          const std::string& child) {
        if (key == kCertificateFile) {
          tls->certificate_file = value;
          tls->certificate_file_where = Where{mark, child};
        } else if (key == kKeyFile) {
          tls->key_file = value;
        } else if (key == kClientCaFile) {
          tls->ca_file = value;
          tls->ca_file_where = Where{mark, child};
        } else if (key == kClientMode) {
          *has_mode = true;
          if (value == "Required") {
            tls->client_mode = ClientCertModel::kRequired;
          } else if (value == "Optional") {
            tls->client_mode = ClientCertModel::kOptional;
          } else {
            r.error(mark, child,
                    "Unsupported value: \"" + value +
                        "\": supported values: \"Required\", \"Optional\"");
          }
        } else if (key == kMinVersion) {
          if (value == "1.2") {
            tls->min_version = kTls12;
          } else if (value == "1.3") {
            tls->min_version = kTls13;
          } else {
            r.error(mark, child,
                    "Unsupported value: \"" + value + "\": supported values: \"1.2\", \"1.3\"");
          }
        } else if (key.rfind("portico.dev/", 0) == 0) {
          r.error(mark, child,
                  "unknown option \"" + key +
                      "\": supported options: " + std::string(kCertificateFile) + ", " +
                      std::string(kKeyFile) + ", " + std::string(kClientCaFile) + ", " +
                      std::string(kClientMode) + ", " + std::string(kMinVersion));
        } else {
          r.warning(mark, child, "option \"" + key + "\" is not Portico's; ignored");
        }
      });
}

}  // namespace

void decodeListenerTls(MapReader& listener, ListenerModel* out) {
  Reporter& r = listener.reporter();
  if (!listener.has("tls")) {
    r.error(listener.mark(), listener.childPath("tls"),
            "Required value: protocol HTTPS needs tls with certificateRefs");
    listener.ignore("tls");
    return;
  }
  MapReader t(r, listener.take("tls"), listener.childPath("tls"));
  ListenerTlsModel tls;
  tls.where = Where{t.mark(), t.path()};
  std::string mode = t.string("mode").value_or("Terminate");
  if (mode == "Passthrough") {
    r.error(t.markOf("mode"), t.childPath("mode"),
            "mode Passthrough is not supported yet (it needs protocol TLS and TLSRoute); use "
            "Terminate");
  } else if (mode != "Terminate") {
    r.error(t.markOf("mode"), t.childPath("mode"),
            "Unsupported value: \"" + mode + "\": supported values: \"Terminate\"");
  }
  forEachItem(r, t.take("certificateRefs"), t.childPath("certificateRefs"), kMaxCertificateRefs,
              [&](const YAML::Node& item, const std::string& path, size_t) {
                if (auto ref = decodeRef(r, item, path, "Secret"))
                  tls.certificate_refs.push_back(std::move(*ref));
              });
  MapReader fv(r, t.take("frontendValidation"), t.childPath("frontendValidation"));
  forEachItem(r, fv.take("caCertificateRefs"), fv.childPath("caCertificateRefs"),
              kMaxCertificateRefs, [&](const YAML::Node& item, const std::string& path, size_t) {
                if (auto ref = decodeRef(r, item, path, "")) tls.ca_refs.push_back(std::move(*ref));
              });
  fv.finish();
  bool has_mode = false;
  decodeOptions(r, t.take("options"), t.childPath("options"), &tls, &has_mode);
  std::string options = t.childPath("options");
  if (tls.certificate_file.empty() && !tls.key_file.empty()) {
    r.error(t.markOf("options"), fieldPath(options, kKeyFile),
            "Forbidden: needs option " + std::string(kCertificateFile));
  }
  if (tls.certificate_refs.empty() && tls.certificate_file.empty() && mode == "Terminate") {
    r.error(t.mark(), t.childPath("certificateRefs"),
            "Required value: at least one certificateRef (or option " +
                std::string(kCertificateFile) + ")");
  }
  if (has_mode && tls.ca_refs.empty() && tls.ca_file.empty()) {
    r.error(t.markOf("options"), fieldPath(options, kClientMode),
            "Forbidden: needs frontendValidation.caCertificateRefs or option " +
                std::string(kClientCaFile));
  }
  t.finish();
  out->tls = std::move(tls);
}

void decodeBackendTls(MapReader& spec, BackendModel* out) {
  Reporter& r = spec.reporter();
  if (!spec.has("tls")) {
    spec.ignore("tls");
    return;
  }
  MapReader t(r, spec.take("tls"), spec.childPath("tls"));
  BackendTlsModel tls;
  tls.where = Where{t.mark(), t.path()};
  if (std::optional<std::string> sni = t.string("sni")) {
    std::string problem = checkHostname(*sni, /*allow_wildcard=*/false);
    if (!problem.empty()) r.error(t.markOf("sni"), t.childPath("sni"), invalidValue(*sni, problem));
    tls.sni = *sni;
  }
  forEachItem(r, t.take("caCertificateRefs"), t.childPath("caCertificateRefs"), kMaxCertificateRefs,
              [&](const YAML::Node& item, const std::string& path, size_t) {
                if (auto ref = decodeRef(r, item, path, "")) tls.ca_refs.push_back(std::move(*ref));
              });
  tls.ca_file = t.string("caFile").value_or("");
  if (std::optional<std::string> wk = t.string("wellKnownCACertificates")) {
    if (*wk == "System") {
      tls.system_cas = true;
    } else {
      r.error(t.markOf("wellKnownCACertificates"), t.childPath("wellKnownCACertificates"),
              "Unsupported value: \"" + *wk + "\": supported values: \"System\"");
    }
  }
  if (t.has("insecureSkipVerify")) {
    YAML::Node v = t.take("insecureSkipVerify");
    if (v.IsScalar() && (v.Scalar() == "true" || v.Scalar() == "false")) {
      tls.insecure_skip_verify = v.Scalar() == "true";
    } else {
      r.error(markOf(v), t.childPath("insecureSkipVerify"), "must be a boolean");
    }
  }
  YAML::Node client = t.take("clientCertificateRef");
  if (!isAbsent(client)) {
    if (auto ref = decodeRef(r, client, t.childPath("clientCertificateRef"), "Secret"))
      tls.client_certificate = std::move(*ref);
  }
  int sources = (tls.ca_refs.empty() ? 0 : 1) + (tls.ca_file.empty() ? 0 : 1) +
                (tls.system_cas ? 1 : 0) + (tls.insecure_skip_verify ? 1 : 0);
  if (sources == 0) {
    r.error(t.mark(), t.path(),
            "Required value: one of caCertificateRefs, caFile, wellKnownCACertificates: System "
            "or insecureSkipVerify: true");
  } else if (tls.insecure_skip_verify && sources > 1) {
    r.error(t.markOf("insecureSkipVerify"), t.childPath("insecureSkipVerify"),
            "Forbidden: insecureSkipVerify verifies nothing: remove the CA settings or it");
  } else if (tls.system_cas && sources > 1) {
    r.error(t.markOf("wellKnownCACertificates"), t.childPath("wellKnownCACertificates"),
            "Forbidden: not with caCertificateRefs or caFile");
  }
  t.finish();
  out->tls = std::move(tls);
}

std::optional<SecretModel> decodeSecret(const Resource& res, Reporter& r) {
  SecretModel s;
  if (res.spec.IsDefined()) {
    r.error(markOf(res.spec), "spec",
            "Forbidden: a " + res.kind + " has no spec; its entries go in data" +
                (res.kind == "Secret" ? " or stringData" : ""));
    return std::nullopt;
  }
  int errors = r.errorCount();
  const YAML::Node& doc = res.document;
  auto base64Entries = [&](std::string_view field) {
    forEachEntry(r, topField(doc, field), std::string(field),
                 [&](const std::string& key, const std::string& value, const YAML::Mark& mark,
                     const std::string& path) {
                   std::optional<std::string> bytes = decodeBase64(value);
                   if (!bytes) {
                     r.error(mark, path, "Invalid value: not valid base64");
                     return;
                   }
                   storeEntry(&s, key, std::move(*bytes), Where{mark, path});
                 });
  };
  auto plainEntries = [&](std::string_view field) {
    forEachEntry(r, topField(doc, field), std::string(field),
                 [&](const std::string& key, const std::string& value, const YAML::Mark& mark,
                     const std::string& path) {
                   storeEntry(&s, key, value, Where{mark, path});
                 });
  };
  if (res.kind == "Secret") {
    YAML::Node type = topField(doc, "type");
    if (!isAbsent(type)) s.type = readString(r, type, "type").value_or("");
    base64Entries("data");
    plainEntries("stringData");  // written over data, as the API server does
  } else {
    plainEntries("data");
    base64Entries("binaryData");
  }
  if (r.errorCount() > errors) return std::nullopt;
  return s;
}

}  // namespace portico::config
