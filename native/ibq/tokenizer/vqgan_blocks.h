// Building blocks of the VQGAN encoder/decoder (taming-transformers `diffusionmodules/model.py`, as used by the
// official IBQ `VQModel`): GroupNorm(32, eps 1e-6), swish, ResnetBlock, AttnBlock, Upsample, Downsample.
// Parameter names follow the official modules (norm1, conv1, norm2, conv2, nin_shortcut; norm, q, k, v,
// proj_out; conv), so official state dicts load 1:1. All tensors are [N, C, H, W] (channels-last in memory on the CPU
// path, channels_last_path); float32 unless under autocast.
#pragma once
#include <torch/torch.h>

namespace ibq::vqgan {

// GroupNorm(num_groups=32, channels, eps=1e-6, affine) (official `Normalize`).
torch::nn::GroupNorm make_norm(int64_t channels);
// norm(x) with x cast to the norm's parameter dtype: under autocast a bfloat16/float16 activation is normalised in
// float32, as CUDA autocast runs group_norm (libtorch 1.13's CPU autocast does not cover it and would fail).
at::Tensor apply_norm(torch::nn::GroupNorm& norm, const at::Tensor& x);

// swish / SiLU: x * sigmoid(x) (official `nonlinearity`).
at::Tensor swish(const at::Tensor& x);

// Whether x takes the channels-last path of the encoder and decoder, on which the activations stay channels-last
// end to end (oneDNN's convolutions, forward and backward, run faster on that layout than on NCHW here):
// in training (autograd on), any float32 or bfloat16 4-D CPU tensor; without autograd (inference), a float32 CPU
// tensor while one of our CPU kernels is selected (ibq/core/cpu_kernels.h; IBQ_KERNEL=aten: never), so that
// GroupNorm(+SiLU) runs on our kernel.
bool channels_last_path(const at::Tensor& x);
// swish(apply_norm(norm, x)) (or the norm alone without `silu`); on a channels-last tensor of that path our fused
// kernel, writing into x itself when `in_place` (x must then be a temporary of the caller).
at::Tensor norm_act(torch::nn::GroupNorm& norm, const at::Tensor& x, bool silu, bool in_place = false);

// x -> x + conv2(dropout(swish(norm2(conv1(swish(norm1(x))))))); the skip is a 1x1 `nin_shortcut` when the
// channel count changes. No timestep embedding (temb_channels = 0 in the tokenizer). [B,in,H,W] -> [B,out,H,W].
struct ResnetBlockImpl : torch::nn::Module {
  ResnetBlockImpl(int64_t in_channels, int64_t out_channels, double dropout);
  at::Tensor forward(const at::Tensor& x);

  int64_t in_channels, out_channels;
  double dropout;
  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, nin_shortcut{nullptr};
};
TORCH_MODULE(ResnetBlock);

// Single-head self-attention over the H*W positions with 1x1-conv q, k, v, proj_out and a residual:
// softmax(q^T k / sqrt(C)) weights over keys. [B,C,H,W] -> [B,C,H,W].
struct AttnBlockImpl : torch::nn::Module {
  explicit AttnBlockImpl(int64_t channels);
  at::Tensor forward(const at::Tensor& x);

  torch::nn::GroupNorm norm{nullptr};
  torch::nn::Conv2d q{nullptr}, k{nullptr}, v{nullptr}, proj_out{nullptr};
};
TORCH_MODULE(AttnBlock);

// Nearest-neighbour 2x upsampling followed by a 3x3 conv (padding 1). [B,C,H,W] -> [B,C,2H,2W].
struct UpsampleImpl : torch::nn::Module {
  explicit UpsampleImpl(int64_t channels);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Upsample);

// Asymmetric zero pad (right and bottom by 1) then a 3x3 stride-2 conv without padding.
// [B,C,H,W] -> [B,C,H/2,W/2] for even H, W.
struct DownsampleImpl : torch::nn::Module {
  explicit DownsampleImpl(int64_t channels);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Downsample);

}  // namespace ibq::vqgan
