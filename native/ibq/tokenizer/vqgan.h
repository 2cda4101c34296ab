// VQGAN Encoder and Decoder (taming-transformers `Encoder` / `Decoder`, as in the official IBQ VQModel), with
// the official module tree: conv_in, down.<i>.{block,attn}.<j>, down.<i>.downsample, mid.{block_1,attn_1,
// block_2}, up.<i>.{block,attn}.<j>, up.<i>.upsample, norm_out, conv_out.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "ibq/tokenizer/vqgan_blocks.h"

namespace ibq::vqgan {

// The official `ddconfig` (model.init_args.ddconfig of a tokenizer YAML).
struct DDConfig {
  bool double_z = false;
  int64_t z_channels = 256;
  int64_t resolution = 256;
  int64_t in_channels = 3;
  int64_t out_ch = 3;
  int64_t ch = 128;
  std::vector<int64_t> ch_mult{1, 1, 2, 2, 4};
  int64_t num_res_blocks = 4;
  std::vector<int64_t> attn_resolutions{16};
  double dropout = 0.0;

  // 2^(len(ch_mult)-1): the factor H and W must be divisible by, and the token-map downsampling.
  int64_t downsample_factor() const { return int64_t(1) << (ch_mult.size() - 1); }
  // Throws ibq::ValueError naming the field when a value is out of range or a GroupNorm channel count is not
  // divisible by 32.
  void validate() const;
};

// One resolution level: `block` (ResnetBlocks), `attn` (AttnBlocks, empty where there is no attention) and an
// optional `downsample` / `upsample`.
struct LevelImpl : torch::nn::Module {
  torch::nn::ModuleList block, attn;
  Downsample downsample{nullptr};
  Upsample upsample{nullptr};
  LevelImpl();
};
TORCH_MODULE(Level);

// The middle: block_1, attn_1, block_2 at the lowest resolution.
struct MidImpl : torch::nn::Module {
  ResnetBlock block_1{nullptr}, block_2{nullptr};
  AttnBlock attn_1{nullptr};
  MidImpl(int64_t channels, double dropout);
  at::Tensor forward(const at::Tensor& x);
};
TORCH_MODULE(Mid);

// [B, in_channels, H, W] -> [B, z_channels (x2 if double_z), H/f, W/f], f = downsample_factor().
struct EncoderImpl : torch::nn::Module {
  explicit EncoderImpl(const DDConfig& cfg);
  at::Tensor forward(const at::Tensor& x);

  DDConfig cfg;
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  std::vector<Level> down;
  Mid mid{nullptr};
  torch::nn::GroupNorm norm_out{nullptr};
};
TORCH_MODULE(Encoder);

// [B, z_channels, h, w] -> [B, out_ch, h*f, w*f] (no tanh; the official give_pre_end / tanh_out are off).
struct DecoderImpl : torch::nn::Module {
  explicit DecoderImpl(const DDConfig& cfg);
  at::Tensor forward(const at::Tensor& z);

  DDConfig cfg;
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  Mid mid{nullptr};
  std::vector<Level> up;  // up[i] is resolution level i (registered as up.<i>)
  torch::nn::GroupNorm norm_out{nullptr};
};
TORCH_MODULE(Decoder);

}  // namespace ibq::vqgan
