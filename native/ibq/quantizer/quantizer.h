// IBQ quantizer: Index Backpropagation Quantization (arXiv 2412.02692, Sec. 3; official
// `IndexPropagationQuantize` with `compute_entropy_loss` of the IBQ repo). Codebook `embedding.weight`
// [n_embed, embed_dim].
#pragma once
#include <torch/torch.h>

#include "ibq/core/config_field.h"

namespace ibq {

// The IBQ quantizer's arguments (official IndexPropagationQuantize, as model.init_args of a tokenizer YAML names
// them: n_e / e_dim there are n_embed / embed_dim), declared once for C++ and TypeScript (ibq/config_field.h),
// with the official defaults.
struct IBQOptions {
  int64_t n_embed = 0;    // required
  int64_t embed_dim = 0;  // required
  double beta = 0.25;
  bool use_entropy_loss = false;
  double entropy_temperature = 0.01;
  double sample_minimization_weight = 1.0;
  double batch_maximization_weight = 1.0;
  // How forward computes the [positions, n_embed] part: 0 (dense): dense tensors (the reference); r > 0: the
  // chunked path (ibq_chunked) with r positions per block; -1 (auto): chunked with default_rows_per_block(n_embed)
  // when positions * n_embed >= kAutoChunkElements, else dense.
  int64_t quantizer_chunk = -1;

  template <class Self, class Fn>
  static void for_each_field(Self& c, Fn&& fn) {
    fn(Field("n_embed", "Codebook size (official n_e).").req().ge(1), c.n_embed);
    fn(Field("embed_dim", "Codebook vector size (official e_dim): the channels of quant_conv's output.").req().ge(1),
       c.embed_dim);
    fn(Field("beta", "Weight of the codebook term mean((z_q_hard - sg(z))^2) in quant_loss."), c.beta);
    fn(Field("use_entropy_loss", "Compute sample_entropy, avg_entropy and entropy_loss (else they are 0)."),
       c.use_entropy_loss);
    fn(Field("entropy_temperature", "Temperature of the softmax of the entropy terms.").gt(0), c.entropy_temperature);
    fn(Field("sample_minimization_weight", "Weight of the per-position entropy in entropy_loss."),
       c.sample_minimization_weight);
    fn(Field("batch_maximization_weight", "Weight of the entropy of the mean distribution (subtracted) in entropy_loss."),
       c.batch_maximization_weight);
    fn(Field("quantizer_chunk",
             "How the [positions, n_embed] part is computed (not an official field): 'dense' (the reference: dense "
             "logits, softmax and one-hot, as the official module), a positive integer (chunked: that many positions "
             "per block, memory O(block * n_embed + n_embed), the same values and gradients up to float32 rounding "
             "order) or 'auto' (chunked when positions * n_embed >= 2^22, else dense).")
           .opt().ge(1).alias("auto", -1).alias("dense", 0),
       c.quantizer_chunk);
  }
  void validate() const;  // IBQ_CHECK of the declared ranges
};

// Size (positions * n_embed) from which quantizer_chunk = auto takes the chunked path: 2^22 elements, one
// 16 MiB float32 tensor.
constexpr int64_t kAutoChunkElements = int64_t(1) << 22;

struct IBQOutput {
  at::Tensor z_q;             // [B, D, H, W]: one_hot @ E with the straight-through one_hot
  at::Tensor quant_loss;      // 0-d float32
  at::Tensor sample_entropy;  // 0-d float32 (0 when use_entropy_loss is false)
  at::Tensor avg_entropy;     // 0-d float32 (0 when use_entropy_loss is false)
  at::Tensor entropy_loss;    // 0-d float32: smw * sample_entropy - bmw * avg_entropy (0 when disabled)
  at::Tensor indices;         // int64 [B, H, W]
};

// Entropy terms of unnormalised logits [N, n] (MAGVIT-v2 entropy loss as in the IBQ repo): probabilities
// softmax(logits / T); sample entropy = mean_i H(p_i) with log p = log_softmax(logits / T + 1e-5);
// avg entropy = -sum(p_avg * log(p_avg + 1e-5)) of the mean distribution; loss = smw * sample - bmw * avg.
// Always computed in float32 (the logits are upcast), so temperature 0.01 cannot overflow 16-bit floats.
struct EntropyTerms {
  at::Tensor sample_entropy, avg_entropy, loss;
};
EntropyTerms entropy_terms(const at::Tensor& logits, double temperature, double smw, double bmw);

class IBQuantizerImpl : public torch::nn::Module {
 public:
  explicit IBQuantizerImpl(const IBQOptions& opts);

  // z [B, D, H, W] (D = embed_dim). logits = z . E^T per position; soft = softmax(logits) (float32);
  // hard = one_hot(argmax soft); one_hot = hard - sg(soft) + soft; z_q = one_hot @ E; with z_q2 = hard @ E:
  // quant_loss = mean((z_q - z)^2) + mean((sg(z_q2) - z)^2) + beta * mean((z_q2 - sg(z))^2).
  // Same computation in train and eval mode (as the official module). Throws ibq::ValueError on a bad shape.
  // Dense or chunked by options().quantizer_chunk (same values and gradients; see quantizer_chunked.h).
  IBQOutput forward(const at::Tensor& z);

  // Positions per block of the chunked path for `positions` positions, or 0 for the dense path.
  int64_t rows_per_block(int64_t positions) const;

  // Indices only (int64 [B, H, W]): argmax of the logits (first index of the largest), in chunks of positions
  // so that no [N, n_embed] tensor is built (the fused max pass where fused_kernels applies). Equal to
  // forward(z).indices.
  at::Tensor encode_indices(const at::Tensor& z, int64_t max_chunk_elements = int64_t(1) << 24);

  // Codebook rows for int64 indices [B, h, w] -> z_q [B, D, h, w] (official get_codebook_entry).
  // Throws ibq::ValueError for indices outside [0, n_embed).
  at::Tensor get_codebook_entry(const at::Tensor& indices);

  const IBQOptions& options() const { return opts_; }
  torch::nn::Embedding embedding{nullptr};

 private:
  IBQOutput forward_dense(const at::Tensor& z);
  IBQOutput forward_chunked(const at::Tensor& z, int64_t rows);
  IBQOptions opts_;
};
TORCH_MODULE(IBQuantizer);

// Shared argument checks of the quantizers.
void check_latent(const at::Tensor& z, int64_t embed_dim, const char* arg);
void check_indices(const at::Tensor& indices, int64_t n_embed, const char* arg);
// ValueError "<arg>: contains NaN or infinite values" unless every element is finite (model inputs: the
// tokenizer's images, the standalone quantizers' z; not applied inside training steps, where a non-finite
// loss is reported instead).
void check_finite(const at::Tensor& x, const char* arg);

}  // namespace ibq
