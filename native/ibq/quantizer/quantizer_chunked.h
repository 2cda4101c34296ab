// The IBQ quantizer's [N, n_embed] part computed in blocks of positions, so that no dense [N, n_embed]
// tensor (logits, softmax, one-hot, entropy terms) is ever built: memory O(rows_per_block * n_embed + n_embed)
// besides the codebook and its gradient. Same values and gradients as the dense path of IBQuantizerImpl
// (official `IndexPropagationQuantize` + `compute_entropy_loss`), up to float32 rounding order.
#pragma once
#include <torch/torch.h>

namespace ibq {

struct ChunkedIBQOutput {
  at::Tensor z_q;             // [N, D] in the product dtype: codebook rows with the straight-through gradient
  at::Tensor z_q2;            // [N, D] in the product dtype: codebook rows (hard one-hot @ E)
  at::Tensor sample_entropy;  // 0-d float32 (undefined without the entropy loss)
  at::Tensor avg_entropy;     // 0-d float32 (undefined without the entropy loss)
  at::Tensor indices;         // int64 [N]
};

// z_flat [N, D] (positions in (b, h, w) order), codebook E [K, D]. Forward keeps only the indices, the codebook
// average of softmax(logits / T) (for the entropy gradient) and its inputs; backward recomputes the logits of
// `rows_per_block` positions at a time (matrix products at::mm / addmm) and returns exactly the dense path's
// gradients for z_flat and E: the straight-through term (hard - sg(soft) + soft) @ E, the hard term hard @ E,
// and the entropy terms at temperature T with the +1e-5 of the official code. The matrix products run in the
// dtype autocast gives them (bfloat16 / float16) or in z's dtype; softmax and entropy always in float32.
// On the CPU in float32 the fused kernels of quantizer_fused.h do the same without libtorch ops on blocks;
// elsewhere (CUDA, 16-bit products, IBQ_QUANTIZER_KERNEL=aten) libtorch ops on blocks of rows.
ChunkedIBQOutput ibq_chunked(const at::Tensor& z_flat, const at::Tensor& E, bool use_entropy_loss,
                             double temperature, int64_t rows_per_block);

// Positions per block: 2^24 / n_embed, at most 256 (64 at n_embed 262144). The fused CPU kernels hold the block's
// logits and G (2 x 64 MiB there); the libtorch-op path up to four [rows, n_embed] float32 blocks at a time.
int64_t default_rows_per_block(int64_t n_embed);

}  // namespace ibq
