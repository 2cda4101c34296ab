// The IBQ quantizer's [positions, n_embed] part on the CPU in float32 with fused, cache-blocked kernels
// (quantizer_fused_kernels.h): the chunked path's algorithm (quantizer_chunked.h) without any libtorch op on
// [rows, n_embed] blocks. Logits are computed tile by tile (codes x positions) and reduced while the tile is in
// cache; each block of positions keeps its logits (and G = g_z_q . E^T in the backward) in one buffer of
// n_embed x rows, so that the softmax normalisers are known before the gradient sweep. Matrix products are 4 per
// forward + backward (logits, G, dL @ E, dL^T @ z) plus the forward's logits: no dense [N, n_embed] tensor.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "ibq/quantizer/quantizer_fused_kernels.h"

namespace ibq {

// The fused kernels this CPU runs, widest first (compiled for x86-64 with GCC or Clang: avx512, avx2).
std::vector<const fused::Kernels*> fused_cpu_kernels();

// The kernels for z [N, D] and E [K, D] with products in dtype `compute`, or null when they do not apply (not
// CPU, not float32, D not a multiple of the vector width, K >= 2^24) or IBQ_QUANTIZER_KERNEL says otherwise:
// `aten` (the libtorch-op chunked path), `avx2`, `avx512` (when the CPU has it); unset: the widest the CPU has
// whose vector width divides D (the AVX2 kernels for D = 8 on an AVX-512 CPU).
const fused::Kernels* fused_kernels(const at::Tensor& z, const at::Tensor& E, at::ScalarType compute);

struct FusedForward {
  at::Tensor indices;         // int64 [N]: first index of the largest logit
  at::Tensor m1;              // float32 [N]: the largest logit
  at::Tensor ss;              // float64 [N]: sum_j exp(L_j / T - m1 / T)                     (entropy)
  at::Tensor sample_entropy;  // float32 [N]: H_i = -sum_j p_ij log_softmax(L_i / T + 1e-5)_j (entropy)
  at::Tensor avg_sum;         // float64 [K]: sum_i softmax(L_i / T)_j                          (entropy)
};

// The buffer of one block's logits (and G = g E^T with_g): n_embed x 2 (or 1) x rows rounded up to the kernels'
// alignment, float32, uninitialised. Both passes use one: the forward, given `for_backward`, one of the backward's
// size (with G), which it frees and the allocator keeps (core/large_blocks.h) for the backward, which allocates its
// own first (before the codebook gradient): in this order each block of memory is faulted in once per call.
at::Tensor fused_buffer(const fused::Kernels& kn, int64_t n, int64_t n_embed, int64_t rows, bool with_g);

// Forward over blocks of `rows` positions (rounded up to the kernels' alignment); entropy terms when `entropy`.
// `for_backward`: a backward with the straight-through term follows (sizes the logits buffer for it).
FusedForward fused_forward(const fused::Kernels& kn, const at::Tensor& z, const at::Tensor& E, bool entropy,
                           double temperature, int64_t rows, bool for_backward);

// Adds the logits' share of the gradients: dz [N, D] (written) and dE [K, D] (float32, accumulated) from
// g = dLoss/dz_q [N, D] (may be undefined: no straight-through term) and the entropy gradients g_row
// (dLoss/dH_i, the same for every i) and g_avg [K] float32 (dLoss/d mean_i softmax(L_i / T); undefined: none).
// `buf`: fused_buffer(kn, N, n_embed, rows, g.defined()).
void fused_backward(const fused::Kernels& kn, const at::Tensor& z, const at::Tensor& E, const at::Tensor& g,
                    const FusedForward& f, double g_row, const at::Tensor& g_avg, double temperature, int64_t rows,
                    const at::Tensor& buf, at::Tensor& dz, at::Tensor& dE);

}  // namespace ibq
