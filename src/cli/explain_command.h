// `portico explain` and the admin /explain report: why a request goes where it goes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/snapshot.h"

namespace portico::cli {

struct ExplainRequest {
  std::string host;
  std::string path = "/";  // may include "?query"
  std::string method = "GET";
  std::vector<std::pair<std::string, std::string>> headers;
  uint16_t port = 0;  // 0: every port of the snapshot
};

// Adds a "name: value" header to `req` (leading blanks of the value dropped). False when
// there is no colon.
bool addHeaderArg(ExplainRequest* req, std::string_view name_colon_value);

// The report for `req` against `snapshot`: text (human) or JSON. Main thread; allocates.
std::string explainRequest(const config::Snapshot& snapshot, const ExplainRequest& req, bool json);

int explainMain(int argc, char** argv);

}  // namespace portico::cli
