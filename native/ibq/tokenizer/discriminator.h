// PatchGAN discriminator (official taming / IBQ `NLayerDiscriminator`, Pix2Pix PatchGAN; Isola et al. 2017):
// `main` = Conv(4, s2) LeakyReLU(0.2), then (n_layers - 1) x [Conv(4, s2, no bias), BatchNorm, LeakyReLU],
// Conv(4, s1, no bias), BatchNorm, LeakyReLU, Conv(4, s1) -> 1 channel. The Sequential indices match the
// official state-dict keys (`main.0.weight`, `main.3.running_mean`, ..., `main.11.bias` for n_layers 3).
#pragma once
#include <torch/torch.h>

namespace ibq {

// From the validated lossconfig (VQLossOptions: its declaration holds the ranges).
struct DiscriminatorOptions {
  int64_t input_nc = 3;  // disc_in_channels
  int64_t ndf = 64;      // disc_ndf
  int64_t n_layers = 3;  // disc_num_layers
};

class NLayerDiscriminatorImpl : public torch::nn::Module {
 public:
  explicit NLayerDiscriminatorImpl(const DiscriminatorOptions& opts);

  // x: float [B, input_nc, H, W] -> logits [B, 1, H', W'] (H' = H/2^n_layers - 2 for H divisible by it).
  // In train mode BatchNorm uses the batch statistics and updates its running ones (as the official module).
  // Throws ibq::ValueError for a wrong channel count or H/W below min_input_size().
  at::Tensor forward(const at::Tensor& x);

  // The official `weights_init`: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02) and biases 0 (conv
  // biases keep torch's default init). Uses torch's default generator.
  void reset_parameters();

  // Smallest H (and W) that gives a non-empty logit map (24 for n_layers 3; the official 256x256 training
  // gives 30x30 logits).
  int64_t min_input_size() const;

  const DiscriminatorOptions& options() const { return opts_; }
  torch::nn::Sequential main{nullptr};

 private:
  DiscriminatorOptions opts_;
};
TORCH_MODULE(NLayerDiscriminator);

}  // namespace ibq
