// Body of the batch-invariant row kernels (rows_linear.h), compiled once per instruction set by rows_linear_avx2.cpp
// and rows_linear_avx512.cpp through core/simd_isa_unit.h (IBQ_SIMD_WIDTH floats per vector, IBQ_SIMD_NAME; the
// vector primitives of core/simd_vec_impl.h). Each output element is acc = fma(x[r, k], W[c, k], acc) for
// k = 0..K-1 from acc = 0; panels are two vectors wide.

namespace {

#include "ibq/core/simd_vec_impl.h"

constexpr int64_t P = 2 * W;  // panel width
constexpr int kTile = W == 16 ? 12 : 6;  // rows per tile: 2 x kTile accumulators of 32 vector registers (AVX-512) or 16 (AVX2)

// Rows [0, R) x one panel: 2R accumulators; out [R, P] with row stride `ld`. pf: the next panel, fetched into the
// cache line by line meanwhile (or null): a weight larger than the caches streams at the arithmetic's pace (the
// 16384-row head at 32 rows: 1.65 -> 1.31 ms on one AVX-512 core, 160 -> 205 GFLOP/s).
template <int R>
inline void tile(const float* x, int64_t K, const float* panel, float* out, int64_t ld, const float* pf) {
  vf acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = vzero();
  for (int64_t k = 0; k < K; ++k) {
    if (pf) {
      for (int64_t b = 0; b < P; b += 16) __builtin_prefetch(pf + k * P + b, 0, 3);  // 64-byte lines
    }
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
void tile_rows(const float* x, int64_t K, const float* panel, int64_t N, int64_t c0, float* y, const float* pf) {
  if (c0 + P <= N) {
    tile<R>(x, K, panel, y + c0, N, pf);
    return;
  }
  float tmp[kTile * P];  // the last panel: padded columns computed, not stored
  tile<R>(x, K, panel, tmp, P, pf);
  for (int r = 0; r < R; ++r)
    for (int64_t c = c0; c < N; ++c) y[r * N + c] = tmp[r * P + (c - c0)];
}

void block(const float* x, int64_t rows, int64_t K, const float* packed, int64_t N, int64_t p0, int64_t p1, float* y) {
  for (int64_t p = p0; p < p1; ++p) {
    const float* panel = packed + p * K * P;
    const float* next = p + 1 < p1 ? panel + K * P : nullptr;  // fetched during the panel's first tile
    int64_t r = 0;
    for (; r + kTile <= rows; r += kTile) tile_rows<kTile>(x + r * K, K, panel, N, p * P, y + r * N, r == 0 ? next : nullptr);
    const float* xr = x + r * K;
    float* yr = y + r * N;
    const float* pf = r == 0 ? next : nullptr;
    switch (rows - r) {
#define IBQ_ROWS_CASE(n) \
  case n: tile_rows<(n < kTile ? n : 1)>(xr, K, panel, N, p * P, yr, pf); break;
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

// G (<= 4) products over panel-laid-out matrices (Kernels::gemv_panels): per panel 2G accumulators, the same chain
// per element as gemv_group's; the last, partial panel computed whole and only its first columns stored.
template <int G>
void panels_group(const float* const* x, int64_t K, const float* const* b, int64_t N, float* const* y) {
  for (int64_t c = 0; c < N; c += P) {
    vf a[G][2];
    for (int g = 0; g < G; ++g) a[g][0] = a[g][1] = vzero();
    for (int64_t k = 0; k < K; ++k)
      for (int g = 0; g < G; ++g) {
        const float* pb = b[g] + c * K + k * P;
        vf xb = vset(x[g][k]);
        a[g][0] = vfma(xb, vld(pb), a[g][0]);
        a[g][1] = vfma(xb, vld(pb + W), a[g][1]);
      }
    for (int g = 0; g < G; ++g) {
      if (c + P <= N) {
        vst(y[g] + c, a[g][0]);
        vst(y[g] + c + W, a[g][1]);
      } else {
        float tmp[P];
        vst(tmp, a[g][0]);
        vst(tmp + W, a[g][1]);
        for (int64_t j = 0; j < N - c; ++j) y[g][c + j] = tmp[j];
      }
    }
  }
}

void gemv_panels(const float* x, int64_t K, const float* b, int64_t N, float* y) { panels_group<1>(&x, K, &b, N, &y); }

void gemv4_panels(const float* const* x, int64_t K, const float* const* b, int64_t N, float* const* y) {
  panels_group<4>(x, K, b, N, y);
}

void gemv(const float* x, int64_t K, const float* b, int64_t ld, int64_t N, float* y) {
  gemv_group<1>(&x, K, &b, ld, N, &y);
}

void gemv4(const float* const* x, int64_t K, const float* const* b, int64_t ld, int64_t N, float* const* y) {
  gemv_group<4>(x, K, b, ld, N, y);
}

constexpr double kDrawSlack = 1e-6;  // draw.cpp's kSlack

// u of entry i: (first word & (2^21 - 1)) 2^32 + second word, over 2^53 (exact in double)
inline double draw_u(const uint32_t* w, int64_t i) {
  return (static_cast<double>(w[2 * i] & 0x1fffffu) * 4294967296.0 + static_cast<double>(w[2 * i + 1])) *
         (1.0 / 9007199254740992.0);
}

// Entry i against the running bound m (draw.cpp's draw_row, one entry): kept as a candidate unless
// p (1 + slack) < m u (p / q <= p / u (1 + slack) is then below the largest lower bound) or u = 0.
inline void draw_entry(const float* p, const uint32_t* w, int64_t i, int64_t* cand, int64_t& n, double& m) {
  const double u = draw_u(w, i), pi = p[i];
  if (pi * (1.0 + kDrawSlack) + 1e-38 * u < m * u || u == 0.0) return;
  cand[n++] = i;
  const double lower = pi * (1.0 - u) / u * (1.0 - kDrawSlack) - 1e-38;
  if (lower > m) m = lower;
}

inline void draw_flags(const float* p, const uint32_t* w, int64_t i, int& flags) {
  const double pi = p[i];
  if (!(pi >= 0.0 && pi < INFINITY)) flags |= 1;
  if (pi > 0.0) flags |= 2;
  if (draw_u(w, i) == 0.0) flags |= 4;
}

// The vector test keeps a superset of what the entry-by-entry test keeps at the block's start (m only grows); the
// kept lanes are then tested one by one in index order with the current m, as the scalar loop does.
int64_t draw_scan(const float* p, const uint32_t* w, int64_t V, int64_t* cand, double* m_io, int* flags) {
  double m = *m_io;
  int64_t n = 0, i = 0;
  int fl = 0;
#if IBQ_SIMD_WIDTH == 16
  constexpr int L = 8;
  const __m512d two32 = _mm512_set1_pd(4294967296.0), inv53 = _mm512_set1_pd(1.0 / 9007199254740992.0),
                k1 = _mm512_set1_pd(1.0 + kDrawSlack), tiny = _mm512_set1_pd(1e-38), zero = _mm512_setzero_pd(),
                inf = _mm512_set1_pd(INFINITY);
  const __m256i mask21 = _mm256_set1_epi32(0x1fffff);
  __mmask8 ok = 0xff, any = 0, uz_all = 0;
  for (; i + L <= V; i += L) {
    const __m512i x = _mm512_loadu_si512(w + 2 * i);  // lanes: first | second << 32
    const __m512d hi = _mm512_cvtepi32_pd(_mm256_and_si256(_mm512_cvtepi64_epi32(x), mask21));
    const __m512d lo = _mm512_cvtepu32_pd(_mm512_cvtepi64_epi32(_mm512_srli_epi64(x, 32)));
    const __m512d u = _mm512_mul_pd(_mm512_fmadd_pd(hi, two32, lo), inv53);
    const __m512d pd = _mm512_cvtps_pd(_mm256_loadu_ps(p + i));
    ok &= _mm512_cmp_pd_mask(pd, zero, _CMP_GE_OQ) & _mm512_cmp_pd_mask(pd, inf, _CMP_LT_OQ);
    any |= _mm512_cmp_pd_mask(pd, zero, _CMP_GT_OQ);
    const __mmask8 uz = _mm512_cmp_pd_mask(u, zero, _CMP_EQ_OQ);
    uz_all |= uz;
    const __m512d lhs = _mm512_add_pd(_mm512_mul_pd(pd, k1), _mm512_mul_pd(tiny, u));
    unsigned keep = _mm512_cmp_pd_mask(lhs, _mm512_mul_pd(_mm512_set1_pd(m), u), _CMP_NLT_UQ) & ~uz & 0xffu;
    while (keep) {
      draw_entry(p, w, i + __builtin_ctz(keep), cand, n, m);
      keep &= keep - 1;
    }
  }
  if (ok != 0xff) fl |= 1;
  if (any) fl |= 2;
  if (uz_all) fl |= 4;
#else
  constexpr int L = 4;
  const __m256d two32 = _mm256_set1_pd(4294967296.0), inv53 = _mm256_set1_pd(1.0 / 9007199254740992.0),
                k1 = _mm256_set1_pd(1.0 + kDrawSlack), tiny = _mm256_set1_pd(1e-38), zero = _mm256_setzero_pd(),
                inf = _mm256_set1_pd(INFINITY), two31 = _mm256_set1_pd(2147483648.0);
  const __m256i evens_odds = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  const __m128i mask21 = _mm_set1_epi32(0x1fffff), sign = _mm_set1_epi32(static_cast<int>(0x80000000u));
  int ok = 0xf, any = 0, uz_all = 0;
  for (; i + L <= V; i += L) {
    const __m256i x = _mm256_permutevar8x32_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 2 * i)), evens_odds);
    const __m256d hi = _mm256_cvtepi32_pd(_mm_and_si128(_mm256_castsi256_si128(x), mask21));
    const __m256d lo = _mm256_add_pd(_mm256_cvtepi32_pd(_mm_xor_si128(_mm256_extracti128_si256(x, 1), sign)), two31);
    const __m256d u = _mm256_mul_pd(_mm256_fmadd_pd(hi, two32, lo), inv53);
    const __m256d pd = _mm256_cvtps_pd(_mm_loadu_ps(p + i));
    ok &= _mm256_movemask_pd(_mm256_and_pd(_mm256_cmp_pd(pd, zero, _CMP_GE_OQ), _mm256_cmp_pd(pd, inf, _CMP_LT_OQ)));
    any |= _mm256_movemask_pd(_mm256_cmp_pd(pd, zero, _CMP_GT_OQ));
    const int uz = _mm256_movemask_pd(_mm256_cmp_pd(u, zero, _CMP_EQ_OQ));
    uz_all |= uz;
    const __m256d lhs = _mm256_add_pd(_mm256_mul_pd(pd, k1), _mm256_mul_pd(tiny, u));
    unsigned keep = static_cast<unsigned>(_mm256_movemask_pd(_mm256_cmp_pd(lhs, _mm256_mul_pd(_mm256_set1_pd(m), u), _CMP_NLT_UQ))) &
                    ~static_cast<unsigned>(uz) & 0xfu;
    while (keep) {
      draw_entry(p, w, i + __builtin_ctz(keep), cand, n, m);
      keep &= keep - 1;
    }
  }
  if (ok != 0xf) fl |= 1;
  if (any) fl |= 2;
  if (uz_all) fl |= 4;
#endif
  for (; i < V; ++i) {
    draw_flags(p, w, i, fl);
    draw_entry(p, w, i, cand, n, m);
  }
  *m_io = m;
  *flags |= fl;
  return n;
}

}  // namespace

const Kernels* table() {
  static const Kernels k{IBQ_SIMD_NAME, P, &block, &gemv, &gemv4, &gemv_panels, &gemv4_panels, &draw_scan};
  return &k;
}

