// `portico echo`: a small upstream that answers every request with what it received.
#pragma once

namespace portico::cli {

int echoMain(int argc, char** argv);

}  // namespace portico::cli
