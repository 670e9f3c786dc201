// Runs the llhttp fixture corpus (PORTICO_LLHTTP_CORPUS, llhttp 9.4.2 test/*.md) through
// Portico's HTTP/1 parser and compares what both make of each input: accepted or rejected,
// method/target/version or status/reason, header fields, body bytes, message count, and where
// the connection turns into a tunnel. Every strict case is compared unless it is listed in
// kDeviations below with the reason Portico knowingly differs; cases for llhttp's lenient modes
// must be rejected. Each case is run twice: all input at once, then one byte at a time.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "http1/parser.h"

namespace portico::http1 {
namespace {

namespace fs = std::filesystem;

struct Case {
  std::string file;  // relative to the corpus root, e.g. "request/sample.md"
  std::string name;  // the heading above the case
  int line = 0;
  std::string type;  // meta "type"
  bool skip_body = false;
  std::string input;
  std::vector<std::string> log;
};

std::string trimRight(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.pop_back();
  return s;
}

void appendUtf8(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xc0 | cp >> 6));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out->push_back(static_cast<char>(0xe0 | cp >> 12));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

// One global replacement pass of llhttp's md-test.ts: every `\` + c (c in `from`) becomes `to`.
std::string replaceEscape(const std::string& s, char from, char to) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == from) {
      out.push_back(to);
      ++i;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Escapes with a numeric argument: `\x` + hex digits (greedy) or `\` + 1-3 octal digits. The
// harness writes its JS string as UTF-8, so code points >= 0x80 become two bytes.
std::string replaceNumeric(const std::string& s, bool hex) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    size_t j = i + (hex ? 2 : 1);
    if (s[i] == '\\' && (!hex || (i + 1 < s.size() && s[i + 1] == 'x'))) {
      uint32_t v = 0;
      size_t k = j;
      while (k < s.size() && (hex ? std::isxdigit(static_cast<unsigned char>(s[k])) != 0
                                  : (s[k] >= '0' && s[k] <= '7' && k - j < 3))) {
        v = v * (hex ? 16 : 8) + static_cast<uint32_t>(std::stoi(s.substr(k, 1), nullptr, 16));
        ++k;
      }
      if (k > j) {
        appendUtf8(&out, v);
        i = k - 1;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

// The input conversion of llhttp's test/md-test.ts, step by step.
std::string convertInput(const std::vector<std::string>& lines) {
  std::string s;
  for (size_t i = 0; i < lines.size(); ++i) s += (i ? "\n" : "") + lines[i];
  std::string t;  // drop escaped newlines, then LF -> CRLF
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == '\n') {
      ++i;
    } else if (s[i] == '\n') {
      t += "\r\n";
    } else {
      t.push_back(s[i]);
    }
  }
  t = replaceEscape(t, 'r', '\r');
  t = replaceEscape(t, 'n', '\n');
  t = replaceEscape(t, 't', '\t');
  t = replaceEscape(t, 'f', '\f');
  t = replaceNumeric(t, true);
  return replaceNumeric(t, false);
}

std::vector<Case> loadCases(const fs::path& root, int* url_cases) {
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.path().extension() == ".md" && e.path().filename() != "README.md")
      files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::vector<Case> cases;
  for (const fs::path& path : files) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    std::string heading;
    nlohmann::json meta;
    int meta_line = 0;
    for (size_t i = 0; i < lines.size(); ++i) {
      const std::string& l = lines[i];
      if (l.rfind("#", 0) == 0) heading = l.substr(l.find_first_not_of("# "));
      if (l.rfind("<!-- meta=", 0) == 0) {
        meta = nlohmann::json::parse(l.substr(10, l.rfind("-->") - 10));
        meta_line = static_cast<int>(i + 1);
      }
      if (l == "```url") ++*url_cases;
      if (l != "```http") continue;
      Case c;
      c.file = fs::relative(path, root).string();
      c.name = heading;
      c.line = meta_line;
      c.type = meta.value("type", "");
      c.skip_body = meta.value("skipBody", false);
      std::vector<std::string> http;
      for (++i; i < lines.size() && lines[i] != "```"; ++i) http.push_back(lines[i]);
      c.input = convertInput(http);
      while (++i < lines.size() && lines[i] != "```log") {
      }
      for (++i; i < lines.size() && lines[i] != "```"; ++i)
        c.log.push_back(replaceEscape(replaceEscape(lines[i], 't', '\t'), 'f', '\f'));
      cases.push_back(std::move(c));
      meta = nlohmann::json();
    }
  }
  return cases;
}

// What a parser made of an input, in the terms both parsers share.
struct Message {
  bool head = false;
  std::string method, url, version, reason;
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool complete = false;
};

enum class End { kOpen, kRejected, kTunnel };
const char* endName(End e) {
  return e == End::kOpen ? "open" : e == End::kRejected ? "rejected" : "tunnel";
}

struct Outcome {
  std::vector<Message> messages;
  End end = End::kOpen;
  bool mid_message = false;  // input ended inside a message that needs more bytes
  int finish = -1;           // llhttp_finish() result, when the case checks it
  int host_injected = 0;
  std::string detail;
};

// Reads llhttp's event log.
Outcome fromLog(const std::vector<std::string>& log) {
  Outcome o;
  bool in_field = false;  // header_field spans continue the current name
  auto current = [&o]() -> Message& {
    if (o.messages.empty() || o.messages.back().complete) o.messages.emplace_back();
    return o.messages.back();
  };
  for (const std::string& l : log) {
    if (l.rfind("off=NULL finish=", 0) == 0) {
      o.finish = std::stoi(l.substr(16));
      continue;
    }
    const std::string ev = l.substr(l.find(' ') + 1);
    if (ev == "message begin") {
      o.messages.emplace_back();
    } else if (ev.rfind("len=", 0) == 0) {
      const size_t len = std::stoul(ev.substr(4));
      const size_t k = ev.find("span[") + 5;
      const std::string kind = ev.substr(k, ev.find(']', k) - k);
      const std::string raw = ev.substr(ev.find(']', k) + 2);
      std::string v = raw == "cr" ? "\r" : raw == "lf" ? "\n" : raw.substr(1, len);
      Message& m = current();
      if (kind == "method") m.method += v;
      if (kind == "url") m.url += v;
      if (kind == "version") m.version += v;
      if (kind == "status") m.reason += v;
      if (kind == "body") m.body += v;
      if (!m.head && kind == "header_field") {
        if (!in_field) m.headers.emplace_back();
        in_field = true;
        m.headers.back().first += v;
      }
      if (!m.head && kind == "header_value") {
        in_field = false;
        m.headers.back().second += v;
      }
    } else if (ev == "header_value complete") {
      in_field = false;
    } else if (ev.rfind("headers complete", 0) == 0) {
      Message& m = current();
      m.head = true;
      if (size_t k = ev.find("status="); k != std::string::npos)
        m.status = std::stoi(ev.substr(k + 7));
      for (auto& h : m.headers) h.second = trimRight(h.second);
    } else if (ev == "message complete") {
      current().complete = true;
    } else if (ev.rfind("error code=", 0) == 0) {
      o.end = ev.rfind("error code=22 ", 0) == 0 ? End::kTunnel : End::kRejected;
      break;
    }
  }
  return o;
}

constexpr std::string_view kInjectedHost = "Host: llhttp-corpus.invalid\r\n";

// Runs Portico's parser over the input delivered `step` bytes at a time (SIZE_MAX: at once),
// the way a proxy would: head, body, next message, until the input ends, an error, or a tunnel.
// HTTP/1.1 request heads llhttp parsed without Host (Portico must reject them, RFC 9112 §3.2)
// are re-parsed with a Host field inserted so that the rest of them is still compared; with
// `always_add_host`, any request missing Host is.
Outcome runPortico(const Case& c, const Outcome& llhttp, size_t step, bool always_add_host) {
  const bool request = c.type.rfind("request", 0) == 0;
  Outcome o;
  std::string input = c.input;
  size_t avail = std::min(step, input.size());
  size_t pos = 0;
  bool closed = false;  // the previous message ended the connection's reuse
  Limits limits;
  std::vector<Header> headers(limits.max_headers);
  BodyDecoder body;
  for (;;) {
    if (closed) {
      while (pos < input.size() && (input[pos] == '\r' || input[pos] == '\n')) ++pos;
      if (pos < input.size()) {
        o.end = End::kRejected;
        o.detail = "data after a message without keep-alive";
      }
      return o;
    }
    RequestHead req;
    ResponseHead res;
    req.headers = res.headers = headers.data();
    ParseResult r;
    size_t injected_at = std::string::npos;
    for (;;) {
      const std::string_view rest(input.data() + pos, avail - pos);
      r = request ? parseRequestHead(rest, limits, &req)
                  : parseResponseHead(rest, limits, "GET", &res);
      const size_t index = o.messages.size();
      if (r.status == ParseStatus::kError && r.error == Error::kMissingHost &&
          injected_at == std::string::npos &&
          (always_add_host || (index < llhttp.messages.size() && llhttp.messages[index].head))) {
        injected_at = input.find("\r\n", input.find_first_not_of("\r\n", pos)) + 2;
        input.insert(injected_at, kInjectedHost);
        avail += kInjectedHost.size();
        ++o.host_injected;
        continue;
      }
      if (r.status != ParseStatus::kIncomplete || avail == input.size()) break;
      avail = std::min(input.size(), avail + step);
    }
    if (r.status == ParseStatus::kError) {
      o.end = End::kRejected;
      o.detail = std::string("head: ") + std::string(describe(r.error));
      return o;
    }
    if (r.status == ParseStatus::kIncomplete) {
      o.mid_message = input.find_first_not_of("\r\n", pos) != std::string::npos;
      return o;
    }
    Message& m = o.messages.emplace_back();
    m.head = true;
    const HeadInfo& info = request ? req.info : res.info;
    const uint32_t count = request ? req.header_count : res.header_count;
    if (request) {
      m.method = req.method;
      m.url = req.target;
    } else {
      m.status = res.status;
      m.reason = res.reason;
    }
    m.version = info.version_minor ? "1.1" : "1.0";
    for (uint32_t i = 0; i < count; ++i) {
      if (injected_at != std::string::npos && headers[i].name.data() == input.data() + injected_at)
        continue;
      m.headers.emplace_back(headers[i].name, headers[i].value);
    }
    pos += r.consumed;
    if (request && req.method == "CONNECT") {
      m.complete = true;  // llhttp pauses here: what follows is the tunnel's
      o.end = End::kTunnel;
      return o;
    }
    body.reset(c.skip_body ? BodyKind::kNone : info.body, info.content_length);
    for (;;) {
      const BodyDecoder::Step s = body.decode(std::string_view(input.data() + pos, avail - pos));
      m.body.append(s.data);
      pos += s.consumed;
      if (s.status == ParseStatus::kError) {
        o.end = End::kRejected;
        o.detail = std::string("body: ") + std::string(describe(s.error));
        return o;
      }
      if (s.status == ParseStatus::kDone) break;
      if (s.consumed == 0) {
        if (avail == input.size()) {
          o.mid_message = info.body != BodyKind::kUntilClose;
          return o;
        }
        avail = std::min(input.size(), avail + step);
      }
    }
    m.complete = true;
    if (info.upgrade) {
      o.end = End::kTunnel;
      return o;
    }
    closed = !info.keep_alive;
  }
}

std::string show(const Outcome& o) {
  std::ostringstream s;
  s << "end=" << endName(o.end) << " messages=" << o.messages.size();
  for (const Message& m : o.messages) {
    s << "\n  [" << (m.head ? "head " : "") << (m.complete ? "complete" : "") << "] " << m.method
      << m.status << " " << m.url << m.reason << " v" << m.version << " body=" << m.body.size();
    for (const auto& [n, v] : m.headers) s << "\n    " << n << ": " << v;
  }
  if (!o.detail.empty()) s << "\n  (" << o.detail << ")";
  return s.str();
}

// Empty if Portico's outcome matches llhttp's, else what differs.
std::string compare(const Outcome& want, const Outcome& got, bool request) {
  if (want.end != got.end)
    return std::string("ends ") + endName(got.end) + ", llhttp " + endName(want.end);
  auto completed = [](const Outcome& o) {
    return std::count_if(o.messages.begin(), o.messages.end(),
                         [](const Message& m) { return m.complete; });
  };
  if (completed(want) != completed(got)) return "different number of complete messages";
  const size_t n = std::min(want.messages.size(), got.messages.size());
  for (size_t i = 0; i < n; ++i) {
    const Message& w = want.messages[i];
    const Message& g = got.messages[i];
    if (!w.head || !g.head) continue;
    const std::string at = "message " + std::to_string(i) + ": ";
    if (request && (w.method != g.method || w.url != g.url)) return at + "request line differs";
    if (!request && (w.status != g.status || w.reason != g.reason))
      return at + "status line differs";
    if (w.version != g.version) return at + "version differs";
    if (w.headers != g.headers) return at + "headers differ";
    if (w.body != g.body) return at + "body differs";
  }
  if (want.end != End::kRejected) {
    auto heads = [](const Outcome& o) {
      return std::count_if(o.messages.begin(), o.messages.end(),
                           [](const Message& m) { return m.head; });
    };
    if (heads(want) != heads(got)) return "different number of parsed heads";
  }
  if (want.finish >= 0 && (want.finish == 2) != got.mid_message)
    return "EOF handling differs (llhttp_finish=" + std::to_string(want.finish) + ")";
  return "";
}

enum class Expect { kSkip, kReject, kAccept };
struct Deviation {
  std::string_view file, name;
  Expect expect;
  std::string_view reason;
};

// Cases where Portico deliberately differs from llhttp's strict mode, and why. kReject: llhttp
// accepts, Portico must reject; kAccept: llhttp rejects, Portico must accept; kSkip: not
// comparable. Each entry is checked to still differ, so stale entries fail the test.
constexpr Deviation kDeviations[] = {
    // Methods: RFC 9110 §9.1 makes any token a method; the origin decides what it implements.
    {"request/invalid.md", "Invalid method", Expect::kAccept,
     "llhttp knows a fixed method list; any token is a method (RFC 9110 §9.1)"},
    {"request/invalid.md", "HTTP protocol and ANNOUNCE method", Expect::kAccept,
     "llhttp ties RTSP methods to RTSP/; any token is an HTTP method (RFC 9110 §9.1)"},
    // Protocols: Portico speaks HTTP/1.0 and HTTP/1.1 only.
    {"request/method.md", "SOURCE request with ICE", Expect::kReject, "ICE/1.0 is not HTTP/1.x"},
    {"request/method.md", "OPTIONS request with RTSP", Expect::kReject, "RTSP/1.0 is not HTTP/1.x"},
    {"request/method.md", "ANNOUNCE request with RTSP", Expect::kReject,
     "RTSP/1.0 is not HTTP/1.x"},
    {"response/sample.md", "RTSP response", Expect::kReject, "RTSP/1.1 is not HTTP/1.x"},
    {"response/sample.md", "ICE response", Expect::kReject, "ICE/1.1 is not HTTP/1.x"},
    {"request/sample.md", "No HTTP version", Expect::kReject,
     "HTTP/0.9 simple requests are not supported (RFC 9112 §3 requires a version)"},
    {"response/sample.md", "HTTP version 0.9", Expect::kReject,
     "HTTP/0.9 is not HTTP/1.x (RFC 9112 §2.3)"},
    // Framing llhttp accepts and Portico refuses.
    {"request/method.md", "CONNECT with body", Expect::kReject,
     "CONNECT has no content (RFC 9110 §9.3.6): Content-Length on it is ambiguous framing"},
    {"request/transfer-encoding.md", "POST with `chunked` as last transfer-encoding",
     Expect::kReject, "codings other than chunked are not implemented: 501 (RFC 9112 §6.1)"},
    {"request/transfer-encoding.md",
     "POST with `chunked` as last transfer-encoding (multiple headers)", Expect::kReject,
     "codings other than chunked are not implemented: 501 (RFC 9112 §6.1)"},
};

const Deviation* findDeviation(const Case& c) {
  for (const Deviation& d : kDeviations)
    if (c.file == d.file && c.name == d.name) return &d;
  return nullptr;
}

TEST(LlhttpCorpus, MatchesStrictLlhttp) {
  const fs::path root = PORTICO_LLHTTP_CORPUS;
  ASSERT_TRUE(fs::is_directory(root)) << root;
  int url_cases = 0;
  const std::vector<Case> cases = loadCases(root, &url_cases);
  ASSERT_GT(cases.size(), 250u);
  int compared = 0, deviations = 0, lenient = 0, skipped = 0, injected = 0;
  std::map<std::string, int> skip_reasons;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file + ":" + std::to_string(c.line) + " \"" + c.name + "\"");
    const bool request = c.type.rfind("request", 0) == 0;
    const Outcome want = fromLog(c.log);
    const Deviation* d = findDeviation(c);
    const bool add_host = d != nullptr && d->expect == Expect::kAccept;
    const Outcome got = runPortico(c, want, SIZE_MAX, add_host);
    const Outcome got_bytewise = runPortico(c, want, 1, add_host);
    EXPECT_EQ(compare(got, got_bytewise, request), "")
        << "whole: " << show(got) << "\nbyte by byte: " << show(got_bytewise);
    if (d != nullptr && d->expect == Expect::kSkip) {
      ++skipped;
      ++skip_reasons[std::string(d->reason)];
      continue;
    }
    if (c.type.find("lenient") != std::string::npos) {
      ++lenient;
      EXPECT_EQ(got.end, End::kRejected) << "lenient-mode input accepted:\n" << show(got);
      continue;
    }
    if (d != nullptr) {
      ++deviations;
      EXPECT_NE(want.end, d->expect == Expect::kReject ? End::kRejected : End::kOpen)
          << "stale deviation entry: llhttp agrees with Portico here";
      if (d->expect == Expect::kReject) {
        EXPECT_EQ(got.end, End::kRejected) << show(got);
      } else {
        EXPECT_NE(got.end, End::kRejected) << show(got);
      }
      continue;
    }
    ++compared;
    injected += got.host_injected > 0;
    EXPECT_EQ(compare(want, got, request), "")
        << "\nllhttp:  " << show(want) << "\nportico: " << show(got);
  }
  std::printf(
      "[ llhttp  ] %zu cases: %d compared with llhttp strict (%d of them with an inserted Host), "
      "%d known deviations asserted, %d lenient-mode inputs rejected, %d skipped, %d URL-parser "
      "cases not applicable\n",
      cases.size(), compared, injected, deviations, lenient, skipped, url_cases);
  for (const auto& [reason, n] : skip_reasons) std::printf("  skipped %d: %s\n", n, reason.c_str());
}

}  // namespace
}  // namespace portico::http1
