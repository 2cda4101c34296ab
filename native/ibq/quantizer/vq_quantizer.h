// VQ baseline: taming-transformers `VectorQuantizer2` (nearest codebook entry by squared L2 distance,
// straight-through gradient to z). Codebook `embedding.weight` [n_embed, embed_dim].
#pragma once
#include <torch/torch.h>

namespace ibq {

struct VQOptions {
  int64_t n_embed = 1024;
  int64_t embed_dim = 256;
  double beta = 0.25;
  bool legacy = true;         // official default: beta on the codebook term (the historical placement)
  bool l2_normalize = false;  // distances between L2-normalised z and codebook rows (z_q stays the raw row)
};

struct VQOutput {
  at::Tensor z_q;      // [B, D, H, W]: z + sg(E[idx] - z)
  at::Tensor loss;     // 0-d: legacy: mean((sg(z_q)-z)^2) + beta*mean((z_q-sg(z))^2); else beta on the first term
  at::Tensor indices;  // int64 [B, H, W]
};

class VectorQuantizerImpl : public torch::nn::Module {
 public:
  explicit VectorQuantizerImpl(const VQOptions& opts);
  // z [B, D, H, W]. Throws ibq::ValueError when D != embed_dim or z is not 4-D.
  VQOutput forward(const at::Tensor& z);
  // int64 [B, h, w] -> [B, D, h, w]; ibq::ValueError for indices outside [0, n_embed).
  at::Tensor get_codebook_entry(const at::Tensor& indices);
  const VQOptions& options() const { return opts_; }
  torch::nn::Embedding embedding{nullptr};

 private:
  VQOptions opts_;
};
TORCH_MODULE(VectorQuantizer);

}  // namespace ibq
