// IBQuantizerHandle: the JS handle of the standalone IBQ quantizer (ibq::IBQuantizer).
#include "bindings/quantizer_handle.h"

namespace ibqb {
namespace {

class IBQuantizerHandle : public QuantizerHandle<IBQuantizerHandle, ibq::IBQuantizerImpl> {
 public:
  // new IBQuantizerHandle({ n_embed, embed_dim, beta, use_entropy_loss, entropy_temperature, ... }, device?, seed?)
  explicit IBQuantizerHandle(const Napi::CallbackInfo& info) : QuantizerHandle(info) {
    auto opts = ConfigFromJs<ibq::IBQOptions>(info[0], "options");
    at::Device device = ArgOptDevice(info[1]);
    MaybeSeed(info[2]);
    module_ = Guard(info.Env(), [&] {
      auto m = std::make_shared<ibq::IBQuantizerImpl>(opts);
      m->to(device);
      return std::static_pointer_cast<torch::nn::Module>(m);
    });
  }
};

}  // namespace

// Listed in addon.cpp (exports.h).
void InitIBQuantizer(Napi::Env env, Napi::Object exports) { IBQuantizerHandle::Define(env, exports, "IBQuantizerHandle"); }

}  // namespace ibqb
