// FidInceptionHandle: the FID Inception v3 (pytorch-fid port) as a ModuleHandle (stateDict / loadStateDict /
// dispose); inference runs on the model's queue with autograd off.
#include <napi.h>

#include "bindings/errors.h"
#include "bindings/jobs.h"
#include "bindings/module_handle.h"
#include "bindings/exports.h"
#include "bindings/tensor.h"
#include "ibq/eval/inception.h"

namespace ibqb {
namespace {

ibq::InceptionInput ArgInceptionInput(const Napi::Value& v) {
  if (v.IsUndefined()) return ibq::InceptionInput::kUnit;
  std::string s = ArgString(v, "input");
  if (s == "unit") return ibq::InceptionInput::kUnit;
  if (s == "symmetric") return ibq::InceptionInput::kSymmetric;
  if (s == "uint8") return ibq::InceptionInput::kUint8Nhwc;
  ThrowRange(v.Env(), "input: expected 'unit', 'symmetric' or 'uint8', got '" + s + "'");
}

// new FidInceptionHandle();
// forward(x, { input?: 'unit' | 'symmetric' | 'uint8', batchSize?, onProgress?, abortFlag? })
//   -> Promise<{ pool3 [N,2048], logits [N,1008], logitsUnbiased [N,1008] }>
class FidInceptionHandle : public ModuleHandle<FidInceptionHandle> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    auto props = CommonMethods();
    props.push_back(InstanceMethod<&FidInceptionHandle::Forward>("forward"));
    exports.Set("FidInceptionHandle", DefineClass(env, "FidInceptionHandle", props));
  }
  explicit FidInceptionHandle(const Napi::CallbackInfo& info) : ModuleHandle(info) {
    Guard(info.Env(), [&] {
      module_ = ibq::FidInceptionV3().ptr();
    });
  }

 private:
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto net = typed<ibq::FidInceptionV3Impl>(env);
    at::Tensor x = ArgTensor(info[0], "images");
    ibq::InceptionInput input = ibq::InceptionInput::kUnit;
    int64_t batch = 50;
    if (info[1].IsObject()) {
      auto o = info[1].As<Napi::Object>();
      input = ArgInceptionInput(o.Get("input"));
      if (!o.Get("batchSize").IsUndefined()) batch = ArgInt(o.Get("batchSize"), "batchSize", 1, 1 << 20);
    }
    return Submit(
        env,
        [net, x, input, batch](JobContext& ctx) mutable -> Finisher {
          torch::NoGradGuard no_grad;
          auto out = net->forward_batched(x, input, batch, [&](int64_t done, int64_t total) {
            ctx.check_aborted();
            ctx.progress(done, total);
          });
          return [out](Napi::Env env) {
            auto o = Napi::Object::New(env);
            o.Set("pool3", TensorHandle::New(env, out.pool3));
            o.Set("logits", TensorHandle::New(env, out.logits));
            o.Set("logitsUnbiased", TensorHandle::New(env, out.logits_unbiased));
            return o;
          };
        },
        ReadJobOptions(info[1], queue_));
  }
};

}  // namespace

// Listed in addon.cpp (exports.h).
void InitFidInception(Napi::Env env, Napi::Object exports) { FidInceptionHandle::Init(env, exports); }

}  // namespace ibqb
