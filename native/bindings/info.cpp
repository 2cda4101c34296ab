// info(), setNumThreads(): what libtorch this addon runs on.
#include <napi.h>
#include <torch/torch.h>

#include "bindings/errors.h"
#include "bindings/jobs.h"
#include "bindings/exports.h"
#include "ibq/core/compat.h"
#include "ibq/core/cpu_threads.h"
#include "ibq/core/cpu_kernels.h"
#include "ibq/quantizer/quantizer_fused.h"

namespace ibqb {
namespace {

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto out = Napi::Object::New(env);
  out.Set("libtorch", Napi::String::New(env, ibq::compat::torch_version()));
  bool cuda = torch::cuda::is_available();
  out.Set("cuda", Napi::Boolean::New(env, cuda));
  out.Set("cudaDevices", Napi::Number::New(env, cuda ? double(torch::cuda::device_count()) : 0.0));
  out.Set("threads", Napi::Number::New(env, ibq::job_threads()));
  auto [source, reason] = ibq::job_threads_source();
  out.Set("threadsSource", Napi::String::New(env, source.empty() ? "libtorch" : source));
  out.Set("threadsReason", Napi::String::New(env, reason.empty() ? "libtorch's default" : reason));
  out.Set("workers", Napi::Number::New(env, WorkerCount()));
  out.Set("nativeBf16", Napi::Boolean::New(env, ibq::cpu_has_native_bf16()));
  out.Set("blasOneThread", Napi::Boolean::New(env, ibq::BlasJobThreads::active()));
  auto kernels = Napi::Array::New(env);
  for (const auto* kn : ibq::fused_cpu_kernels()) kernels.Set(kernels.Length(), Napi::String::New(env, kn->name));
  out.Set("quantizerKernels", kernels);
  const auto* selected = ibq::kernels::selected();
  out.Set("kernel", Napi::String::New(env, selected ? selected->name : "aten"));
  out.Set("onednn", Napi::Boolean::New(env, at::hasMKLDNN() && at::globalContext().userEnabledMkldnn()));
#ifdef IBQ_TORCH_LIBDIR
  out.Set("libtorchDir", Napi::String::New(env, IBQ_TORCH_LIBDIR));
#endif
  return out;
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  int n = static_cast<int>(ArgInt(info[0], "threads", 1, 1024));
  const std::string source = info.Length() > 1 ? ArgString(info[1], "source") : "user";
  const std::string reason = info.Length() > 2 ? ArgString(info[2], "reason") : "asked for " + std::to_string(n);
  bool applied = false;
  Guard(info.Env(), [&] { applied = ibq::set_job_threads(n, source, reason); });
  return Napi::Boolean::New(info.Env(), applied);
}

// fmaPeak(seconds) -> Promise<{ gflops, kernel }>: this CPU's float32 FMA peak on one thread (a worker).
Napi::Value FmaPeak(const Napi::CallbackInfo& info) {
  const double seconds = ArgNumber(info[0], "seconds");
  if (!(seconds >= 0.01 && seconds <= 60.0)) {
    Napi::RangeError::New(info.Env(), "seconds: expected a number in [0.01, 60]").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  return Submit(info.Env(), [seconds](JobContext&) -> Finisher {
    std::string kernel;
    const double gflops = ibq::kernels::fma_peak_gflops(seconds, &kernel);
    return [gflops, kernel](Napi::Env env) {
      auto o = Napi::Object::New(env);
      o.Set("gflops", Napi::Number::New(env, gflops));
      o.Set("kernel", Napi::String::New(env, kernel));
      return o;
    };
  });
}

}  // namespace

// Listed in addon.cpp (exports.h).
void InitInfo(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads, "setNumThreads"));
  exports.Set("fmaPeak", Napi::Function::New(env, FmaPeak, "fmaPeak"));
}

}  // namespace ibqb
