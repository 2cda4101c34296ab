#include "bindings/tokenizer_args.h"

#include "bindings/errors.h"
#include "bindings/tensor.h"

namespace ibqb {
namespace {

Napi::Value Field(const Napi::Object& o, const char* key) { return o.Get(key); }

int64_t IntField(const Napi::Object& o, const char* key, const std::string& arg, int64_t fallback, int64_t min,
                 int64_t max) {
  auto v = Field(o, key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  return ArgInt(v, (arg + "." + key).c_str(), min, max);
}

double NumField(const Napi::Object& o, const char* key, const std::string& arg, double fallback) {
  auto v = Field(o, key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  return ArgNumber(v, (arg + "." + key).c_str());
}

bool BoolField(const Napi::Object& o, const char* key, const std::string& arg, bool fallback) {
  return ArgBool(Field(o, key), (arg + "." + key).c_str(), fallback);
}

std::vector<int64_t> IntList(const Napi::Object& o, const char* key, const std::string& arg,
                             std::vector<int64_t> fallback) {
  auto v = Field(o, key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  std::string name = arg + "." + key;
  if (!v.IsArray()) ThrowType(v.Env(), name + ": expected an array of integers");
  auto a = v.As<Napi::Array>();
  std::vector<int64_t> out;
  for (uint32_t i = 0; i < a.Length(); ++i)
    out.push_back(ArgInt(a.Get(i), (name + "[" + std::to_string(i) + "]").c_str(), 0, int64_t(1) << 30));
  return out;
}

// quantizer_chunk: 'auto' (or absent) -> -1, 'dense' -> 0, a positive integer -> positions per block.
int64_t ChunkField(const Napi::Object& o, const std::string& arg) {
  auto v = Field(o, "quantizer_chunk");
  if (v.IsUndefined() || v.IsNull()) return -1;
  if (v.IsString()) {
    const auto s = v.As<Napi::String>().Utf8Value();
    if (s == "auto") return -1;
    if (s == "dense") return 0;
  }
  if (v.IsNumber()) return ArgInt(v, (arg + ".quantizer_chunk").c_str(), 1, int64_t(1) << 40);
  ThrowRange(v.Env(), arg + ".quantizer_chunk: expected 'auto', 'dense' or a positive integer");
}

}  // namespace

ibq::vqgan::DDConfig ArgDDConfig(const Napi::Value& v, const char* arg) {
  auto o = ArgObject(v, arg);
  const std::string a(arg);
  ibq::vqgan::DDConfig c;
  const int64_t big = int64_t(1) << 30;
  c.double_z = BoolField(o, "double_z", a, c.double_z);
  c.z_channels = IntField(o, "z_channels", a, c.z_channels, 1, big);
  c.resolution = IntField(o, "resolution", a, c.resolution, 1, big);
  c.in_channels = IntField(o, "in_channels", a, c.in_channels, 1, big);
  c.out_ch = IntField(o, "out_ch", a, c.out_ch, 1, big);
  c.ch = IntField(o, "ch", a, c.ch, 1, big);
  c.ch_mult = IntList(o, "ch_mult", a, c.ch_mult);
  c.num_res_blocks = IntField(o, "num_res_blocks", a, c.num_res_blocks, 1, 1024);
  c.attn_resolutions = IntList(o, "attn_resolutions", a, c.attn_resolutions);
  c.dropout = NumField(o, "dropout", a, c.dropout);
  return c;
}

ibq::IBQOptions ArgIBQOptions(const Napi::Object& o, const char* arg) {
  const std::string a(arg);
  ibq::IBQOptions q;
  q.n_embed = IntField(o, "n_embed", a, q.n_embed, 1, int64_t(1) << 40);
  q.embed_dim = IntField(o, "embed_dim", a, q.embed_dim, 1, int64_t(1) << 30);
  q.beta = NumField(o, "beta", a, q.beta);
  q.use_entropy_loss = BoolField(o, "use_entropy_loss", a, q.use_entropy_loss);
  q.entropy_temperature = NumField(o, "entropy_temperature", a, q.entropy_temperature);
  q.sample_minimization_weight = NumField(o, "sample_minimization_weight", a, q.sample_minimization_weight);
  q.batch_maximization_weight = NumField(o, "batch_maximization_weight", a, q.batch_maximization_weight);
  q.chunk = ChunkField(o, a);
  return q;
}

ibq::VQOptions ArgVQOptions(const Napi::Object& o, const char* arg) {
  const std::string a(arg);
  ibq::VQOptions q;
  q.n_embed = IntField(o, "n_embed", a, q.n_embed, 1, int64_t(1) << 40);
  q.embed_dim = IntField(o, "embed_dim", a, q.embed_dim, 1, int64_t(1) << 30);
  q.beta = NumField(o, "beta", a, q.beta);
  q.legacy = BoolField(o, "legacy", a, q.legacy);
  q.l2_normalize = BoolField(o, "l2_normalize", a, q.l2_normalize);
  return q;
}

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
