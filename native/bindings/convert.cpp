#include "bindings/convert.h"

#include "bindings/errors.h"
#include "bindings/tensor.h"

namespace ibqb {

ibq::NamedTensors ArgStateDict(const Napi::Value& v, const char* arg) {
  Napi::Env env = v.Env();
  Napi::Array pairs;
  Napi::Function map_ctor = env.Global().Get("Map").As<Napi::Function>();
  if (v.IsArray()) {
    pairs = v.As<Napi::Array>();
  } else if (v.IsObject() && v.As<Napi::Object>().InstanceOf(map_ctor)) {
    Napi::Function from = env.Global().Get("Array").As<Napi::Object>().Get("from").As<Napi::Function>();
    pairs = from.Call({v}).As<Napi::Array>();
  } else {
    ThrowType(env, std::string(arg) + ": expected a Map<string, Tensor>");
  }
  ibq::NamedTensors out;
  out.reserve(pairs.Length());
  for (uint32_t i = 0; i < pairs.Length(); ++i) {
    Napi::Value p = pairs.Get(i);
    if (!p.IsArray() || p.As<Napi::Array>().Length() != 2 || !p.As<Napi::Array>().Get(0u).IsString())
      ThrowType(env, std::string(arg) + ": expected entries [name: string, tensor: Tensor]");
    std::string key = p.As<Napi::Array>().Get(0u).As<Napi::String>().Utf8Value();
    std::string name = std::string(arg) + "['" + key + "']";
    out.emplace_back(key, ArgTensor(p.As<Napi::Array>().Get(1u), name.c_str()));
  }
  return out;
}

Napi::Array StateDictToJs(Napi::Env env, const ibq::NamedTensors& sd, bool share) {
  auto arr = Napi::Array::New(env, sd.size());
  for (size_t i = 0; i < sd.size(); ++i) {
    auto pair = Napi::Array::New(env, 2);
    pair.Set(0u, Napi::String::New(env, sd[i].first));
    pair.Set(1u, TensorHandle::New(env, share ? sd[i].second : sd[i].second.detach().clone()));
    arr.Set(uint32_t(i), pair);
  }
  return arr;
}

Napi::Array StringsToJs(Napi::Env env, const std::vector<std::string>& v) {
  auto arr = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) arr.Set(uint32_t(i), Napi::String::New(env, v[i]));
  return arr;
}

Napi::Object LoadResultToJs(Napi::Env env, const ibq::LoadResult& r) {
  auto out = Napi::Object::New(env);
  out.Set("missing", StringsToJs(env, r.missing));
  out.Set("unexpected", StringsToJs(env, r.unexpected));
  auto mm = Napi::Array::New(env, r.mismatched.size());
  for (size_t i = 0; i < r.mismatched.size(); ++i) {
    auto o = Napi::Object::New(env);
    o.Set("key", r.mismatched[i].key);
    auto shape = [&](const std::vector<int64_t>& s) {
      auto a = Napi::Array::New(env, s.size());
      for (size_t j = 0; j < s.size(); ++j) a.Set(uint32_t(j), Napi::Number::New(env, double(s[j])));
      return a;
    };
    o.Set("expected", shape(r.mismatched[i].expected));
    o.Set("got", shape(r.mismatched[i].got));
    mm.Set(uint32_t(i), o);
  }
  out.Set("mismatched", mm);
  return out;
}

// { autocast?: "bfloat16" | "float16" } -> the autocast dtype (absent / false: none)
c10::optional<at::ScalarType> ArgAutocast(const Napi::Value& opts) {
  if (!opts.IsObject()) return c10::nullopt;
  auto v = opts.As<Napi::Object>().Get("autocast");
  if (v.IsUndefined() || v.IsNull() || (v.IsBoolean() && !v.As<Napi::Boolean>().Value())) return c10::nullopt;
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "bfloat16") return at::kBFloat16;
  if (s == "float16") return at::kHalf;
  ThrowRange(opts.Env(), "autocast: expected 'bfloat16' or 'float16'");
}

}  // namespace ibqb
