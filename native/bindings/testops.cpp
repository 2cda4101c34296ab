// Internal test operations (lib/native.ts exposes them as `testOps`): exercise the job machinery.
#include <napi.h>

#include "bindings/errors.h"
#include "bindings/jobs.h"
#include "bindings/exports.h"
#include "ibq/core/cpu_threads.h"
#include "ibq/core/testops.h"
#include "ibq/core/kernel_checks.h"
#include "bindings/module_ref.h"
#include "bindings/tensor.h"
#include "ibq/transformer/batch_engine.h"
#include "ibq/transformer/draw.h"
#include "ibq/transformer/rows_linear.h"

#include <ATen/CPUGeneratorImpl.h>

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

// groupNorm(x, groups, weight, bias, eps, silu, reps) -> Promise<{ used, maxDiff, atenMaxDiff, kernelS, atenS, atenClS,
//   dxDiff, dweightDiff, dbiasDiff, atenDxDiff, atenDweightDiff, atenDbiasDiff }>
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
      o.Set("dxDiff", Napi::Number::New(env, r.dx_diff));
      o.Set("dweightDiff", Napi::Number::New(env, r.dweight_diff));
      o.Set("dbiasDiff", Napi::Number::New(env, r.dbias_diff));
      o.Set("atenDxDiff", Napi::Number::New(env, r.aten_dx_diff));
      o.Set("atenDweightDiff", Napi::Number::New(env, r.aten_dweight_diff));
      o.Set("atenDbiasDiff", Napi::Number::New(env, r.aten_dbias_diff));
      return o;
    };
  });
}

// multinomial(probs [B, V] float32, seed, reps) -> Promise<{ fast, ours, ref, sameState }>: `reps` draws of
// ibq::multinomial_one and of at::multinomial(probs, 1) from generators seeded alike (int64 [reps, B] each), and
// whether both generators are in the same state afterwards.
Napi::Value TestMultinomial(const Napi::CallbackInfo& info) {
  auto probs = ArgTensor(info[0], "probs");
  const int64_t seed = ArgInt(info[1], "seed", 0, int64_t(1) << 53), reps = ArgInt(info[2], "reps", 1, 100000);
  return Submit(info.Env(), [=](JobContext&) -> Finisher {
    auto ga = at::make_generator<at::CPUGeneratorImpl>(seed), gb = at::make_generator<at::CPUGeneratorImpl>(seed);
    std::vector<at::Tensor> ours, ref;
    for (int64_t r = 0; r < reps; ++r) {
      ours.push_back(ibq::multinomial_one(probs, ga).reshape({-1}));
      ref.push_back(at::multinomial(probs, 1, false, gb).reshape({-1}));
    }
    const bool same = at::equal(at::randint(int64_t(1) << 40, {8}, ga), at::randint(int64_t(1) << 40, {8}, gb));
    auto o = at::stack(ours), f = at::stack(ref);
    const bool fast = ibq::multinomial_fast_path();
    return [o, f, fast, same](Napi::Env env) {
      auto r = Napi::Object::New(env);
      r.Set("fast", Napi::Boolean::New(env, fast));
      r.Set("ours", TensorHandle::New(env, o));
      r.Set("ref", TensorHandle::New(env, f));
      r.Set("sameState", Napi::Boolean::New(env, same));
      return r;
    };
  });
}

// bmm(a, b, aTransposed, bTransposed) -> Promise<{ outDiff, daDiff, dbDiff, atenOutDiff, atenDaDiff, atenDbDiff,
//   layoutsKept }>: parallel_bmm against torch::bmm (ibq/core/kernel_checks.h).
Napi::Value TestBmm(const Napi::CallbackInfo& info) {
  auto a = ArgTensor(info[0], "a"), b = ArgTensor(info[1], "b");
  const bool at_ = ArgBool(info[2], "aTransposed", false), bt = ArgBool(info[3], "bTransposed", false);
  return Submit(info.Env(), [=](JobContext&) -> Finisher {
    const auto r = ibq::kernels::bmm_check(a, b, at_, bt);
    return [r](Napi::Env env) {
      auto o = Napi::Object::New(env);
      o.Set("outDiff", Napi::Number::New(env, r.out_diff));
      o.Set("daDiff", Napi::Number::New(env, r.da_diff));
      o.Set("dbDiff", Napi::Number::New(env, r.db_diff));
      o.Set("atenOutDiff", Napi::Number::New(env, r.aten_out_diff));
      o.Set("atenDaDiff", Napi::Number::New(env, r.aten_da_diff));
      o.Set("atenDbDiff", Napi::Number::New(env, r.aten_db_diff));
      o.Set("layoutsKept", Napi::Boolean::New(env, r.layouts_kept));
      return o;
    };
  });
}

// attend(q [P, hd], kt, v, offsets, lengths, T, scale) -> Promise<TensorHandle>: ibq::rows::attend (the serving
// engine's single-query attention; offsets and lengths: one per pair, as numbers). kt: slots of keys [hd, T]
// row-major, v: slots of values [T, hd], offsets multiples of hd T (a slot each); laid out here as the engine's
// cache (keys in panels of positions, T rounded up to key_positions) before the call.
Napi::Value TestAttend(const Napi::CallbackInfo& info) {
  auto q = ArgTensor(info[0], "q"), kt = ArgTensor(info[1], "kt"), v = ArgTensor(info[2], "v");
  auto offsets = ArgShape(info[3], "offsets"), len = ArgShape(info[4], "lengths");
  const int64_t T = ArgInt(info[5], "T", 1, 1 << 20);
  const double scale = ArgNumber(info[6], "scale");
  const int64_t hd = q.size(1), Tp = ibq::rows::key_positions(T), P = ibq::rows::kernels().panel;
  for (auto& o : offsets) {
    if (o % (hd * T) != 0) ThrowRange(info.Env(), "offsets: expected multiples of hd T");
    o = o / (hd * T) * hd * Tp;
  }
  return Submit(info.Env(), [=](JobContext&) -> Finisher {
    const int64_t S = kt.numel() / (hd * T);
    auto ktp = at::constant_pad_nd(kt.reshape({S, hd, T}), {0, Tp - T}).view({S, hd, Tp / P, P}).permute({0, 2, 1, 3});
    auto vp = at::constant_pad_nd(v.reshape({S, T, hd}), {0, 0, 0, Tp - T});
    auto out = ibq::rows::attend(q, ktp.contiguous(), vp.contiguous(), offsets, len, Tp, scale);
    return [out](Napi::Env env) { return TensorHandle::New(env, out); };
  });
}

// decodeLogits(transformer, labels int64 [B], tokens int64 [B, T]) -> Promise<TensorHandle [B, T + 1, V]>: the
// decode step's teacher-forced logits (ibq::decode_logits), on the transformer's queue.
Napi::Value TestDecodeLogits(const Napi::CallbackInfo& info) {
  auto ref = ArgModuleRef(info[0], "transformer");
  auto model = std::dynamic_pointer_cast<ibq::TransformerImpl>(ref.module);
  if (!model) ThrowType(info.Env(), "transformer: expected a Transformer");
  auto labels = ArgTensor(info[1], "labels"), tokens = ArgTensor(info[2], "tokens");
  return Submit(
      info.Env(),
      [=](JobContext&) -> Finisher {
        torch::NoGradGuard ng;
        auto out = ibq::decode_logits(model, labels, tokens);
        return [out](Napi::Env env) { return TensorHandle::New(env, out); };
      },
      JobOptions{ref.queue});
}

}  // namespace

// Listed in addon.cpp (exports.h).
void InitTestOps(Napi::Env env, Napi::Object exports) {
  auto ops = Napi::Object::New(env);
  ops.Set("matmulLoop", Napi::Function::New(env, TestMatmulLoop, "matmulLoop"));
  ops.Set("fail", Napi::Function::New(env, TestFail, "fail"));
  ops.Set("threads", Napi::Function::New(env, TestThreads, "threads"));
  ops.Set("groupNorm", Napi::Function::New(env, TestGroupNorm, "groupNorm"));
  ops.Set("bmm", Napi::Function::New(env, TestBmm, "bmm"));
  ops.Set("blasThreads", Napi::Function::New(env, TestBlasThreads, "blasThreads"));
  ops.Set("multinomial", Napi::Function::New(env, TestMultinomial, "multinomial"));
  ops.Set("attend", Napi::Function::New(env, TestAttend, "attend"));
  ops.Set("decodeLogits", Napi::Function::New(env, TestDecodeLogits, "decodeLogits"));
  exports.Set("testOps", ops);
}

}  // namespace ibqb
