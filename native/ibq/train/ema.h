// Exponential moving average of a model's trainable parameters, as the official IBQ `LitEma`
// (src/IBQ/modules/ema.py): buffers `decay` (float32, 0.999) and `num_updates` (int32, -1 = fixed decay), and
// one buffer per parameter that requires grad, named as the parameter with its dots removed
// (`encoder.conv_in.weight` -> `encoderconv_inweight`), in named_parameters() order. Registered as
// `model_ema` of the training module, so the checkpoint keys are `model_ema.decay`, `model_ema.<name>`.
#pragma once
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace ibq {

// "encoder.conv_in.weight" -> "encoderconv_inweight"
std::string ema_buffer_name(const std::string& parameter_name);

class LitEmaImpl : public torch::nn::Module {
 public:
  // Snapshots the parameters of `model` that require grad. use_num_updates: decay warm-up
  // min(decay, (1 + n) / (10 + n)) as the official option (num_updates starts at 0 instead of -1).
  LitEmaImpl(const torch::nn::Module& model, double decay = 0.999, bool use_num_updates = false);

  // One update after an optimizer step: shadow -= (1 - decay) * (shadow - param), in float32 as the official
  // code (one_minus_decay = 1.0 - decay buffer). Throws ibq::ValueError when `model` lacks a tracked name.
  void update(const torch::nn::Module& model);
  // Copies the shadow values into the model's parameters (official copy_to).
  void copy_to(torch::nn::Module& model) const;

  // (parameter name, buffer name) pairs, in parameter order.
  const std::vector<std::pair<std::string, std::string>>& names() const { return names_; }

  at::Tensor decay, num_updates;

 private:
  std::vector<std::pair<std::string, std::string>> names_;
};
TORCH_MODULE(LitEma);

}  // namespace ibq
