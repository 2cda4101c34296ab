// VQGAN Encoder and Decoder (taming-transformers `Encoder` / `Decoder`, as in the official IBQ VQModel), with
// the official module tree: conv_in, down.<i>.{block,attn}.<j>, down.<i>.downsample, mid.{block_1,attn_1,
// block_2}, up.<i>.{block,attn}.<j>, up.<i>.upsample, norm_out, conv_out.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "ibq/core/config_field.h"
#include "ibq/tokenizer/vqgan_blocks.h"

namespace ibq::vqgan {

// The official `ddconfig` (model.init_args.ddconfig of a tokenizer YAML: the arguments of the official
// Encoder / Decoder), declared once for C++ and TypeScript (ibq/config_field.h). Defaults are the official
// Encoder's, except: double_z false (the official Encoder's default is true, which the official IBQ model cannot
// run: its quant_conv takes z_channels; every official config sets false), in_channels / out_ch 3 and
// attn_resolutions [] (official: required; every official config gives 3, 3 and [16]).
struct DDConfig {
  bool double_z = false;
  int64_t z_channels = 0;  // required
  int64_t resolution = 0;  // required
  int64_t in_channels = 3;
  int64_t out_ch = 3;
  int64_t ch = 0;  // required
  std::vector<int64_t> ch_mult{1, 2, 4, 8};
  int64_t num_res_blocks = 0;  // required
  std::vector<int64_t> attn_resolutions;
  double dropout = 0.0;

  template <class Self, class Fn>
  static void for_each_field(Self& c, Fn&& fn) {
    fn(Field("double_z", "The encoder outputs 2 * z_channels channels (quant_conv then takes them all)."), c.double_z);
    fn(Field("z_channels", "Channels of the latent between the encoder / decoder and quant_conv / post_quant_conv.").req().ge(1),
       c.z_channels);
    fn(Field("resolution", "Image side the model is built for: levels whose side (resolution / 2^level) is in "
                           "attn_resolutions get attention.").req().ge(1),
       c.resolution);
    fn(Field("in_channels", "Image channels the encoder takes.").ge(1), c.in_channels);
    fn(Field("out_ch", "Image channels the decoder gives.").ge(1), c.out_ch);
    fn(Field("ch", "Base channel count; GroupNorm(32) needs ch and every ch * ch_mult[i] divisible by 32.").req().ge(1), c.ch);
    fn(Field("ch_mult", "Channel multiplier of each resolution level; the image is downsampled "
                        "2^(len(ch_mult)-1) times per side.").ge(1).items(1, 12),
       c.ch_mult);
    fn(Field("num_res_blocks", "ResnetBlocks per level.").req().ge(1), c.num_res_blocks);
    fn(Field("attn_resolutions", "Sides (resolution / 2^level) of the levels that get attention blocks.").ge(1),
       c.attn_resolutions);
    fn(Field("dropout", "Dropout probability of the ResnetBlocks.").ge(0).lt(1), c.dropout);
  }

  // 2^(len(ch_mult)-1): the factor H and W must be divisible by, and the token-map downsampling.
  int64_t downsample_factor() const { return int64_t(1) << (ch_mult.size() - 1); }
  // IBQ_CHECK of the declared ranges and of GroupNorm(32) divisibility (TypeScript validated them).
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
