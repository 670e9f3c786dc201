// A thread per connection and blocking sockets: this is a demo and test peer, not the proxy.
// The answer is JSON: the server's name, method, path, query, headers and body (bodies above
// 1 MiB are counted, not echoed).
#include "cli/echo_command.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/buffer.h"
#include "http1/parser.h"
#include "net/address.h"
#include "net/socket.h"
#include "proxy/http_util.h"

namespace portico::cli {

namespace {

constexpr size_t kMaxEchoBody = 1 << 20;

bool sendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void serve(int fd, std::string name) {
  Buffer in;
  std::vector<http1::Header> headers(100);
  for (;;) {
    http1::RequestHead head;
    head.headers = headers.data();
    http1::ParseResult r{};
    for (;;) {
      r = http1::parseRequestHead(in.view(), http1::Limits{}, &head);
      if (r.status != http1::ParseStatus::kIncomplete) break;
      char* p = in.reserve(16384);
      ssize_t n = ::recv(fd, p, in.writable(), 0);
      if (n <= 0) {
        ::close(fd);
        return;
      }
      in.commit(static_cast<size_t>(n));
    }
    if (r.status == http1::ParseStatus::kError) {
      Buffer out;
      proxy::appendLocalResponse(out, http1::statusFor(r.error), http1::describe(r.error), true);
      sendAll(fd, out.view());
      ::close(fd);
      return;
    }
    nlohmann::json j;
    j["name"] = name;
    j["method"] = std::string(head.method);
    std::string_view target = head.target;
    size_t q = target.find('?');
    j["path"] = std::string(target.substr(0, q));
    j["query"] = q == std::string_view::npos ? "" : std::string(target.substr(q + 1));
    j["version"] = head.info.version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
    nlohmann::json hs = nlohmann::json::object();
    for (uint32_t i = 0; i < head.header_count; ++i) {
      std::string key(head.headers[i].name);
      for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string value(head.headers[i].value);
      if (hs.contains(key)) {
        hs[key] = hs[key].get<std::string>() + ", " + value;
      } else {
        hs[key] = value;
      }
    }
    j["headers"] = hs;
    bool keep_alive = head.info.keep_alive;
    bool is_head = head.method == "HEAD";
    in.consume(r.consumed);
    // Body.
    std::string body;
    uint64_t body_bytes = 0;
    if (head.info.body != http1::BodyKind::kNone) {
      if (head.info.expect_continue) sendAll(fd, "HTTP/1.1 100 Continue\r\n\r\n");
      http1::BodyDecoder dec;
      dec.reset(head.info.body, head.info.content_length);
      while (!dec.done()) {
        if (in.empty()) {
          char* p = in.reserve(65536);
          ssize_t n = ::recv(fd, p, in.writable(), 0);
          if (n <= 0) {
            ::close(fd);
            return;
          }
          in.commit(static_cast<size_t>(n));
        }
        auto step = dec.decode(in.view());
        if (step.status == http1::ParseStatus::kError) {
          ::close(fd);
          return;
        }
        body_bytes += step.data.size();
        if (body.size() + step.data.size() <= kMaxEchoBody) body.append(step.data);
        in.consume(step.consumed);
        if (step.consumed == 0 && step.status != http1::ParseStatus::kDone) break;
      }
    }
    j["body_bytes"] = body_bytes;
    if (body_bytes <= kMaxEchoBody) j["body"] = body;
    std::string payload = j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    std::string resp = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-echo-name: " + name +
                       "\r\ncontent-length: " + std::to_string(payload.size()) + "\r\n" +
                       (keep_alive ? "" : "connection: close\r\n") + "\r\n";
    if (!is_head) resp += payload;
    if (!sendAll(fd, resp) || !keep_alive) {
      ::close(fd);
      return;
    }
  }
}

void usage() {
  std::fprintf(stderr,
               "usage: portico echo --port PORT [--name NAME] [--address IP]\n"
               "  Answers every HTTP request with a JSON description of what it received.\n");
}

}  // namespace

int echoMain(int argc, char** argv) {
  int port = -1;
  std::string name = "echo";
  std::string address = "127.0.0.1";
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--port" || a == "-p") {
      const char* v = next();
      port = v ? std::atoi(v) : -1;
    } else if (a == "--name") {
      const char* v = next();
      if (v) name = v;
    } else if (a == "--address") {
      const char* v = next();
      if (v) address = v;
    } else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else {
      std::fprintf(stderr, "portico echo: unknown argument '%s'\n", a.c_str());
      usage();
      return 64;
    }
  }
  if (port < 0 || port > 65535) {
    usage();
    return 64;
  }
  auto addr = net::Address::parseIp(address, static_cast<uint16_t>(port));
  if (!addr) {
    std::fprintf(stderr, "portico echo: invalid address '%s'\n", address.c_str());
    return 64;
  }
  Result<int> lfd = net::listenTcp(*addr, false);
  if (!lfd.ok()) {
    std::fprintf(stderr, "portico echo: %s\n", lfd.status().message().c_str());
    return 1;
  }
  // Blocking accept loop.
  int fd = *lfd;
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  std::fprintf(stderr, "portico echo '%s' listening on %s\n", name.c_str(),
               net::localAddress(fd).toString().c_str());
  for (;;) {
    int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    std::thread(serve, c, name).detach();
  }
}

}  // namespace portico::cli
