// configFields(): the declarations of the configs, by the names lib/ and the TypeScript generator use; and the
// conversions of native/bindings/config_fields.h.
#include "bindings/config_fields.h"

#include <cmath>

#include "bindings/exports.h"
#include "ibq/quantizer/quantizer.h"
#include "ibq/tokenizer/tokenizer_trainer.h"
#include "ibq/transformer/transformer.h"
#include "ibq/tokenizer/vq_loss.h"
#include "ibq/quantizer/vq_quantizer.h"
#include "ibq/tokenizer/vqgan.h"

namespace ibqb {
namespace config_js {
namespace {

constexpr int64_t kIntLimit = int64_t(1) << 53;  // the integers a JS number holds exactly

}  // namespace

void FromJs(const Napi::Value& v, const ibq::Field&, bool& dst, const std::string& name) {
  dst = ArgBool(v, name.c_str(), dst);
}

void FromJs(const Napi::Value& v, const ibq::Field& f, int64_t& dst, const std::string& name) {
  if (v.IsString()) {
    const auto s = v.As<Napi::String>().Utf8Value();
    for (const auto& a : f.aliases) {
      if (s == a.first) {
        dst = a.second;
        return;
      }
    }
  }
  dst = ArgInt(v, name.c_str(), -kIntLimit, kIntLimit);
}

void FromJs(const Napi::Value& v, const ibq::Field&, double& dst, const std::string& name) {
  dst = ArgNumber(v, name.c_str());
}

void FromJs(const Napi::Value& v, const ibq::Field&, std::optional<double>& dst, const std::string& name) {
  if (v.IsNull()) {
    dst.reset();
  } else {
    dst = ArgNumber(v, name.c_str());
  }
}

void FromJs(const Napi::Value& v, const ibq::Field& f, std::optional<int64_t>& dst, const std::string& name) {
  if (v.IsNull()) {
    dst.reset();
  } else {
    int64_t x = 0;
    FromJs(v, f, x, name);
    dst = x;
  }
}

void FromJs(const Napi::Value& v, const ibq::Field&, std::string& dst, const std::string& name) {
  dst = ArgString(v, name.c_str());
}

void FromJs(const Napi::Value& v, const ibq::Field&, std::vector<int64_t>& dst, const std::string& name) {
  if (!v.IsArray()) ThrowType(v.Env(), name + ": expected an array of integers");
  auto a = v.As<Napi::Array>();
  dst.clear();
  for (uint32_t i = 0; i < a.Length(); ++i)
    dst.push_back(ArgInt(a.Get(i), (name + "[" + std::to_string(i) + "]").c_str(), -kIntLimit, kIntLimit));
}

Napi::Value ToJs(Napi::Env env, const ibq::Field&, bool v) { return Napi::Boolean::New(env, v); }

Napi::Value ToJs(Napi::Env env, const ibq::Field& f, int64_t v) {
  for (const auto& a : f.aliases)
    if (a.second == v) return Napi::String::New(env, a.first);
  return Napi::Number::New(env, double(v));
}

Napi::Value ToJs(Napi::Env env, const ibq::Field&, double v) { return Napi::Number::New(env, v); }

Napi::Value ToJs(Napi::Env env, const ibq::Field&, const std::optional<double>& v) {
  return v ? Napi::Number::New(env, *v) : env.Null();
}

Napi::Value ToJs(Napi::Env env, const ibq::Field& f, const std::optional<int64_t>& v) {
  return v ? ToJs(env, f, *v) : env.Null();
}

Napi::Value ToJs(Napi::Env env, const ibq::Field&, const std::string& v) { return Napi::String::New(env, v); }

Napi::Value ToJs(Napi::Env env, const ibq::Field&, const std::vector<int64_t>& v) {
  auto a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) a.Set(uint32_t(i), Napi::Number::New(env, double(v[i])));
  return a;
}

Napi::Object FieldToJs(Napi::Env env, const ibq::Field& f, const char* kind, bool nullable, const Napi::Value& def) {
  auto o = Napi::Object::New(env);
  o.Set("type", kind);
  o.Set("doc", f.doc);
  if (f.required) {
    o.Set("required", true);
  } else {
    o.Set("default", def);
  }
  if (f.optional) o.Set("optional", true);
  if (nullable) o.Set("nullable", true);
  if (f.fixed) o.Set("onlyDefault", true);
  if (std::isfinite(f.min)) o.Set(f.min_open ? "gt" : "min", f.min);
  if (std::isfinite(f.max)) o.Set(f.max_open ? "lt" : "max", f.max);
  if (f.min_items > 0) o.Set("minItems", double(f.min_items));
  if (f.max_items >= 0) o.Set("maxItems", double(f.max_items));
  if (!f.choices.empty()) {
    auto c = Napi::Array::New(env, f.choices.size());
    for (size_t i = 0; i < f.choices.size(); ++i) c.Set(uint32_t(i), f.choices[i]);
    o.Set("choices", c);
  }
  if (!f.aliases.empty()) {
    auto a = Napi::Object::New(env);
    for (const auto& [n, v] : f.aliases) a.Set(n, double(v));
    o.Set("aliases", a);
  }
  return o;
}

}  // namespace config_js

namespace {

// configFields() -> { ddconfig, ibq_quantizer, vq_quantizer, lossconfig, tokenizer_trainer, transformer }: each
// config's declaration (FieldsToJs).
Napi::Value ConfigFields(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto o = Napi::Object::New(env);
  o.Set("ddconfig", FieldsToJs<ibq::vqgan::DDConfig>(env));
  o.Set("ibq_quantizer", FieldsToJs<ibq::IBQOptions>(env));
  o.Set("vq_quantizer", FieldsToJs<ibq::VQOptions>(env));
  o.Set("lossconfig", FieldsToJs<ibq::VQLossOptions>(env));
  o.Set("tokenizer_trainer", FieldsToJs<ibq::TrainerOptions>(env));
  o.Set("transformer", FieldsToJs<ibq::TransformerConfig>(env));
  return o;
}

}  // namespace

// Listed in addon.cpp (exports.h).
void InitConfigFields(Napi::Env env, Napi::Object exports) {
  exports.Set("configFields", Napi::Function::New(env, ConfigFields, "configFields"));
}

}  // namespace ibqb
