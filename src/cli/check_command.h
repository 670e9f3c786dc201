// `portico check`: loads and compiles a configuration offline (binds nothing) and reports its
// diagnostics and each resource's Gateway API status. Exit codes: 0 valid (warnings allowed),
// 1 invalid, 2 unreadable, 64 usage error.
#pragma once

namespace portico::cli {

int checkMain(int argc, char** argv);

}  // namespace portico::cli
