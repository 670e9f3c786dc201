#include "upstream/outlier_detector.h"

#include <algorithm>

namespace portico::upstream {

OutlierDetector::~OutlierDetector() {
  for (auto& [id, entry] : entries_) {
    entry->timer.cancel();
    if (entry->state.ejected_until_ms != 0) health_.set(id, HealthTable::kEjected, false);
  }
}

void OutlierDetector::report(uint32_t pool_id, const config::Backend& backend) {
  if (!backend.passive_health) return;
  const config::PassiveHealthSettings& p = *backend.passive_health;
  auto found = entries_.find(pool_id);
  if (found != entries_.end() && found->second->state.ejected_until_ms != 0) return;  // out
  // maxEjectionPercent of the backend's endpoints, but at least one (as Envoy).
  size_t total = backend.endpoints.size();
  size_t ejected = 0;
  for (const config::Endpoint& ep : backend.endpoints)
    if (health_.flags(ep.health_id) & HealthTable::kEjected) ++ejected;
  size_t allowed = std::max<size_t>(1, total * p.max_ejection_percent / 100);
  if (ejected >= allowed) return;
  std::unique_ptr<Entry>& slot = entries_[pool_id];
  if (!slot) {
    slot = std::make_unique<Entry>();
    slot->self = this;
    slot->pool_id = pool_id;
    slot->timer.set(&OutlierDetector::onReturn, slot.get());
  }
  Entry& e = *slot;
  ++e.state.ejections;
  ++ejections_total_;
  uint64_t ms =
      std::min<uint64_t>(uint64_t{p.base_ejection_ms} * e.state.ejections, kMaxEjectionMs);
  e.state.ejected_until_ms = loop_.nowMs() + ms;
  health_.set(pool_id, HealthTable::kEjected, true);
  loop_.timers().schedule(&e.timer, static_cast<uint32_t>(ms));
}

const OutlierDetector::EndpointState* OutlierDetector::state(uint32_t pool_id) const {
  auto it = entries_.find(pool_id);
  return it == entries_.end() ? nullptr : &it->second->state;
}

void OutlierDetector::onReturn(void* ctx) {
  auto* e = static_cast<Entry*>(ctx);
  e->state.ejected_until_ms = 0;
  e->self->health_.set(e->pool_id, HealthTable::kEjected, false);
}

}  // namespace portico::upstream
