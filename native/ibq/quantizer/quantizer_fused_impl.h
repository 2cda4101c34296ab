// The fused IBQ quantizer kernels (interface and layout: quantizer_fused_kernels.h), written once for a vector
// width IBQ_SIMD_WIDTH (16: AVX-512, 8: AVX2 + FMA). Included only by quantizer_fused_<isa>.cpp through
// core/simd_isa_unit.h, after the instruction set was selected with a target pragma, inside namespace
// ibq::fused::<isa>. Everything here has internal linkage and uses no library templates: no function compiled for
// one instruction set can be picked by the linker for another.
//
// Formulas (official IndexPropagationQuantize + compute_entropy_loss; the derivation of the gradients is in
// quantizer_fused.cpp): exp is a Cephes-style polynomial (about 1 ulp; 0 below log(FLT_MIN)), s = L / T is the
// float32 division of the dense path, and every sum over codes is accumulated per tile in float32 and across
// tiles in float64.

namespace {

#include "ibq/core/simd_vec_impl.h"

// Register blocks: codes (or positions) x vectors of the microkernel below.
constexpr int kMR = W == 16 ? 12 : 6;
constexpr int kNV = 2;
static_assert(kTileCodes % kMR == 0, "tile codes must be a multiple of the register block");

// C[m][v*W..] (+)= sum_k A[m*am + k*ak] * B[k*bk + v*W..] for m < MR, v < NV: the one matrix-product
// microkernel (logits: A = codebook rows, B = positions in panels; dz^T: A = codebook tile read by columns,
// B = dL; dE: A = dL, B = z rows in panels). Float32 fused multiply-adds in k order. Meanwhile the cache lines pf[16 i] (i < npf)
// are fetched into L2, one per step of k (data of the next tile, so that no sweep waits on memory).
constexpr int64_t kLine = 64 / int64_t(sizeof(float));
inline void prefetch_line(const float* p) { _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T1); }
template <int MR, int NV, bool ACC>
inline void mk(int64_t kk, const float* A, int64_t am, int64_t ak, const float* B, int64_t bk, float* C, int64_t cm,
               const float* pf, int64_t npf) {
  vf acc[MR][NV];
#pragma GCC unroll 16
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[m][v] = ACC ? vld(C + m * cm + v * W) : vzero();
  for (int64_t k = 0; k < kk; ++k) {
    if (k < npf) prefetch_line(pf + k * kLine);
    vf bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = vld(B + k * bk + v * W);
    const float* a = A + k * ak;
#pragma GCC unroll 16
    for (int m = 0; m < MR; ++m) {
      vf av = vset(a[m * am]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[m][v] = vfma(av, bv[v], acc[m][v]);
    }
  }
#pragma GCC unroll 16
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) vst(C + m * cm + v * W, acc[m][v]);
  for (int64_t k = kk; k < npf; ++k) prefetch_line(pf + k * kLine);
}

// mk with a run-time row count m in [1, kMR].
template <int NV, bool ACC>
inline void mk_rows(int m, int64_t kk, const float* A, int64_t am, int64_t ak, const float* B, int64_t bk, float* C,
                    int64_t cm, const float* pf, int64_t npf) {
  switch (m) {
#define IBQ_MK_CASE(M) \
  case M: return mk<M, NV, ACC>(kk, A, am, ak, B, bk, C, cm, pf, npf);
    IBQ_MK_CASE(1) IBQ_MK_CASE(2) IBQ_MK_CASE(3) IBQ_MK_CASE(4) IBQ_MK_CASE(5) IBQ_MK_CASE(6)
#if IBQ_SIMD_WIDTH == 16
    IBQ_MK_CASE(7) IBQ_MK_CASE(8) IBQ_MK_CASE(9) IBQ_MK_CASE(10) IBQ_MK_CASE(11) IBQ_MK_CASE(12)
#endif
#undef IBQ_MK_CASE
    default: return;
  }
}

// Columns of a packed panel (Kernels::row_align; the layout: panel_index in quantizer_fused_kernels.h).
constexpr int64_t kNR = kNV * W;

// A region of memory to fetch into L2 while a product runs: `lines` cache lines from p.
struct Ahead {
  const float* p = nullptr;
  int64_t lines = 0;
};

// C[i][0..n) (+)= sum_k A(i, k) P(k, 0..n) for i < rows: P packed in panels of kk rows (bk = 0) or row-major
// with rows bk apart. For each panel of kNR columns, blocks of kMR rows (the panel stays in L1 while the rows of A
// pass). The lines of `ahead` are spread over the calls.
template <bool ACC>
inline void gemm_panels(int64_t rows, int64_t n, int64_t kk, const float* A, int64_t am, int64_t ak, const float* P,
                        float* C, int64_t cm, Ahead ahead = {}, int64_t bk = 0) {
  const int64_t calls = (rows + kMR - 1) / kMR * ((n + kNR - 1) / kNR);
  const int64_t per = (ahead.lines + calls - 1) / calls;
  int64_t done = 0;
  auto next = [&](int64_t& npf) {
    npf = imin(per, ahead.lines - done);
    const float* p = ahead.p + done * kLine;
    done += npf;
    return p;
  };
  for (int64_t c0 = 0; c0 < n; c0 += kNR) {
    const float* p = bk ? P + c0 : P + c0 * kk;
    int64_t npf;
    if (n - c0 >= kNR) {
      for (int64_t i = 0; i < rows; i += kMR) {
        const float* pf = next(npf);
        mk_rows<kNV, ACC>(int(imin(kMR, rows - i)), kk, A + i * am, am, ak, p, bk ? bk : kNR, C + i * cm + c0, cm, pf,
                          npf);
      }
    } else {
      for (int64_t i = 0; i < rows; i += kMR) {
        const float* pf = next(npf);
        mk_rows<1, ACC>(int(imin(kMR, rows - i)), kk, A + i * am, am, ak, p, bk ? bk : W, C + i * cm + c0, cm, pf,
                        npf);
      }
    }
  }
}

// The same for a loop of `iters` steps over a tile of the buffer: at step i its share of the next tile's lines.
struct AheadLoop {
  const float* p;
  int64_t lines, per;
  AheadLoop(const Block& b, int64_t j0, int64_t ct, int64_t k1, int64_t iters)
      : p(b.buf + (j0 + ct) * b.ncols), lines(imin(kTileCodes, k1 - j0 - ct) * b.ncols / kLine), per(0) {
    if (lines < 0) lines = 0;
    per = (lines + iters - 1) / iters;
  }
  void step(int64_t i) const {
    for (int64_t l = i * per, e = imin(lines, l + per); l < e; ++l) prefetch_line(p + l * kLine);
  }
};

// T[j][c] = sum_d E[j0 + j][d] B(d, c): logits (and G) of codes j0 .. j0 + ct, all ncols columns.
// Meanwhile the codebook rows of the next tile (up to code k1) are fetched into L2.
inline void logits_tile(const Block& b, int64_t j0, int64_t ct, int64_t k1, float* T) {
  const int64_t cn = imin(kTileCodes, k1 - j0 - ct);
  const Ahead next{b.E + (j0 + ct) * b.d, cn > 0 ? cn * b.d / kLine : 0};
  gemm_panels<false>(ct, b.ncols, b.d, b.E + j0 * b.d, b.d, 1, b.B, T, b.ncols, next);
}

// dst[0 .. n) = src[0 .. n) with non-temporal stores (n a multiple of W): a tile of logits written to the block's
// buffer goes to memory without first reading the lines it overwrites. Plain stores where dst is not aligned to the
// vector. The caller fences (vfence) before another thread reads dst.
inline void stream_copy(float* dst, const float* src, int64_t n) {
  if (reinterpret_cast<uintptr_t>(dst) % (W * sizeof(float)) != 0) {
    for (int64_t i = 0; i < n; i += W) vst(dst + i, vld(src + i));
    return;
  }
#if IBQ_SIMD_WIDTH == 16
  for (int64_t i = 0; i < n; i += W) _mm512_stream_ps(dst + i, vld(src + i));
#else
  for (int64_t i = 0; i < n; i += W) _mm256_stream_ps(dst + i, vld(src + i));
#endif
}
inline void vfence() { _mm_sfence(); }

// Per-position float64 accumulation of one tile's float32 vector sums.
inline void add_sums(double* acc, int64_t c0, vf v) {
  float t[W];
  vst(t, v);
  for (int l = 0; l < W; ++l) acc[c0 + l] += t[l];
}

void max_pass(const Block& b, int64_t k0, int64_t k1, float* scratch, const MaxPart& o) {
  FlushSubnormals ftz;
  for (int64_t j0 = k0; j0 < k1; j0 += kTileCodes) {
    const int64_t ct = imin(kTileCodes, k1 - j0);
    float* T = scratch;
    logits_tile(b, j0, ct, k1, T);
    for (int64_t c0 = 0; c0 < b.rp; c0 += W) {
      vf m = vld(o.m1 + c0), a = vld(o.idx + c0);
      for (int64_t j = 0; j < ct; ++j) {
        vf x = vld(T + j * b.ncols + c0);
        a = vsel_gt(x, m, vset(float(j0 + j)), a);  // strictly greater: the first index of the max stays
        m = vmax(x, m);
      }
      vst(o.m1 + c0, m);
      vst(o.idx + c0, a);
    }
    if (b.buf) stream_copy(b.buf + j0 * b.ncols, T, ct * b.ncols);
  }
  vfence();
}

void entropy_sums(const Block& b, int64_t k0, int64_t k1, const SumPart& o) {
  FlushSubnormals ftz;
  const vf tv = vset(b.temperature), eps = vset(1e-5f);
  for (int64_t j0 = k0; j0 < k1; j0 += kTileCodes) {
    const int64_t ct = imin(kTileCodes, k1 - j0);
    const float* T = b.buf + j0 * b.ncols;
    const AheadLoop ahead(b, j0, ct, k1, b.rp / W * ct);
    for (int64_t c0 = 0; c0 < b.rp; c0 += W) {
      const vf ms = vdiv(vld(b.m1 + c0), tv), mt = vadd(ms, eps);
      vf s0 = vzero(), s1 = vzero();
      for (int64_t j = 0; j < ct; ++j) {
        ahead.step(c0 / W * ct + j);
        vf s = vdiv(vld(T + j * b.ncols + c0), tv);
        vf e = vexp(vsub(s, ms));
        s0 = vadd(s0, e);
        s1 = vfma(e, vsub(vadd(s, eps), mt), s1);
      }
      add_sums(o.s0, c0, s0);
      add_sums(o.s1, c0, s1);
    }
  }
}

void avg_probs(const Block& b, int64_t k0, int64_t k1, double* avg) {
  FlushSubnormals ftz;
  const vf tv = vset(b.temperature);
  vf P[kTileCodes];
  for (int64_t j0 = k0; j0 < k1; j0 += kTileCodes) {
    const int64_t ct = imin(kTileCodes, k1 - j0);
    const float* T = b.buf + j0 * b.ncols;
    for (int64_t j = 0; j < ct; ++j) P[j] = vzero();
    const AheadLoop ahead(b, j0, ct, k1, b.rp / W * ct);
    for (int64_t c0 = 0; c0 < b.rp; c0 += W) {
      const vf ms = vdiv(vld(b.m1 + c0), tv), inv_ss = vld(b.inv_ss + c0);  // padding columns: inv_ss = 0
      for (int64_t j = 0; j < ct; ++j) {
        ahead.step(c0 / W * ct + j);
        P[j] = vfma(vexp(vsub(vdiv(vld(T + j * b.ncols + c0), tv), ms)), inv_ss, P[j]);
      }
    }
    for (int64_t j = 0; j < ct; ++j) {
      float t[W];
      vst(t, P[j]);
      double s = 0;
      for (int l = 0; l < W; ++l) s += t[l];
      avg[j0 + j] += s;
    }
  }
}

// gp = g_row q + g_avg[j] with q = (t - mt) - log_ss: dLoss/d softmax(L/T) of the entropy terms.
struct EntropyGrad {
  vf ms, mt, log_ss, tv, eps, g_row;
  EntropyGrad(const Block& b, int64_t c0)
      : ms(vdiv(vld(b.m1 + c0), vset(b.temperature))), mt(vadd(ms, vset(1e-5f))), log_ss(b.log_ss ? vld(b.log_ss + c0) : vzero()),
        tv(vset(b.temperature)), eps(vset(1e-5f)), g_row(vset(b.g_row)) {}
  // returns exp(s - ms) (unnormalised softmax(L/T)); gp through `gp`
  vf at(vf x, float g_avg_j, vf& gp) const {
    vf s = vdiv(x, tv);
    vf q = vsub(vsub(vadd(s, eps), mt), log_ss);
    gp = vfma(g_row, q, vset(g_avg_j));
    return vexp(vsub(s, ms));
  }
};

void grad_sums(const Block& b, int64_t k0, int64_t k1, float* scratch, const SumPart& o) {
  FlushSubnormals ftz;
  const bool has_g = b.ncols > b.rp, ent = b.g_avg != nullptr;
  for (int64_t j0 = k0; j0 < k1; j0 += kTileCodes) {
    const int64_t ct = imin(kTileCodes, k1 - j0);
    float* T = scratch;
    logits_tile(b, j0, ct, k1, T);
    for (int64_t c0 = 0; c0 < b.rp; c0 += W) {
      const vf m1 = vld(b.m1 + c0);
      vf s0 = vzero(), s1 = vzero(), s2 = vzero();
      if (has_g) {
        for (int64_t j = 0; j < ct; ++j) {
          vf e = vexp(vsub(vld(T + j * b.ncols + c0), m1));
          s0 = vadd(s0, e);
          s1 = vfma(e, vld(T + j * b.ncols + b.rp + c0), s1);
        }
        add_sums(o.s0, c0, s0);
        add_sums(o.s1, c0, s1);
      }
      if (ent) {
        EntropyGrad eg(b, c0);
        for (int64_t j = 0; j < ct; ++j) {
          vf gp;
          vf e = eg.at(vld(T + j * b.ncols + c0), b.g_avg[j0 + j], gp);
          s2 = vfma(e, gp, s2);
        }
        add_sums(o.s2, c0, s2);
      }
    }
    stream_copy(b.buf + j0 * b.ncols, T, ct * b.ncols);
  }
  vfence();
}

void grads(const Block& b, int64_t k0, int64_t k1, float* D, double* dz, float* dE) {
  FlushSubnormals ftz;
  float* tmp = D + kTileCodes * b.rp;  // [d][rp]: this tile's share of dz^T
  const bool has_g = b.ncols > b.rp, ent = b.g_avg != nullptr;
  const vf tv = vset(b.temperature);
  for (int64_t j0 = k0; j0 < k1; j0 += kTileCodes) {
    const int64_t ct = imin(kTileCodes, k1 - j0);
    const int64_t cn = imin(kTileCodes, k1 - j0 - ct);  // codes of the next tile (<= 0: none)
    const float* T = b.buf + j0 * b.ncols;
    const AheadLoop ahead(b, j0, ct, k1, b.rp / W * ct);
    for (int64_t c0 = 0; c0 < b.rp; c0 += W) {
      // padding columns (positions >= rows) get a zero gradient
      const vf live = vset(float(b.rows - c0));
      vf m1 = vzero(), inv_s1 = vzero(), c = vzero(), inv_ss = vzero(), r = vzero();
      if (has_g) m1 = vld(b.m1 + c0), inv_s1 = vld(b.inv_s1 + c0), c = vld(b.c + c0);
      EntropyGrad eg(b, c0);
      if (ent) inv_ss = vdiv(vld(b.inv_ss + c0), tv), r = vld(b.r + c0);  // 1 / (sum exp(s - ms) T)
      for (int64_t j = 0; j < ct; ++j) {
        ahead.step(c0 / W * ct + j);
        const float* t = T + j * b.ncols + c0;
        vf x = vld(t), d = vzero();
        if (has_g) d = vmul(vmul(vexp(vsub(x, m1)), inv_s1), vsub(vld(t + b.rp), c));
        if (ent) {
          vf gp;
          vf ps = vmul(eg.at(x, b.g_avg[j0 + j], gp), inv_ss);  // softmax(L/T) / T
          d = vfma(ps, vsub(gp, r), d);
        }
        vst(D + j * b.rp + c0, vsel_gt(live, viota(), d, vzero()));
      }
    }
    // dz^T[:][r] += sum_j E[j0 + j][:] D[j][r] (float32 within the tile, float64 across tiles: the sum runs over
    // all codes); dE[j0 + j][:] += sum_r D[j][r] z[r][:]
    // meanwhile the next tile's codebook rows and codebook-gradient rows are fetched
    const int64_t next_lines = cn > 0 ? cn * b.d / kLine : 0;
    gemm_panels<false>(b.d, b.rp, ct, b.E + j0 * b.d, 1, b.d, D, tmp, b.rp, {b.E + (j0 + ct) * b.d, next_lines},
                       b.rp);
    for (int64_t i = 0; i < b.rp * b.d; ++i) dz[i] += tmp[i];
    gemm_panels<true>(ct, b.d, b.rows, D, b.rp, 1, b.zp, dE + j0 * b.d, b.d, {dE + (j0 + ct) * b.d, next_lines});
  }
}

}  // namespace

const Kernels* table() {
  static const Kernels k{IBQ_SIMD_NAME, 2 * W, W, max_pass, entropy_sums, avg_probs, grad_sums, grads};
  return &k;
}
