// CPU kernels of the fused IBQ quantizer (quantizer_fused.h), written once in quantizer_fused_impl.h and
// compiled per instruction set (quantizer_fused_avx512.cpp, quantizer_fused_avx2.cpp). Plain C++ over raw
// float32 pointers: no libtorch types, so that nothing of libtorch is compiled for another instruction set.
//
// Layout. One block of `rows` positions (z rows, and the gradient rows g in the backward) is handled at a time.
// Its positions are the columns of tiles [codes][ncols]: column r < rp holds position r's logit L = z_r . e_j,
// column rp + r (backward with g) its G = g_r . e_j. rp (rows rounded up to 2 vector widths) columns per kind;
// padding columns hold zeros. Per-position arrays below have rp entries. Codes [k0, k1) of one "part" are
// processed by one thread in tiles of kTileCodes codes; parts own disjoint codes, so their writes to `buf`,
// `avg` and `dE` never overlap and their per-position partial sums are merged by the caller in part order
// (the results depend on the number of parts, not on which thread ran which part).
//
// Memory. A tile's logits are computed into a per-part scratch (L1/L2) and reduced there; a pass that keeps them
// writes the tile to `buf` with non-temporal stores (no read of the lines it overwrites). While one tile computes,
// the next tile's codebook rows, codebook-gradient rows and buffer lines are fetched into L2 (software prefetch
// spread over the steps of the products), so that the sweeps over n_embed codes run at the speed of the products.
#pragma once
#include <cstdint>

namespace ibq::fused {

// Codes per tile (a multiple of every kernel's register block of codes).
constexpr int64_t kTileCodes = 96;

// Panels: the matrices the kernels read as the right operand of a product (B, zp) are stored as panels of
// Kernels::row_align columns (two vector widths), each [rows of the matrix][row_align] row-major, one after the
// other (the panel of column c0 at offset c0 * rows), the last one a single vector wide when the column count is
// an odd multiple of the vector width: the microkernel reads a panel as one contiguous stream.
inline int64_t panel_index(int64_t row, int64_t col, int64_t rows, int64_t cols, int64_t panel) {
  const int64_t c0 = col / panel * panel;
  const int64_t w = cols - c0 < panel ? cols - c0 : panel;
  return c0 * rows + row * w + (col - c0);
}

struct Block {
  int64_t k = 0, d = 0;         // n_embed, embed_dim
  int64_t rows = 0, rp = 0;     // positions in this block; rp padded to a multiple of Kernels::row_align
  int64_t ncols = 0;            // rp (logits only) or 2 * rp (logits, then G)
  const float* E = nullptr;     // codebook [k][d]
  const float* B = nullptr;     // [d][ncols] in panels (below): z^T (columns 0..rp), then g^T
  const float* zp = nullptr;    // z rows of the block [rows][d] in panels (backward: codebook gradient)
  float* buf = nullptr;         // [k][ncols] the block's logits (and G), or null (forward without entropy)
  float temperature = 1.0f;     // entropy temperature T (float, as the float32 division logits / T)
  // per-position constants, rp entries each (set by the caller before the pass that reads them)
  const float* m1 = nullptr;      // max logit (forward pass 1)
  const float* inv_ss = nullptr;  // 1 / sum exp(L/T - m1/T)          (entropy)
  const float* log_ss = nullptr;  // log sum exp(L/T - m1/T)            (entropy)
  const float* inv_s1 = nullptr;  // 1 / sum exp(L - m1)                (backward, straight-through term)
  const float* c = nullptr;       // sum_j softmax(L)_j G_j             (backward, straight-through term)
  const float* r = nullptr;       // sum_j softmax(L/T)_j gp_j          (backward, entropy)
  const float* g_avg = nullptr;   // [k] dLoss/d avg_probs / N          (backward, entropy; null: no entropy grad)
  float g_row = 0.0f;             // dLoss/d H_i = -dLoss/d sample_entropy / N (backward, entropy)
};

// Per-part results; arrays of rp entries, allocated by the caller.
struct MaxPart {
  float* m1;   // running max of L (init -inf)
  float* idx;  // its first index (float: exact below 2^24 codes)
};
struct SumPart {
  double* s0;  // forward: sum exp(s - ms); backward: sum exp(L - m1)
  double* s1;  // forward: sum exp(s - ms) (t - mt); backward: sum exp(L - m1) G
  double* s2;  // backward with entropy: sum exp(s - ms) gp
};

struct Kernels {
  const char* name;
  int64_t row_align;  // rp must be a multiple of this (two vector widths)
  int64_t d_align;    // embed_dim must be a multiple of this (one vector width)
  // Forward pass 1: logits of codes [k0, k1) tile by tile into `scratch` [kTileCodes][ncols], then into buf when
  // set; running max and first argmax per position.
  void (*max_pass)(const Block& b, int64_t k0, int64_t k1, float* scratch, const MaxPart& out);
  // Forward pass 2 (entropy, buf holds the logits, m1 final): s0 += sum exp(s - ms), s1 += sum exp(s - ms)
  // (t - mt), s = L / T, ms = m1 / T, t = s + 1e-5, mt = ms + 1e-5 (all float32 roundings as the dense path).
  void (*entropy_sums)(const Block& b, int64_t k0, int64_t k1, const SumPart& out);
  // Forward pass 3 (entropy, inv_ss final): avg[j] += sum over the block's positions of exp(s - ms) inv_ss.
  void (*avg_probs)(const Block& b, int64_t k0, int64_t k1, double* avg);
  // Backward sweep 1: logits and G of codes [k0, k1) (tile by tile in `scratch` [kTileCodes][ncols]) into buf;
  // s0, s1 as in SumPart; with g_avg also s2 += sum exp(s - ms) gp, gp = g_row q + g_avg[j], q = (t - mt) - log_ss.
  void (*grad_sums)(const Block& b, int64_t k0, int64_t k1, float* scratch, const SumPart& out);
  // Backward sweep 2: dLoss/dL of codes [k0, k1) (into `scratch`, kTileCodes * rp + rp * d floats; the scratch of
  // a backward holds kTileCodes * ncols + rp * d floats, for both sweeps):
  // softmax(L) (G - c) [+ softmax(L/T) (gp - r) / T]; then dz^T[d][rp] (float64) += E_tile^T dL and
  // dE[j][:] += sum_r dL[j][r] z_r.
  void (*grads)(const Block& b, int64_t k0, int64_t k1, float* scratch, double* dz, float* dE);
};

// The kernels of one instruction set, or null where it was not compiled (not x86-64, not GCC/Clang).
const Kernels* kernels_avx512();
const Kernels* kernels_avx2();

}  // namespace ibq::fused
