// portico: one binary, subcommands. This file only dispatches.
#include <cstdio>
#include <cstring>

#include "cli/check_command.h"
#include "cli/echo_command.h"
#include "cli/explain_command.h"
#include "cli/gateway_command.h"

namespace {
void usage() {
  std::fprintf(stderr,
               "usage: portico <command> [options]\n\n"
               "commands:\n"
               "  gateway -c PATH [--admin HOST:PORT] [--workers N] [--drain-timeout DURATION]\n"
               "                     run the data plane on the config file or folder PATH\n"
               "  check -c PATH [-o text|json]\n"
               "                     validate the config file or folder PATH offline\n"
               "  explain -c PATH --host HOST --path PATH [-X METHOD] [-H 'k: v']... [-o json]\n"
               "                     why a request goes where it goes (or gets 404)\n"
               "  echo --port PORT [--name NAME]\n"
               "                     a small upstream answering with what it received\n"
               "  version            print the version\n");
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage();
    return 64;
  }
  const char* cmd = argv[1];
  if (std::strcmp(cmd, "gateway") == 0) return portico::cli::gatewayMain(argc - 2, argv + 2);
  if (std::strcmp(cmd, "check") == 0) return portico::cli::checkMain(argc - 2, argv + 2);
  if (std::strcmp(cmd, "explain") == 0) return portico::cli::explainMain(argc - 2, argv + 2);
  if (std::strcmp(cmd, "echo") == 0) return portico::cli::echoMain(argc - 2, argv + 2);
  if (std::strcmp(cmd, "version") == 0 || std::strcmp(cmd, "--version") == 0) {
    std::printf("portico 0.1.0\n");
    return 0;
  }
  if (std::strcmp(cmd, "-h") == 0 || std::strcmp(cmd, "--help") == 0 ||
      std::strcmp(cmd, "help") == 0) {
    usage();
    return 0;
  }
  std::fprintf(stderr, "portico: unknown command '%s'\n\n", cmd);
  usage();
  return 64;
}
