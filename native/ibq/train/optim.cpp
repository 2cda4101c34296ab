#include "ibq/train/optim.h"

#include <cmath>

#include <torch/csrc/autograd/variable.h>

#include "ibq/core/cpu_kernels.h"
#include "ibq/core/cpu_multi_tensor.h"
#include "ibq/core/errors.h"

namespace ibq {

Adam::Adam(std::vector<at::Tensor> params, AdamOptions opts)
    : params_(std::move(params)), opts_(opts), state_(params_.size()) {}

void Adam::zero_grad() {
  for (auto& p : params_) {
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
  }
}

// A moment tensor in p's memory layout (a restored state may hold contiguous moments of a channels-last weight).
static void match_layout(at::Tensor& t, const at::Tensor& p) {
  if (t.strides() != p.strides() && p.is_non_overlapping_and_dense()) t = at::empty_like(p).copy_(t);
}

void Adam::step() {
  torch::NoGradGuard no_grad;
  const double b1 = opts_.beta1, b2 = opts_.beta2;
  // float32 CPU parameters whose gradient and moments share their layout: one pass of our kernel over all of them
  const kernels::Table* table = opts_.weight_decay == 0 ? kernels::selected() : nullptr;
  std::vector<kernels::AdamSegment> fused;
  std::vector<at::Tensor> touched;
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i];
    if (!p.grad().defined()) continue;
    at::Tensor grad = p.grad();
    auto& st = state_[i];
    if (!st) {
      st = AdamParamState{0, at::zeros_like(p, at::MemoryFormat::Preserve), at::zeros_like(p, at::MemoryFormat::Preserve)};
    }
    st->step += 1;
    const double bc1 = 1 - std::pow(b1, st->step);
    const double bc2 = 1 - std::pow(b2, st->step);
    const double step_size = opts_.lr / bc1;
    if (table && kernels::same_dense_float(p, grad)) {
      match_layout(st->exp_avg, p);
      match_layout(st->exp_avg_sq, p);
      if (kernels::same_dense_float(p, st->exp_avg) && kernels::same_dense_float(p, st->exp_avg_sq)) {
        const kernels::AdamConstants k{float(b1), float(1 - b1), float(b2), float(1 - b2), float(std::sqrt(bc2)),
                                       float(opts_.eps), float(-step_size)};
        fused.push_back({p.data_ptr<float>(), grad.data_ptr<float>(), st->exp_avg.data_ptr<float>(),
                         st->exp_avg_sq.data_ptr<float>(), p.numel(), k});
        touched.push_back(p);
        continue;
      }
    }
    if (opts_.weight_decay != 0) grad = grad.add(p, opts_.weight_decay);
    st->exp_avg.mul_(b1).add_(grad, 1 - b1);
    st->exp_avg_sq.mul_(b2).addcmul_(grad, grad, 1 - b2);
    auto denom = (st->exp_avg_sq.sqrt() / std::sqrt(bc2)).add_(opts_.eps);
    p.addcdiv_(st->exp_avg, denom, -step_size);
  }
  if (fused.empty()) return;
  kernels::adam_segments(*table, fused);
  for (auto& p : touched) torch::autograd::impl::bump_version(p);  // as an in-place op would
}

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> norms;
  for (const auto& p : params)
    if (p.grad().defined()) norms.push_back(at::norm(p.grad().detach(), 2));
  if (norms.empty()) return 0.0;
  auto total = at::norm(at::stack(norms), 2);
  // Python's `float / tensor` is tensor.reciprocal() * float
  auto coef = ((total + 1e-6).reciprocal() * max_norm).clamp_max(1.0);
  for (const auto& p : params)
    if (p.grad().defined()) p.grad().detach().mul_(coef);
  return total.item<double>();
}

double LrSchedule::factor(int64_t step) const {
  if (type == "None") return 1.0;
  if (step < warmup_steps) return double(step) / double(std::max<int64_t>(1, warmup_steps));
  if (type == "linear-warmup") return 1.0;
  const double m = 0.5 * (std::cos(double(step - warmup_steps) / double(max_steps - warmup_steps) * M_PI) + 1);
  return std::max(m, multiplier_min);
}

}  // namespace ibq
