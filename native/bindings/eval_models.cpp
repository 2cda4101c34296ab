// Evaluation networks (issue 7): the FID Inception v3 (pytorch-fid port) and LPIPS (VGG16 / AlexNet).
// Both are ModuleHandles (stateDict / loadStateDict / dispose); inference runs on the model's queue with
// autograd off.
#include <napi.h>

#include "bindings/errors.h"
#include "bindings/jobs.h"
#include "bindings/module_handle.h"
#include "bindings/registry.h"
#include "bindings/tensor.h"
#include "ibq/inception.h"
#include "ibq/lpips.h"

namespace ibqb {
namespace {

// new FidInceptionHandle(); forward(x [B,3,H,W] in [0,1], opts?) -> Promise<{ pool3 [B,2048], logits [B,1008] }>
class FidInceptionHandle : public ModuleHandle<FidInceptionHandle> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    auto props = CommonMethods();
    props.push_back(InstanceMethod<&FidInceptionHandle::Forward>("forward"));
    exports.Set("FidInceptionHandle", DefineClass(env, "FidInceptionHandle", props));
  }
  explicit FidInceptionHandle(const Napi::CallbackInfo& info) : ModuleHandle(info) {
    Guard(info.Env(), [&] {
      net_ = ibq::FidInceptionV3();
      module_ = net_.ptr();
    });
  }

 private:
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    module(env);
    at::Tensor x = ArgTensor(info[0], "x");
    auto net = net_;
    auto keep = module_;
    return Submit(
        env,
        [net, keep, x](JobContext&) mutable -> Finisher {
          torch::NoGradGuard no_grad;
          auto out = net->forward(x);
          return [out](Napi::Env env) {
            auto o = Napi::Object::New(env);
            o.Set("pool3", TensorHandle::New(env, out.pool3));
            o.Set("logits", TensorHandle::New(env, out.logits));
            return o;
          };
        },
        ReadJobOptions(info[1], queue_));
  }
  ibq::FidInceptionV3 net_{nullptr};
};

// new LpipsHandle(net: 'vgg' | 'alex'); forward(in0, in1, normalize) -> Promise<Tensor [B,1,1,1]>;
// loadOfficial(entries) and loadTorchvision(backboneEntries, linEntries) -> Promise<void>.
class LpipsHandle : public ModuleHandle<LpipsHandle> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    auto props = CommonMethods();
    props.push_back(InstanceMethod<&LpipsHandle::Forward>("forward"));
    props.push_back(InstanceMethod<&LpipsHandle::LoadOfficial>("loadOfficial"));
    props.push_back(InstanceMethod<&LpipsHandle::LoadTorchvision>("loadTorchvision"));
    props.push_back(InstanceMethod<&LpipsHandle::NetName>("net"));
    exports.Set("LpipsHandle", DefineClass(env, "LpipsHandle", props));
  }
  explicit LpipsHandle(const Napi::CallbackInfo& info) : ModuleHandle(info) {
    std::string name = ArgString(info[0], "net");
    Guard(info.Env(), [&] {
      net_ = ibq::LPIPS(ibq::lpips_net_from_string(name));
      module_ = net_.ptr();
    });
  }

 private:
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    module(env);
    at::Tensor a = ArgTensor(info[0], "in0"), b = ArgTensor(info[1], "in1");
    bool normalize = ArgBool(info[2], "normalize", false);
    auto net = net_;
    return Submit(
        env,
        [net, a, b, normalize](JobContext&) mutable -> Finisher {
          torch::NoGradGuard no_grad;
          auto d = net->forward(a, b, normalize);
          return [d](Napi::Env env) { return TensorHandle::New(env, d); };
        },
        ReadJobOptions(info[3], queue_));
  }
  Napi::Value LoadOfficial(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    module(env);
    auto sd = ArgStateDict(info[0], "stateDict");
    auto net = net_;
    return Submit(
        env,
        [net, sd](JobContext&) mutable -> Finisher {
          ibq::load_lpips(*net, sd);
          return [](Napi::Env env) { return env.Undefined(); };
        },
        JobOptions{queue_});
  }
  Napi::Value LoadTorchvision(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    module(env);
    auto backbone = ArgStateDict(info[0], "backbone");
    auto lin = ArgStateDict(info[1], "lin");
    auto net = net_;
    return Submit(
        env,
        [net, backbone, lin](JobContext&) mutable -> Finisher {
          ibq::load_lpips(*net, ibq::lpips_state_from_torchvision(*net, backbone, lin));
          return [](Napi::Env env) { return env.Undefined(); };
        },
        JobOptions{queue_});
  }
  Napi::Value NetName(const Napi::CallbackInfo& info) {
    module(info.Env());
    return Napi::String::New(info.Env(), ibq::lpips_net_name(net_->net_type()));
  }
  ibq::LPIPS net_{nullptr};
};

void InitEvalModels(Napi::Env env, Napi::Object exports) {
  FidInceptionHandle::Init(env, exports);
  LpipsHandle::Init(env, exports);
}
IBQB_REGISTER("eval_models", InitEvalModels);

}  // namespace
}  // namespace ibqb
