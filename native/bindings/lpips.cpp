// LpipsHandle: LPIPS (VGG16 / AlexNet backbones, official names) as a ModuleHandle (stateDict / loadStateDict /
// dispose); inference runs on the model's queue with autograd off.
#include <napi.h>

#include "bindings/errors.h"
#include "bindings/jobs.h"
#include "bindings/module_handle.h"
#include "bindings/exports.h"
#include "bindings/tensor.h"
#include "ibq/eval/lpips.h"

namespace ibqb {
namespace {

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
      module_ = ibq::LPIPS(ibq::lpips_net_from_string(name)).ptr();
    });
  }

 private:
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto net = typed<ibq::LPIPSImpl>(env);
    at::Tensor a = ArgTensor(info[0], "in0"), b = ArgTensor(info[1], "in1");
    bool normalize = ArgBool(info[2], "normalize", false);
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
    auto net = typed<ibq::LPIPSImpl>(env);
    auto sd = ArgStateDict(info[0], "stateDict");
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
    auto net = typed<ibq::LPIPSImpl>(env);
    auto backbone = ArgStateDict(info[0], "backbone");
    auto lin = ArgStateDict(info[1], "lin");
    return Submit(
        env,
        [net, backbone, lin](JobContext&) mutable -> Finisher {
          ibq::load_lpips(*net, ibq::lpips_state_from_torchvision(*net, backbone, lin));
          return [](Napi::Env env) { return env.Undefined(); };
        },
        JobOptions{queue_});
  }
  Napi::Value NetName(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), ibq::lpips_net_name(typed<ibq::LPIPSImpl>(info.Env())->net_type()));
  }
};

}  // namespace

// Listed in addon.cpp (exports.h).
void InitLpips(Napi::Env env, Napi::Object exports) { LpipsHandle::Init(env, exports); }

}  // namespace ibqb
