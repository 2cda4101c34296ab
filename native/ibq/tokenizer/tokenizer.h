// The IBQ tokenizer (official IBQ `VQModel` without its training loss): encoder -> quant_conv -> quantize
// (IBQ) -> post_quant_conv -> decoder. Module names as in the official checkpoints: encoder.*, decoder.*,
// quantize.embedding.weight, quant_conv.{weight,bias}, post_quant_conv.{weight,bias}.
#pragma once
#include <torch/torch.h>

#include "ibq/quantizer/quantizer.h"
#include "ibq/tokenizer/vqgan.h"

namespace ibq {

// The official model.init_args the tokenizer uses: ddconfig, n_embed, embed_dim and the quantizer options.
struct TokenizerConfig {
  vqgan::DDConfig ddconfig;
  IBQOptions quantizer;  // n_embed, embed_dim, beta, use_entropy_loss, entropy_temperature, smw, bmw
};

struct TokenizerOutput {
  at::Tensor h;        // quant_conv output [B, embed_dim, H/f, W/f]
  at::Tensor z_q;      // [B, embed_dim, H/f, W/f]
  at::Tensor indices;  // int64 [B, H/f, W/f]
  at::Tensor xrec;     // [B, out_ch, H, W] (not clamped)
  at::Tensor quant_loss, sample_entropy, avg_entropy, entropy_loss;  // 0-d float32
};

class TokenizerImpl : public torch::nn::Module {
 public:
  explicit TokenizerImpl(const TokenizerConfig& cfg);

  // x: float [B, in_channels, H, W] in [-1, 1]; H and W multiples of f = 2^(len(ch_mult)-1).
  // The full official forward (straight-through quantizer, losses). Throws ibq::ValueError for a bad shape,
  // H/W not divisible by f (naming f and the nearest valid size) or non-finite values.
  TokenizerOutput forward(const at::Tensor& x);
  // Indices by a chunked argmax (no [N, n_embed] softmax) and z_q = codebook rows. Same errors as forward.
  std::pair<at::Tensor, at::Tensor> encode(const at::Tensor& x);
  // int64 [B, h, w] -> [B, out_ch, h*f, w*f]. ibq::ValueError for indices outside [0, n_embed).
  at::Tensor decode(const at::Tensor& indices);
  // z_q [B, embed_dim, h, w] -> image.
  at::Tensor decode_latent(const at::Tensor& z_q);

  // Argument checks of forward/encode, public for the bindings' early validation.
  void check_images(const at::Tensor& x, const char* arg) const;
  const TokenizerConfig& config() const { return cfg_; }

  vqgan::Encoder encoder{nullptr};
  vqgan::Decoder decoder{nullptr};
  IBQuantizer quantize{nullptr};
  torch::nn::Conv2d quant_conv{nullptr}, post_quant_conv{nullptr};

 private:
  TokenizerConfig cfg_;
};
TORCH_MODULE(Tokenizer);

}  // namespace ibq
