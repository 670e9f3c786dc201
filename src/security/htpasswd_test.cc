// htpasswd parsing and password checks against hashes written by the real tools: Apache's
// `htpasswd` (apache2-utils, run here through popen) and `openssl passwd -apr1`.
#include "security/htpasswd.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace portico::security {
namespace {

using Scheme = HtpasswdUser::Scheme;

std::string run(const std::string& cmd) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return out;
  char buf[512];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  pclose(f);
  return out;
}

// `htpasswd -nb<flags> user password` (the password single-quoted for the shell).
std::string htpasswdLine(const std::string& flags, const std::string& user,
                         const std::string& password) {
  return run("htpasswd -nb" + flags + " " + user + " '" + password + "' 2>/dev/null");
}

HtpasswdUser parseOne(const std::string& text) {
  std::string error;
  auto users = parseHtpasswd(text, &error);
  EXPECT_TRUE(users.has_value()) << error << " in: " << text;
  if (!users || users->size() != 1) return {};
  return (*users)[0];
}

TEST(Htpasswd, EverySchemeFromApacheHtpasswd) {
  struct Case {
    std::string flags;
    Scheme scheme;
  };
  for (const Case& c :
       {Case{"m", Scheme::kApr1}, Case{"s", Scheme::kSha1}, Case{"2", Scheme::kSha256},
        Case{"5", Scheme::kSha512}, Case{"B", Scheme::kBcrypt}, Case{"B -C 4", Scheme::kBcrypt},
        Case{"2 -r 10000", Scheme::kSha256}}) {
    SCOPED_TRACE(c.flags);
    for (const std::string password : {"s3cret", "p@ss:word with spaces", "", "ünïcödé"}) {
      std::string line = htpasswdLine(c.flags, "alice", password);
      ASSERT_FALSE(line.empty()) << "htpasswd not installed?";
      HtpasswdUser u = parseOne(line);
      EXPECT_EQ(u.name, "alice");
      EXPECT_EQ(u.scheme, c.scheme);
      EXPECT_TRUE(verifyPassword(u, password)) << line;
      EXPECT_FALSE(verifyPassword(u, password + "x"));
      EXPECT_FALSE(verifyPassword(u, "S3cret"));
      if (!password.empty()) {
        EXPECT_FALSE(verifyPassword(u, password.substr(1)));
      }
    }
  }
}

// Lines committed as written by htpasswd 2.4 (apache2-utils) on Debian: the parser and the
// checks do not depend on the tool being installed.
TEST(Htpasswd, CommittedVectors) {
  const char* text =
      "# made with htpasswd -nb{m,s,2,5,B}\n"
      "\n"
      "alice:$apr1$SWr8P11q$JxB3tS1JHcz.d.zBQFg8C/\n"
      "bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\r\n"
      "carol:$5$uEhvXwFJFrKDnaZr$dTUhDTxoiCUhqUdVDZjdqkQ00rAmIZe4irXyzbuk6d/\n"
      "dave:$6$dUiDKSenHSqSbS15$MwsqHgT4vRY2d9X375m1hzyGPN1zG/wTkL6wQraIIO0gJeCuPyH7S9sJQcHL/"
      "I2RtC7pbmHwqhoZQtV858s910\n"
      "erin:$2y$05$6DaEYOUbJ3UTgoVL2YkIx.9yagFw1Rk.5LRElUIYiVhmGmSfAE.Iq\n"
      "hank:$5$rounds=10000$EUzcKVqKnYUGCNKI$gUU7Yddh7C/WpamyLz43kvoiMC/FznWnvX4fiIagE21";
  std::string error;
  auto users = parseHtpasswd(text, &error);
  ASSERT_TRUE(users) << error;
  ASSERT_EQ(users->size(), 6u);
  const char* passwords[] = {"p@ss:word", "secret", "x", "y", "z", "q"};
  const Scheme schemes[] = {Scheme::kApr1,   Scheme::kSha1,   Scheme::kSha256,
                            Scheme::kSha512, Scheme::kBcrypt, Scheme::kSha256};
  for (size_t i = 0; i < users->size(); ++i) {
    SCOPED_TRACE((*users)[i].name);
    EXPECT_EQ((*users)[i].scheme, schemes[i]);
    EXPECT_TRUE(verifyPassword((*users)[i], passwords[i]));
    EXPECT_FALSE(verifyPassword((*users)[i], passwords[(i + 1) % 6]));
  }
}

TEST(Htpasswd, Apr1MatchesOpensslPasswd) {
  for (const std::string password : {"a", "password", "0123456789abcdef0123456789"}) {
    std::string hash = run("openssl passwd -apr1 -salt xyzSALT1 '" + password + "'");
    while (!hash.empty() && hash.back() == '\n') hash.pop_back();
    ASSERT_TRUE(hash.starts_with("$apr1$xyzSALT1$")) << hash;
    EXPECT_EQ(apr1Crypt(password, hash), hash);
    EXPECT_EQ(apr1Crypt(password, "$apr1$xyzSALT1"), hash);
  }
  EXPECT_EQ(apr1Crypt("x", "$1$abc$"), "");
}

TEST(Htpasswd, SortedByName) {
  auto users = parseHtpasswd(
      "zed:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n"
      "amy:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n"
      "  # indented comment\n"
      "   \n"
      "mia:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n",
      nullptr);
  ASSERT_TRUE(users);
  ASSERT_EQ(users->size(), 3u);
  EXPECT_EQ((*users)[0].name, "amy");
  EXPECT_EQ((*users)[1].name, "mia");
  EXPECT_EQ((*users)[2].name, "zed");
}

TEST(Htpasswd, RefusedLinesSayWhy) {
  struct Case {
    std::string text;
    std::string error;
  };
  const std::string ok = "bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n";
  for (const Case& c : {
           Case{ok + "# c\nfrank:0KXRN6DNObY.E\n", "line 3: user \"frank\": crypt DES hashes"},
           Case{ok + "gina:v\n", "line 2: user \"gina\": plain-text or unknown password hash"},
           Case{ok + ok, "line 2: duplicate user \"bob\""},
           Case{"nocolon\n", "line 1: expected user:hash"},
           Case{":{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n", "line 1: empty user name"},
           Case{"bob:\n", "line 1: user \"bob\" has no password hash"},
           Case{"b ob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n", "line 1: user name has a space"},
           Case{"x:$1$abc$def\n", "line 1: user \"x\": unsupported hash scheme"},
           Case{"x:$2y$05$short\n", "line 1: user \"x\": malformed bcrypt hash"},
           Case{"x:$2y$99$6DaEYOUbJ3UTgoVL2YkIx.9yagFw1Rk.5LRElUIYiVhmGmSfAE.Iq\n",
                "line 1: user \"x\": malformed bcrypt hash"},
           Case{"x:$apr1$toolongsalt$JxB3tS1JHcz.d.zBQFg8C/\n", "malformed $apr1$ hash"},
           Case{"x:$5$salt$tooshort\n", "malformed $5$ (SHA-256-crypt) hash"},
           Case{"x:$6$salt$tooshort\n", "malformed $6$ (SHA-512-crypt) hash"},
           Case{"x:{SHA}abc\n", "malformed {SHA} hash"},
       }) {
    SCOPED_TRACE(c.text);
    std::string error;
    EXPECT_FALSE(parseHtpasswd(c.text, &error));
    EXPECT_NE(error.find(c.error), std::string::npos) << error;
  }
  std::string error;
  auto empty = parseHtpasswd("# nothing\n\n", &error);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

TEST(Htpasswd, PasswordWithNulNeverMatches) {
  HtpasswdUser u = parseOne(htpasswdLine("B -C 4", "u", "ab"));
  EXPECT_TRUE(verifyPassword(u, "ab"));
  EXPECT_FALSE(verifyPassword(u, std::string("ab\0", 3)));
}

}  // namespace
}  // namespace portico::security
