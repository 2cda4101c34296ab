#include "ibq/core/kernel_checks.h"

#include <chrono>
#include <limits>

#include "ibq/core/cpu_kernels.h"
#include "ibq/core/parallel_bmm.h"

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
  {
    at::AutoGradMode grad_on(true);
    const auto gout = at::rand(x.sizes(), at::TensorOptions().dtype(at::kDouble)) * 2 - 1;
    auto grads = [&](const at::Tensor& xin, const at::Tensor& w, const at::Tensor& b, bool kernel) {
      auto xi = xin.detach().requires_grad_(true), wi = w.detach().clone().requires_grad_(true),
           bi = b.detach().clone().requires_grad_(true);
      auto out = kernel ? group_norm_silu_cl(xi, groups, wi, bi, eps, silu, false) : aten_norm(xi, groups, wi, bi, eps, silu);
      (out.to(at::kDouble) * gout).sum().backward();
      return std::vector<at::Tensor>{xi.grad().to(at::kDouble), wi.grad().to(at::kDouble), bi.grad().to(at::kDouble)};
    };
    const auto truth_g = grads(x.to(at::kDouble), weight.to(at::kDouble), bias.to(at::kDouble), false);
    const auto wf = weight.to(at::kFloat), bf = bias.to(at::kFloat);
    const auto ours_g = grads(cl, wf, bf, r.used);
    const auto aten_g = grads(x, wf, bf, false);
    auto diff = [](const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); };
    r.dx_diff = diff(ours_g[0], truth_g[0]);
    r.dweight_diff = diff(ours_g[1], truth_g[1]);
    r.dbias_diff = diff(ours_g[2], truth_g[2]);
    r.aten_dx_diff = diff(aten_g[0], truth_g[0]);
    r.aten_dweight_diff = diff(aten_g[1], truth_g[1]);
    r.aten_dbias_diff = diff(aten_g[2], truth_g[2]);
  }
  if (r.used) {
    r.kernel_s = best_seconds(reps, [&] { group_norm_silu_cl(cl, groups, weight, bias, eps, silu, false); });
  }
  r.aten_s = best_seconds(reps, [&] { aten_norm(x, groups, weight, bias, eps, silu); });
  r.aten_cl_s = best_seconds(reps, [&] { aten_norm(cl, groups, weight, bias, eps, silu); });
  return r;
}

BmmCheck bmm_check(const at::Tensor& a_in, const at::Tensor& b_in, bool a_transposed, bool b_transposed) {
  at::AutoGradMode grad_on(true);
  BmmCheck r;
  const auto a0 = a_in.to(at::kFloat).contiguous(), b0 = b_in.to(at::kFloat).contiguous();
  auto view = [](const at::Tensor& t, bool tr) { return tr ? t.transpose(1, 2) : t; };
  const auto probe = view(a0, a_transposed);
  const auto g = at::rand({probe.size(0), probe.size(1), view(b0, b_transposed).size(2)},
                          at::TensorOptions().dtype(at::kDouble)) * 2 - 1;
  struct Out { at::Tensor out, da, db; };
  auto run = [&](const at::Tensor& a, const at::Tensor& b, bool ours) {
    auto ai = a.detach().clone().requires_grad_(true), bi = b.detach().clone().requires_grad_(true);
    auto av = view(ai, a_transposed), bv = view(bi, b_transposed);
    auto out = ours ? parallel_bmm(av, bv) : torch::bmm(av, bv);
    // gradients of the (possibly transposed) views themselves, as the product's backward gives them
    auto grads = torch::autograd::grad({(out.to(at::kDouble) * g).sum()}, {av, bv});
    if (ours) r.layouts_kept = grads[0].strides() == av.strides() && grads[1].strides() == bv.strides();
    return Out{out.detach().to(at::kDouble), grads[0], grads[1]};
  };
  const auto truth = run(a0.to(at::kDouble), b0.to(at::kDouble), false);
  const auto ours = run(a0, b0, true), aten = run(a0, b0, false);
  auto diff = [](const at::Tensor& x, const at::Tensor& y) { return (x.to(at::kDouble) - y).abs().max().item<double>(); };
  r.out_diff = diff(ours.out, truth.out);
  r.da_diff = diff(ours.da, truth.da);
  r.db_diff = diff(ours.db, truth.db);
  r.aten_out_diff = diff(aten.out, truth.out);
  r.aten_da_diff = diff(aten.da, truth.da);
  r.aten_db_diff = diff(aten.db, truth.db);
  return r;
}

}  // namespace ibq::kernels
