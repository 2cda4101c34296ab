// Our element-wise CPU kernels (besides the quantizer's), written once in cpu_kernels_impl.h and compiled per
// instruction set (cpu_kernels_avx512.cpp, cpu_kernels_avx2.cpp). Plain C++ over raw float32 pointers: no
// libtorch types, so that nothing of libtorch is compiled for another instruction set. cpu_kernels.h drives them.
#pragma once
#include <cstdint>

namespace ibq::kernels {

// The float32 constants of one torch.optim.Adam step of one parameter (see Table::adam).
struct AdamConstants {
  float beta1, one_minus_beta1, beta2, one_minus_beta2;
  float bias_correction2_sqrt, eps, neg_step_size;  // sqrt(1 - beta2^t), eps, -lr / (1 - beta1^t)
};

struct Table {
  const char* name;
  int64_t width;  // floats per vector: channel counts must be multiples of it
  // Rows [0, rows) of a [rows][c] float32 matrix (pixels x channels of one sample, channels-last): adds
  // sum(x - shift) and sum((x - shift)^2) per channel to s1, s2 (c doubles each). Summed in float32 over blocks of
  // rows, in float64 across blocks; the shift (a value of each channel) keeps the squares free of cancellation.
  void (*channel_sums)(const float* x, int64_t rows, int64_t c, const float* shift, double* s1, double* s2);
  // y = x * a + b per channel (a, b: c floats), then SiLU (y / (1 + e^-y)) when `silu`; y may be x.
  void (*affine_silu)(const float* x, float* y, int64_t rows, int64_t c, const float* a, const float* b, bool silu);
  // GroupNorm(+SiLU) backward, first pass over rows [0, rows) of one sample: with y = x * a + b per channel (the
  // forward's affine, a and b as it used them), writes dy = dout * SiLU'(y) (dout itself without `silu`) and adds
  // sum(dy) and sum(dy * (x - shift)) per channel to s1, s2 (c doubles each; float32 within blocks of rows).
  void (*gn_grad_sums)(const float* x, const float* dout, float* dy, int64_t rows, int64_t c, const float* a,
                       const float* b, const float* shift, bool silu, double* s1, double* s2);
  // Second pass: dx = A * dy + B * (x - shift) + C per channel (A, B, shift, C: c floats each); dx may be dy.
  void (*gn_combine)(const float* dy, const float* x, float* dx, int64_t rows, int64_t c, const float* A,
                     const float* B, const float* shift, const float* C);
  // One torch.optim.Adam step over n floats (the operations of torch's single-tensor Adam, each rounded to float32):
  // m = m b1 + g (1 - b1); v = v b2 + g^2 (1 - b2); p = p + neg_step_size * (m / (sqrt(v) / bc2_sqrt + eps)).
  void (*adam)(float* p, const float* g, float* m, float* v, int64_t n, const AdamConstants& k);
  // LitEma's update over n floats: s = s - omd * (s - p) (the official sub_(one_minus_decay * (s - p))).
  void (*ema)(float* s, const float* p, int64_t n, float omd);
  // `iters` rounds of 12 independent chains of vector fused multiply-adds on this thread; returns the float32
  // operations done (2 per lane and FMA). Used to measure the CPU's FMA peak.
  double (*fma_chains)(int64_t iters, float seed);
};

const Table* table_avx512();  // null where not compiled (not x86-64 GCC/Clang)
const Table* table_avx2();

}  // namespace ibq::kernels
