#include "bindings/tokenizer_args.h"

#include "bindings/errors.h"
#include "bindings/tensor.h"

namespace ibqb {

double OptNumber(const Napi::Value& opts, const char* key, double fallback) {
  if (!opts.IsObject()) return fallback;
  auto v = opts.As<Napi::Object>().Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  return ArgNumber(v, key);
}

Napi::Object OutputsToJs(Napi::Env env, const NamedOutputs& outs) {
  auto o = Napi::Object::New(env);
  for (const auto& [k, t] : outs) o.Set(k, TensorHandle::New(env, t.detach()));
  return o;
}

at::Device ArgOptDevice(const Napi::Value& v) {
  return (v.IsUndefined() || v.IsNull()) ? at::Device(at::kCPU) : ArgDevice(v, "device");
}

std::optional<uint64_t> ArgSeed(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return std::nullopt;
  return static_cast<uint64_t>(ArgInt(v, "seed", 0, (int64_t(1) << 53) - 1));
}

void MaybeSeed(const Napi::Value& v) {
  if (auto seed = ArgSeed(v)) torch::manual_seed(*seed);
}

at::Device ModuleDevice(const torch::nn::Module& m) {
  auto params = m.parameters();
  return params.empty() ? at::Device(at::kCPU) : params[0].device();
}

}  // namespace ibqb
