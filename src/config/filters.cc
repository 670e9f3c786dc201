// composeModifiers: two header modifiers applied one after the other, as one.
#include "config/filters.h"

#include <optional>

namespace portico::config {
namespace {

// What a modifier chain does to one header name.
struct NameEffect {
  std::string name;
  bool remove = false;             // the original fields are dropped (no set value)
  std::optional<std::string> set;  // the fields are replaced by this value
  std::optional<std::string> add;  // then ",value" is appended (or the field added)
};

const HeaderValue* findValue(const std::vector<HeaderValue>& list, const std::string& name) {
  for (const HeaderValue& h : list)
    if (h.name == name) return &h;
  return nullptr;
}

bool listed(const std::vector<std::string>& list, const std::string& name) {
  for (const std::string& n : list)
    if (n == name) return true;
  return false;
}

// Applies `m` (remove, set, add) to the effect `e` so far.
void apply(const HeaderModifier& m, NameEffect& e) {
  if (const HeaderValue* s = findValue(m.set, e.name)) {
    e = NameEffect{e.name, false, s->value, std::nullopt};
  } else if (listed(m.remove, e.name)) {
    e = NameEffect{e.name, true, std::nullopt, std::nullopt};
  }
  if (const HeaderValue* a = findValue(m.add, e.name)) {
    if (e.remove) {
      e = NameEffect{e.name, false, a->value, std::nullopt};  // absent, then added
    } else if (e.add) {
      *e.add += "," + a->value;
    } else {
      e.add = a->value;
    }
  }
}

}  // namespace

HeaderModifier composeModifiers(const HeaderModifier* first, const HeaderModifier* second) {
  if (first == nullptr && second == nullptr) return {};
  if (first == nullptr) return *second;
  if (second == nullptr) return *first;
  std::vector<NameEffect> effects;
  auto mention = [&](const std::string& name) {
    for (const NameEffect& e : effects)
      if (e.name == name) return;
    effects.push_back(NameEffect{name, false, std::nullopt, std::nullopt});
  };
  for (const HeaderModifier* m : {first, second}) {
    for (const HeaderValue& h : m->set) mention(h.name);
    for (const HeaderValue& h : m->add) mention(h.name);
    for (const std::string& n : m->remove) mention(n);
  }
  HeaderModifier out;
  for (NameEffect& e : effects) {
    apply(*first, e);
    apply(*second, e);
    if (e.remove) out.remove.push_back(e.name);
    if (e.set) out.set.push_back(HeaderValue{e.name, *e.set});
    if (e.add) out.add.push_back(HeaderValue{e.name, *e.add});
  }
  return out;
}

}  // namespace portico::config
