// Our element-wise CPU kernels (interface: cpu_kernels_table.h), written once for a vector width
// IBQ_SIMD_WIDTH (16: AVX-512, 8: AVX2 + FMA). Included only by cpu_kernels_<isa>.cpp, after the instruction set
// was selected with a target pragma, inside namespace ibq::kernels::<isa>; internal linkage throughout.

namespace {

#include "ibq/core/simd_vec_impl.h"

// Rows per float32 block of channel_sums (then added in float64).
constexpr int64_t kSumRows = 64;

void channel_sums(const float* x, int64_t rows, int64_t c, const float* shift, double* s1, double* s2) {
  // blocks of rows outer, channels inner: each block is read from memory once and stays in cache
  for (int64_t r0 = 0; r0 < rows; r0 += kSumRows) {
    const int64_t r1 = imin(rows, r0 + kSumRows);
    for (int64_t c0 = 0; c0 < c; c0 += W) {
      const vf k = vld(shift + c0);
      // two accumulators per sum: rows alternate between them (shorter dependency chains)
      vf a0 = vzero(), a1 = vzero(), q0 = vzero(), q1 = vzero();
      int64_t r = r0;
      for (; r + 1 < r1; r += 2) {
        const vf d0 = vsub(vld(x + r * c + c0), k), d1 = vsub(vld(x + (r + 1) * c + c0), k);
        a0 = vadd(a0, d0);
        q0 = vfma(d0, d0, q0);
        a1 = vadd(a1, d1);
        q1 = vfma(d1, d1, q1);
      }
      if (r < r1) {
        const vf d0 = vsub(vld(x + r * c + c0), k);
        a0 = vadd(a0, d0);
        q0 = vfma(d0, d0, q0);
      }
      alignas(64) float sa[W], sq[W];
      vst(sa, vadd(a0, a1));
      vst(sq, vadd(q0, q1));
      for (int j = 0; j < W; ++j) {
        s1[c0 + j] += sa[j];
        s2[c0 + j] += sq[j];
      }
    }
  }
}

void affine_silu(const float* x, float* y, int64_t rows, int64_t c, const float* a, const float* b, bool silu) {
  const vf one = vset(1.0f), zero = vzero();
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * c;
    float* yr = y + r * c;
    for (int64_t c0 = 0; c0 < c; c0 += W) {
      vf v = vfma(vld(xr + c0), vld(a + c0), vld(b + c0));
      if (silu) v = vdiv(v, vadd(one, vexp(vsub(zero, v))));
      vst(yr + c0, v);
    }
  }
}

// Rows per float32 block of gn_grad_sums (weight and bias gradients: sums over all N * H * W rows).
constexpr int64_t kGradSumRows = 16;

void gn_grad_sums(const float* x, const float* dout, float* dy, int64_t rows, int64_t c, const float* a, const float* b,
                  const float* shift, bool silu, double* s1, double* s2) {
  const vf one = vset(1.0f), zero = vzero();
  for (int64_t r0 = 0; r0 < rows; r0 += kGradSumRows) {
    const int64_t r1 = imin(rows, r0 + kGradSumRows);
    for (int64_t c0 = 0; c0 < c; c0 += W) {
      const vf va = vld(a + c0), vb = vld(b + c0), k = vld(shift + c0);
      vf acc = vzero(), accx = vzero();
      for (int64_t r = r0; r < r1; ++r) {
        const vf xv = vld(x + r * c + c0);
        vf g = vld(dout + r * c + c0);
        if (silu) {  // d(y s(y))/dy = s (1 + y (1 - s)), s = 1 / (1 + e^-y)
          const vf y = vfma(xv, va, vb);
          const vf s = vdiv(one, vadd(one, vexp(vsub(zero, y))));
          g = vmul(g, vmul(s, vfma(y, vsub(one, s), one)));
        }
        vst(dy + r * c + c0, g);
        acc = vadd(acc, g);
        accx = vfma(g, vsub(xv, k), accx);
      }
      alignas(64) float sa[W], sx[W];
      vst(sa, acc);
      vst(sx, accx);
      for (int j = 0; j < W; ++j) {
        s1[c0 + j] += sa[j];
        s2[c0 + j] += sx[j];
      }
    }
  }
}

void gn_combine(const float* dy, const float* x, float* dx, int64_t rows, int64_t c, const float* A, const float* B,
                const float* shift, const float* C) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c0 = 0; c0 < c; c0 += W) {
      const vf t = vfma(vld(B + c0), vsub(vld(x + r * c + c0), vld(shift + c0)), vld(C + c0));
      vst(dx + r * c + c0, vfma(vld(A + c0), vld(dy + r * c + c0), t));
    }
  }
}

void adam(float* p, const float* g, float* m, float* v, int64_t n, const AdamConstants& k) {
  const vf b1 = vset(k.beta1), c1 = vset(k.one_minus_beta1), b2 = vset(k.beta2), c2 = vset(k.one_minus_beta2);
  const vf bc = vset(k.bias_correction2_sqrt), eps = vset(k.eps), step = vset(k.neg_step_size);
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    const vf gv = vld(g + i);
    const vf mv = vadd(vmul(vld(m + i), b1), vmul(gv, c1));
    const vf vv = vadd(vmul(vld(v + i), b2), vmul(vmul(gv, gv), c2));
    vst(m + i, mv);
    vst(v + i, vv);
    vst(p + i, vadd(vld(p + i), vmul(step, vdiv(mv, vadd(vdiv(vsqrt(vv), bc), eps)))));
  }
  for (; i < n; ++i) {
    const float mv = m[i] * k.beta1 + g[i] * k.one_minus_beta1;
    const float vv = v[i] * k.beta2 + g[i] * g[i] * k.one_minus_beta2;
    m[i] = mv;
    v[i] = vv;
    p[i] = p[i] + k.neg_step_size * (mv / (__builtin_sqrtf(vv) / k.bias_correction2_sqrt + k.eps));
  }
}

void ema(float* s, const float* p, int64_t n, float omd) {
  const vf o = vset(omd);
  int64_t i = 0;
  for (; i + W <= n; i += W) vst(s + i, vsub(vld(s + i), vmul(o, vsub(vld(s + i), vld(p + i)))));
  for (; i < n; ++i) s[i] = s[i] - omd * (s[i] - p[i]);
}

double fma_chains(int64_t iters, float seed) {
  vf acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = vset(seed + float(i));
  const vf m = vset(0.999999f), d = vset(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = vfma(acc[i], m, d);
  }
  vf s = acc[0];
  for (int i = 1; i < 12; ++i) s = vadd(s, acc[i]);
  alignas(64) float out[W];
  vst(out, s);
  volatile float sink = out[0];
  (void)sink;
  return double(iters) * 12.0 * W * 2.0;
}

const Table kTable = {IBQ_SIMD_NAME, W, channel_sums, affine_silu, gn_grad_sums, gn_combine, adam, ema, fma_chains};

}  // namespace

const Table* table() { return &kTable; }
