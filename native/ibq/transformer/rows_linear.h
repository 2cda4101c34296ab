// Batch-invariant matrix products for the serving engine (batch_engine.h): y = x W^T (+ b), each element
// computed as one sequential chain of fused multiply-adds over k = 0..K-1, whatever the number of rows, the
// row's position among them or the thread count. So a row's result never depends on what else is in the batch
// (BLAS gemm, which the models use elsewhere, blocks rows differently for different row counts and rounds
// differently). The vector kernels (AVX2 + FMA, AVX-512) give the same bits as the scalar std::fma loop: each
// lane runs the same chain.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace ibq::rows {

// The kernels of one instruction set, defined in rows_linear_avx2.cpp / rows_linear_avx512.cpp.
struct Kernels {
  const char* name;
  int64_t panel;  // columns per packed panel (a multiple of the vector width)
  // y[r, c] = sum_k x[r, k] * W[c, k] for rows [0, rows) and the columns of panels [p0, p1) (those < N); x
  // [rows, K] and y [rows, N] row-major; packed: [panels, K, panel] (see Packed).
  void (*block)(const float* x, int64_t rows, int64_t K, const float* packed, int64_t N, int64_t p0, int64_t p1,
                float* y);
  // One row times a row-major matrix: y[c] = sum_k x[k] * b[k * ld + c] for c < N, the same fma chain per element
  // (attention over a KV cache: scores against transposed keys, weights times values).
  void (*gemv)(const float* x, int64_t K, const float* b, int64_t ld, int64_t N, float* y);
  // Four such products with the same K, ld and N at once (x[g], b[g], y[g]), each element the same chain as gemv's.
  void (*gemv4)(const float* const* x, int64_t K, const float* const* b, int64_t ld, int64_t N, float* const* y);
  // gemv / gemv4 over a matrix laid out in panels of `panel` columns, each [K, panel] contiguous (the key cache):
  // y[c] = sum_k x[k] * b[(c / panel) K panel + k panel + c % panel] for c < N, the same fma chain per element.
  void (*gemv_panels)(const float* x, int64_t K, const float* b, int64_t N, float* y);
  void (*gemv4_panels)(const float* const* x, int64_t K, const float* const* b, int64_t N, float* const* y);
  // For draw.cpp (null in the scalar table: draw.cpp's own loop): the first pass of a draw over V entries
  // (probabilities p, two engine words per entry in w): writes the candidate indices to cand (in index order) and
  // returns their count; *m: the largest lower bound less the slack (in: the start value); *flags |= 1 (a p not
  // finite or negative), 2 (some p > 0), 4 (some u = 0). See draw.cpp's draw_row.
  int64_t (*draw_scan)(const float* p, const uint32_t* w, int64_t V, int64_t* cand, double* m, int* flags);
};
const Kernels* kernels_avx2();    // nullptr when not compiled for x86-64
const Kernels* kernels_avx512();  // nullptr when not compiled for x86-64

// The kernel this CPU runs: "avx512", "avx2" or "scalar" (IBQ_ROWS_KERNEL=avx2|scalar forces a lesser one).
const char* kernel_name();
// That kernel's table.
const Kernels& kernels();

// A Linear weight W [N, K] laid out for the kernel: panels of `panel` columns, each [K, panel] contiguous
// (zero-padded past N), so a tile streams through memory. float32 on the CPU; elsewhere W kept as it is.
struct Packed {
  at::Tensor data;
  int64_t K = 0, N = 0;
};
Packed pack(const at::Tensor& weight);

// Positions of a key cache of T positions rounded up to whole panels (key_positions(T) >= T).
int64_t key_positions(int64_t T);

// Single-query attention for the serving engine, per (row, head) pair i: keys kt[i] in panels [T / panel, hd, panel]
// (transposed, a panel of positions contiguous: one stream through memory) and values v[i] [T, hd] of its cache, T
// a key_positions(); q [pairs, hd]; only positions 0..len[i]-1 are read. Scores q.k * scale, softmax, weights times
// values, each pair computed alone (its result never depends on the other pairs).
// offsets[i]: offset (in floats) of pair i's keys in kt and of its values in v. Returns [pairs, hd].
// scores, weights: optional float32 [pairs, T] contiguous buffers for the scores and their softmax (else allocated).
at::Tensor attend(const at::Tensor& q, const at::Tensor& kt, const at::Tensor& v, const std::vector<int64_t>& offsets,
                  const std::vector<int64_t>& len, int64_t T, double scale, at::Tensor scores = {},
                  at::Tensor weights = {});

// x float32 [rows, K] times W^T plus bias [N] when defined: float32 [rows, N], written to `out` when given (a
// contiguous float32 [rows, N] tensor). Off the CPU: at::linear (no batch-invariance guarantee).
at::Tensor linear(const at::Tensor& x, const Packed& w, const at::Tensor& bias = {}, at::Tensor out = {});

}  // namespace ibq::rows
