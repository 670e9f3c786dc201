#include "net/tls.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace portico::net {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// The last OpenSSL error as text ("" when none), and the queue cleared.
std::string opensslError() {
  unsigned long e = ERR_peek_last_error();
  std::string out;
  if (e != 0) {
    const char* reason = ERR_reason_error_string(e);
    out = reason ? reason : "error " + std::to_string(e);
  }
  ERR_clear_error();
  return out;
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

BioPtr memBio(std::string_view text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// The DNS (or URI) names of a certificate's subjectAltName extension.
std::vector<std::string> altNames(X509* cert, int type) {
  std::vector<std::string> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type != type) continue;
    const ASN1_IA5STRING* s = type == GEN_DNS ? n->d.dNSName : n->d.uniformResourceIdentifier;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
  }
  GENERAL_NAMES_free(names);
  return out;
}

std::string nameText(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string commonName(X509* cert) {
  X509_NAME* name = X509_get_subject_name(cert);
  int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i < 0) return "";
  ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, s);
  if (len < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

// `pattern` "*.example.com" matches "a.example.com" (one label, as RFC 6125 says).
bool certWildcardMatch(std::string_view pattern, std::string_view host) {
  if (pattern.size() < 3 || pattern.substr(0, 2) != "*.") return false;
  std::string_view suffix = pattern.substr(1);  // ".example.com"
  if (host.size() <= suffix.size()) return false;
  if (host.substr(host.size() - suffix.size()) != suffix) return false;
  return host.substr(0, host.size() - suffix.size()).find('.') == std::string_view::npos;
}

// 80 bytes of session ticket keys (name, HMAC, AES), random, shared by every context of the
// process so that tickets survive config reloads.
const unsigned char* processTicketKeys() {
  static unsigned char keys[80];
  static bool ready = [] { return RAND_bytes(keys, sizeof keys) == 1; }();
  return ready ? keys : nullptr;
}

// The host_name of a ClientHello's server_name extension ("" when absent or malformed).
std::string clientHelloServerName(SSL* ssl) {
  const unsigned char* p = nullptr;
  size_t len = 0;
  if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) || len < 2) return "";
  size_t list = (static_cast<size_t>(p[0]) << 8) | p[1];
  if (list + 2 != len) return "";
  p += 2;
  len -= 2;
  while (len >= 3) {
    unsigned type = p[0];
    size_t n = (static_cast<size_t>(p[1]) << 8) | p[2];
    if (n + 3 > len) return "";
    if (type == TLSEXT_NAMETYPE_host_name) return lower({reinterpret_cast<const char*>(p + 3), n});
    p += 3 + n;
    len -= 3 + n;
  }
  return "";
}

// Reads and drops what the socket holds now (bounded; never waits).
void drainInput(int fd) {
  char sink[4096];
  for (int i = 0; i < 16; ++i)
    if (::recv(fd, sink, sizeof sink, MSG_DONTWAIT) <= 0) return;
}

constexpr std::string_view kPlainHttpAnswer =
    "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 41\r\n"
    "connection: close\r\n\r\nplain HTTP request sent to an HTTPS port\n";

}  // namespace

// ---- Certificates ----------------------------------------------------------------------

Result<std::shared_ptr<const TlsCertificate>> TlsCertificate::fromPem(std::string_view cert_pem,
                                                                      std::string_view key_pem) {
  ERR_clear_error();
  std::shared_ptr<TlsCertificate> c(new TlsCertificate());
  BioPtr bio = memBio(cert_pem);
  c->cert_ = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  if (c->cert_ == nullptr) {
    opensslError();
    return Status::error("tls.crt: no PEM certificate could be read", ErrorSource::kConfig);
  }
  c->chain_ = sk_X509_new_null();
  while (X509* extra = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr))
    sk_X509_push(c->chain_, extra);
  ERR_clear_error();  // the end of the PEM text
  BioPtr key_bio = memBio(key_pem);
  c->key_ = PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr);
  if (c->key_ == nullptr) {
    opensslError();
    return Status::error("tls.key: no PEM private key could be read", ErrorSource::kConfig);
  }
  if (X509_check_private_key(c->cert_, c->key_) != 1) {
    opensslError();
    return Status::error("tls.key does not match the certificate in tls.crt", ErrorSource::kConfig);
  }
  for (const std::string& n : altNames(c->cert_, GEN_DNS)) c->names_.push_back(lower(n));
  if (c->names_.empty()) {
    std::string cn = commonName(c->cert_);
    if (!cn.empty()) c->names_.push_back(lower(cn));
  }
  c->subject_ = nameText(X509_get_subject_name(c->cert_));
  BioPtr time_bio(BIO_new(BIO_s_mem()));
  if (ASN1_TIME_print(time_bio.get(), X509_get0_notAfter(c->cert_)) == 1) {
    char* data = nullptr;
    long len = BIO_get_mem_data(time_bio.get(), &data);
    c->not_after_.assign(data, static_cast<size_t>(len));
  }
  return std::shared_ptr<const TlsCertificate>(std::move(c));
}

TlsCertificate::~TlsCertificate() {
  X509_free(cert_);
  EVP_PKEY_free(key_);
  if (chain_ != nullptr) sk_X509_pop_free(chain_, X509_free);
}

Result<std::shared_ptr<const TlsCaBundle>> TlsCaBundle::fromPem(std::string_view pem) {
  ERR_clear_error();
  std::shared_ptr<TlsCaBundle> b(new TlsCaBundle());
  b->store_ = X509_STORE_new();
  b->names_ = sk_X509_NAME_new_null();
  BioPtr bio = memBio(pem);
  int count = 0;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    X509_STORE_add_cert(b->store_, cert);
    sk_X509_NAME_push(b->names_, X509_NAME_dup(X509_get_subject_name(cert)));
    X509_free(cert);
    ++count;
  }
  ERR_clear_error();
  if (count == 0)
    return Status::error("ca.crt: no PEM certificate could be read", ErrorSource::kConfig);
  return std::shared_ptr<const TlsCaBundle>(std::move(b));
}

TlsCaBundle::~TlsCaBundle() {
  X509_STORE_free(store_);
  if (names_ != nullptr) sk_X509_NAME_pop_free(names_, X509_NAME_free);
}

// ---- SNI selection ---------------------------------------------------------------------

size_t selectListener(const std::vector<TlsListenerSettings>& listeners, std::string_view sni) {
  size_t best = SIZE_MAX, best_len = 0, any = SIZE_MAX;
  for (size_t i = 0; i < listeners.size(); ++i) {
    const std::string& h = listeners[i].hostname;
    if (h.empty()) {
      if (any == SIZE_MAX) any = i;
    } else if (h == sni) {
      return i;
    } else if (h.size() > 2 && h[0] == '*' && sni.size() > h.size() - 1 &&
               sni.substr(sni.size() - (h.size() - 1)) == std::string_view(h).substr(1) &&
               h.size() > best_len) {
      // Gateway API wildcards match one or more labels; the longest suffix wins.
      best = i;
      best_len = h.size();
    }
  }
  if (best != SIZE_MAX) return best;
  return any != SIZE_MAX ? any : 0;
}

size_t selectCertificate(const std::vector<std::shared_ptr<const TlsCertificate>>& certs,
                         std::string_view sni) {
  if (sni.empty()) return 0;
  for (size_t i = 0; i < certs.size(); ++i)
    for (const std::string& n : certs[i]->names())
      if (n == sni) return i;
  for (size_t i = 0; i < certs.size(); ++i)
    for (const std::string& n : certs[i]->names())
      if (certWildcardMatch(n, sni)) return i;
  return 0;
}

// ---- Server context --------------------------------------------------------------------

struct TlsCallbacks {
  // Before the ClientHello is processed: the listener for the SNI decides the certificate,
  // the protocol floor, client certificate verification and the session context (so a
  // session from one listener never resumes on another).
  static int clientHello(SSL* ssl, int* alert, void* arg) {
    auto* self = static_cast<const ServerTlsContext*>(arg);
    auto* transport = static_cast<Transport*>(SSL_get_app_data(ssl));
    std::string sni = clientHelloServerName(ssl);
    const std::vector<TlsListenerSettings>& listeners = self->settings_.listeners;
    size_t li = selectListener(listeners, sni);
    if (transport != nullptr) transport->listener_index_ = static_cast<uint16_t>(li);
    const TlsListenerSettings& l = listeners[li];
    const TlsCertificate& cert = *l.certificates[selectCertificate(l.certificates, sni)];
    if (SSL_use_cert_and_key(ssl, cert.cert(), cert.key(), cert.chain(), 1) != 1) {
      *alert = SSL_AD_INTERNAL_ERROR;
      return SSL_CLIENT_HELLO_ERROR;
    }
    SSL_set_min_proto_version(ssl, l.min_version);
    unsigned char sid[SHA256_DIGEST_LENGTH];
    unsigned int sid_len = 0;
    std::string sid_input = l.id + '|' + std::to_string(static_cast<int>(l.client_mode));
    EVP_Digest(sid_input.data(), sid_input.size(), sid, &sid_len, EVP_sha256(), nullptr);
    SSL_set_session_id_context(ssl, sid, std::min<unsigned>(sid_len, SSL_MAX_SID_CTX_LENGTH));
    if (l.client_ca != nullptr && l.client_mode != ClientCertMode::kNone) {
      int mode = SSL_VERIFY_PEER;
      if (l.client_mode == ClientCertMode::kRequired) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
      SSL_set_verify(ssl, mode, nullptr);
      SSL_set1_verify_cert_store(ssl, l.client_ca->store());
      SSL_set_client_CA_list(ssl, SSL_dup_CA_list(l.client_ca->names()));
    }
    return SSL_CLIENT_HELLO_SUCCESS;
  }

  static int alpnSelect(SSL*, const unsigned char** out, unsigned char* outlen,
                        const unsigned char* in, unsigned int inlen, void* arg) {
    auto* self = static_cast<const ServerTlsContext*>(arg);
    unsigned char* selected = nullptr;
    const auto* server = reinterpret_cast<const unsigned char*>(self->alpn_wire_.data());
    if (SSL_select_next_proto(&selected, outlen, server,
                              static_cast<unsigned int>(self->alpn_wire_.size()), in,
                              inlen) != OPENSSL_NPN_NEGOTIATED) {
      return SSL_TLSEXT_ERR_ALERT_FATAL;  // no_application_protocol
    }
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
};

Result<std::shared_ptr<const ServerTlsContext>> ServerTlsContext::build(TlsPortSettings settings) {
  if (settings.listeners.empty())
    return Status::error("no TLS listener on the port", ErrorSource::kConfig);
  for (const TlsListenerSettings& l : settings.listeners)
    if (l.certificates.empty())
      return Status::error("listener " + l.id + " has no certificate", ErrorSource::kConfig);
  std::shared_ptr<ServerTlsContext> c(new ServerTlsContext());
  c->settings_ = std::move(settings);
  for (const std::string& p : c->settings_.alpn) {
    if (p.empty() || p.size() > 255) continue;
    c->alpn_wire_.push_back(static_cast<char>(p.size()));
    c->alpn_wire_ += p;
  }
  ERR_clear_error();
  c->ctx_ = SSL_CTX_new(TLS_server_method());
  if (c->ctx_ == nullptr) return Status::error("SSL_CTX_new: " + opensslError());
  SSL_CTX* ctx = c->ctx_;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  // Resumption by tickets only (no cache shared between workers); TLS 1.3 tickets are
  // stateless. The ticket keys are the process's, so tickets outlive a reload.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (const unsigned char* keys = processTicketKeys())
    SSL_CTX_set_tlsext_ticket_keys(ctx, const_cast<unsigned char*>(keys), 80);
  static const unsigned char kSid[] = "portico";
  SSL_CTX_set_session_id_context(ctx, kSid, sizeof kSid - 1);
  SSL_CTX_set_client_hello_cb(ctx, &TlsCallbacks::clientHello, c.get());
  if (!c->alpn_wire_.empty()) SSL_CTX_set_alpn_select_cb(ctx, &TlsCallbacks::alpnSelect, c.get());
  return std::shared_ptr<const ServerTlsContext>(std::move(c));
}

ServerTlsContext::~ServerTlsContext() { SSL_CTX_free(ctx_); }

bool ServerTlsContext::misdirected(size_t handshake_listener, std::string_view listener_id) const {
  const std::vector<TlsListenerSettings>& ls = settings_.listeners;
  if (handshake_listener < ls.size() && ls[handshake_listener].id == listener_id) return false;
  for (const TlsListenerSettings& l : ls) {
    if (l.id != listener_id) continue;
    if (l.client_ca == nullptr) return false;
    const TlsListenerSettings* h =
        handshake_listener < ls.size() ? &ls[handshake_listener] : nullptr;
    return h == nullptr || h->client_ca != l.client_ca || h->client_mode != l.client_mode;
  }
  return false;
}

// ---- Client context --------------------------------------------------------------------

Result<std::shared_ptr<const ClientTlsContext>> ClientTlsContext::build(
    ClientTlsSettings settings) {
  std::shared_ptr<ClientTlsContext> c(new ClientTlsContext());
  c->settings_ = std::move(settings);
  ERR_clear_error();
  c->ctx_ = SSL_CTX_new(TLS_client_method());
  if (c->ctx_ == nullptr) return Status::error("SSL_CTX_new: " + opensslError());
  SSL_CTX* ctx = c->ctx_;
  const ClientTlsSettings& s = c->settings_;
  SSL_CTX_set_min_proto_version(ctx, s.min_version);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  if (s.insecure_skip_verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (s.ca != nullptr) {
      SSL_CTX_set1_cert_store(ctx, s.ca->store());
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
      return Status::error("no default CA certificates: " + opensslError());
    }
  }
  if (s.client_certificate != nullptr) {
    const TlsCertificate& cert = *s.client_certificate;
    if (SSL_CTX_use_cert_and_key(ctx, cert.cert(), cert.key(), cert.chain(), 1) != 1)
      return Status::error("client certificate: " + opensslError());
  }
  std::string wire;
  for (const std::string& p : s.alpn) {
    if (p.empty() || p.size() > 255) continue;
    wire.push_back(static_cast<char>(p.size()));
    wire += p;
  }
  if (!wire.empty())
    SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(wire.data()),
                            static_cast<unsigned int>(wire.size()));
  return std::shared_ptr<const ClientTlsContext>(std::move(c));
}

ClientTlsContext::~ClientTlsContext() { SSL_CTX_free(ctx_); }

// ---- Peer certificate ------------------------------------------------------------------

std::string PeerCertificateInfo::xfcc() const {
  if (!present) return "";
  std::string out = "Hash=" + hash + ";Subject=\"";
  for (char c : subject) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  // URI and DNS values are written as is unless they hold a separator.
  auto append = [&](std::string_view key, const std::string& v) {
    out += ';';
    out += key;
    out += '=';
    if (v.find_first_of(",;=\"") == std::string::npos) {
      out += v;
      return;
    }
    out += '"';
    for (char c : v) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  };
  for (const std::string& u : uris) append("URI", u);
  for (const std::string& d : dns) append("DNS", d);
  return out;
}

// ---- Transport -------------------------------------------------------------------------

Transport::Transport(int fd, std::shared_ptr<const ServerTlsContext> tls)
    : fd_(fd), mode_(Mode::kServer) {
  ssl_ = SSL_new(tls->ctx());
  context_ = std::move(tls);
  if (ssl_ != nullptr && SSL_set_fd(ssl_, fd_) == 1) {
    SSL_set_accept_state(ssl_);
    SSL_set_app_data(ssl_, this);
  } else {
    SSL_free(ssl_);
    ssl_ = nullptr;
    ERR_clear_error();
  }
}

Transport::Transport(int fd, std::shared_ptr<const ClientTlsContext> tls,
                     const std::string& server_name)
    : fd_(fd) {
  startClientTls(std::move(tls), server_name);
}

bool Transport::startClientTls(std::shared_ptr<const ClientTlsContext> tls,
                               const std::string& server_name) {
  if (mode_ != Mode::kPlain || fd_ < 0) return false;
  mode_ = Mode::kClient;
  ssl_ = SSL_new(tls->ctx());
  bool ok = ssl_ != nullptr && SSL_set_fd(ssl_, fd_) == 1;
  if (ok && !server_name.empty()) {
    ok = SSL_set_tlsext_host_name(ssl_, server_name.c_str()) == 1;
    if (ok && !tls->settings().insecure_skip_verify)
      ok = SSL_set1_host(ssl_, server_name.c_str()) == 1;
  }
  context_ = std::move(tls);
  if (ok) {
    SSL_set_connect_state(ssl_);
    SSL_set_app_data(ssl_, this);
  } else {
    SSL_free(ssl_);
    ssl_ = nullptr;
    ERR_clear_error();
  }
  return ok;
}

Transport::Transport(Transport&& o) noexcept { *this = std::move(o); }

Transport& Transport::operator=(Transport&& o) noexcept {
  if (this == &o) return *this;
  close();
  fd_ = std::exchange(o.fd_, -1);
  ssl_ = std::exchange(o.ssl_, nullptr);
  mode_ = std::exchange(o.mode_, Mode::kPlain);
  context_ = std::move(o.context_);
  want_write_ = std::exchange(o.want_write_, false);
  want_read_ = std::exchange(o.want_read_, false);
  listener_index_ = o.listener_index_;
  peer_ = std::move(o.peer_);
  if (ssl_ != nullptr) SSL_set_app_data(ssl_, this);
  return *this;
}

bool Transport::handshakeDone() const {
  return !isTls() || (ssl_ != nullptr && SSL_is_init_finished(ssl_));
}

ssize_t Transport::read(char* buf, size_t len) {
  if (!isTls()) return ::recv(fd_, buf, len, 0);
  if (ssl_ == nullptr) {
    errno = ECONNRESET;
    return -1;
  }
  ERR_clear_error();
  int n = SSL_read(ssl_, buf, static_cast<int>(std::min<size_t>(len, INT32_MAX)));
  if (n > 0) {
    want_write_ = false;
    return n;
  }
  return fail(n, /*is_write=*/false);
}

ssize_t Transport::write(const char* buf, size_t len) {
  if (!isTls()) return ::send(fd_, buf, len, MSG_NOSIGNAL);
  if (ssl_ == nullptr) {
    errno = ECONNRESET;
    return -1;
  }
  if (len == 0) return 0;
  ERR_clear_error();
  int n = SSL_write(ssl_, buf, static_cast<int>(std::min<size_t>(len, INT32_MAX)));
  if (n > 0) {
    want_read_ = false;
    return n;
  }
  return fail(n, /*is_write=*/true);
}

ssize_t Transport::fail(int ssl_result, bool is_write) {
  int saved = errno;
  int err = SSL_get_error(ssl_, ssl_result);
  switch (err) {
    case SSL_ERROR_WANT_READ:
      if (is_write) {
        want_read_ = true;
      } else {
        want_write_ = false;
      }
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_WANT_WRITE:
      if (is_write) {
        want_read_ = false;
      } else {
        want_write_ = true;
      }
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_ZERO_RETURN:
      if (!is_write) return 0;
      errno = EPIPE;
      return -1;
    case SSL_ERROR_SSL: {
      unsigned long e = ERR_peek_last_error();
      if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_HTTP_REQUEST) {
        // Plain HTTP on a TLS port: answer in plain text (best effort), then close.
        drainInput(fd_);
        [[maybe_unused]] ssize_t ignored =
            ::send(fd_, kPlainHttpAnswer.data(), kPlainHttpAnswer.size(), MSG_NOSIGNAL);
        ::shutdown(fd_, SHUT_WR);
      }
      break;
    }
    default:
      break;
  }
  ERR_clear_error();
  // A fatal error: no close_notify may follow.
  SSL_set_quiet_shutdown(ssl_, 1);
  errno = err == SSL_ERROR_SYSCALL && saved != 0 && saved != EAGAIN ? saved : ECONNRESET;
  return -1;
}

size_t Transport::pending() const {
  return ssl_ != nullptr ? static_cast<size_t>(SSL_pending(ssl_)) : 0;
}

std::string_view Transport::alpn() const {
  if (ssl_ == nullptr) return {};
  const unsigned char* p = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &p, &len);
  return {reinterpret_cast<const char*>(p), len};
}

std::string_view Transport::serverName() const {
  if (ssl_ == nullptr) return {};
  const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
  return name ? std::string_view(name) : std::string_view();
}

const PeerCertificateInfo& Transport::peerCertificateInfo() {
  if (peer_ != nullptr) return *peer_;
  peer_ = std::make_unique<PeerCertificateInfo>();
  if (ssl_ == nullptr || !SSL_is_init_finished(ssl_)) return *peer_;
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (cert == nullptr || SSL_get_verify_result(ssl_) != X509_V_OK) return *peer_;
  PeerCertificateInfo& p = *peer_;
  p.present = true;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  X509_digest(cert, EVP_sha256(), md, &md_len);
  static const char kHex[] = "0123456789abcdef";
  for (unsigned int i = 0; i < md_len; ++i) {
    p.hash += kHex[md[i] >> 4];
    p.hash += kHex[md[i] & 15];
  }
  p.subject = nameText(X509_get_subject_name(cert));
  p.uris = altNames(cert, GEN_URI);
  p.dns = altNames(cert, GEN_DNS);
  return p;
}

void Transport::shutdownWrite() {
  if (fd_ < 0) return;
  if (ssl_ != nullptr && SSL_is_init_finished(ssl_)) {
    ERR_clear_error();
    SSL_shutdown(ssl_);  // sends close_notify if the socket takes it; never waits for the peer
    ERR_clear_error();
  }
  ::shutdown(fd_, SHUT_WR);
}

void Transport::close() {
  if (ssl_ != nullptr) {
    // Unread input would turn the close into a reset that can destroy what was just sent (a
    // TLS alert, the last response): read what has arrived first.
    drainInput(fd_);
    SSL_free(ssl_);
    ssl_ = nullptr;
  }
  context_.reset();
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

}  // namespace portico::net
