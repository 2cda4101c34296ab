#include "ibq/transformer/rows_linear.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "ibq/core/errors.h"

namespace ibq::rows {
namespace {

constexpr int64_t kScalarPanel = 16;

// The same fma chain per element as the vector kernels, one element at a time (CPUs without AVX2 + FMA).
void scalar_block(const float* x, int64_t rows, int64_t K, const float* packed, int64_t N, int64_t p0, int64_t p1,
                  float* y) {
  for (int64_t p = p0; p < p1; ++p) {
    const float* panel = packed + p * K * kScalarPanel;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < kScalarPanel && p * kScalarPanel + j < N; ++j) {
        float acc = 0.f;
        for (int64_t k = 0; k < K; ++k) acc = std::fma(x[r * K + k], panel[k * kScalarPanel + j], acc);
        y[r * N + p * kScalarPanel + j] = acc;
      }
  }
}
void scalar_gemv(const float* x, int64_t K, const float* b, int64_t ld, int64_t N, float* y) {
  for (int64_t c = 0; c < N; ++c) {
    float acc = 0.f;
    for (int64_t k = 0; k < K; ++k) acc = std::fma(x[k], b[k * ld + c], acc);
    y[c] = acc;
  }
}
void scalar_gemv4(const float* const* x, int64_t K, const float* const* b, int64_t ld, int64_t N, float* const* y) {
  for (int g = 0; g < 4; ++g) scalar_gemv(x[g], K, b[g], ld, N, y[g]);
}
void scalar_gemv_panels(const float* x, int64_t K, const float* b, int64_t N, float* y) {
  for (int64_t c = 0; c < N; ++c) {
    const float* col = b + (c / kScalarPanel) * K * kScalarPanel + c % kScalarPanel;
    float acc = 0.f;
    for (int64_t k = 0; k < K; ++k) acc = std::fma(x[k], col[k * kScalarPanel], acc);
    y[c] = acc;
  }
}
void scalar_gemv4_panels(const float* const* x, int64_t K, const float* const* b, int64_t N, float* const* y) {
  for (int g = 0; g < 4; ++g) scalar_gemv_panels(x[g], K, b[g], N, y[g]);
}
const Kernels kScalar{"scalar", kScalarPanel, &scalar_block, &scalar_gemv, &scalar_gemv4, &scalar_gemv_panels,
                      &scalar_gemv4_panels, nullptr};

const Kernels* choose() {
  const char* force = std::getenv("IBQ_ROWS_KERNEL");
  auto allowed = [&](const char* n) {
    if (!force) return true;
    if (std::strcmp(force, "scalar") == 0) return false;
    return std::strcmp(force, "avx2") != 0 || std::strcmp(n, "avx2") == 0;
  };
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (allowed("avx512") && kernels_avx512() && __builtin_cpu_supports("avx512f")) return kernels_avx512();
  if (allowed("avx2") && kernels_avx2() && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return kernels_avx2();
#endif
  return &kScalar;
}

const Kernels& active() {
  static const Kernels* k = choose();
  return *k;
}

}  // namespace

const char* kernel_name() { return active().name; }
const Kernels& kernels() { return active(); }

int64_t key_positions(int64_t T) {
  const int64_t P = active().panel;
  return (T + P - 1) / P * P;
}

Packed pack(const at::Tensor& weight) {
  IBQ_CHECK(weight.dim() == 2, "rows::pack: expected a [N, K] weight");
  Packed p;
  p.N = weight.size(0);
  p.K = weight.size(1);
  auto w = weight.detach();
  if (!w.device().is_cpu() || w.scalar_type() != at::kFloat) {
    p.data = w;
    return p;
  }
  const int64_t P = active().panel, panels = (p.N + P - 1) / P;
  auto padded = at::zeros({panels * P, p.K}, w.options());
  padded.slice(0, 0, p.N).copy_(w);
  // [panels, P, K] -> [panels, K, P]
  p.data = padded.view({panels, P, p.K}).transpose(1, 2).contiguous();
  return p;
}

at::Tensor linear(const at::Tensor& x, const Packed& w, const at::Tensor& bias, at::Tensor out) {
  IBQ_CHECK(x.dim() == 2 && x.size(1) == w.K, "rows::linear: shapes do not fit");
  if (!x.device().is_cpu() || x.scalar_type() != at::kFloat || w.data.dim() != 3) {
    return bias.defined() ? at::linear(x, w.data, bias) : at::linear(x, w.data);
  }
  auto xc = x.contiguous();
  const int64_t rows = xc.size(0), K = w.K, N = w.N;
  at::Tensor y = out;
  if (!(y.defined() && y.is_contiguous() && y.scalar_type() == at::kFloat && y.dim() == 2 && y.size(0) == rows &&
        y.size(1) == N))
    y = at::empty({rows, N}, xc.options());
  if (rows == 0 || N == 0) return y;
  const float* xp = xc.data_ptr<float>();
  const float* wp = w.data.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const auto& k = active();
  const int64_t panels = w.data.size(0);
  // panels split over the threads: each element's chain is the same however they are split
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, rows * K * k.panel / 64));
  at::parallel_for(0, panels, grain, [&](int64_t p0, int64_t p1) { k.block(xp, rows, K, wp, N, p0, p1, yp); });
  if (bias.defined()) y.add_(bias);
  return y;
}

at::Tensor attend(const at::Tensor& q, const at::Tensor& kt, const at::Tensor& v, const std::vector<int64_t>& offsets,
                  const std::vector<int64_t>& len, int64_t T, double scale, at::Tensor scores, at::Tensor weights) {
  const int64_t pairs = q.size(0), hd = q.size(1);
  IBQ_CHECK(static_cast<int64_t>(offsets.size()) == pairs && static_cast<int64_t>(len.size()) == pairs &&
                q.scalar_type() == at::kFloat && kt.scalar_type() == at::kFloat && kt.is_contiguous() && v.is_contiguous(),
            "rows::attend: bad arguments");
  auto qc = q.contiguous();
  auto fits = [&](const at::Tensor& t) {
    return t.defined() && t.is_contiguous() && t.scalar_type() == at::kFloat && t.dim() == 2 && t.size(0) == pairs &&
           t.size(1) == T;
  };
  if (!fits(scores)) scores = at::empty({pairs, T}, q.options());
  if (!fits(weights)) weights = at::empty({pairs, T}, q.options());
  scores.fill_(-std::numeric_limits<float>::infinity());
  const auto& k = active();
  const float* qp = qc.data_ptr<float>();
  const float* ktp = kt.data_ptr<float>();
  const float* vp = v.data_ptr<float>();
  float* sp = scores.data_ptr<float>();
  // pairs in groups of four of the same length (the heads of one row) run as one gemv4: more independent chains per
  // loop, each element's chain unchanged; other pairs one at a time
  const int64_t groups = (pairs + 3) / 4;
  // groups per thread: at least ~2^17 multiply-adds each, so a step of a few rows stays on one thread (waking the
  // other costs more than it saves there)
  int64_t total = 0;
  for (int64_t i = 0; i < pairs; ++i) total += len[i];
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 17) / std::max<int64_t>(1, 4 * hd * (total / std::max<int64_t>(1, pairs))));
  // ld 0: b in panels (the keys); else row-major with leading dimension ld (the values)
  auto each = [&](const float* x, int64_t xs, const float* b, int64_t K_of_len, int64_t ld, int64_t N_of_len, float* y,
                  int64_t ys) {
    // K and N: fixed (> 0) or, when 0, the pair's length
    auto K_ = [&](int64_t i) { return K_of_len ? K_of_len : len[i]; };
    auto N_ = [&](int64_t i) { return N_of_len ? N_of_len : len[i]; };
    at::parallel_for(0, groups, grain, [&](int64_t g0, int64_t g1) {
      for (int64_t g = g0; g < g1; ++g) {
        const int64_t i0 = 4 * g;
        if (i0 + 3 < pairs && len[i0] == len[i0 + 1] && len[i0] == len[i0 + 2] && len[i0] == len[i0 + 3]) {
          const float* xg[4];
          const float* bg[4];
          float* yg[4];
          for (int j = 0; j < 4; ++j) {
            xg[j] = x + (i0 + j) * xs;
            bg[j] = b + offsets[i0 + j];
            yg[j] = y + (i0 + j) * ys;
          }
          if (ld == 0) k.gemv4_panels(xg, K_(i0), bg, N_(i0), yg);
          else k.gemv4(xg, K_(i0), bg, ld, N_(i0), yg);
        } else {
          for (int64_t i = i0; i < std::min(pairs, i0 + 4); ++i) {
            if (ld == 0) k.gemv_panels(x + i * xs, K_(i), b + offsets[i], N_(i), y + i * ys);
            else k.gemv(x + i * xs, K_(i), b + offsets[i], ld, N_(i), y + i * ys);
          }
        }
      }
    });
  };
  IBQ_CHECK(T % k.panel == 0, "rows::attend: T must be a key_positions()");
  each(qp, hd, ktp, hd, 0, 0, sp, T);  // scores: q . keys (in panels) over positions < len
  // softmax per row (ATen's: vectorized, the same computation for each row whatever the others)
  auto w = at::_softmax_out(weights, scores.mul_(scale), -1, false);
  auto out = at::empty({pairs, hd}, q.options());
  each(w.data_ptr<float>(), T, vp, 0, hd, hd, out.data_ptr<float>(), hd);  // weights times values
  return out;
}

}  // namespace ibq::rows
