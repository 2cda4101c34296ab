// JS handle of the IBQ tokenizer (lib/tokenizer.ts wraps it): new TokenizerHandle(cfg, device?, seed?) or
// buildTokenizer(cfg, device?, seed?) (created on a worker thread), and
// forward / encode / decode as one async job each on the model's queue.
#include <napi.h>

#include "bindings/addon_data.h"
#include "bindings/module_handle.h"
#include "bindings/exports.h"
#include "bindings/tensor.h"
#include "bindings/tokenizer_args.h"
#include "ibq/core/compat.h"
#include "ibq/eval/metrics.h"
#include "ibq/tokenizer/tokenizer.h"

namespace ibqb {
namespace {

constexpr const char* kName = "TokenizerHandle";

class TokenizerHandle : public ModuleHandle<TokenizerHandle> {
  friend class ModuleHandle<TokenizerHandle>;

 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    auto methods = CommonMethods();
    methods.push_back(InstanceMethod<&TokenizerHandle::Forward>("forward"));
    methods.push_back(InstanceMethod<&TokenizerHandle::Encode>("encode"));
    methods.push_back(InstanceMethod<&TokenizerHandle::Decode>("decode"));
    Napi::Function ctor = DefineClass(env, kName, methods);
    GetAddonData(env).ctors[kName] = Napi::Persistent(ctor);
    exports.Set(kName, ctor);
  }

  // new TokenizerHandle({ ddconfig, n_embed, embed_dim, beta, use_entropy_loss, ... }, device?, seed?)
  explicit TokenizerHandle(const Napi::CallbackInfo& info) : ModuleHandle<TokenizerHandle>(info) {
    Construct(info);
  }

  // buildTokenizer(config, device?, seed?) -> Promise<TokenizerHandle>: the same, created on a worker thread
  static Napi::Value BuildAsync(const Napi::CallbackInfo& info) { return BuildFrom(info, kName); }

 protected:

 private:
  struct Args {
    ibq::TokenizerConfig cfg;
    at::Device device{at::kCPU};
    std::optional<uint64_t> seed;
  };
  static Args ReadArgs(const Napi::CallbackInfo& info) {
    auto cfg_obj = ArgObject(info[0], "config");
    Args a;
    a.cfg.ddconfig = ConfigFromJs<ibq::vqgan::DDConfig>(cfg_obj.Get("ddconfig"), "config.ddconfig");
    a.cfg.quantizer = ConfigFromJs<ibq::IBQOptions>(cfg_obj, "config");
    a.device = ArgOptDevice(info[1]);
    a.seed = ArgSeed(info[2]);
    return a;
  }
  static std::shared_ptr<torch::nn::Module> Make(const Args& a) {
    if (a.seed) torch::manual_seed(*a.seed);
    auto m = std::make_shared<ibq::TokenizerImpl>(a.cfg);
    m->to(a.device);
    return m;
  }

  std::shared_ptr<ibq::TokenizerImpl> tok(Napi::Env env) {
    module(env);
    return std::static_pointer_cast<ibq::TokenizerImpl>(module_);
  }

  // forward(x, { autocast?, abortFlag? }) -> Promise<{ h, z_q, indices, xrec, quant_loss, sample_entropy, avg_entropy,
  // entropy_loss }>
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = tok(env);
    at::Tensor x = ArgTensor(info[0], "x");
    auto ac = ArgAutocast(info[1]);
    return SubmitInference(env, m, ac, ReadJobOptions(info[1], queue()), [x](ibq::TokenizerImpl& t, const at::Device& dev) {
      auto o = t.forward(x.to(dev));
      return NamedOutputs{{"h", o.h},
                          {"z_q", o.z_q},
                          {"indices", o.indices},
                          {"xrec", o.xrec},
                          {"quant_loss", o.quant_loss},
                          {"sample_entropy", o.sample_entropy},
                          {"avg_entropy", o.avg_entropy},
                          {"entropy_loss", o.entropy_loss}};
    });
  }

  // encode(x, { autocast?, abortFlag? }) -> Promise<{ indices, z_q }>
  Napi::Value Encode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = tok(env);
    at::Tensor x = ArgTensor(info[0], "x");
    auto ac = ArgAutocast(info[1]);
    return SubmitInference(env, m, ac, ReadJobOptions(info[1], queue()), [x](ibq::TokenizerImpl& t, const at::Device& dev) {
      auto [indices, z_q] = t.encode(x.to(dev));
      return NamedOutputs{{"indices", indices}, {"z_q", z_q}};
    });
  }

  // decode(indices, { autocast? }) -> Promise<Tensor [B, out_ch, H, W]>
  // decode(indices, { autocast?, samplePixels?, abortFlag? }): float32 [B, C, H, W]; samplePixels: the official sample
  // script's uint8 [B, H, W, C] instead, converted in the same job (the float images never reach JS)
  Napi::Value Decode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = tok(env);
    at::Tensor indices = ArgTensor(info[0], "indices");
    auto ac = ArgAutocast(info[1]);
    bool pixels = info[1].IsObject() && ArgBool(info[1].As<Napi::Object>().Get("samplePixels"), "samplePixels", false);
    return SubmitInference(env, m, ac, ReadJobOptions(info[1], queue()), [indices, pixels](ibq::TokenizerImpl& t, const at::Device& dev) {
      at::Tensor img = t.decode(indices.to(dev)).to(at::kFloat);
      return pixels ? ibq::metrics::sample_pixels_uint8(img) : img;
    });
  }
};

}  // namespace

// Listed in addon.cpp (exports.h).
void InitTokenizer(Napi::Env env, Napi::Object exports) {
  TokenizerHandle::Init(env, exports);
  exports.Set("buildTokenizer", Napi::Function::New(env, &TokenizerHandle::BuildAsync, "buildTokenizer"));
}

}  // namespace ibqb
