// TLS (OpenSSL 3): certificates, the server context of a port, and Transport, the byte stream
// a connection reads and writes (plain TCP, or TLS over it).
//
// Contexts are built on the main thread when a config compiles and are immutable afterwards;
// a compiled config::Port refers to its context. Workers create one Transport per accepted
// connection; a Transport keeps its context alive, so a snapshot may be freed while
// connections accepted under it still run.
#pragma once

#include <openssl/types.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

// OpenSSL's stack types, declared at global scope (STACK_OF names them).
struct stack_st_X509;
struct stack_st_X509_NAME;

namespace portico::net {

// A certificate (with its chain) and its private key, checked to match. Immutable.
class TlsCertificate {
 public:
  // Parses PEM text: the leaf certificate first, then any chain certificates; the key in any
  // PEM key format OpenSSL reads (PKCS#8, RSA, EC). Fails when either does not parse or the
  // key does not belong to the certificate.
  static Result<std::shared_ptr<const TlsCertificate>> fromPem(std::string_view cert_pem,
                                                               std::string_view key_pem);
  ~TlsCertificate();
  TlsCertificate(const TlsCertificate&) = delete;
  TlsCertificate& operator=(const TlsCertificate&) = delete;

  // The names SNI is matched against: the DNS SANs, else the subject CN; lowercase.
  const std::vector<std::string>& names() const { return names_; }
  const std::string& subject() const { return subject_; }
  const std::string& notAfter() const { return not_after_; }  // "Nov 26 17:00:00 2027 GMT"
  X509* cert() const { return cert_; }
  EVP_PKEY* key() const { return key_; }
  STACK_OF(X509) * chain() const { return chain_; }

 private:
  TlsCertificate() = default;
  X509* cert_ = nullptr;
  EVP_PKEY* key_ = nullptr;
  STACK_OF(X509) * chain_ = nullptr;
  std::vector<std::string> names_;
  std::string subject_;
  std::string not_after_;
};

// A bundle of CA certificates that client certificates are verified against. Immutable.
class TlsCaBundle {
 public:
  // Parses one or more PEM certificates; fails when there is none or one does not parse.
  static Result<std::shared_ptr<const TlsCaBundle>> fromPem(std::string_view pem);
  ~TlsCaBundle();
  TlsCaBundle(const TlsCaBundle&) = delete;
  TlsCaBundle& operator=(const TlsCaBundle&) = delete;
  X509_STORE* store() const { return store_; }
  STACK_OF(X509_NAME) * names() const { return names_; }  // sent in CertificateRequest

 private:
  TlsCaBundle() = default;
  X509_STORE* store_ = nullptr;
  STACK_OF(X509_NAME) * names_ = nullptr;
};

enum class ClientCertMode : uint8_t {
  kNone,      // no certificate requested
  kRequired,  // the handshake fails without a certificate the CA bundle verifies
  kOptional,  // requested; a client without one proceeds; a presented one must verify
};

// The TLS settings of one Gateway listener on a port.
struct TlsListenerSettings {
  std::string id;        // "ns/gateway/listener", for logs
  std::string hostname;  // the listener's hostname: "" (any), "a.example.com", "*.example.com"
  std::vector<std::shared_ptr<const TlsCertificate>> certificates;  // at least one
  std::shared_ptr<const TlsCaBundle> client_ca;                     // null: no client certs
  std::vector<std::string> files;  // files the certificates and CAs were read from (reloads)
  ClientCertMode client_mode = ClientCertMode::kNone;
  int min_version = 0x0303;  // TLS1_2_VERSION or TLS1_3_VERSION
};

// The TLS settings of a port: every TLS listener on it, and what they share.
struct TlsPortSettings {
  // ALPN protocols offered, in server preference order ("h2", "http/1.1"). A client that
  // offers none of them is refused (no_application_protocol); one without ALPN proceeds.
  std::vector<std::string> alpn = {"http/1.1"};
  std::vector<TlsListenerSettings> listeners;  // in listener order; the first is the default
};

// SNI selection (exposed for tests). Both return an index, never fail on a non-empty input.
// The listener for `sni`: exact hostname, then the longest matching "*." wildcard, then a
// listener without hostname, else 0 (the port's first listener).
size_t selectListener(const std::vector<TlsListenerSettings>& listeners, std::string_view sni);
// The certificate for `sni`: an exact name, then a "*." wildcard name (one label), else 0.
size_t selectCertificate(const std::vector<std::shared_ptr<const TlsCertificate>>& certs,
                         std::string_view sni);

// The server side of TLS on one port. Immutable after build(); shared by every worker.
class ServerTlsContext {
 public:
  static Result<std::shared_ptr<const ServerTlsContext>> build(TlsPortSettings settings);
  ~ServerTlsContext();
  ServerTlsContext(const ServerTlsContext&) = delete;
  ServerTlsContext& operator=(const ServerTlsContext&) = delete;

  SSL_CTX* ctx() const { return ctx_; }
  const TlsPortSettings& settings() const { return settings_; }
  // Whether a request that Host routes to listener `listener_id` must be refused (421) on a
  // connection whose handshake chose listener `handshake_listener` (SNI): the routed listener
  // verifies client certificates and the handshake did not apply its verification.
  bool misdirected(size_t handshake_listener, std::string_view listener_id) const;

 private:
  ServerTlsContext() = default;
  SSL_CTX* ctx_ = nullptr;
  TlsPortSettings settings_;
  std::string alpn_wire_;  // settings_.alpn in ALPN wire format
  friend struct TlsCallbacks;
};

// The client side of TLS towards upstreams (one per Backend TLS setting). Immutable after
// build(); shared by every worker. Not wired to Backends yet: the building block for
// upstream TLS (Transport's client constructor).
struct ClientTlsSettings {
  std::shared_ptr<const TlsCaBundle> ca;  // null: the system's default CA paths
  bool insecure_skip_verify = false;      // no verification of the server certificate at all
  std::shared_ptr<const TlsCertificate> client_certificate;  // null: none (else mTLS)
  std::vector<std::string> alpn = {"http/1.1"};
  int min_version = 0x0303;
};

class ClientTlsContext {
 public:
  static Result<std::shared_ptr<const ClientTlsContext>> build(ClientTlsSettings settings);
  ~ClientTlsContext();
  ClientTlsContext(const ClientTlsContext&) = delete;
  ClientTlsContext& operator=(const ClientTlsContext&) = delete;
  SSL_CTX* ctx() const { return ctx_; }
  const ClientTlsSettings& settings() const { return settings_; }

 private:
  ClientTlsContext() = default;
  SSL_CTX* ctx_ = nullptr;
  ClientTlsSettings settings_;
};

// What the verified client certificate says, for x-forwarded-client-cert.
struct PeerCertificateInfo {
  bool present = false;  // a client certificate was presented and verified
  std::string hash;      // SHA-256 of the DER certificate, lowercase hex
  std::string subject;   // RFC 2253 ("CN=client,O=Example")
  std::vector<std::string> uris;
  std::vector<std::string> dns;
  // Envoy's XFCC element: Hash=...;Subject="...";URI=...;DNS=... ("" when !present).
  std::string xfcc() const;
};

// A connection's byte stream: plain TCP or server-side TLS over a non-blocking socket.
// Owns the socket. Movable: a connection may hand its Transport (and so the accepted socket
// and TLS session) to another connection object. Loop-thread only.
//
// read()/write() follow recv()/send(): > 0 bytes, 0 on EOF (read), -1 with errno set:
// EAGAIN when the operation must wait for the socket (see wantsRead()/wantsWrite()), another
// value when the connection failed. The TLS handshake runs inside read()/write().
class Transport {
 public:
  Transport() = default;
  explicit Transport(int fd) : fd_(fd) {}
  // A TLS server stream on `fd` (accept state). When the SSL object cannot be created the
  // transport is closed at once (fd() < 0 is not set; read() fails).
  Transport(int fd, std::shared_ptr<const ServerTlsContext> tls);
  // A TLS client stream on a connected (or connecting) `fd`: sends `server_name` as SNI and,
  // unless the context skips verification, checks the server certificate against it.
  Transport(int fd, std::shared_ptr<const ClientTlsContext> tls, const std::string& server_name);
  // Turns a plain transport into that TLS client stream (same socket). False when the SSL
  // object cannot be made (the transport then fails every read and write).
  bool startClientTls(std::shared_ptr<const ClientTlsContext> tls, const std::string& server_name);
  Transport(Transport&& o) noexcept;
  Transport& operator=(Transport&& o) noexcept;
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;
  ~Transport() { close(); }

  int fd() const { return fd_; }
  bool isTls() const { return mode_ != Mode::kPlain; }
  bool handshakeDone() const;

  ssize_t read(char* buf, size_t len);
  ssize_t write(const char* buf, size_t len);
  // The last read() returned EAGAIN because TLS must write the socket first (a handshake
  // flight): wait for EPOLLOUT, then read() again.
  bool wantsWrite() const { return want_write_; }
  // The last write() returned EAGAIN because TLS must read the socket first (a client's
  // handshake waiting for the server): wait for EPOLLIN, then write() again.
  bool wantsRead() const { return want_read_; }
  // Decrypted bytes buffered inside TLS that read() returns without touching the socket.
  size_t pending() const;

  // The negotiated ALPN protocol ("" without ALPN or TLS).
  std::string_view alpn() const;
  // The server name the client asked for ("" without SNI or TLS).
  std::string_view serverName() const;
  // The listener SNI selected (index into the context's listeners; 0 for plain).
  size_t listenerIndex() const { return listener_index_; }
  // The verified client certificate; computed once after the handshake.
  const PeerCertificateInfo& peerCertificateInfo();

  // Ends the write side: TLS close_notify (best effort, never blocks), then shutdown(SHUT_WR).
  void shutdownWrite();
  // Frees the TLS session and closes the socket. Idempotent.
  void close();

 private:
  friend struct TlsCallbacks;
  ssize_t fail(int ssl_result, bool is_write);

  enum class Mode : uint8_t { kPlain, kServer, kClient };

  int fd_ = -1;
  Mode mode_ = Mode::kPlain;
  bool want_write_ = false;
  bool want_read_ = false;
  uint16_t listener_index_ = 0;
  SSL* ssl_ = nullptr;
  std::shared_ptr<const void> context_;  // the ServerTlsContext or ClientTlsContext
  std::unique_ptr<PeerCertificateInfo> peer_;
};

}  // namespace portico::net
