// VQ baseline: taming-transformers `VectorQuantizer2` (nearest codebook entry by squared L2 distance,
// straight-through gradient to z). Codebook `embedding.weight` [n_embed, embed_dim].
#pragma once
#include <torch/torch.h>

#include "ibq/core/config_field.h"

namespace ibq {

// The VQ baseline's arguments (official VectorQuantizer2: n_e / e_dim there are n_embed / embed_dim), declared
// once for C++ and TypeScript (ibq/config_field.h), with the official defaults (beta: the value the official
// VQModel passes; VectorQuantizer2 itself requires it).
struct VQOptions {
  int64_t n_embed = 0;    // required
  int64_t embed_dim = 0;  // required
  double beta = 0.25;
  bool legacy = true;
  bool l2_normalize = false;

  template <class Self, class Fn>
  static void for_each_field(Self& c, Fn&& fn) {
    fn(Field("n_embed", "Codebook size (official n_e).").req().ge(1), c.n_embed);
    fn(Field("embed_dim", "Codebook vector size (official e_dim).").req().ge(1), c.embed_dim);
    fn(Field("beta", "Commitment weight."), c.beta);
    fn(Field("legacy", "loss = mean((sg(z_q) - z)^2) + beta * mean((z_q - sg(z))^2) (the official default, the "
                       "historical placement of beta); false puts beta on the first term."),
       c.legacy);
    fn(Field("l2_normalize", "Nearest entry by the distance between L2-normalised vectors (z_q stays the raw row)."),
       c.l2_normalize);
  }
  void validate() const;  // IBQ_CHECK of the declared ranges
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
