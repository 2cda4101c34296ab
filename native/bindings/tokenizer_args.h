// Argument readers and result converters shared by the tokenizer and quantizer bindings (their configs:
// ConfigFromJs of bindings/config_fields.h).
#pragma once
#include <napi.h>
#include <torch/torch.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bindings/config_fields.h"
#include "bindings/convert.h"
#include "bindings/jobs.h"
#include "bindings/tensor.h"
#include "ibq/core/compat.h"
#include "ibq/quantizer/quantizer.h"
#include "ibq/quantizer/vq_quantizer.h"
#include "ibq/tokenizer/vqgan.h"

namespace ibqb {

using NamedOutputs = std::vector<std::pair<std::string, at::Tensor>>;

// opts[key] as a number, or `fallback` when absent.
double OptNumber(const Napi::Value& opts, const char* key, double fallback);
// A JS object { name: TensorHandle } (tensors detached).
Napi::Object OutputsToJs(Napi::Env env, const NamedOutputs& outs);
// Creation device: undefined -> CPU.
at::Device ArgOptDevice(const Napi::Value& v);
// Seeds torch's default generator when v is a number (module creation is then reproducible).
void MaybeSeed(const Napi::Value& v);
// The seed MaybeSeed would apply (none when v is undefined or null), to apply later with torch::manual_seed.
std::optional<uint64_t> ArgSeed(const Napi::Value& v);
// The device of a module's first parameter (CPU when it has none).
at::Device ModuleDevice(const torch::nn::Module& m);

// A job's result as a JS value: named outputs as an object of Tensors, one tensor as a Tensor.
inline Napi::Value ResultToJs(Napi::Env env, const NamedOutputs& outs) { return OutputsToJs(env, outs); }
inline Napi::Value ResultToJs(Napi::Env env, const at::Tensor& t) { return TensorHandle::New(env, t); }

// Runs fn(module, device) -> NamedOutputs or at::Tensor as one job (on the model's queue: `job`, from
// ReadJobOptions, which also carries the abort flag), without gradients and under the requested autocast; the
// Promise resolves to ResultToJs of the result.
template <class M, class Fn>
Napi::Promise SubmitInference(Napi::Env env, std::shared_ptr<M> m, c10::optional<at::ScalarType> ac, JobOptions job,
                              Fn fn) {
  return Submit(
      env,
      [m, ac, fn](JobContext&) -> Finisher {
        torch::NoGradGuard no_grad;
        const auto dev = ModuleDevice(*m);
        ibq::compat::AutocastGuard autocast(ac, dev);
        auto out = fn(*m, dev);
        return [out](Napi::Env env) -> Napi::Value { return ResultToJs(env, out); };
      },
      job);
}

}  // namespace ibqb
