// HTTPS listeners: certificateRefs and caCertificateRefs resolved to Secrets, ConfigMaps and
// files, certificates parsed and checked; the TLS context of each HTTPS port.
//
// Files are read here, at every compile (decoding depends on the document alone), so a reload
// picks up rotated certificates.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "config/compilation.h"

namespace portico::config::internal {
namespace {

constexpr size_t kMaxPemFile = 1 << 20;

// `path` relative to the directory of `config_file` unless absolute.
std::string resolvePath(const std::string& path, const std::string& config_file) {
  if (path.empty() || path[0] == '/') return path;
  size_t slash = config_file.rfind('/');
  if (slash == std::string::npos) return path;
  return config_file.substr(0, slash + 1) + path;
}

// Reads a PEM file into *out; "" on success, else the problem.
std::string readPemFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot read " + path + ": " + std::strerror(errno);
  std::ostringstream text;
  text << in.rdbuf();
  *out = text.str();
  if (out->size() > kMaxPemFile) return path + " is larger than 1 MiB";
  return "";
}

std::string describe(const Resource& res) {
  std::string out = res.kind + ' ' + res.ns + '/' + res.name;
  if (!res.mark.is_null())
    out += " (" + (res.file.empty() ? std::string("<input>") : res.file) + ':' +
           std::to_string(res.mark.line + 1) + ')';
  return out;
}

}  // namespace

std::optional<net::TlsListenerSettings> Compilation::resolveListenerTls(const GatewayItem& gw,
                                                                        const ListenerModel& lm,
                                                                        const std::string& id,
                                                                        Reporter& r,
                                                                        Condition* failed) {
  const Resource& gw_res = resources_[gw.resource];
  const ListenerTlsModel& tls = *lm.tls;
  net::TlsListenerSettings out;
  out.id = id;
  out.hostname = lm.hostname;
  out.min_version = tls.min_version;
  bool ok = true;
  auto fail = [&](const Where& where, std::string reason, const std::string& message) {
    r.error(where.mark, where.path, "ResolvedRefs=False/" + reason + ": " + message);
    if (ok) *failed = Condition{"ResolvedRefs", false, std::move(reason), message};
    ok = false;
  };
  // A Secret or ConfigMap in the Gateway's namespace (no ReferenceGrant support yet).
  auto lookup = [&](const CertificateRefModel& ref) -> const SecretModel* {
    std::string ns = ref.ns.empty() ? gw_res.ns : ref.ns;
    if (ns != gw_res.ns) {
      fail(ref.where, "RefNotPermitted",
           ref.kind + ' ' + ns + '/' + ref.name +
               " is in another namespace than the Gateway (ReferenceGrant is not supported yet)");
      return nullptr;
    }
    auto it = secret_by_name_.find({ref.kind, ns, ref.name});
    if (it == secret_by_name_.end()) {
      bool invalid = rejected_.count({ref.kind, ns, ref.name}) > 0;
      fail(ref.where, "InvalidCertificateRef",
           ref.kind + ' ' + ns + '/' + ref.name +
               (invalid ? " is invalid (see its errors)" : " not found"));
      return nullptr;
    }
    return it->second.second;
  };
  auto describeRef = [&](const CertificateRefModel& ref) {
    std::string ns = ref.ns.empty() ? gw_res.ns : ref.ns;
    auto it = secret_by_name_.find({ref.kind, ns, ref.name});
    return it == secret_by_name_.end() ? ref.kind + ' ' + ns + '/' + ref.name
                                       : describe(resources_[it->second.first]);
  };

  for (const CertificateRefModel& ref : tls.certificate_refs) {
    const SecretModel* s = lookup(ref);
    if (s == nullptr) continue;
    if (!s->has_tls_crt || !s->has_tls_key) {
      fail(ref.where, "InvalidCertificateRef",
           describeRef(ref) + " has no " + (s->has_tls_crt ? "tls.key" : "tls.crt") +
               " (a kubernetes.io/tls Secret has tls.crt and tls.key)");
      continue;
    }
    auto cert = net::TlsCertificate::fromPem(s->tls_crt, s->tls_key);
    if (!cert.ok()) {
      fail(ref.where, "InvalidCertificateRef", describeRef(ref) + ": " + cert.status().message());
      // Also on the Secret, once: a reload then keeps the Secret's last good version.
      uint32_t secret = secret_by_name_[{ref.kind, gw_res.ns, ref.name}].first;
      if (reported_secrets_.insert(secret).second) {
        const Where& at =
            cert.status().message().starts_with("tls.crt") ? s->tls_crt_where : s->tls_key_where;
        reporterFor(secret).error(at.mark, at.path, cert.status().message());
      }
      continue;
    }
    out.certificates.push_back(std::move(cert.value()));
  }
  if (!tls.certificate_file.empty()) {
    std::string cert_path = resolvePath(tls.certificate_file, gw_res.file);
    std::string key_path =
        tls.key_file.empty() ? cert_path : resolvePath(tls.key_file, gw_res.file);
    std::string cert_pem, key_pem;
    out.files.push_back(cert_path);
    if (key_path != cert_path) out.files.push_back(key_path);
    std::string problem = readPemFile(cert_path, &cert_pem);
    if (problem.empty())
      problem = key_path == cert_path ? (key_pem = cert_pem, "") : readPemFile(key_path, &key_pem);
    if (problem.empty()) {
      auto cert = net::TlsCertificate::fromPem(cert_pem, key_pem);
      if (cert.ok()) {
        out.certificates.push_back(std::move(cert.value()));
      } else {
        problem = cert_path + (key_path == cert_path ? "" : " / " + key_path) + ": " +
                  cert.status().message();
      }
    }
    if (!problem.empty()) fail(tls.certificate_file_where, "InvalidCertificateRef", problem);
  }

  std::string ca_pem;
  for (const CertificateRefModel& ref : tls.ca_refs) {
    const SecretModel* s = lookup(ref);
    if (s == nullptr) continue;
    if (!s->has_ca_crt) {
      fail(ref.where, "InvalidCACertificateRef", describeRef(ref) + " has no ca.crt");
      continue;
    }
    ca_pem += s->ca_crt;
    ca_pem += '\n';
  }
  if (!tls.ca_file.empty()) {
    std::string pem;
    out.files.push_back(resolvePath(tls.ca_file, gw_res.file));
    std::string problem = readPemFile(out.files.back(), &pem);
    if (!problem.empty()) {
      fail(tls.ca_file_where, "InvalidCACertificateRef", problem);
    } else {
      ca_pem += pem;
    }
  }
  if (ok && (!tls.ca_refs.empty() || !tls.ca_file.empty())) {
    auto bundle = net::TlsCaBundle::fromPem(ca_pem);
    if (!bundle.ok()) {
      fail(tls.ca_refs.empty() ? tls.ca_file_where : tls.ca_refs[0].where,
           "InvalidCACertificateRef", bundle.status().message());
    } else {
      out.client_ca = std::move(bundle.value());
      out.client_mode = tls.client_mode == ClientCertModel::kOptional
                            ? net::ClientCertMode::kOptional
                            : net::ClientCertMode::kRequired;
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

void Compilation::resolveBackendTls() {
  for (const BackendItem& item : backends_) {
    if (!item.model.tls) continue;
    const BackendTlsModel& tls = *item.model.tls;
    const Resource& res = resources_[item.resource];
    Reporter r = reporterFor(item.resource);
    std::string problem;
    Where at = tls.where;
    net::ClientTlsSettings settings;
    settings.insecure_skip_verify = tls.insecure_skip_verify;
    // HTTP/2 Backends (http2, grpc) must agree on h2 in the handshake.
    if (item.model.protocol != BackendProtocol::kHttp1) settings.alpn = {"h2"};
    auto find = [&](const CertificateRefModel& ref) -> const SecretModel* {
      std::string ns = ref.ns.empty() ? res.ns : ref.ns;
      auto it = secret_by_name_.find({ref.kind, ns, ref.name});
      if (ns != res.ns) {
        problem = ref.kind + ' ' + ns + '/' + ref.name +
                  " is in another namespace than the Backend (ReferenceGrant is not supported yet)";
      } else if (it == secret_by_name_.end()) {
        problem = ref.kind + ' ' + ns + '/' + ref.name +
                  (rejected_.count({ref.kind, ns, ref.name}) ? " is invalid (see its errors)"
                                                             : " not found");
      } else {
        return it->second.second;
      }
      at = ref.where;
      return nullptr;
    };
    std::string ca_pem;
    for (const CertificateRefModel& ref : tls.ca_refs) {
      if (!problem.empty()) break;
      if (const SecretModel* s = find(ref)) {
        if (!s->has_ca_crt) {
          problem = describe(resources_[secret_by_name_[{ref.kind, res.ns, ref.name}].first]) +
                    " has no ca.crt";
          at = ref.where;
        }
        ca_pem += s->ca_crt + "\n";
      }
    }
    if (problem.empty() && !tls.ca_file.empty()) {
      std::string pem;
      problem = readPemFile(resolvePath(tls.ca_file, res.file), &pem);
      ca_pem += pem;
      if (!problem.empty()) at = Where{tls.where.mark, fieldPath(tls.where.path, "caFile")};
    }
    if (problem.empty() && !ca_pem.empty()) {
      auto bundle = net::TlsCaBundle::fromPem(ca_pem);
      if (bundle.ok()) {
        settings.ca = std::move(bundle.value());
      } else {
        problem = bundle.status().message();
      }
    }
    if (problem.empty() && tls.client_certificate) {
      if (const SecretModel* s = find(*tls.client_certificate)) {
        auto cert = net::TlsCertificate::fromPem(s->tls_crt, s->tls_key);
        if (cert.ok()) {
          settings.client_certificate = std::move(cert.value());
        } else {
          problem = cert.status().message();
          at = tls.client_certificate->where;
        }
      }
    }
    if (problem.empty()) {
      auto ctx = net::ClientTlsContext::build(std::move(settings));
      if (ctx.ok()) {
        backend_tls_[item.resource] = std::move(ctx.value());
        if (item.model.active_health &&
            (item.model.active_health->http || item.model.active_health->grpc)) {
          r.warning(tls.where.mark, tls.where.path,
                    "active HTTP and GRPC health checks do not speak TLS yet: they run as TCP "
                    "checks");
        }
        continue;
      }
      problem = ctx.status().message();
    }
    r.error(at.mark, at.path, "ResolvedRefs=False/InvalidCACertificateRef: " + problem);
    backend_by_name_.erase({res.ns, res.name});
    rejected_.insert({"Backend", res.ns, res.name});
    status_[item.resource].conditions = {Condition{"Accepted", false, "Invalid", problem}};
  }
}

std::shared_ptr<const net::ClientTlsContext> Compilation::backendTls(uint32_t resource) const {
  auto it = backend_tls_.find(resource);
  return it == backend_tls_.end() ? nullptr : it->second;
}

std::shared_ptr<const net::ServerTlsContext> Compilation::buildPortTls(const PortBuild& pb) {
  net::TlsPortSettings settings;
  settings.alpn = {"h2", "http/1.1"};  // h2: the connection goes to an H2DownstreamConn
  for (uint32_t l : pb.listeners)
    if (listeners_[l].tls) settings.listeners.push_back(*listeners_[l].tls);
  auto ctx = net::ServerTlsContext::build(std::move(settings));
  if (ctx.ok()) return std::move(ctx.value());
  Diagnostic d;
  d.message = "port " + std::to_string(pb.port) + ": TLS: " + ctx.status().message() +
              "; the port is not served";
  diagnostics_.push_back(std::move(d));
  return nullptr;
}

}  // namespace portico::config::internal
