#include "ibq/tokenizer/vqgan.h"

#include <algorithm>

#include "ibq/core/config_check.h"
#include "ibq/core/errors.h"

namespace ibq::vqgan {
namespace {

torch::nn::Conv2d conv3(int64_t in, int64_t out) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(1).padding(1));
}

bool has_attn(const DDConfig& c, int64_t curr_res) {
  return std::find(c.attn_resolutions.begin(), c.attn_resolutions.end(), curr_res) != c.attn_resolutions.end();
}

// Runs level `lvl`'s blocks (each followed by its AttnBlock when the level has attention).
at::Tensor run_blocks(LevelImpl& lvl, at::Tensor h) {
  for (size_t j = 0; j < lvl.block->size(); ++j) {
    h = lvl.block[j]->as<ResnetBlock>()->forward(h);
    if (!lvl.attn->is_empty()) h = lvl.attn[j]->as<AttnBlock>()->forward(h);
  }
  return h;
}

}  // namespace

void DDConfig::validate() const {
  check_fields(*this, "ddconfig");
  for (int64_t m : ch_mult) {
    IBQ_CHECK(ch % 32 == 0 && (ch * m) % 32 == 0,
              "ddconfig: GroupNorm(32) channel counts ch = " + std::to_string(ch) + ", ch * ch_mult = " + std::to_string(ch * m));
  }
}

LevelImpl::LevelImpl() {
  block = register_module("block", torch::nn::ModuleList());
  attn = register_module("attn", torch::nn::ModuleList());
}

MidImpl::MidImpl(int64_t c, double dropout) {
  block_1 = register_module("block_1", ResnetBlock(c, c, dropout));
  attn_1 = register_module("attn_1", AttnBlock(c));
  block_2 = register_module("block_2", ResnetBlock(c, c, dropout));
}

at::Tensor MidImpl::forward(const at::Tensor& x) { return block_2(attn_1(block_1(x))); }

EncoderImpl::EncoderImpl(const DDConfig& c) : cfg(c) {
  cfg.validate();
  const int64_t levels = int64_t(c.ch_mult.size());
  conv_in = register_module("conv_in", conv3(c.in_channels, c.ch));
  auto down_list = register_module("down", torch::nn::ModuleList());
  int64_t curr_res = c.resolution, block_in = c.ch;
  for (int64_t i = 0; i < levels; ++i) {
    Level lvl;
    block_in = c.ch * (i == 0 ? 1 : c.ch_mult[i - 1]);
    const int64_t block_out = c.ch * c.ch_mult[i];
    for (int64_t j = 0; j < c.num_res_blocks; ++j) {
      lvl->block->push_back(ResnetBlock(block_in, block_out, c.dropout));
      block_in = block_out;
      if (has_attn(c, curr_res)) lvl->attn->push_back(AttnBlock(block_in));
    }
    if (i != levels - 1) {
      lvl->downsample = lvl->register_module("downsample", Downsample(block_in));
      curr_res /= 2;
    }
    down_list->push_back(lvl);
    down.push_back(lvl);
  }
  mid = register_module("mid", Mid(block_in, c.dropout));
  norm_out = register_module("norm_out", make_norm(block_in));
  conv_out = register_module("conv_out", conv3(block_in, c.double_z ? 2 * c.z_channels : c.z_channels));
}

namespace {
// The channels-last inference path (vqgan_blocks.h): in and out of it at the ends of the encoder and decoder.
at::Tensor to_channels_last(const at::Tensor& x) {
  return channels_last_path(x) ? x.contiguous(at::MemoryFormat::ChannelsLast) : x;
}
at::Tensor from_channels_last(const at::Tensor& x) { return x.contiguous(); }
}  // namespace

at::Tensor EncoderImpl::forward(const at::Tensor& x) {
  auto h = conv_in(to_channels_last(x));
  for (auto& lvl : down) {
    h = run_blocks(*lvl, h);
    if (lvl->downsample) h = lvl->downsample(h);
  }
  h = mid(h);
  return from_channels_last(conv_out(norm_act(norm_out, h, true)));
}

DecoderImpl::DecoderImpl(const DDConfig& c) : cfg(c) {
  cfg.validate();
  const int64_t levels = int64_t(c.ch_mult.size());
  int64_t block_in = c.ch * c.ch_mult[levels - 1];
  int64_t curr_res = c.resolution / (int64_t(1) << (levels - 1));
  conv_in = register_module("conv_in", conv3(c.z_channels, block_in));
  mid = register_module("mid", Mid(block_in, c.dropout));
  // Built from the lowest resolution up (as the official code does), registered as up.0 .. up.<levels-1>.
  up.resize(levels);
  for (int64_t i = levels - 1; i >= 0; --i) {
    Level lvl;
    const int64_t block_out = c.ch * c.ch_mult[i];
    for (int64_t j = 0; j <= c.num_res_blocks; ++j) {
      lvl->block->push_back(ResnetBlock(block_in, block_out, c.dropout));
      block_in = block_out;
      if (has_attn(c, curr_res)) lvl->attn->push_back(AttnBlock(block_in));
    }
    if (i != 0) {
      lvl->upsample = lvl->register_module("upsample", Upsample(block_in));
      curr_res *= 2;
    }
    up[i] = lvl;
  }
  auto up_list = register_module("up", torch::nn::ModuleList());
  for (auto& lvl : up) up_list->push_back(lvl);
  norm_out = register_module("norm_out", make_norm(block_in));
  conv_out = register_module("conv_out", conv3(block_in, c.out_ch));
}

at::Tensor DecoderImpl::forward(const at::Tensor& z) {
  auto h = mid(conv_in(to_channels_last(z)));
  for (int64_t i = int64_t(up.size()) - 1; i >= 0; --i) {
    h = run_blocks(*up[i], h);
    if (up[i]->upsample) h = up[i]->upsample(h);
  }
  return from_channels_last(conv_out(norm_act(norm_out, h, true)));
}

}  // namespace ibq::vqgan
