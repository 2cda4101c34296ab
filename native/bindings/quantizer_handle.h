// The shared base of the standalone quantizers' JS handles (ibq_quantizer.cpp, vector_quantizer.cpp): forward,
// lossAndGrads and getCodebookEntry, each one async job on the model's queue (lib/tokenizer/quantizer.ts wraps them).
#pragma once
#include <napi.h>

#include "bindings/addon_data.h"
#include "bindings/module_handle.h"
#include "bindings/exports.h"
#include "bindings/tensor.h"
#include "bindings/tokenizer_args.h"
#include "ibq/core/compat.h"
#include "ibq/quantizer/quantizer.h"
#include "ibq/quantizer/vq_quantizer.h"

namespace ibqb {


inline NamedOutputs Outputs(const ibq::IBQOutput& o) {
  return {{"z_q", o.z_q},
          {"quant_loss", o.quant_loss},
          {"sample_entropy", o.sample_entropy},
          {"avg_entropy", o.avg_entropy},
          {"entropy_loss", o.entropy_loss},
          {"indices", o.indices}};
}
inline NamedOutputs Outputs(const ibq::VQOutput& o) { return {{"z_q", o.z_q}, {"loss", o.loss}, {"indices", o.indices}}; }

// The scalar a quantizer's lossAndGrads differentiates (IBQuantizer.lossAndGrads in lib/tokenizer/quantizer.ts): sum(z_q * gradOut) + w_q * quant_loss +
// w_e * entropy_loss (IBQ) or sum(z_q * gradOut) + loss (VQ).
inline at::Tensor Objective(const ibq::IBQOutput& o, const at::Tensor& g, double wq, double we) {
  return (o.z_q * g).sum() + wq * o.quant_loss + we * o.entropy_loss;
}
inline at::Tensor Objective(const ibq::VQOutput& o, const at::Tensor& g, double, double) { return (o.z_q * g).sum() + o.loss; }

template <class Derived, class Impl>
class QuantizerHandle : public ModuleHandle<Derived> {
 public:
  using Base = ModuleHandle<Derived>;
  using W = Napi::ObjectWrap<Derived>;
  explicit QuantizerHandle(const Napi::CallbackInfo& info) : Base(info) {}

  static void Define(Napi::Env env, Napi::Object exports, const char* name) {
    using M = typename W::InstanceMethodCallback;
    auto methods = Base::CommonMethods();
    methods.push_back(W::InstanceMethod("forward", static_cast<M>(&QuantizerHandle::Forward)));
    methods.push_back(W::InstanceMethod("lossAndGrads", static_cast<M>(&QuantizerHandle::LossAndGrads)));
    methods.push_back(W::InstanceMethod("getCodebookEntry", static_cast<M>(&QuantizerHandle::CodebookEntry)));
    Napi::Function ctor = W::DefineClass(env, name, methods);
    GetAddonData(env).ctors[name] = Napi::Persistent(ctor);
    exports.Set(name, ctor);
  }

 protected:
  std::shared_ptr<Impl> impl(Napi::Env env) {
    this->module(env);
    return std::static_pointer_cast<Impl>(this->module_);
  }

 private:
  // forward(z, { autocast? }) -> Promise<outputs> (no gradients)
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = impl(env);
    at::Tensor z = ArgTensor(info[0], "z");
    auto ac = ArgAutocast(info[1]);
    return SubmitInference(env, m, ac, JobOptions{this->queue()},
                           [z](Impl& q, const at::Device& dev) {
                             ibq::check_finite(z, "z");
                             return Outputs(q.forward(z.to(dev)));
                           });
  }

  // lossAndGrads(z, gradOut, { quant_loss_weight = 1, entropy_loss_weight = 0.05, autocast? })
  //   -> Promise<{ outputs, grads: [['z', dz], ['embedding.weight', dE]] }>; the codebook's .grad is untouched.
  Napi::Value LossAndGrads(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = impl(env);
    at::Tensor z = ArgTensor(info[0], "z");
    at::Tensor g = ArgTensor(info[1], "gradOut");
    if (g.sizes() != z.sizes()) ThrowRange(env, "gradOut: expected the shape of z");
    const double wq = OptNumber(info[2], "quant_loss_weight", 1.0);
    const double we = OptNumber(info[2], "entropy_loss_weight", 0.05);
    auto ac = ArgAutocast(info[2]);
    return Submit(
        env,
        [m, z, g, wq, we, ac](JobContext&) -> Finisher {
          ibq::check_finite(z, "z");
          const auto dev = ModuleDevice(*m);
          at::Tensor zz = z.to(dev).detach().clone().requires_grad_(true);
          at::Tensor E = m->embedding->weight;
          NamedOutputs outs;
          std::vector<at::Tensor> grads;
          {
            ibq::compat::AutocastGuard autocast(ac, dev);
            auto o = m->forward(zz);
            auto total = Objective(o, g.to(dev), wq, we);
            outs = Outputs(o);
            outs.emplace_back("total", total);
            grads = torch::autograd::grad({total}, {zz, E});
          }
          NamedOutputs gs{{"z", grads[0]}, {"embedding.weight", grads[1]}};
          return [outs, gs](Napi::Env env) -> Napi::Value {
            auto r = Napi::Object::New(env);
            r.Set("outputs", OutputsToJs(env, outs));
            r.Set("grads", StateDictToJs(env, gs, /*share=*/true));
            return r;
          };
        },
        JobOptions{this->queue()});
  }

  // getCodebookEntry(indices [B,h,w]) -> Promise<Tensor [B, D, h, w]>
  Napi::Value CodebookEntry(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = impl(env);
    at::Tensor idx = ArgTensor(info[0], "indices");
    return Submit(
        env,
        [m, idx](JobContext&) -> Finisher {
          torch::NoGradGuard no_grad;
          at::Tensor zq = m->get_codebook_entry(idx.to(ModuleDevice(*m)));
          return [zq](Napi::Env env) -> Napi::Value { return TensorHandle::New(env, zq); };
        },
        JobOptions{this->queue()});
  }
};

}  // namespace ibqb
