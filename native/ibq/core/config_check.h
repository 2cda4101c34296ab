// Asserts that a config holds values its declaration (for_each_field, ibq/config_field.h) allows: the core's
// check of the invariants TypeScript has already validated (a failure is an InternalError, see ibq/errors.h).
#pragma once
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "ibq/core/config_field.h"
#include "ibq/core/errors.h"

namespace ibq {
namespace config_check {

inline void number(const Field& f, double v, const std::string& where) {
  IBQ_CHECK(std::isfinite(v) && f.in_range(v), where + " = " + std::to_string(v) + " is outside its declared range");
}
inline void value(const Field&, bool, const std::string&) {}
inline void value(const Field& f, int64_t v, const std::string& where) {
  for (const auto& a : f.aliases)
    if (a.second == v) return;
  number(f, double(v), where);
}
inline void value(const Field& f, double v, const std::string& where) { number(f, v, where); }
inline void value(const Field& f, const std::optional<double>& v, const std::string& where) {
  if (v) number(f, *v, where);
}
inline void value(const Field& f, const std::optional<int64_t>& v, const std::string& where) {
  if (v) value(f, *v, where);
}
inline void value(const Field& f, const std::string& v, const std::string& where) {
  if (f.choices.empty()) return;
  for (const char* c : f.choices)
    if (v == c) return;
  IBQ_CHECK(false, where + " = '" + v + "' is not one of its declared values");
}
inline void value(const Field& f, const std::vector<int64_t>& v, const std::string& where) {
  const auto n = int64_t(v.size());
  IBQ_CHECK(n >= f.min_items && (f.max_items < 0 || n <= f.max_items), where + " has " + std::to_string(n) + " items");
  for (size_t i = 0; i < v.size(); ++i) number(f, double(v[i]), where + "[" + std::to_string(i) + "]");
}

}  // namespace config_check

// IBQ_CHECK on every field of `c` against its declaration: ranges, list lengths, string choices (`name` prefixes
// the messages, e.g. "ddconfig").
template <class Config>
void check_fields(const Config& c, const char* name) {
  Config::for_each_field(c, [&](const Field& f, const auto& v) {
    config_check::value(f, v, std::string(name) + "." + f.name);
  });
}

}  // namespace ibq
