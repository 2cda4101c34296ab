// Body of the batch-invariant row kernels (rows_linear.h), compiled once per instruction set by rows_linear_avx2.cpp
// and rows_linear_avx512.cpp through core/simd_isa_unit.h (IBQ_SIMD_WIDTH floats per vector, IBQ_SIMD_NAME; the
// vector primitives of core/simd_vec_impl.h). Each output element is acc = fma(x[r, k], W[c, k], acc) for
// k = 0..K-1 from acc = 0; panels are two vectors wide.

namespace {

#include "ibq/core/simd_vec_impl.h"

constexpr int64_t P = 2 * W;  // panel width
constexpr int kTile = W == 16 ? 12 : 6;  // rows per tile: 2 x kTile accumulators of 32 vector registers (AVX-512) or 16 (AVX2)

// Rows [0, R) x one panel: 2R accumulators; out [R, P] with row stride `ld`.
template <int R>
inline void tile(const float* x, int64_t K, const float* panel, float* out, int64_t ld) {
  vf acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = vzero();
  for (int64_t k = 0; k < K; ++k) {
    vf w0 = vld(panel + k * P), w1 = vld(panel + k * P + W);
    for (int r = 0; r < R; ++r) {
      vf xb = vset(x[r * K + k]);
      acc[r][0] = vfma(xb, w0, acc[r][0]);
      acc[r][1] = vfma(xb, w1, acc[r][1]);
    }
  }
  for (int r = 0; r < R; ++r) {
    vst(out + r * ld, acc[r][0]);
    vst(out + r * ld + W, acc[r][1]);
  }
}

template <int R>
void tile_rows(const float* x, int64_t K, const float* panel, int64_t N, int64_t c0, float* y) {
  if (c0 + P <= N) {
    tile<R>(x, K, panel, y + c0, N);
    return;
  }
  float tmp[kTile * P];  // the last panel: padded columns computed, not stored
  tile<R>(x, K, panel, tmp, P);
  for (int r = 0; r < R; ++r)
    for (int64_t c = c0; c < N; ++c) y[r * N + c] = tmp[r * P + (c - c0)];
}

void block(const float* x, int64_t rows, int64_t K, const float* packed, int64_t N, int64_t p0, int64_t p1, float* y) {
  for (int64_t p = p0; p < p1; ++p) {
    const float* panel = packed + p * K * P;
    int64_t r = 0;
    for (; r + kTile <= rows; r += kTile) tile_rows<kTile>(x + r * K, K, panel, N, p * P, y + r * N);
    const float* xr = x + r * K;
    float* yr = y + r * N;
    switch (rows - r) {
#define IBQ_ROWS_CASE(n) \
  case n: tile_rows<(n < kTile ? n : 1)>(xr, K, panel, N, p * P, yr); break;
      IBQ_ROWS_CASE(1) IBQ_ROWS_CASE(2) IBQ_ROWS_CASE(3) IBQ_ROWS_CASE(4) IBQ_ROWS_CASE(5) IBQ_ROWS_CASE(6)
      IBQ_ROWS_CASE(7) IBQ_ROWS_CASE(8) IBQ_ROWS_CASE(9) IBQ_ROWS_CASE(10) IBQ_ROWS_CASE(11)
#undef IBQ_ROWS_CASE
      default: break;
    }
  }
}

// G (<= 4) products at once, y_g[c] = sum_k x_g[k] * b_g[k * ld + c]: 2G independent accumulators per column block
// (instruction-level parallelism); each element is still the one chain from k = 0 to K - 1.
template <int G>
void gemv_group(const float* const* x, int64_t K, const float* const* b, int64_t ld, int64_t N, float* const* y) {
  int64_t c = 0;
  for (; c + 2 * W <= N; c += 2 * W) {
    vf a[G][2];
    for (int g = 0; g < G; ++g) a[g][0] = a[g][1] = vzero();
    for (int64_t k = 0; k < K; ++k)
      for (int g = 0; g < G; ++g) {
        vf xb = vset(x[g][k]);
        a[g][0] = vfma(xb, vld(b[g] + k * ld + c), a[g][0]);
        a[g][1] = vfma(xb, vld(b[g] + k * ld + c + W), a[g][1]);
      }
    for (int g = 0; g < G; ++g) {
      vst(y[g] + c, a[g][0]);
      vst(y[g] + c + W, a[g][1]);
    }
  }
  for (; c + W <= N; c += W) {
    vf a[G];
    for (int g = 0; g < G; ++g) a[g] = vzero();
    for (int64_t k = 0; k < K; ++k)
      for (int g = 0; g < G; ++g) a[g] = vfma(vset(x[g][k]), vld(b[g] + k * ld + c), a[g]);
    for (int g = 0; g < G; ++g) vst(y[g] + c, a[g]);
  }
  for (; c < N; ++c)
    for (int g = 0; g < G; ++g) {
      float acc = 0.f;
      for (int64_t k = 0; k < K; ++k) acc = __builtin_fmaf(x[g][k], b[g][k * ld + c], acc);
      y[g][c] = acc;
    }
}

void gemv(const float* x, int64_t K, const float* b, int64_t ld, int64_t N, float* y) {
  gemv_group<1>(&x, K, &b, ld, N, &y);
}

void gemv4(const float* const* x, int64_t K, const float* const* b, int64_t ld, int64_t N, float* const* y) {
  gemv_group<4>(x, K, b, ld, N, y);
}

}  // namespace

const Kernels* table() {
  static const Kernels k{IBQ_SIMD_NAME, P, &block, &gemv, &gemv4};
  return &k;
}

