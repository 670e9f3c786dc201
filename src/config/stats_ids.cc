#include "config/stats_ids.h"

#include <atomic>

namespace portico::config {

StatsIds::StatsIds() {
  static std::atomic<uint64_t> next{1};
  instance_ = next.fetch_add(1);
}

uint32_t StatsIds::Registry::id(std::string_view name) {
  auto it = ids_.find(name);
  if (it != ids_.end()) return it->second;
  uint32_t id = static_cast<uint32_t>(names_.size());
  names_.emplace_back(name);
  ids_.emplace(std::string(name), id);
  return id;
}

}  // namespace portico::config
