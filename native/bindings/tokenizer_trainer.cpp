// JS handle of tokenizer training (lib/tokenizer_trainer.ts wraps it):
//   new TokenizerTrainerHandle(tokenizerHandle, lossParams, options, seed?), or buildTokenizerTrainer(...) with the
//   same arguments (created on a worker thread)
// shares the tokenizer's module and job queue; step / lossAndGrads / lpips / state calls are one job each.
// Option objects use the official snake_case names (lossconfig.params and the model init_args).
#include <napi.h>

#include <ATen/CPUGeneratorImpl.h>

#include "bindings/addon_data.h"
#include "bindings/convert.h"
#include "bindings/errors.h"
#include "bindings/jobs.h"
#include "bindings/module_handle.h"
#include "bindings/process_group.h"
#include "bindings/module_ref.h"
#include "bindings/exports.h"
#include "bindings/tensor.h"
#include "bindings/tokenizer_args.h"
#include "ibq/core/errors.h"
#include "ibq/tokenizer/tokenizer_trainer.h"

namespace ibqb {
namespace {

constexpr const char* kName = "TokenizerTrainerHandle";

bool Present(const Napi::Object& o, const char* k) {
  auto v = o.Get(k);
  return !v.IsUndefined() && !v.IsNull();
}
std::string Path(const char* arg, const char* k) { return std::string(arg) + "." + k; }

// { learning_rate, scheduler_type, warmup_steps, max_steps, min_learning_rate, lr_drop_epoch, lr_drop_rate,
//   gradient_clip_val, use_ema, ema_decay (the declared TrainerOptions), autocast }
ibq::TrainerOptions ArgTrainerOptions(const Napi::Value& v) {
  auto t = ConfigFromJs<ibq::TrainerOptions>(v, "options");
  auto ac = ArgAutocast(v);
  if (ac) t.autocast = *ac;
  return t;
}

Napi::Object LogToJs(Napi::Env env, const ibq::StepLog& log) {
  auto o = Napi::Object::New(env);
  for (const auto& [k, v] : log) o.Set(k, Napi::Number::New(env, v));
  return o;
}

Napi::Value OptTensor(Napi::Env env, const at::Tensor& t) {
  return t.defined() ? TensorHandle::New(env, t) : env.Null();
}

// Optimizer state <-> JS: { lr, steps: number[] (0 = no state yet), expAvg: (Tensor|null)[], expAvgSq }
struct OptState {
  double lr = 0;
  std::vector<double> steps;
  std::vector<at::Tensor> exp_avg, exp_avg_sq;
};
OptState ReadOpt(ibq::Adam& opt) {
  OptState s;
  s.lr = opt.options().lr;
  for (const auto& st : opt.state()) {
    s.steps.push_back(st ? st->step : 0);
    s.exp_avg.push_back(st ? st->exp_avg.clone() : at::Tensor());
    s.exp_avg_sq.push_back(st ? st->exp_avg_sq.clone() : at::Tensor());
  }
  return s;
}
Napi::Object OptToJs(Napi::Env env, const OptState& s) {
  auto o = Napi::Object::New(env);
  o.Set("lr", s.lr);
  auto steps = Napi::Array::New(env), m = Napi::Array::New(env), v = Napi::Array::New(env);
  for (size_t i = 0; i < s.steps.size(); ++i) {
    steps.Set(uint32_t(i), s.steps[i]);
    m.Set(uint32_t(i), OptTensor(env, s.exp_avg[i]));
    v.Set(uint32_t(i), OptTensor(env, s.exp_avg_sq[i]));
  }
  o.Set("steps", steps);
  o.Set("expAvg", m);
  o.Set("expAvgSq", v);
  return o;
}
OptState ArgOpt(const Napi::Value& val, const char* arg) {
  auto o = ArgObject(val, arg);
  OptState s;
  s.lr = ArgNumber(o.Get("lr"), Path(arg, "lr").c_str());
  auto steps = o.Get("steps"), m = o.Get("expAvg"), v = o.Get("expAvgSq");
  if (!steps.IsArray() || !m.IsArray() || !v.IsArray())
    ThrowType(val.Env(), std::string(arg) + ": expected { lr, steps[], expAvg[], expAvgSq[] }");
  auto sa = steps.As<Napi::Array>(), ma = m.As<Napi::Array>(), va = v.As<Napi::Array>();
  if (ma.Length() != sa.Length() || va.Length() != sa.Length())
    ThrowRange(val.Env(), std::string(arg) + ": steps, expAvg and expAvgSq differ in length");
  for (uint32_t i = 0; i < sa.Length(); ++i) {
    const std::string at = std::string(arg) + "[" + std::to_string(i) + "]";
    s.steps.push_back(ArgNumber(sa.Get(i), (at + ".step").c_str()));
    s.exp_avg.push_back(ma.Get(i).IsNull() ? at::Tensor() : ArgTensor(ma.Get(i), (at + ".exp_avg").c_str()));
    s.exp_avg_sq.push_back(va.Get(i).IsNull() ? at::Tensor() : ArgTensor(va.Get(i), (at + ".exp_avg_sq").c_str()));
  }
  return s;
}
void WriteOpt(ibq::Adam& opt, const OptState& s, const char* arg) {
  auto& params = opt.params();
  if (s.steps.size() != params.size())
    throw ibq::ValueError(std::string(arg) + ": state for " + std::to_string(s.steps.size()) + " parameters, the optimizer has " +
                          std::to_string(params.size()));
  std::vector<std::optional<ibq::AdamParamState>> next(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    if (s.steps[i] <= 0 || !s.exp_avg[i].defined() || !s.exp_avg_sq[i].defined()) continue;
    if (s.exp_avg[i].sizes() != params[i].sizes() || s.exp_avg_sq[i].sizes() != params[i].sizes())
      throw ibq::ValueError(std::string(arg) + "[" + std::to_string(i) + "]: state shape " + c10::str(s.exp_avg[i].sizes()) +
                            " differs from the parameter's " + c10::str(params[i].sizes()));
    auto like = [&](const at::Tensor& t) { return t.to(params[i].device(), params[i].scalar_type()).clone(); };
    next[i] = ibq::AdamParamState{s.steps[i], like(s.exp_avg[i]), like(s.exp_avg_sq[i])};
  }
  opt.state() = std::move(next);
  opt.options().lr = s.lr;
}

class TokenizerTrainerHandle : public ModuleHandle<TokenizerTrainerHandle> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    auto methods = CommonMethods();
    methods.push_back(InstanceMethod<&TokenizerTrainerHandle::Step>("step"));
    methods.push_back(InstanceMethod<&TokenizerTrainerHandle::SetDataParallel>("setDataParallel"));
    methods.push_back(InstanceMethod<&TokenizerTrainerHandle::LossAndGrads>("lossAndGrads"));
    methods.push_back(InstanceMethod<&TokenizerTrainerHandle::EndEpoch>("endEpoch"));
    methods.push_back(InstanceMethod<&TokenizerTrainerHandle::Lpips>("lpips"));
    methods.push_back(InstanceMethod<&TokenizerTrainerHandle::LoadLpipsTorchvision>("loadLpipsTorchvision"));
    methods.push_back(InstanceMethod<&TokenizerTrainerHandle::GetState>("getState"));
    methods.push_back(InstanceMethod<&TokenizerTrainerHandle::SetState>("setState"));
    Napi::Function ctor = DefineClass(env, kName, methods);
    GetAddonData(env).ctors[kName] = Napi::Persistent(ctor);
    exports.Set(kName, ctor);
    exports.Set("buildTokenizerTrainer", Napi::Function::New(env, &TokenizerTrainerHandle::BuildAsync, "buildTokenizerTrainer"));
  }

  explicit TokenizerTrainerHandle(const Napi::CallbackInfo& info) : ModuleHandle<TokenizerTrainerHandle>(info) {
    if (IsBuildMarker(info[0])) return;
    auto a = ReadArgs(info);
    adopt(Guard(info.Env(), [&] { return Make(a); }), a.queue);
  }

  // buildTokenizerTrainer(tokenizerHandle, lossParams, options, seed?) -> Promise<TokenizerTrainerHandle>: the
  // same, created on a worker thread after the tokenizer's queued jobs (LPIPS, discriminator, EMA copies)
  static Napi::Value BuildAsync(const Napi::CallbackInfo& info) {
    auto a = ReadArgs(info);
    return Build(
        info.Env(), kName,
        [a] {
          auto t = Make(a);
          auto queue = a.queue;
          return Adopt([t, queue](TokenizerTrainerHandle& h) { h.adopt(t, queue); });
        },
        a.queue);
  }

 private:
  struct Args {
    std::shared_ptr<ibq::TokenizerImpl> tok;
    std::shared_ptr<JobQueue> queue;
    ibq::VQLossOptions loss;
    ibq::TrainerOptions opts;
    std::optional<uint64_t> seed;
  };
  static Args ReadArgs(const Napi::CallbackInfo& info) {
    Args a;
    ModuleRef ref = ArgModuleRef(info[0], "tokenizer");
    a.tok = std::dynamic_pointer_cast<ibq::TokenizerImpl>(ref.module);
    if (!a.tok) ThrowType(info.Env(), "tokenizer: expected a Tokenizer");
    a.queue = ref.queue;
    a.loss = ConfigFromJs<ibq::VQLossOptions>(info[1], "lossconfig");
    a.opts = ArgTrainerOptions(info[2]);
    a.seed = ArgSeed(info[3]);
    return a;
  }
  static std::shared_ptr<ibq::TokenizerTrainer> Make(const Args& a) {
    if (a.seed) torch::manual_seed(*a.seed);
    return std::make_shared<ibq::TokenizerTrainer>(a.tok, a.loss, a.opts);
  }
  void adopt(std::shared_ptr<ibq::TokenizerTrainer> t, std::shared_ptr<JobQueue> queue) {
    trainer_ = std::move(t);
    module_ = trainer_->module().ptr();
    queue_ = std::move(queue);  // calls on the tokenizer and on its trainer run in order
    owns_queue_ = false;        // the tokenizer's: disposing the trainer leaves the tokenizer usable
  }

  std::shared_ptr<ibq::TokenizerTrainer> live(Napi::Env env) {
    module(env);
    return trainer_;
  }
  // The trainer owns the optimizers, LPIPS, discriminator and EMA: dispose() releases them with module_.
  void release_extra() override { trainer_.reset(); }

  // step(x, globalStep, accumulate?, microBatch?) -> Promise<{ log: Record<string, number>,
  //   nonfinite: '' | 'generator' | 'discriminator', nonfiniteRanks: number[] }>
  Napi::Value Step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto t = live(env);
    at::Tensor x = ArgTensor(info[0], "batch");
    int64_t gs = ArgInt(info[1], "globalStep", 0, int64_t(1) << 53);
    int64_t acc = info[2].IsUndefined() ? 1 : ArgInt(info[2], "accumulate", 1, 1 << 20);
    int64_t micro = info[3].IsUndefined() ? 0 : ArgInt(info[3], "microBatch", 1, int64_t(1) << 40);
    return Submit(
        env,
        [t, x, gs, acc, micro](JobContext&) -> Finisher {
          auto r = t->step(x, gs, acc, micro);
          return [r](Napi::Env env) -> Napi::Value {
            auto o = Napi::Object::New(env);
            o.Set("log", LogToJs(env, r.log));
            o.Set("nonfinite", r.nonfinite);
            o.Set("nonfiniteRanks", RanksToJs(env, r.nonfinite_ranks));
            auto lr = Napi::Array::New(env, 2);
            lr.Set(0u, r.lr_gen);
            lr.Set(1u, r.lr_disc);
            o.Set("lr", lr);
            return o;
          };
        },
        JobOptions{queue_});
  }

  // setDataParallel(processGroup | null, { bucketCapMb? }) -> Promise<void>: broadcasts parameters and buffers
  // from rank 0 (a collective: every rank calls it); then every step averages gradients over the ranks.
  Napi::Value SetDataParallel(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto t = live(env);
    auto dp = ArgDataParallel(info);
    return Submit(
        env,
        [t, dp](JobContext&) -> Finisher {
          t->set_data_parallel(dp.group, dp.options);
          return [](Napi::Env env) { return env.Undefined(); };
        },
        JobOptions{queue_});
  }

  // lossAndGrads(x, optimizerIdx, globalStep, wrt[]) -> Promise<{ loss, log, grads: [name, Tensor][] }>
  Napi::Value LossAndGrads(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto t = live(env);
    at::Tensor x = ArgTensor(info[0], "x");
    int idx = int(ArgInt(info[1], "optimizerIdx", 0, 1));
    int64_t gs = ArgInt(info[2], "globalStep", 0, int64_t(1) << 53);
    if (!info[3].IsArray()) ThrowType(env, "wrt: expected an array of parameter names");
    std::vector<std::string> wrt;
    auto arr = info[3].As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); ++i) wrt.push_back(ArgString(arr.Get(i), "wrt[]"));
    return Submit(
        env,
        [t, x, idx, gs, wrt](JobContext&) -> Finisher {
          auto r = t->loss_and_grads(x, idx, gs, wrt);
          return [r](Napi::Env env) -> Napi::Value {
            auto o = Napi::Object::New(env);
            o.Set("loss", r.loss);
            o.Set("log", LogToJs(env, r.log));
            o.Set("grads", StateDictToJs(env, r.grads, /*share=*/true));
            return o;
          };
        },
        JobOptions{queue_});
  }

  // endEpoch(epoch) -> Promise<void>: the official LR drop at the end of a (0-based) epoch
  Napi::Value EndEpoch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto t = live(env);
    int64_t epoch = ArgInt(info[0], "epoch", 0, int64_t(1) << 40);
    return Submit(
        env,
        [t, epoch](JobContext&) -> Finisher {
          t->end_epoch(epoch);
          return [](Napi::Env env) { return env.Undefined(); };
        },
        JobOptions{queue_});
  }

  // lpips(a, b) -> Promise<Tensor [B,1,1,1]>: the perceptual loss module (loss.perceptual_loss) on [-1, 1] images
  Napi::Value Lpips(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto t = live(env);
    at::Tensor a = ArgTensor(info[0], "in0"), b = ArgTensor(info[1], "in1");
    return Submit(
        env,
        [t, a, b](JobContext&) -> Finisher {
          torch::NoGradGuard no_grad;
          auto d = t->module()->loss->perceptual_loss->forward(a, b);
          return [d](Napi::Env env) -> Napi::Value { return TensorHandle::New(env, d); };
        },
        JobOptions{queue_});
  }

  // loadLpipsTorchvision(vgg16Entries, linEntries) -> Promise<void>
  Napi::Value LoadLpipsTorchvision(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto t = live(env);
    auto backbone = ArgStateDict(info[0], "vgg16");
    auto lin = ArgStateDict(info[1], "lin");
    return Submit(
        env,
        [t, backbone, lin](JobContext&) -> Finisher {
          auto& net = *t->module()->loss->perceptual_loss;
          ibq::load_lpips(net, ibq::lpips_state_from_torchvision(net, backbone, lin));
          return [](Napi::Env env) { return env.Undefined(); };
        },
        JobOptions{queue_});
  }

  // getState() -> Promise<{ optimizers: [gen, disc], schedulerSteps, lecam: [real, fake], rng: uint8 Tensor }>
  Napi::Value GetState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto t = live(env);
    return Submit(
        env,
        [t](JobContext&) -> Finisher {
          auto gen = ReadOpt(t->opt_gen()), disc = ReadOpt(t->opt_disc());
          const int64_t steps = t->scheduler_steps();
          const auto& ema = t->module()->loss->lecam_ema;
          const double real = ema.logits_real_ema, fake = ema.logits_fake_ema;
          auto gen_cpu = at::detail::getDefaultCPUGenerator();
          at::Tensor rng;
          {
            std::lock_guard<std::mutex> lock(gen_cpu.mutex());
            rng = gen_cpu.get_state();
          }
          return [gen, disc, steps, real, fake, rng](Napi::Env env) -> Napi::Value {
            auto o = Napi::Object::New(env);
            auto opts = Napi::Array::New(env, 2);
            opts.Set(0u, OptToJs(env, gen));
            opts.Set(1u, OptToJs(env, disc));
            o.Set("optimizers", opts);
            o.Set("schedulerSteps", Napi::Number::New(env, double(steps)));
            auto lecam = Napi::Array::New(env, 2);
            lecam.Set(0u, real);
            lecam.Set(1u, fake);
            o.Set("lecam", lecam);
            o.Set("rng", TensorHandle::New(env, rng));
            return o;
          };
        },
        JobOptions{queue_});
  }

  // setState({ optimizers?, schedulerSteps?, lecam?, rng? }) -> Promise<void>; absent parts are kept
  Napi::Value SetState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto t = live(env);
    auto o = ArgObject(info[0], "state");
    std::optional<OptState> gen, disc;
    if (Present(o, "optimizers")) {
      auto v = o.Get("optimizers");
      if (!v.IsArray() || v.As<Napi::Array>().Length() != 2)
        ThrowType(env, "state.optimizers: expected [generator, discriminator]");
      gen = ArgOpt(v.As<Napi::Array>().Get(0u), "state.optimizers[0]");
      disc = ArgOpt(v.As<Napi::Array>().Get(1u), "state.optimizers[1]");
    }
    std::optional<int64_t> steps;
    if (Present(o, "schedulerSteps")) steps = ArgInt(o.Get("schedulerSteps"), "state.schedulerSteps", 0, int64_t(1) << 53);
    std::optional<std::pair<double, double>> lecam;
    if (Present(o, "lecam")) {
      auto v = o.Get("lecam");
      if (!v.IsArray() || v.As<Napi::Array>().Length() != 2) ThrowType(env, "state.lecam: expected [real, fake]");
      lecam = std::make_pair(ArgNumber(v.As<Napi::Array>().Get(0u), "state.lecam[0]"),
                             ArgNumber(v.As<Napi::Array>().Get(1u), "state.lecam[1]"));
    }
    at::Tensor rng;
    if (Present(o, "rng")) rng = ArgTensor(o.Get("rng"), "state.rng");
    return Submit(
        env,
        [t, gen, disc, steps, lecam, rng](JobContext&) -> Finisher {
          if (steps) t->set_scheduler_steps(*steps);
          if (gen) WriteOpt(t->opt_gen(), *gen, "state.optimizers[0]");
          if (disc) WriteOpt(t->opt_disc(), *disc, "state.optimizers[1]");
          if (lecam) {
            t->module()->loss->lecam_ema.logits_real_ema = lecam->first;
            t->module()->loss->lecam_ema.logits_fake_ema = lecam->second;
          }
          if (rng.defined()) {
            if (rng.scalar_type() != at::kByte) throw ibq::TypeError("state.rng: expected a uint8 tensor (torch.get_rng_state())");
            auto gen_cpu = at::detail::getDefaultCPUGenerator();
            std::lock_guard<std::mutex> lock(gen_cpu.mutex());
            gen_cpu.set_state(rng.contiguous());
          }
          return [](Napi::Env env) { return env.Undefined(); };
        },
        JobOptions{queue_});
  }

  std::shared_ptr<ibq::TokenizerTrainer> trainer_;
};

}  // namespace

// Listed in addon.cpp (exports.h).
void InitTokenizerTrainer(Napi::Env env, Napi::Object exports) { TokenizerTrainerHandle::Init(env, exports); }

}  // namespace ibqb
