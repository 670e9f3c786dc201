// Fuzzes the HTTP/1 response head parser and the body decoder over pipelined responses: the
// input parsed with all bytes at once must give exactly what it gives arriving in two parts. The
// method of the request being answered (GET, HEAD or CONNECT) comes from the last input byte.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http1_fuzz_driver.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static constexpr std::string_view kMethods[] = {"GET", "HEAD", "CONNECT", "POST"};
  const std::string_view method = size == 0 ? "GET" : kMethods[data[size - 1] % 4];
  portico::http1::fuzz::runBoth(data, size, /*request=*/false, method);
  return 0;
}
