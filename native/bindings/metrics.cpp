// Evaluation metrics: Frechet distance, feature statistics, Inception Score, SSIM / PSNR as the
// official evaluation, codebook usage. Exposed as `metrics.*` plus the FeatureMomentsHandle accumulator.
#include <napi.h>

#include "bindings/errors.h"
#include "bindings/jobs.h"
#include "bindings/exports.h"
#include "bindings/tensor.h"
#include "ibq/eval/metrics.h"

namespace ibqb {
namespace {

namespace M = ibq::metrics;

Napi::Object StatsToJs(Napi::Env env, const M::GaussianStats& s) {
  auto o = Napi::Object::New(env);
  o.Set("mu", TensorHandle::New(env, s.mu));
  o.Set("sigma", TensorHandle::New(env, s.sigma));
  o.Set("n", Napi::Number::New(env, double(s.n)));
  return o;
}

// { mu: Tensor, sigma: Tensor, n?: number } -> GaussianStats
M::GaussianStats ArgStats(const Napi::Value& v, const char* arg) {
  auto o = ArgObject(v, arg);
  M::GaussianStats s;
  s.mu = ArgTensor(o.Get("mu"), (std::string(arg) + ".mu").c_str());
  s.sigma = ArgTensor(o.Get("sigma"), (std::string(arg) + ".sigma").c_str());
  auto n = o.Get("n");
  s.n = n.IsUndefined() || n.IsNull() ? 0 : ArgInt(n, (std::string(arg) + ".n").c_str(), 0, int64_t(1) << 50);
  return s;
}

// frechetDistance(stats1, stats2, eps) -> Promise<{ value: number, warning: string }>
Napi::Value FrechetDistance(const Napi::CallbackInfo& info) {
  auto a = ArgStats(info[0], "stats1"), b = ArgStats(info[1], "stats2");
  double eps = info[2].IsUndefined() ? 1e-6 : ArgNumber(info[2], "eps");
  return Submit(info.Env(), [a, b, eps](JobContext&) -> Finisher {
    auto r = M::frechet_distance(a, b, eps);
    return [r](Napi::Env env) {
      auto o = Napi::Object::New(env);
      o.Set("value", Napi::Number::New(env, r.value));
      o.Set("warning", Napi::String::New(env, r.warning));
      return o;
    };
  });
}

// featureStats(features [N,D]) -> Promise<{ mu, sigma, n }>
Napi::Value FeatureStats(const Napi::CallbackInfo& info) {
  auto f = ArgTensor(info[0], "features");
  return Submit(info.Env(), [f](JobContext&) -> Finisher {
    auto s = M::feature_stats(f);
    return [s](Napi::Env env) { return StatsToJs(env, s); };
  });
}

// inceptionScore(logits [N,C], splits) -> Promise<{ mean, std }>
Napi::Value InceptionScore(const Napi::CallbackInfo& info) {
  auto l = ArgTensor(info[0], "logits");
  int64_t splits = ArgInt(info[1], "splits", 1, 1 << 20);
  return Submit(info.Env(), [l, splits](JobContext&) -> Finisher {
    auto r = M::inception_score(l, splits);
    return [r](Napi::Env env) {
      auto o = Napi::Object::New(env);
      o.Set("mean", Napi::Number::New(env, r.mean));
      o.Set("std", Napi::Number::New(env, r.std));
      return o;
    };
  });
}

// ssimPsnr(a, b [B,C,H,W] in [0,1], symmetric) -> Promise<{ ssim: Tensor [B] f64, psnr: Tensor [B] f64 }>
// symmetric: a, b in [-1, 1], mapped by (x + 1) / 2 first (clamped).
Napi::Value SsimPsnr(const Napi::CallbackInfo& info) {
  auto a = ArgTensor(info[0], "a"), b = ArgTensor(info[1], "b");
  bool symmetric = ArgBool(info[2], "symmetric", false);
  return Submit(info.Env(), [a, b, symmetric](JobContext&) -> Finisher {
    auto x = symmetric ? M::unit_from_symmetric(a) : a, y = symmetric ? M::unit_from_symmetric(b) : b;
    auto s = M::ssim_per_image(x, y), p = M::psnr_per_image(x, y);
    return [s, p](Napi::Env env) {
      auto o = Napi::Object::New(env);
      o.Set("ssim", TensorHandle::New(env, s));
      o.Set("psnr", TensorHandle::New(env, p));
      return o;
    };
  });
}

// codebookUsage(indices, n_embed) -> Promise<{ histogram: Tensor [n_embed] int64, used, utilization }>
Napi::Value CodebookUsage(const Napi::CallbackInfo& info) {
  auto idx = ArgTensor(info[0], "indices");
  int64_t n_embed = ArgInt(info[1], "n_embed", 1, int64_t(1) << 40);
  return Submit(info.Env(), [idx, n_embed](JobContext&) -> Finisher {
    auto u = M::codebook_usage(idx, n_embed);
    return [u](Napi::Env env) {
      auto o = Napi::Object::New(env);
      o.Set("histogram", TensorHandle::New(env, u.histogram));
      o.Set("used", Napi::Number::New(env, double(u.used)));
      o.Set("utilization", Napi::Number::New(env, u.utilization));
      return o;
    };
  });
}

// new FeatureMomentsHandle(); add(features [B,D]) -> Promise<void>; stats() -> Promise<{ mu, sigma, n }>;
// count() -> number. Calls on one accumulator run in order.
class FeatureMomentsHandle : public Napi::ObjectWrap<FeatureMomentsHandle> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    exports.Set("FeatureMomentsHandle",
                DefineClass(env, "FeatureMomentsHandle",
                            {InstanceMethod<&FeatureMomentsHandle::Add>("add"),
                             InstanceMethod<&FeatureMomentsHandle::Stats>("stats"),
                             InstanceMethod<&FeatureMomentsHandle::Count>("count")}));
  }
  explicit FeatureMomentsHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FeatureMomentsHandle>(info) {}

 private:
  Napi::Value Add(const Napi::CallbackInfo& info) {
    auto f = ArgTensor(info[0], "features");
    auto m = moments_;
    return Submit(
        info.Env(),
        [m, f](JobContext&) -> Finisher {
          m->add(f);
          return [](Napi::Env env) { return env.Undefined(); };
        },
        JobOptions{queue_});
  }
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    auto m = moments_;
    return Submit(
        info.Env(),
        [m](JobContext&) -> Finisher {
          auto s = m->stats();
          return [s](Napi::Env env) { return StatsToJs(env, s); };
        },
        JobOptions{queue_});
  }
  Napi::Value Count(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(moments_->n)); }

  std::shared_ptr<M::FeatureMoments> moments_ = std::make_shared<M::FeatureMoments>();
  std::shared_ptr<JobQueue> queue_ = NewQueue();
};

// clamp(x, lo, hi) -> Tensor (a new tensor; e.g. reconstructions clamped to [-1, 1] before evaluation)
Napi::Value Clamp(const Napi::CallbackInfo& info) {
  auto x = ArgTensor(info[0], "x");
  double lo = ArgNumber(info[1], "lo"), hi = ArgNumber(info[2], "hi");
  if (!(lo <= hi)) ThrowRange(info.Env(), "lo, hi: expected lo <= hi");
  return Guard(info.Env(), [&] { return TensorHandle::New(info.Env(), at::clamp(x.detach(), lo, hi)); });
}

// clampAsync(x, lo, hi) -> Promise<Tensor>: the same, computed on a worker thread
Napi::Value ClampAsync(const Napi::CallbackInfo& info) {
  auto x = ArgTensor(info[0], "x");
  double lo = ArgNumber(info[1], "lo"), hi = ArgNumber(info[2], "hi");
  if (!(lo <= hi)) ThrowRange(info.Env(), "lo, hi: expected lo <= hi");
  return Submit(info.Env(), [x, lo, hi](JobContext&) -> Finisher {
    at::Tensor y = at::clamp(x.detach(), lo, hi);
    return [y](Napi::Env env) -> Napi::Value { return TensorHandle::New(env, y); };
  });
}

// samplePixels(x [B, C, H, W]) -> Promise<Tensor uint8 [B, H, W, C]>: the official sample script's conversion
Napi::Value SamplePixels(const Napi::CallbackInfo& info) {
  auto x = ArgTensor(info[0], "images");
  return Submit(info.Env(), [x](JobContext&) -> Finisher {
    at::Tensor u = M::sample_pixels_uint8(x);
    return [u](Napi::Env env) -> Napi::Value { return TensorHandle::New(env, u); };
  });
}

}  // namespace

// Listed in addon.cpp (exports.h).
void InitMetrics(Napi::Env env, Napi::Object exports) {
  auto m = Napi::Object::New(env);
  m.Set("frechetDistance", Napi::Function::New(env, FrechetDistance, "frechetDistance"));
  m.Set("featureStats", Napi::Function::New(env, FeatureStats, "featureStats"));
  m.Set("inceptionScore", Napi::Function::New(env, InceptionScore, "inceptionScore"));
  m.Set("ssimPsnr", Napi::Function::New(env, SsimPsnr, "ssimPsnr"));
  m.Set("clamp", Napi::Function::New(env, Clamp, "clamp"));
  m.Set("clampAsync", Napi::Function::New(env, ClampAsync, "clampAsync"));
  m.Set("samplePixels", Napi::Function::New(env, SamplePixels, "samplePixels"));
  m.Set("codebookUsage", Napi::Function::New(env, CodebookUsage, "codebookUsage"));
  FeatureMomentsHandle::Init(env, m);
  exports.Set("metrics", m);
}

}  // namespace ibqb
