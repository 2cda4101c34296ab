// IBQ quantizer: Index Backpropagation Quantization (arXiv 2412.02692, Sec. 3; official
// `IndexPropagationQuantize` with `compute_entropy_loss` of the IBQ repo). Codebook `embedding.weight`
// [n_embed, embed_dim].
#pragma once
#include <torch/torch.h>

namespace ibq {

struct IBQOptions {
  int64_t n_embed = 16384;
  int64_t embed_dim = 256;
  double beta = 0.25;
  bool use_entropy_loss = true;
  double entropy_temperature = 0.01;
  double sample_minimization_weight = 1.0;
  double batch_maximization_weight = 1.0;
  // quantizer_chunk: how forward computes the [positions, n_embed] part. 0: dense tensors (the reference);
  // r > 0: the chunked path (ibq_chunked) with r positions per block; -1 (auto): chunked with
  // default_rows_per_block(n_embed) when positions * n_embed >= kAutoChunkElements, else dense.
  int64_t chunk = -1;
  void validate() const;  // ibq::ValueError naming the field
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
  // Dense or chunked by options().chunk (same values and gradients; see quantizer_chunked.h).
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
