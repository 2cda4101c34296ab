// The declared configs (ibq/config_field.h) between JS and C++: JS object -> config struct, config struct -> JS
// object, and the declaration itself as a JS value (configFields(), read by lib/ and by
// scripts/gen-config-fields.mjs). Conversion only: TypeScript has validated the values (lib/config/fields.ts);
// a value of the wrong kind still gives a TypeError naming it rather than a crash.
#pragma once
#include <napi.h>

#include <optional>
#include <string>
#include <vector>

#include "bindings/errors.h"
#include "ibq/core/config_field.h"

namespace ibqb {
namespace config_js {

void FromJs(const Napi::Value& v, const ibq::Field& f, bool& dst, const std::string& name);
void FromJs(const Napi::Value& v, const ibq::Field& f, int64_t& dst, const std::string& name);
void FromJs(const Napi::Value& v, const ibq::Field& f, double& dst, const std::string& name);
void FromJs(const Napi::Value& v, const ibq::Field& f, std::optional<double>& dst, const std::string& name);
void FromJs(const Napi::Value& v, const ibq::Field& f, std::optional<int64_t>& dst, const std::string& name);
void FromJs(const Napi::Value& v, const ibq::Field& f, std::string& dst, const std::string& name);
void FromJs(const Napi::Value& v, const ibq::Field& f, std::vector<int64_t>& dst, const std::string& name);

Napi::Value ToJs(Napi::Env env, const ibq::Field& f, bool v);
Napi::Value ToJs(Napi::Env env, const ibq::Field& f, int64_t v);  // an alias name where the value has one
Napi::Value ToJs(Napi::Env env, const ibq::Field& f, double v);
Napi::Value ToJs(Napi::Env env, const ibq::Field& f, const std::optional<double>& v);  // null when absent
Napi::Value ToJs(Napi::Env env, const ibq::Field& f, const std::optional<int64_t>& v);  // null when absent
Napi::Value ToJs(Napi::Env env, const ibq::Field& f, const std::string& v);
Napi::Value ToJs(Napi::Env env, const ibq::Field& f, const std::vector<int64_t>& v);

// The kind TypeScript checks: 'bool' | 'int' | 'number' | 'string' | 'int[]'; nullable: null is a value.
inline const char* Kind(bool) { return "bool"; }
inline const char* Kind(int64_t) { return "int"; }
inline const char* Kind(double) { return "number"; }
inline const char* Kind(const std::optional<double>&) { return "number"; }
inline const char* Kind(const std::optional<int64_t>&) { return "int"; }
inline const char* Kind(const std::string&) { return "string"; }
inline const char* Kind(const std::vector<int64_t>&) { return "int[]"; }
template <class T>
bool Nullable(const T&) { return false; }
inline bool Nullable(const std::optional<double>&) { return true; }
inline bool Nullable(const std::optional<int64_t>&) { return true; }

// { type, doc, default (unless required), required?, optional?, nullable?, onlyDefault?, min?, max?, minOpen?,
//   maxOpen?, minItems?, maxItems?, choices?, aliases? }: only the keys that say something.
Napi::Object FieldToJs(Napi::Env env, const ibq::Field& f, const char* kind, bool nullable, const Napi::Value& def);

}  // namespace config_js

// The config C from the JS object `v` (official field names): given fields converted, absent ones (undefined, or
// null where null is not a value) keep the declared default. `arg` prefixes the names in errors.
template <class C>
C ConfigFromJs(const Napi::Value& v, const char* arg) {
  auto o = ArgObject(v, arg);
  C c;
  C::for_each_field(c, [&](const ibq::Field& f, auto& dst) {
    Napi::Value x = o.Get(f.name);
    if (x.IsUndefined() || (x.IsNull() && !config_js::Nullable(dst))) return;
    config_js::FromJs(x, f, dst, std::string(arg) + "." + f.name);
  });
  return c;
}

// Every field of `c` as a JS object (official names, declared order).
template <class C>
Napi::Object ConfigToJs(Napi::Env env, const C& c) {
  auto o = Napi::Object::New(env);
  C::for_each_field(c, [&](const ibq::Field& f, const auto& v) { o.Set(f.name, config_js::ToJs(env, f, v)); });
  return o;
}

// The declaration of C: { [official name]: FieldToJs(...) } in the declared order.
template <class C>
Napi::Object FieldsToJs(Napi::Env env) {
  const C defaults{};
  auto o = Napi::Object::New(env);
  C::for_each_field(defaults, [&](const ibq::Field& f, const auto& v) {
    o.Set(f.name, config_js::FieldToJs(env, f, config_js::Kind(v), config_js::Nullable(v), config_js::ToJs(env, f, v)));
  });
  return o;
}

}  // namespace ibqb
