// Body of the batch-invariant row kernels (rows_linear.h), included by rows_linear_avx2.cpp and
// rows_linear_avx512.cpp inside their namespace and target pragma with IBQ_ROWS_WIDTH (floats per vector: 8 or
// 16, which picks the intrinsics below), IBQ_ROWS_TILE (rows per tile) and IBQ_ROWS_NAME. Each output element is acc = fma(x[r, k], W[c, k], acc)
// for k = 0..K-1 from acc = 0; panels are two vectors wide.

#if IBQ_ROWS_WIDTH == 16
#define IBQ_VEC __m512
#define IBQ_ZERO() _mm512_setzero_ps()
#define IBQ_LOAD(p) _mm512_loadu_ps(p)
#define IBQ_STORE(p, v) _mm512_storeu_ps(p, v)
#define IBQ_SET1(v) _mm512_set1_ps(v)
#define IBQ_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#else
#define IBQ_VEC __m256
#define IBQ_ZERO() _mm256_setzero_ps()
#define IBQ_LOAD(p) _mm256_loadu_ps(p)
#define IBQ_STORE(p, v) _mm256_storeu_ps(p, v)
#define IBQ_SET1(v) _mm256_set1_ps(v)
#define IBQ_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#endif

namespace {

constexpr int64_t W = IBQ_ROWS_WIDTH;
constexpr int64_t P = 2 * W;  // panel width
constexpr int kTile = IBQ_ROWS_TILE;

// Rows [0, R) x one panel: 2R accumulators; out [R, P] with row stride `ld`.
template <int R>
inline void tile(const float* x, int64_t K, const float* panel, float* out, int64_t ld) {
  IBQ_VEC acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = IBQ_ZERO();
  for (int64_t k = 0; k < K; ++k) {
    IBQ_VEC w0 = IBQ_LOAD(panel + k * P), w1 = IBQ_LOAD(panel + k * P + W);
    for (int r = 0; r < R; ++r) {
      IBQ_VEC xb = IBQ_SET1(x[r * K + k]);
      acc[r][0] = IBQ_FMA(xb, w0, acc[r][0]);
      acc[r][1] = IBQ_FMA(xb, w1, acc[r][1]);
    }
  }
  for (int r = 0; r < R; ++r) {
    IBQ_STORE(out + r * ld, acc[r][0]);
    IBQ_STORE(out + r * ld + W, acc[r][1]);
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

void gemv(const float* x, int64_t K, const float* b, int64_t ld, int64_t N, float* y) {
  int64_t c = 0;
  for (; c + 2 * W <= N; c += 2 * W) {
    IBQ_VEC a0 = IBQ_ZERO(), a1 = IBQ_ZERO();
    for (int64_t k = 0; k < K; ++k) {
      IBQ_VEC xb = IBQ_SET1(x[k]);
      a0 = IBQ_FMA(xb, IBQ_LOAD(b + k * ld + c), a0);
      a1 = IBQ_FMA(xb, IBQ_LOAD(b + k * ld + c + W), a1);
    }
    IBQ_STORE(y + c, a0);
    IBQ_STORE(y + c + W, a1);
  }
  for (; c + W <= N; c += W) {
    IBQ_VEC a0 = IBQ_ZERO();
    for (int64_t k = 0; k < K; ++k) a0 = IBQ_FMA(IBQ_SET1(x[k]), IBQ_LOAD(b + k * ld + c), a0);
    IBQ_STORE(y + c, a0);
  }
  for (; c < N; ++c) {
    float acc = 0.f;
    for (int64_t k = 0; k < K; ++k) acc = __builtin_fmaf(x[k], b[k * ld + c], acc);
    y[c] = acc;
  }
}

}  // namespace

const Kernels* table() {
  static const Kernels k{IBQ_ROWS_NAME, P, &block, &gemv};
  return &k;
}

#undef IBQ_VEC
#undef IBQ_ZERO
#undef IBQ_LOAD
#undef IBQ_STORE
#undef IBQ_SET1
#undef IBQ_FMA
