#include "net/tls.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <cerrno>
#include <string>
#include <vector>

#include "net/tls_testing.h"

namespace portico::net {
namespace {

using testing::makeCertificate;
using testing::Pem;

std::shared_ptr<const TlsCertificate> certificate(const std::string& cn,
                                                  const std::vector<std::string>& dns) {
  Pem pem = makeCertificate(cn, dns);
  auto c = TlsCertificate::fromPem(pem.cert, pem.key);
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.value();
}

TEST(TlsCertificate, NamesAreTheDnsSansElseTheCommonName) {
  EXPECT_EQ(certificate("ignored", {"A.example.com", "*.b.example.com"})->names(),
            (std::vector<std::string>{"a.example.com", "*.b.example.com"}));
  EXPECT_EQ(certificate("Only.CN.example", {})->names(),
            (std::vector<std::string>{"only.cn.example"}));
  EXPECT_EQ(certificate("x", {})->subject(), "CN=x");
}

TEST(TlsCertificate, RejectsBadPemAndMismatchedKeys) {
  Pem a = makeCertificate("a", {}), b = makeCertificate("b", {});
  auto bad_cert = TlsCertificate::fromPem("not a certificate", a.key);
  ASSERT_FALSE(bad_cert.ok());
  EXPECT_EQ(bad_cert.status().message(), "tls.crt: no PEM certificate could be read");
  auto bad_key = TlsCertificate::fromPem(a.cert, "-----BEGIN PRIVATE KEY-----\nAAAA\n");
  ASSERT_FALSE(bad_key.ok());
  EXPECT_EQ(bad_key.status().message(), "tls.key: no PEM private key could be read");
  auto mismatch = TlsCertificate::fromPem(a.cert, b.key);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_EQ(mismatch.status().message(), "tls.key does not match the certificate in tls.crt");
  // A chain after the leaf is kept.
  EXPECT_TRUE(TlsCertificate::fromPem(a.cert + b.cert, a.key).ok());
}

TEST(TlsSni, CertificateExactThenWildcardThenFirst) {
  std::vector<std::shared_ptr<const TlsCertificate>> certs = {
      certificate("default", {"default.test"}),
      certificate("wild", {"*.example.com"}),
      certificate("exact", {"api.example.com", "www.example.org"}),
  };
  EXPECT_EQ(selectCertificate(certs, "api.example.com"), 2u);
  EXPECT_EQ(selectCertificate(certs, "www.example.org"), 2u);
  EXPECT_EQ(selectCertificate(certs, "shop.example.com"), 1u);
  // A certificate wildcard covers one label only.
  EXPECT_EQ(selectCertificate(certs, "a.b.example.com"), 0u);
  EXPECT_EQ(selectCertificate(certs, "example.com"), 0u);
  EXPECT_EQ(selectCertificate(certs, "unknown.test"), 0u);
  EXPECT_EQ(selectCertificate(certs, ""), 0u);
  EXPECT_EQ(selectCertificate(certs, "default.test"), 0u);
}

TEST(TlsSni, ListenerExactThenLongestWildcardThenCatchAllThenFirst) {
  auto listener = [](std::string hostname) {
    TlsListenerSettings l;
    l.hostname = std::move(hostname);
    return l;
  };
  std::vector<TlsListenerSettings> ls = {listener("a.example.com"), listener("*.example.com"),
                                         listener("*.api.example.com"), listener("")};
  EXPECT_EQ(selectListener(ls, "a.example.com"), 0u);
  EXPECT_EQ(selectListener(ls, "b.example.com"), 1u);
  EXPECT_EQ(selectListener(ls, "x.y.example.com"), 1u);  // Gateway API: one or more labels
  EXPECT_EQ(selectListener(ls, "v1.api.example.com"), 2u);
  EXPECT_EQ(selectListener(ls, "example.com"), 3u);
  EXPECT_EQ(selectListener(ls, ""), 3u);
  ls.pop_back();  // without a catch-all listener: the first
  EXPECT_EQ(selectListener(ls, "other.test"), 0u);
}

TEST(TlsPeer, XfccQuotesTheSubjectAndSeparators) {
  PeerCertificateInfo p;
  EXPECT_EQ(p.xfcc(), "");
  p.present = true;
  p.hash = "ab";
  p.subject = "CN=client,O=Ex \"Q\"";
  p.uris = {"spiffe://example.com/a"};
  p.dns = {"a.example.com", "b;c"};
  EXPECT_EQ(p.xfcc(),
            "Hash=ab;Subject=\"CN=client,O=Ex \\\"Q\\\"\";URI=spiffe://example.com/a;"
            "DNS=a.example.com;DNS=\"b;c\"");
}

TEST(TlsContext, BuildNeedsACertificatePerListener) {
  TlsPortSettings s;
  EXPECT_FALSE(ServerTlsContext::build(s).ok());
  TlsListenerSettings l;
  l.id = "default/gw/https";
  s.listeners.push_back(l);
  EXPECT_FALSE(ServerTlsContext::build(s).ok());
  s.listeners[0].certificates.push_back(certificate("a", {"a.test"}));
  auto ctx = ServerTlsContext::build(s);
  ASSERT_TRUE(ctx.ok()) << ctx.status().message();
  EXPECT_NE(ctx.value()->ctx(), nullptr);
  EXPECT_EQ(ctx.value()->settings().alpn, (std::vector<std::string>{"http/1.1"}));
}

// ---- Transport over a socketpair: a server and a client Transport in one thread ----------

struct Pair {
  Transport server, client;
};

class TransportTest : public ::testing::Test {
 protected:
  // A server for "a.test" (client certificates per `client_ca`/`mode`) and a client that
  // trusts it, connected by a non-blocking socketpair.
  Pair connect(const std::string& sni, std::shared_ptr<const TlsCaBundle> client_ca = nullptr,
               ClientCertMode mode = ClientCertMode::kNone,
               std::shared_ptr<const TlsCertificate> client_cert = nullptr) {
    TlsPortSettings ps;
    TlsListenerSettings l;
    l.id = "default/gw/https";
    l.certificates.push_back(server_cert_);
    l.client_ca = std::move(client_ca);
    l.client_mode = mode;
    ps.listeners.push_back(l);
    auto server_ctx = ServerTlsContext::build(ps);
    EXPECT_TRUE(server_ctx.ok());
    ClientTlsSettings cs;
    cs.ca = server_ca_;
    cs.client_certificate = std::move(client_cert);
    auto client_ctx = ClientTlsContext::build(cs);
    EXPECT_TRUE(client_ctx.ok()) << client_ctx.status().message();
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    return Pair{Transport(sv[0], server_ctx.value()), Transport(sv[1], client_ctx.value(), sni)};
  }

  // Alternates client writes of `msg` and server reads until the server reads something or
  // either side fails. Returns what the server read ("" on failure; *server_errno set).
  static std::string exchange(Pair& p, std::string_view msg, int* server_errno = nullptr) {
    char buf[256];
    bool sent = false;
    for (int i = 0; i < 50; ++i) {
      if (!sent) {
        ssize_t w = p.client.write(msg.data(), msg.size());
        if (w > 0) sent = true;
        if (w < 0 && errno != EAGAIN) break;
      }
      ssize_t n = p.server.read(buf, sizeof buf);
      if (n > 0) return std::string(buf, static_cast<size_t>(n));
      if (n == 0 || errno != EAGAIN) {
        if (server_errno != nullptr) *server_errno = n == 0 ? 0 : errno;
        return "";
      }
    }
    return "";
  }

  Pem server_pem_ = makeCertificate("a.test", {"a.test"});
  std::shared_ptr<const TlsCertificate> server_cert_ =
      TlsCertificate::fromPem(server_pem_.cert, server_pem_.key).value();
  std::shared_ptr<const TlsCaBundle> server_ca_ = TlsCaBundle::fromPem(server_pem_.cert).value();
};

TEST_F(TransportTest, HandshakeAlpnSniDataAndMoveToAnotherOwner) {
  Pair p = connect("a.test");
  EXPECT_TRUE(p.server.isTls());
  EXPECT_FALSE(p.server.handshakeDone());
  EXPECT_EQ(exchange(p, "ping"), "ping");
  EXPECT_TRUE(p.server.handshakeDone());
  EXPECT_EQ(p.server.alpn(), "http/1.1");
  EXPECT_EQ(p.client.alpn(), "http/1.1");
  EXPECT_EQ(p.server.serverName(), "a.test");
  EXPECT_FALSE(p.server.peerCertificateInfo().present);
  EXPECT_TRUE(p.client.peerCertificateInfo().present);  // the verified server certificate
  // The accepted connection continues in another object.
  int fd = p.server.fd();
  Transport moved = std::move(p.server);
  EXPECT_EQ(p.server.fd(), -1);
  EXPECT_EQ(moved.fd(), fd);
  ASSERT_EQ(moved.write("pong", 4), 4);
  char buf[16];
  ssize_t n = -1;
  for (int i = 0; i < 10 && n < 0; ++i) n = p.client.read(buf, sizeof buf);
  ASSERT_EQ(n, 4);
  EXPECT_EQ(std::string(buf, 4), "pong");
  // close_notify, then EOF for the client.
  moved.shutdownWrite();
  EXPECT_EQ(p.client.read(buf, sizeof buf), 0);
}

TEST_F(TransportTest, ClientRefusesAServerCertificateForAnotherName) {
  Pair p = connect("b.test");
  int server_errno = -1;
  EXPECT_EQ(exchange(p, "ping", &server_errno), "");
  EXPECT_EQ(p.client.write("x", 1), -1);  // verification failed: the session is dead
  EXPECT_NE(errno, EAGAIN);
}

TEST_F(TransportTest, RequiredClientCertificate) {
  Pem ca_pem = makeCertificate("client", {});
  auto client_cert = TlsCertificate::fromPem(ca_pem.cert, ca_pem.key).value();
  auto ca = TlsCaBundle::fromPem(ca_pem.cert).value();  // self-signed: its own CA
  {
    Pair p = connect("a.test", ca, ClientCertMode::kRequired);
    int server_errno = -1;
    EXPECT_EQ(exchange(p, "ping", &server_errno), "");
    EXPECT_EQ(server_errno, ECONNRESET);
  }
  {
    Pair p = connect("a.test", ca, ClientCertMode::kRequired, client_cert);
    EXPECT_EQ(exchange(p, "ping"), "ping");
    const PeerCertificateInfo& peer = p.server.peerCertificateInfo();
    EXPECT_TRUE(peer.present);
    EXPECT_EQ(peer.subject, "CN=client");
    EXPECT_EQ(peer.hash.size(), 64u);
  }
  {
    Pair p = connect("a.test", ca, ClientCertMode::kOptional);
    EXPECT_EQ(exchange(p, "ping"), "ping");
    EXPECT_FALSE(p.server.peerCertificateInfo().present);
  }
}

TEST_F(TransportTest, PlainTransportIsRecvAndSend) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  Transport a(sv[0]), b(sv[1]);
  EXPECT_FALSE(a.isTls());
  EXPECT_TRUE(a.handshakeDone());
  char buf[8];
  EXPECT_EQ(a.read(buf, sizeof buf), -1);
  EXPECT_EQ(errno, EAGAIN);
  ASSERT_EQ(b.write("hi", 2), 2);
  EXPECT_EQ(a.read(buf, sizeof buf), 2);
  b.close();
  EXPECT_EQ(a.read(buf, sizeof buf), 0);
  EXPECT_EQ(a.alpn(), "");
}

}  // namespace
}  // namespace portico::net
