#include "ibq/eval/lpips_distance.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

namespace ibq {
namespace {

constexpr double kEps = 1e-10;  // the official normalize_tensor's

at::Tensor unit_normalize(const at::Tensor& x) {
  auto norm = at::sqrt(at::sum(x * x, {1}, /*keepdim=*/true));
  return x / (norm + kEps);
}

bool fused_applies(const at::Tensor& a, const at::Tensor& b) {
  auto cl = at::MemoryFormat::ChannelsLast;
  return a.device().is_cpu() && b.device().is_cpu() && a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat &&
         a.dim() == 4 && a.sizes() == b.sizes() && a.is_contiguous(cl) && b.is_contiguous(cl) && a.numel() > 0;
}

// Pixels per task: about 32K floats.
int64_t grain(int64_t c) { return std::max<int64_t>(1, (int64_t(1) << 15) / c); }

// Per pixel of x [P][C]: the norm n (float32, as torch's sqrt of the float32 sum) and the divisor n + eps.
void norms(const float* x, int64_t c, int64_t p, float* n, float* den) {
  const float* r = x + p * c;
  double s = 0;
  for (int64_t j = 0; j < c; ++j) s += double(r[j]) * r[j];
  n[p] = std::sqrt(float(s));
  den[p] = n[p] + float(kEps);
}

struct NormalizedSqDiff : torch::autograd::Function<NormalizedSqDiff> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& f0, const at::Tensor& f1) {
    const int64_t c = f0.size(1), pixels = f0.numel() / c;
    auto out = at::empty_like(f0);
    auto st = at::empty({4, pixels}, f0.options().memory_format(at::MemoryFormat::Contiguous));
    const float *a = f0.data_ptr<float>(), *b = f1.data_ptr<float>();
    float *o = out.data_ptr<float>(), *s = st.data_ptr<float>();
    at::parallel_for(0, pixels, grain(c), [&](int64_t lo, int64_t hi) {
      for (int64_t p = lo; p < hi; ++p) {
        norms(a, c, p, s, s + pixels);
        norms(b, c, p, s + 2 * pixels, s + 3 * pixels);
        const float da = s[pixels + p], db = s[3 * pixels + p];
        const float *ra = a + p * c, *rb = b + p * c;
        float* ro = o + p * c;
        for (int64_t j = 0; j < c; ++j) {
          const float d = ra[j] / da - rb[j] / db;
          ro[j] = d * d;
        }
      }
    });
    ctx->save_for_backward({f0, f1, st});
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &f0 = saved[0], &f1 = saved[1], &st = saved[2];
    const bool need0 = ctx->needs_input_grad(0), need1 = ctx->needs_input_grad(1);
    const at::Tensor g = grads[0].contiguous(at::MemoryFormat::ChannelsLast);
    const int64_t c = f0.size(1), pixels = f0.numel() / c;
    at::Tensor g0 = need0 ? at::empty_like(f0) : at::Tensor(), g1 = need1 ? at::empty_like(f1) : at::Tensor();
    const float *a = f0.data_ptr<float>(), *b = f1.data_ptr<float>(), *s = st.data_ptr<float>(), *gp = g.data_ptr<float>();
    float* o0 = need0 ? g0.data_ptr<float>() : nullptr;
    float* o1 = need1 ? g1.data_ptr<float>() : nullptr;
    at::parallel_for(0, pixels, grain(c), [&](int64_t lo, int64_t hi) {
      std::vector<float> u(size_t(c), 0.f);
      for (int64_t p = lo; p < hi; ++p) {
        const float na = s[p], da = s[pixels + p], nb = s[2 * pixels + p], db = s[3 * pixels + p];
        const float *ra = a + p * c, *rb = b + p * c, *rg = gp + p * c;
        // u = d out / d (normalized f0) = 2 g d; d out / d (normalized f1) = -u
        double sa = 0, sb = 0;
        for (int64_t j = 0; j < c; ++j) {
          const float d = ra[j] / da - rb[j] / db;
          u[size_t(j)] = 2.f * rg[j] * d;
          sa += double(u[size_t(j)]) * ra[j];
          sb += double(u[size_t(j)]) * rb[j];
        }
        // d/dx of x / (|x| + eps) applied to v: v / (n + eps) - x (v . x) / ((n + eps)^2 n)
        if (o0) {
          const float k = na > 0 ? float(sa / (double(da) * da * na)) : 0.f;
          float* r = o0 + p * c;
          for (int64_t j = 0; j < c; ++j) r[j] = u[size_t(j)] / da - ra[j] * k;
        }
        if (o1) {
          const float k = nb > 0 ? float(-sb / (double(db) * db * nb)) : 0.f;
          float* r = o1 + p * c;
          for (int64_t j = 0; j < c; ++j) r[j] = -u[size_t(j)] / db - rb[j] * k;
        }
      }
    });
    return {g0, g1};
  }
};

}  // namespace

at::Tensor lpips_normalized_sq_diff(const at::Tensor& f0, const at::Tensor& f1) {
  if (fused_applies(f0, f1)) return NormalizedSqDiff::apply(f0, f1);
  auto d = unit_normalize(f0) - unit_normalize(f1);
  return d * d;
}

}  // namespace ibq
