#include "ibq/tokenizer/tokenizer.h"

#include <sstream>

#include "ibq/core/errors.h"

namespace ibq {
namespace {

torch::nn::Conv2d conv1x1(int64_t in, int64_t out) { return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1)); }

void check_side(int64_t size, int64_t f, const char* arg, const char* side, size_t levels) {
  if (size >= f && size % f == 0) return;
  const int64_t nearest = std::max<int64_t>(f, ((size + f / 2) / f) * f);
  std::ostringstream os;
  os << arg << ": " << side << " " << size << " is not divisible by " << f << " (2^(len(ch_mult)-1) with "
     << levels << " levels); nearest valid " << side << ": " << nearest;
  throw ValueError(os.str());
}

}  // namespace

TokenizerImpl::TokenizerImpl(const TokenizerConfig& cfg) : cfg_(cfg) {
  cfg_.ddconfig.validate();
  cfg_.quantizer.validate();
  encoder = register_module("encoder", vqgan::Encoder(cfg_.ddconfig));
  decoder = register_module("decoder", vqgan::Decoder(cfg_.ddconfig));
  quantize = register_module("quantize", IBQuantizer(cfg_.quantizer));
  const int64_t zc = cfg_.ddconfig.z_channels, ed = cfg_.quantizer.embed_dim;
  quant_conv = register_module("quant_conv", conv1x1(cfg_.ddconfig.double_z ? 2 * zc : zc, ed));
  post_quant_conv = register_module("post_quant_conv", conv1x1(ed, zc));
}

void TokenizerImpl::check_images(const at::Tensor& x, const char* arg) const {
  const auto& dd = cfg_.ddconfig;
  if (!x.is_floating_point()) throw TypeError(std::string(arg) + ": expected a floating-point image tensor");
  if (x.dim() != 4 || x.size(1) != dd.in_channels) {
    std::ostringstream os;
    os << arg << ": expected a [B, " << dd.in_channels << ", H, W] tensor (in_channels " << dd.in_channels
       << "), got shape " << x.sizes();
    throw ValueError(os.str());
  }
  if (x.size(0) == 0) throw ValueError(std::string(arg) + ": the batch is empty");
  const int64_t f = dd.downsample_factor();
  check_side(x.size(2), f, arg, "height", dd.ch_mult.size());
  check_side(x.size(3), f, arg, "width", dd.ch_mult.size());
  check_finite(x, arg);
}

TokenizerOutput TokenizerImpl::forward(const at::Tensor& x) {
  check_images(x, "x");
  TokenizerOutput out;
  out.h = quant_conv(encoder(x));
  auto q = quantize->forward(out.h);
  out.z_q = q.z_q;
  out.indices = q.indices;
  out.quant_loss = q.quant_loss;
  out.sample_entropy = q.sample_entropy;
  out.avg_entropy = q.avg_entropy;
  out.entropy_loss = q.entropy_loss;
  out.xrec = decode_latent(q.z_q);
  return out;
}

std::pair<at::Tensor, at::Tensor> TokenizerImpl::encode(const at::Tensor& x) {
  check_images(x, "x");
  auto h = quant_conv(encoder(x));
  auto indices = quantize->encode_indices(h);
  return {indices, quantize->get_codebook_entry(indices)};
}

at::Tensor TokenizerImpl::decode(const at::Tensor& indices) {
  return decode_latent(quantize->get_codebook_entry(indices));
}

at::Tensor TokenizerImpl::decode_latent(const at::Tensor& z_q) { return decoder(post_quant_conv(z_q)); }

}  // namespace ibq
