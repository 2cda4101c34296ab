// Internal test operations (lib/native.ts exposes them as `testOps`): exercise the job machinery.
#include <napi.h>

#include "bindings/errors.h"
#include "bindings/jobs.h"
#include "bindings/exports.h"
#include "ibq/core/cpu_threads.h"
#include "ibq/core/testops.h"
#include "ibq/core/kernel_checks.h"
#include "bindings/tensor.h"

#include <ATen/Parallel.h>

namespace ibqb {
namespace {

std::shared_ptr<JobQueue> g_test_queue;

// testMatmulLoop(size, iters, { onProgress?, abortFlag?, queued? }) -> Promise<number>
Napi::Value TestMatmulLoop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t size = ArgInt(info[0], "size", 1, 8192);
  int64_t iters = ArgInt(info[1], "iters", 1, 1000000);
  bool queued = info[2].IsObject() && info[2].As<Napi::Object>().Get("queued").ToBoolean().Value();
  if (queued && !g_test_queue) g_test_queue = NewQueue();
  auto opts = ReadJobOptions(info[2], queued ? g_test_queue : nullptr);
  return Submit(
      env,
      [size, iters](JobContext& ctx) -> Finisher {
        double sum = ibq::testops::matmul_loop(size, iters, [&](int64_t i) {
          ctx.check_aborted();
          ctx.progress(i, iters);
        });
        return [sum](Napi::Env env) { return Napi::Number::New(env, sum); };
      },
      opts);
}

// testFail(message, async) -> throws (sync) or rejects (async) with the c10 message
Napi::Value TestFail(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string msg = ArgString(info[0], "message");
  if (ArgBool(info[1], "async", true))
    return Submit(env, [msg](JobContext&) -> Finisher { ibq::testops::fail_with(msg); });
  return Guard(env, [&]() -> Napi::Value { ibq::testops::fail_with(msg); });
}

// threads() -> Promise<{ intraOp, blas }>: the thread counts a job runs with (on a worker).
Napi::Value TestThreads(const Napi::CallbackInfo& info) {
  return Submit(info.Env(), [](JobContext&) -> Finisher {
    const int intra = at::get_num_threads(), blas = ibq::blas_threads();
    return [intra, blas](Napi::Env env) {
      auto o = Napi::Object::New(env);
      o.Set("intraOp", Napi::Number::New(env, intra));
      o.Set("blas", Napi::Number::New(env, blas));
      return o;
    };
  });
}

// blasThreads() -> number: the BLAS library's thread count now, on the calling thread (0: no such query).
Napi::Value TestBlasThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), ibq::blas_threads()); }

// groupNorm(x, groups, weight, bias, eps, silu, reps) -> Promise<{ used, maxDiff, atenMaxDiff, kernelS, atenS, atenClS }>
Napi::Value TestGroupNorm(const Napi::CallbackInfo& info) {
  auto x = ArgTensor(info[0], "x"), w = ArgTensor(info[2], "weight"), b = ArgTensor(info[3], "bias");
  const int64_t groups = ArgInt(info[1], "groups", 1, 4096), reps = ArgInt(info[6], "reps", 0, 1000);
  const double eps = ArgNumber(info[4], "eps");
  const bool silu = ArgBool(info[5], "silu", true);
  return Submit(info.Env(), [=](JobContext&) -> Finisher {
    const auto r = ibq::kernels::group_norm_check(x, groups, w, b, eps, silu, reps);
    return [r](Napi::Env env) {
      auto o = Napi::Object::New(env);
      o.Set("used", Napi::Boolean::New(env, r.used));
      o.Set("maxDiff", Napi::Number::New(env, r.max_diff));
      o.Set("atenMaxDiff", Napi::Number::New(env, r.aten_max_diff));
      o.Set("kernelS", Napi::Number::New(env, r.kernel_s));
      o.Set("atenS", Napi::Number::New(env, r.aten_s));
      o.Set("atenClS", Napi::Number::New(env, r.aten_cl_s));
      return o;
    };
  });
}

}  // namespace

// Listed in addon.cpp (exports.h).
void InitTestOps(Napi::Env env, Napi::Object exports) {
  auto ops = Napi::Object::New(env);
  ops.Set("matmulLoop", Napi::Function::New(env, TestMatmulLoop, "matmulLoop"));
  ops.Set("fail", Napi::Function::New(env, TestFail, "fail"));
  ops.Set("threads", Napi::Function::New(env, TestThreads, "threads"));
  ops.Set("groupNorm", Napi::Function::New(env, TestGroupNorm, "groupNorm"));
  ops.Set("blasThreads", Napi::Function::New(env, TestBlasThreads, "blasThreads"));
  exports.Set("testOps", ops);
}

}  // namespace ibqb
