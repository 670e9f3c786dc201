#include "config/diagnostic.h"

namespace portico::config {

std::string Diagnostic::format() const {
  std::string out;
  if (!file.empty()) {
    out += file;
    if (line > 0) {
      out += ':' + std::to_string(line);
      if (col > 0) out += ':' + std::to_string(col);
    }
    out += ": ";
  }
  out += severity == Severity::kError ? "error: " : "warning: ";
  if (!kind.empty()) {
    out += kind;
    if (!name.empty()) out += ' ' + ns + '/' + name;
    out += ": ";
  }
  if (!field_path.empty()) out += field_path + ": ";
  out += message;
  return out;
}

bool hasErrors(const std::vector<Diagnostic>& diagnostics) {
  for (const Diagnostic& d : diagnostics)
    if (d.severity == Severity::kError) return true;
  return false;
}

}  // namespace portico::config
