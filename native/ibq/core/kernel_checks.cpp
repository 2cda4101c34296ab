#include "ibq/core/kernel_checks.h"

#include <chrono>
#include <limits>

#include "ibq/core/cpu_kernels.h"

namespace ibq::kernels {
namespace {

at::Tensor aten_norm(const at::Tensor& x, int64_t groups, const at::Tensor& w, const at::Tensor& b, double eps, bool silu) {
  auto y = at::group_norm(x, groups, w, b, eps);
  return silu ? at::silu(y) : y;
}

template <class F>
double best_seconds(int64_t reps, F&& f) {
  double best = std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return reps > 0 ? best : 0.0;
}

}  // namespace

GroupNormCheck group_norm_check(const at::Tensor& x_in, int64_t groups, const at::Tensor& weight, const at::Tensor& bias,
                                double eps, bool silu, int64_t reps) {
  at::NoGradGuard no_grad;
  GroupNormCheck r;
  const auto x = x_in.to(at::kFloat).contiguous();
  const auto cl = x.contiguous(at::MemoryFormat::ChannelsLast);
  const auto truth = aten_norm(x.to(at::kDouble), groups, weight.to(at::kDouble), bias.to(at::kDouble), eps, silu);
  r.used = group_norm_cl_applies(cl, groups);
  const auto ours = r.used ? group_norm_silu_cl(cl, groups, weight, bias, eps, silu, false) : aten_norm(cl, groups, weight, bias, eps, silu);
  r.max_diff = (ours.to(at::kDouble) - truth).abs().max().item<double>();
  r.aten_max_diff = (aten_norm(x, groups, weight, bias, eps, silu).to(at::kDouble) - truth).abs().max().item<double>();
  if (r.used) {
    r.kernel_s = best_seconds(reps, [&] { group_norm_silu_cl(cl, groups, weight, bias, eps, silu, false); });
  }
  r.aten_s = best_seconds(reps, [&] { aten_norm(x, groups, weight, bias, eps, silu); });
  r.aten_cl_s = best_seconds(reps, [&] { aten_norm(cl, groups, weight, bias, eps, silu); });
  return r;
}

}  // namespace ibq::kernels
