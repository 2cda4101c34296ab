// LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric"), as the
// official `lpips` package (richzhang/PerceptualSimilarity, version 0.1 lin layers) and taming-transformers'
// `LPIPS` compute it: a scaling layer, the five feature slices of VGG16 or AlexNet, features normalised to
// unit length over channels, squared differences weighted by 1x1 "lin" convolutions, averaged over space
// and summed over the five layers.
//
// Parameter names are the official ones, so a tokenizer checkpoint's `loss.perceptual_loss.*` (prefix
// removed) loads 1:1: `scaling_layer.shift`, `scaling_layer.scale`, `net.slice1.0.weight` (VGG16 features
// index kept in each slice), `lin0.model.1.weight` ... `lin4.model.1.weight`.
// All parameters are frozen (requires_grad false); gradients flow to the inputs, so the module serves as
// the perceptual loss of tokenizer training. The lin layers' dropout (p 0.5) is active only in train mode,
// as in the official module.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "ibq/io/state_dict.h"

namespace ibq {

enum class LpipsNet { kVgg, kAlex };

// "vgg" / "vgg16" -> kVgg, "alex" / "alexnet" -> kAlex; anything else: ibq::ValueError naming `arg`.
LpipsNet lpips_net_from_string(const std::string& name, const char* arg = "net");
const char* lpips_net_name(LpipsNet net);  // "vgg" | "alex"

class LPIPSImpl : public torch::nn::Module {
 public:
  explicit LPIPSImpl(LpipsNet net = LpipsNet::kVgg);

  // in0, in1: [B, 3, H, W] float images in [-1, 1] (normalize: in [0, 1], mapped by 2x - 1 first), the same
  // shape (or one of them with B = 1, broadcast as the official module does); VGG needs H, W >= 16 and
  // AlexNet H, W >= 31 (smaller: ibq::ValueError). Returns the distance per image, [B, 1, 1, 1], in the
  // parameters' dtype (float32). Differentiable with respect to both inputs.
  at::Tensor forward(const at::Tensor& in0, const at::Tensor& in1, bool normalize = false);

  // The five backbone slice outputs (VGG16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3; AlexNet: relu1..5)
  // for an input already passed through the scaling layer, each [B, C_k, H_k, W_k].
  std::vector<at::Tensor> slices(const at::Tensor& scaled);

  LpipsNet net_type() const { return net_; }

 private:
  LpipsNet net_;
  std::shared_ptr<torch::nn::Module> scaling_, backbone_;
  std::vector<std::vector<std::function<at::Tensor(const at::Tensor&)>>> slices_;
  std::vector<torch::nn::Sequential> lin_models_;  // linK.model: Dropout(0.5), Conv2d(C_k, 1, 1, bias false)
};
TORCH_MODULE(LPIPS);

// The entries of `sd` whose keys start with `prefix`, with the prefix removed (e.g. "loss.perceptual_loss.").
NamedTensors select_prefix(const NamedTensors& sd, const std::string& prefix);

// An LPIPS state dict (official key names, scaling-layer buffers included) from a torchvision backbone state
// dict (vgg16 / alexnet .pth: `features.N.weight|bias`; `classifier.*` ignored) and an LPIPS lin-layer file
// (`lin0.model.1.weight` ... or the package's `lins.0.model.1.weight`). A missing or misshaped key:
// ibq::ValueError naming the key and the file role ("backbone" / "lin layers"). Never random weights.
// Shapes and the backbone kind come from `lpips` (nothing is loaded into it).
NamedTensors lpips_state_from_torchvision(const LPIPSImpl& lpips, const NamedTensors& backbone,
                                          const NamedTensors& lin);

// Loads `sd` (official LPIPS keys, e.g. from select_prefix(ckpt, "loss.perceptual_loss.")) strictly except
// that the two scaling-layer buffers may be absent (they are constants) and the lpips package's duplicate
// `lins.K.*` entries are ignored. Errors: ibq::ValueError listing the
// missing / unexpected / misshaped keys.
void load_lpips(LPIPSImpl& lpips, const NamedTensors& sd);

}  // namespace ibq
