// Fuzzes the HTTP/1 request head parser and the body decoder over pipelined requests: the input
// parsed with all bytes at once must give exactly what it gives arriving in two parts.
#include <cstddef>
#include <cstdint>

#include "http1_fuzz_driver.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  portico::http1::fuzz::runBoth(data, size, /*request=*/true, "");
  return 0;
}
