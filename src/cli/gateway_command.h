// `portico gateway`: the data plane process (main thread + workers + admin).
#pragma once

namespace portico::cli {

int gatewayMain(int argc, char** argv);

}  // namespace portico::cli
