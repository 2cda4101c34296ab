#include "ibq/core/cpu_kernels.h"

#include <ATen/Parallel.h>

#include <chrono>
#include <cmath>
#include <cstdlib>

#include "ibq/core/errors.h"

namespace ibq::kernels {

std::vector<const Table*> available() {
  std::vector<const Table*> out;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (table_avx512() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) out.push_back(table_avx512());
  if (table_avx2() && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) out.push_back(table_avx2());
#endif
  return out;
}

const Table* selected() {
  static const Table* chosen = [] {
    const char* env = std::getenv("IBQ_KERNEL");
    if (!env) env = std::getenv("IBQ_QUANTIZER_KERNEL");  // one switch for all our kernels (quantizer_fused.cpp)
    const std::string want = env ? env : "";
    if (want == "aten") return static_cast<const Table*>(nullptr);
    for (const auto* t : available())
      if (want.empty() || want == t->name) return t;
    return static_cast<const Table*>(nullptr);
  }();
  return chosen;
}

bool group_norm_cl_applies(const at::Tensor& x, int64_t groups) {
  const Table* t = selected();
  if (!t || at::GradMode::is_enabled() || x.dim() != 4 || !x.device().is_cpu() || x.scalar_type() != at::kFloat ||
      x.requires_grad() || !x.is_contiguous(at::MemoryFormat::ChannelsLast))
    return false;
  const int64_t c = x.size(1);
  return groups > 0 && c % groups == 0 && c % t->width == 0 && x.numel() > 0;
}

at::Tensor group_norm_silu_cl(const at::Tensor& x, int64_t groups, const at::Tensor& weight, const at::Tensor& bias,
                              double eps, bool silu, bool in_place) {
  IBQ_CHECK(group_norm_cl_applies(x, groups), "group_norm_silu_cl: a channels-last float32 CPU tensor without autograd");
  const Table& t = *selected();
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3), cg = c / groups;
  const float* xp = x.data_ptr<float>();
  // Per sample: partial sums of `parts` row ranges (so the threads share one sample), then group statistics.
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), hw / 256));
  std::vector<double> sums(size_t(n * parts * 2 * c), 0.0);
  at::parallel_for(0, n * parts, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t s = i / parts, p = i % parts, r0 = hw * p / parts, r1 = hw * (p + 1) / parts;
      const float* xs = xp + s * hw * c;
      double* acc = sums.data() + size_t(i * 2 * c);
      t.channel_sums(xs + r0 * c, r1 - r0, c, xs, acc, acc + c);  // shift: the sample's first pixel
    }
  });
  const auto w = weight.to(at::kFloat).contiguous(), bb = bias.to(at::kFloat).contiguous();
  const float* wp = w.data_ptr<float>();
  const float* bp = bb.data_ptr<float>();
  std::vector<float> scale(size_t(n * c)), shift_out(size_t(n * c));
  for (int64_t s = 0; s < n; ++s) {
    const float* k = xp + s * hw * c;
    for (int64_t g = 0; g < groups; ++g) {
      // channel j: S1_j = sum(x - k_j), S2_j = sum((x - k_j)^2) over hw pixels
      double total = 0.0;
      std::vector<double> s1(size_t(cg), 0.0), s2(size_t(cg), 0.0);
      for (int64_t j = 0; j < cg; ++j) {
        const int64_t ch = g * cg + j;
        for (int64_t p = 0; p < parts; ++p) {
          const double* acc = sums.data() + size_t((s * parts + p) * 2 * c);
          s1[j] += acc[ch];
          s2[j] += acc[c + ch];
        }
        total += s1[j] + double(hw) * k[ch];
      }
      const double count = double(hw) * double(cg), mean = total / count;
      double m2 = 0.0;  // sum (x - mean)^2 = sum over channels of S2 + 2 (k - mean) S1 + hw (k - mean)^2
      for (int64_t j = 0; j < cg; ++j) {
        const double dk = double(k[g * cg + j]) - mean;
        m2 += s2[j] + 2.0 * dk * s1[j] + double(hw) * dk * dk;
      }
      const double var = std::max(0.0, m2 / count);
      const float rstd = float(1.0 / std::sqrt(var + eps)), meanf = float(mean);
      for (int64_t j = 0; j < cg; ++j) {
        const int64_t ch = g * cg + j;
        const float a = rstd * wp[ch];  // as torch: y = x * (rstd * w) + (b - mean * rstd * w), in float32
        scale[size_t(s * c + ch)] = a;
        shift_out[size_t(s * c + ch)] = -a * meanf + bp[ch];
      }
    }
  }
  at::Tensor y = in_place ? x : at::empty_like(x, at::MemoryFormat::ChannelsLast);
  float* yp = y.data_ptr<float>();
  const int64_t rows = n * hw, grain = std::max<int64_t>(1, 16384 / c);
  at::parallel_for(0, rows, grain, [&](int64_t b, int64_t e) {
    while (b < e) {
      const int64_t s = b / hw, stop = std::min(e, (s + 1) * hw);
      t.affine_silu(xp + b * c, yp + b * c, stop - b, c, scale.data() + s * c, shift_out.data() + s * c, silu);
      b = stop;
    }
  });
  return y;
}

double fma_peak_gflops(double seconds, std::string* kernel) {
  const auto tables = available();
  const Table* chosen = selected() ? selected() : tables.empty() ? nullptr : tables.front();
  if (!chosen) return 0.0;
  const Table& t = *chosen;
  if (kernel) *kernel = t.name;
  using clock = std::chrono::steady_clock;
  int64_t iters = 1 << 16;
  double best = 0.0;
  const auto stop = clock::now() + std::chrono::duration<double>(seconds);
  do {  // the best of repeated runs: a run that another process interrupted measures less
    const auto t0 = clock::now();
    const double flops = t.fma_chains(iters, 1.0f);
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    if (dt < 0.02) iters *= 2;
    else best = std::max(best, flops / dt / 1e9);
  } while (clock::now() < stop || best == 0.0);
  return best;
}

}  // namespace ibq::kernels
