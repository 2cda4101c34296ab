#include "ibq/train/optim.h"

#include <cmath>

#include "ibq/core/errors.h"

namespace ibq {

Adam::Adam(std::vector<at::Tensor> params, AdamOptions opts)
    : params_(std::move(params)), opts_(opts), state_(params_.size()) {}

void Adam::zero_grad() {
  for (auto& p : params_) {
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
  }
}

void Adam::step() {
  torch::NoGradGuard no_grad;
  const double b1 = opts_.beta1, b2 = opts_.beta2;
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i];
    if (!p.grad().defined()) continue;
    at::Tensor grad = p.grad();
    auto& st = state_[i];
    if (!st) {
      st = AdamParamState{0, at::zeros_like(p, at::MemoryFormat::Preserve), at::zeros_like(p, at::MemoryFormat::Preserve)};
    }
    st->step += 1;
    if (opts_.weight_decay != 0) grad = grad.add(p, opts_.weight_decay);
    st->exp_avg.mul_(b1).add_(grad, 1 - b1);
    st->exp_avg_sq.mul_(b2).addcmul_(grad, grad, 1 - b2);
    const double bc1 = 1 - std::pow(b1, st->step);
    const double bc2 = 1 - std::pow(b2, st->step);
    const double step_size = opts_.lr / bc1;
    auto denom = (st->exp_avg_sq.sqrt() / std::sqrt(bc2)).add_(opts_.eps);
    p.addcdiv_(st->exp_avg, denom, -step_size);
  }
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
