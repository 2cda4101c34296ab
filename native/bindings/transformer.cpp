// JS handle of the AR transformer (ibq::Transformer): forward, sampling, gradients and AdamW training steps, each
// one native call on the model's queue; plus config helpers (presets, parameter counts).
#include <napi.h>

#include "bindings/addon_data.h"
#include "bindings/config_fields.h"
#include "bindings/convert.h"
#include "bindings/errors.h"
#include "bindings/jobs.h"
#include "bindings/module_handle.h"
#include "bindings/process_group.h"
#include "bindings/exports.h"
#include "bindings/tensor.h"
#include "ibq/core/errors.h"
#include "ibq/transformer/transformer.h"
#include <cstring>
#include <type_traits>

#include "ibq/transformer/transformer_sample.h"
#include "ibq/transformer/transformer_train.h"

namespace ibqb {
namespace {

constexpr const char* kCtor = "TransformerHandle";

std::vector<std::string> ArgStrings(const Napi::Value& v, const char* arg) {
  if (!v.IsArray()) ThrowType(v.Env(), std::string(arg) + ": expected an array of strings");
  auto a = v.As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(ArgString(a.Get(i), arg));
  return out;
}

class TransformerHandle : public ModuleHandle<TransformerHandle> {
  friend class ModuleHandle<TransformerHandle>;

 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    auto methods = CommonMethods();
    for (auto d : {InstanceMethod<&TransformerHandle::Forward>("forward"),
                   InstanceMethod<&TransformerHandle::Sample>("sample"),
                   InstanceMethod<&TransformerHandle::LossAndGrads>("lossAndGrads"),
                   InstanceMethod<&TransformerHandle::TrainStep>("trainStep"),
                   InstanceMethod<&TransformerHandle::SetDataParallel>("setDataParallel"),
                   InstanceMethod<&TransformerHandle::OptimizerState>("optimizerState"),
                   InstanceMethod<&TransformerHandle::LoadOptimizerState>("loadOptimizerState"),
                   InstanceMethod<&TransformerHandle::RngState>("rngState"),
                   InstanceMethod<&TransformerHandle::SetRngState>("setRngState"),
                   InstanceMethod<&TransformerHandle::Config>("config"),
                   InstanceMethod<&TransformerHandle::ToDevice>("to")})
      methods.push_back(d);
    auto ctor = DefineClass(env, kCtor, methods);
    GetAddonData(env).ctors[kCtor] = Napi::Persistent(ctor);
    exports.Set(kCtor, ctor);
  }

  // new TransformerHandle(config, seed | undefined, device | undefined): official initialisation.
  explicit TransformerHandle(const Napi::CallbackInfo& info) : ModuleHandle<TransformerHandle>(info) {
    Construct(info);
  }

  // buildTransformer(config, seed?, device?) -> Promise<TransformerHandle>: the same, created on a worker thread
  static Napi::Value BuildAsync(const Napi::CallbackInfo& info) { return BuildFrom(info, kCtor); }

 private:
  struct Args {
    ibq::TransformerConfig cfg;
    std::optional<int64_t> seed;
    c10::optional<at::Device> device;
  };
  static Args ReadArgs(const Napi::CallbackInfo& info) {
    Args a;
    a.cfg = ConfigFromJs<ibq::TransformerConfig>(info[0], "config");
    if (!info[1].IsUndefined() && !info[1].IsNull()) a.seed = ArgInt(info[1], "seed", 0, int64_t(1) << 53);
    if (!info[2].IsUndefined() && !info[2].IsNull()) a.device = ArgDevice(info[2], "device");
    return a;
  }
  static std::shared_ptr<torch::nn::Module> Make(const Args& a) {
    if (a.seed) at::manual_seed(static_cast<uint64_t>(*a.seed));
    auto m = std::make_shared<ibq::TransformerImpl>(a.cfg);
    if (a.device) m->to(*a.device);
    return m;
  }

  std::shared_ptr<ibq::TransformerImpl> live(Napi::Env env) const { return typed<ibq::TransformerImpl>(env); }

  void release_extra() override { trainer_.reset(); }

  // forward(tokens, labels) -> Promise<Tensor [B, T+1, V]>
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    auto g = live(info.Env());
    auto tokens = ArgTensor(info[0], "tokens");
    auto labels = ArgTensor(info[1], "labels");
    return Submit(
        info.Env(),
        [g, tokens, labels](JobContext&) -> Finisher {
          at::Tensor out;
          if (g->is_training()) {
            out = g->forward(tokens, labels).detach();
          } else {
            torch::NoGradGuard ng;
            out = g->forward(tokens, labels);
          }
          return [out](Napi::Env env) { return TensorHandle::New(env, out); };
        },
        JobOptions{queue_});
  }

  // sample(labels, { cfgScale, temperature, topK, topP, greedy, seed?, steps?, onProgress?, abortFlag? })
  Napi::Value Sample(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto g = live(env);
    auto labels = ArgTensor(info[0], "labels");
    auto o = ArgObject(info[1], "options");
    ibq::SampleOptions so;
    const int64_t lim = int64_t(1) << 53;  // conversion only: lib/transformer checked the options
    so.cfg_scale = ArgNumber(o.Get("cfgScale"), "cfgScale");
    so.temperature = ArgNumber(o.Get("temperature"), "temperature");
    so.top_k = ArgInt(o.Get("topK"), "topK", -lim, lim);
    so.top_p = ArgNumber(o.Get("topP"), "topP");
    so.greedy = ArgBool(o.Get("greedy"), "greedy", false);
    if (!o.Get("seed").IsUndefined()) so.seed = static_cast<uint64_t>(ArgInt(o.Get("seed"), "seed", 0, lim));
    if (!o.Get("steps").IsUndefined()) so.steps = ArgInt(o.Get("steps"), "steps", -lim, lim);
    return Submit(
        env,
        [g, labels, so](JobContext& ctx) -> Finisher {
          auto out = ibq::transformer_sample(*g, labels, so, [&](int64_t s, int64_t n) {
            ctx.check_aborted();
            ctx.progress(s, n);
          });
          return [out](Napi::Env env) { return TensorHandle::New(env, out); };
        },
        ReadJobOptions(o, queue_));
  }

  // lossAndGrads(tokens, labels, wrt: string[], dropLabels: boolean) -> Promise<{ loss, grads: [name, T][] }>
  Napi::Value LossAndGrads(const Napi::CallbackInfo& info) {
    auto g = live(info.Env());
    auto tokens = ArgTensor(info[0], "tokens");
    auto labels = ArgTensor(info[1], "labels");
    auto wrt = ArgStrings(info[2], "wrt");
    bool drop = ArgBool(info[3], "dropLabels", true);
    return Submit(
        info.Env(),
        [g, tokens, labels, wrt, drop](JobContext&) -> Finisher {
          auto r = ibq::transformer_loss_and_grads(*g, tokens, labels, wrt, drop);
          return [r](Napi::Env env) {
            auto o = Napi::Object::New(env);
            o.Set("loss", Napi::Number::New(env, r.loss));
            o.Set("grads", StateDictToJs(env, r.grads, /*share=*/true));
            return o;
          };
        },
        JobOptions{queue_});
  }

  // AdamW state, made at the first training call (one owner: this handle; released by dispose()).
  ibq::TransformerTrainer& trainer(Napi::Env env) {
    if (!trainer_) trainer_ = std::make_shared<ibq::TransformerTrainer>(live(env));
    return *trainer_;
  }

  // trainStep(tokens, labels, { lr, weightDecay, clip, autocast?, accumulate?, microBatch? })
  //   -> Promise<{ loss, gradNorm, nonfiniteRanks }>
  Napi::Value TrainStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto g = live(env);
    auto tokens = ArgTensor(info[0], "tokens");
    auto labels = ArgTensor(info[1], "labels");
    auto o = ArgObject(info[2], "options");
    double lr = ArgNumber(o.Get("lr"), "lr"), wd = ArgNumber(o.Get("weightDecay"), "weightDecay");
    double clip = ArgNumber(o.Get("clip"), "clip");
    auto autocast = ArgAutocast(o);
    int64_t acc = o.Has("accumulate") && !o.Get("accumulate").IsUndefined() ? ArgInt(o.Get("accumulate"), "accumulate", 1, 1 << 20) : 1;
    int64_t micro = o.Has("microBatch") && !o.Get("microBatch").IsUndefined() ? ArgInt(o.Get("microBatch"), "microBatch", 1, int64_t(1) << 40) : 0;
    auto* t = &Guard(env, [&]() -> ibq::TransformerTrainer& { return trainer(info.Env()); });
    auto keep = trainer_;
    return Submit(
        env,
        [g, keep, t, tokens, labels, lr, wd, clip, autocast, acc, micro](JobContext&) -> Finisher {
          auto r = t->step(tokens, labels, lr, wd, clip, autocast, acc, micro);
          return [r](Napi::Env env) {
            auto o = Napi::Object::New(env);
            o.Set("loss", Napi::Number::New(env, r.loss));
            o.Set("gradNorm", Napi::Number::New(env, r.grad_norm));
            o.Set("nonfiniteRanks", RanksToJs(env, r.nonfinite_ranks));
            return o;
          };
        },
        JobOptions{queue_});
  }

  // setDataParallel(processGroup | null, { bucketCapMb? }) -> Promise<void>: broadcasts the weights and buffers
  // from rank 0 (a collective: every rank calls it), then every trainStep averages gradients over the ranks.
  Napi::Value SetDataParallel(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto g = live(env);
    auto dp = ArgDataParallel(info);
    auto* t = &Guard(env, [&]() -> ibq::TransformerTrainer& { return trainer(info.Env()); });
    auto keep = trainer_;
    return Submit(
        env,
        [g, keep, t, dp](JobContext&) -> Finisher {
          t->set_data_parallel(dp.group, dp.options);
          return [](Napi::Env env) { return env.Undefined(); };
        },
        JobOptions{queue_});
  }

  Napi::Value OptimizerState(const Napi::CallbackInfo& info) {
    check_idle(info.Env(), "optimizerState()");
    live(info.Env());
    return Guard(info.Env(), [&] { return StateDictToJs(info.Env(), trainer(info.Env()).state(), true); });
  }

  Napi::Value LoadOptimizerState(const Napi::CallbackInfo& info) {
    check_idle(info.Env(), "loadOptimizerState()");
    live(info.Env());
    auto sd = ArgStateDict(info[0], "optimizerState");
    Guard(info.Env(), [&] { trainer(info.Env()).load_state(sd); });
    return info.Env().Undefined();
  }

  // rngState(): uint8 state of the default generator of the model's device (torch.get_rng_state() layout
  // on CPU), which the training dropouts draw from; setRngState(t) restores it (for exact resume).
  Napi::Value RngState(const Napi::CallbackInfo& info) {
    check_idle(info.Env(), "rngState()");
    auto g = live(info.Env());
    return Guard(info.Env(), [&] {
      auto gen = at::globalContext().defaultGenerator(g->head->weight.device());
      std::lock_guard<std::mutex> lock(gen.mutex());
      return TensorHandle::New(info.Env(), gen.get_state());
    });
  }

  Napi::Value SetRngState(const Napi::CallbackInfo& info) {
    check_idle(info.Env(), "setRngState()");
    auto g = live(info.Env());
    auto state = ArgTensor(info[0], "state");
    Guard(info.Env(), [&] {
      if (state.scalar_type() != at::kByte || state.dim() != 1)
        throw ibq::ValueError("state: expected a uint8 [n] generator state, got " + DTypeName(state.scalar_type()) + " " +
                              c10::str(state.sizes()));
      auto gen = at::globalContext().defaultGenerator(g->head->weight.device());
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(state.cpu());
    });
    return info.Env().Undefined();
  }

  Napi::Value Config(const Napi::CallbackInfo& info) { return ConfigToJs(info.Env(), live(info.Env())->cfg); }

  // to(device): moves the weights (synchronously; before any optimizer state exists).
  Napi::Value ToDevice(const Napi::CallbackInfo& info) {
    check_idle(info.Env(), "to()");
    auto g = live(info.Env());
    auto d = ArgDevice(info[0], "device");
    Guard(info.Env(), [&] {
      g->to(d);
      trainer_.reset();
    });
    return info.Env().Undefined();
  }

  std::shared_ptr<ibq::TransformerTrainer> trainer_;
};

// transformerConfig(config | presetName) -> the full config (a preset's, or the one given: lib/transformer has
// validated it) with parameterCount and the preset it equals.
Napi::Value TransformerConfigFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    auto c = info[0].IsString() ? ibq::transformer_preset(info[0].As<Napi::String>().Utf8Value())
                                : ConfigFromJs<ibq::TransformerConfig>(info[0], "config");
    c.validate();
    auto o = ConfigToJs(env, c);
    o.Set("parameterCount", Napi::Number::New(env, double(c.parameter_count())));
    o.Set("preset", Napi::String::New(env, ibq::transformer_preset_name(c)));
    return o;
  });
}

}  // namespace

// Listed in addon.cpp (exports.h).
void InitTransformer(Napi::Env env, Napi::Object exports) {
  TransformerHandle::Init(env, exports);
  exports.Set("buildTransformer", Napi::Function::New(env, &TransformerHandle::BuildAsync, "buildTransformer"));
  exports.Set("transformerConfig", Napi::Function::New(env, TransformerConfigFn, "transformerConfig"));
}

}  // namespace ibqb
