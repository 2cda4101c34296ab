// Channels-last GroupNorm(+SiLU) on our CPU kernels (cpu_kernels_table.h): forward, and backward as an autograd
// node (cpu_kernels.h).
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

#include "ibq/core/cpu_kernels.h"
#include "ibq/core/errors.h"

namespace ibq::kernels {
namespace {

// Row ranges of one sample that the threads share: partial sums per part, added in float64 afterwards.
int64_t parts_of(int64_t hw) { return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), hw / 256)); }

// Per (sample, group): mean and 1/std, float32 as the forward uses them.
void stats(const Table& t, const at::Tensor& x, int64_t groups, double eps, float* mean_out, float* rstd_out) {
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3), cg = c / groups;
  const float* xp = x.data_ptr<float>();
  const int64_t parts = parts_of(hw);
  std::vector<double> sums(size_t(n * parts * 2 * c), 0.0);
  at::parallel_for(0, n * parts, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t s = i / parts, p = i % parts, r0 = hw * p / parts, r1 = hw * (p + 1) / parts;
      const float* xs = xp + s * hw * c;
      double* acc = sums.data() + size_t(i * 2 * c);
      t.channel_sums(xs + r0 * c, r1 - r0, c, xs, acc, acc + c);  // shift: the sample's first pixel
    }
  });
  std::vector<double> s1(static_cast<size_t>(cg)), s2(static_cast<size_t>(cg));
  for (int64_t s = 0; s < n; ++s) {
    const float* k = xp + s * hw * c;
    for (int64_t g = 0; g < groups; ++g) {
      // channel j: S1_j = sum(x - k_j), S2_j = sum((x - k_j)^2) over hw pixels
      double total = 0.0;
      for (int64_t j = 0; j < cg; ++j) {
        const int64_t ch = g * cg + j;
        s1[j] = s2[j] = 0.0;
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
      mean_out[s * groups + g] = float(mean);
      rstd_out[s * groups + g] = float(1.0 / std::sqrt(var + eps));
    }
  }
}

// The affine of each (sample, channel): y = x * a + b, as torch: a = rstd * w, b = bias - mean * a, in float32.
void affine(const float* mean, const float* rstd, const at::Tensor& w, const at::Tensor& bias, int64_t n, int64_t c,
            int64_t groups, std::vector<float>& a, std::vector<float>& b) {
  const auto wf = w.to(at::kFloat).contiguous(), bf = bias.to(at::kFloat).contiguous();
  const float* wp = wf.data_ptr<float>();
  const float* bp = bf.data_ptr<float>();
  const int64_t cg = c / groups;
  a.resize(size_t(n * c));
  b.resize(size_t(n * c));
  for (int64_t s = 0; s < n; ++s)
    for (int64_t ch = 0; ch < c; ++ch) {
      const int64_t g = s * groups + ch / cg;
      const float sc = rstd[g] * wp[ch];
      a[size_t(s * c + ch)] = sc;
      b[size_t(s * c + ch)] = -sc * mean[g] + bp[ch];
    }
}

// Runs f(sample, first row, rows) over all N * HW rows in chunks of whole rows of one sample.
template <class F>
void for_rows(int64_t n, int64_t hw, int64_t c, F&& f) {
  const int64_t grain = std::max<int64_t>(1, 16384 / c);
  at::parallel_for(0, n * hw, grain, [&](int64_t b, int64_t e) {
    while (b < e) {
      const int64_t s = b / hw, stop = std::min(e, (s + 1) * hw);
      f(s, b, stop - b);
      b = stop;
    }
  });
}

at::Tensor forward_into(const Table& t, const at::Tensor& x, at::Tensor y, int64_t groups, const at::Tensor& w,
                        const at::Tensor& bias, double eps, bool silu, float* mean, float* rstd) {
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  stats(t, x, groups, eps, mean, rstd);
  std::vector<float> a, b;
  affine(mean, rstd, w, bias, n, c, groups, a, b);
  const float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for_rows(n, hw, c, [&](int64_t s, int64_t r, int64_t rows) {
    t.affine_silu(xp + r * c, yp + r * c, rows, c, a.data() + s * c, b.data() + s * c, silu);
  });
  return y;
}

struct GroupNormSilu : torch::autograd::Function<GroupNormSilu> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w,
                            const at::Tensor& bias, int64_t groups, double eps, bool silu) {
    const int64_t n = x.size(0);
    auto mean = at::empty({n, groups}, x.options().memory_format(at::MemoryFormat::Contiguous));
    auto rstd = at::empty_like(mean);
    auto y = at::empty_like(x, at::MemoryFormat::ChannelsLast);
    forward_into(*selected(), x, y, groups, w, bias, eps, silu, mean.data_ptr<float>(), rstd.data_ptr<float>());
    ctx->save_for_backward({x, w, bias, mean, rstd});
    ctx->saved_data["groups"] = groups;
    ctx->saved_data["silu"] = silu;
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1], &bias = saved[2];
    const float* mean = saved[3].data_ptr<float>();
    const float* rstd = saved[4].data_ptr<float>();
    const int64_t groups = ctx->saved_data["groups"].toInt();
    const bool silu = ctx->saved_data["silu"].toBool();
    const Table& t = *selected();
    const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3), cg = c / groups;
    const auto dout = grads[0].to(at::kFloat).contiguous(at::MemoryFormat::ChannelsLast);
    std::vector<float> a, b;
    affine(mean, rstd, w, bias, n, c, groups, a, b);
    std::vector<float> shift(size_t(n * c));
    for (int64_t s = 0; s < n; ++s)
      for (int64_t ch = 0; ch < c; ++ch) shift[size_t(s * c + ch)] = mean[s * groups + ch / cg];
    // pass 1: dy (into dx) and per-channel sums S1 = sum(dy), T = sum(dy (x - mean))
    auto dx = at::empty_like(x, at::MemoryFormat::ChannelsLast);
    const float* xp = x.data_ptr<float>();
    const float* gp = dout.data_ptr<float>();
    float* dp = dx.data_ptr<float>();
    const int64_t parts = parts_of(hw);
    std::vector<double> sums(size_t(n * parts * 2 * c), 0.0);
    at::parallel_for(0, n * parts, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const int64_t s = i / parts, p = i % parts, r0 = s * hw + hw * p / parts, r1 = s * hw + hw * (p + 1) / parts;
        double* acc = sums.data() + size_t(i * 2 * c);
        t.gn_grad_sums(xp + r0 * c, gp + r0 * c, dp + r0 * c, r1 - r0, c, a.data() + s * c, b.data() + s * c,
                       shift.data() + s * c, silu, acc, acc + c);
      }
    });
    // per (sample, group): dx = r w_c dy - r^2 (x - mean) sum(dxhat xhat) / M - r sum(dxhat) / M, dxhat = w_c dy
    const auto wf = w.to(at::kFloat).contiguous();
    const float* wp = wf.data_ptr<float>();
    std::vector<float> A(size_t(n * c)), B(size_t(n * c)), C(size_t(n * c));
    std::vector<double> dw(static_cast<size_t>(c), 0.0), db(static_cast<size_t>(c), 0.0), s1(static_cast<size_t>(c)), tx(static_cast<size_t>(c));
    const double count = double(hw) * double(cg);
    for (int64_t s = 0; s < n; ++s) {
      for (int64_t ch = 0; ch < c; ++ch) {
        s1[ch] = tx[ch] = 0.0;
        for (int64_t p = 0; p < parts; ++p) {
          const double* acc = sums.data() + size_t((s * parts + p) * 2 * c);
          s1[ch] += acc[ch];
          tx[ch] += acc[c + ch];
        }
      }
      for (int64_t g = 0; g < groups; ++g) {
        const double r = rstd[s * groups + g];
        double sum1 = 0.0, sum2 = 0.0;
        for (int64_t ch = g * cg; ch < (g + 1) * cg; ++ch) {
          sum1 += double(wp[ch]) * s1[ch];
          sum2 += double(wp[ch]) * r * tx[ch];
          dw[ch] += r * tx[ch];
          db[ch] += s1[ch];
        }
        for (int64_t ch = g * cg; ch < (g + 1) * cg; ++ch) {
          A[size_t(s * c + ch)] = float(r * wp[ch]);
          B[size_t(s * c + ch)] = float(-r * r * sum2 / count);
          C[size_t(s * c + ch)] = float(-r * sum1 / count);
        }
      }
    }
    for_rows(n, hw, c, [&](int64_t s, int64_t row, int64_t rows) {
      t.gn_combine(dp + row * c, xp + row * c, dp + row * c, rows, c, A.data() + s * c, B.data() + s * c,
                   shift.data() + s * c, C.data() + s * c);
    });
    const auto opts = at::TensorOptions().dtype(at::kDouble);
    auto dwt = at::from_blob(dw.data(), {c}, opts).to(w.scalar_type());
    auto dbt = at::from_blob(db.data(), {c}, opts).to(bias.scalar_type());
    return {dx, dwt, dbt, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

bool group_norm_cl_applies(const at::Tensor& x, int64_t groups) {
  const Table* t = selected();
  if (!t || x.dim() != 4 || !x.device().is_cpu() || x.scalar_type() != at::kFloat ||
      !x.is_contiguous(at::MemoryFormat::ChannelsLast))
    return false;
  const int64_t c = x.size(1);
  return groups > 0 && c % groups == 0 && c % t->width == 0 && x.numel() > 0;
}

at::Tensor group_norm_silu_cl(const at::Tensor& x, int64_t groups, const at::Tensor& weight, const at::Tensor& bias,
                              double eps, bool silu, bool in_place) {
  IBQ_CHECK(group_norm_cl_applies(x, groups), "group_norm_silu_cl: a channels-last float32 CPU tensor");
  IBQ_CHECK(weight.numel() == x.size(1) && bias.numel() == x.size(1), "group_norm_silu_cl: weight and bias of C values");
  if (at::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad() || bias.requires_grad()))
    return GroupNormSilu::apply(x, weight, bias, groups, eps, silu);
  std::vector<float> mean(size_t(x.size(0) * groups)), rstd(mean.size());
  at::Tensor y = in_place ? x : at::empty_like(x, at::MemoryFormat::ChannelsLast);
  return forward_into(*selected(), x, y, groups, weight, bias, eps, silu, mean.data(), rstd.data());
}

}  // namespace ibq::kernels
