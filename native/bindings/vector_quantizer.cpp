// VectorQuantizerHandle: the JS handle of the standalone VQ quantizer (ibq::VectorQuantizer, taming VectorQuantizer2).
#include "bindings/quantizer_handle.h"

namespace ibqb {
namespace {

class VectorQuantizerHandle : public QuantizerHandle<VectorQuantizerHandle, ibq::VectorQuantizerImpl> {
 public:
  // new VectorQuantizerHandle({ n_embed, embed_dim, beta, legacy, l2_normalize }, device?, seed?)
  explicit VectorQuantizerHandle(const Napi::CallbackInfo& info) : QuantizerHandle(info) {
    auto opts = ConfigFromJs<ibq::VQOptions>(info[0], "options");
    at::Device device = ArgOptDevice(info[1]);
    MaybeSeed(info[2]);
    module_ = Guard(info.Env(), [&] {
      auto m = std::make_shared<ibq::VectorQuantizerImpl>(opts);
      m->to(device);
      return std::static_pointer_cast<torch::nn::Module>(m);
    });
  }
};

}  // namespace

// Listed in addon.cpp (exports.h).
void InitVectorQuantizer(Napi::Env env, Napi::Object exports) { VectorQuantizerHandle::Define(env, exports, "VectorQuantizerHandle"); }

}  // namespace ibqb
