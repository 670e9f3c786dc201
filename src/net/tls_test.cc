#include "net/tls.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <string>
#include <vector>

namespace portico::net {
namespace {

std::string pemOf(int (*write)(BIO*, void*), void* obj) {
  BIO* bio = BIO_new(BIO_s_mem());
  write(bio, obj);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

struct Pem {
  std::string cert, key;
};

// A self-signed P-256 certificate with subject CN `cn` and DNS SANs `dns`.
Pem makeCertificate(const std::string& cn, const std::vector<std::string>& dns) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, name);
  if (!dns.empty()) {
    std::string san;
    for (const std::string& d : dns) san += (san.empty() ? "DNS:" : ",DNS:") + d;
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(x, key, EVP_sha256());
  Pem out;
  out.cert = pemOf([](BIO* b, void* o) { return PEM_write_bio_X509(b, static_cast<X509*>(o)); }, x);
  out.key = pemOf(
      [](BIO* b, void* o) {
        return PEM_write_bio_PrivateKey(b, static_cast<EVP_PKEY*>(o), nullptr, nullptr, 0, nullptr,
                                        nullptr);
      },
      key);
  X509_free(x);
  EVP_PKEY_free(key);
  return out;
}

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

}  // namespace
}  // namespace portico::net
