#include "config/stats_ids.h"

namespace portico::config {

uint32_t StatsIds::Registry::id(std::string_view name) {
  auto it = ids_.find(name);
  if (it != ids_.end()) return it->second;
  uint32_t id = static_cast<uint32_t>(names_.size());
  names_.emplace_back(name);
  ids_.emplace(std::string(name), id);
  return id;
}

}  // namespace portico::config
