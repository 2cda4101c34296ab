// Optimizer pieces of tokenizer training, written out so that their state has the official (Python) shape
// and the arithmetic is torch.optim.Adam's single-tensor path (torch 1.13 / 2.x on CPU) step for step:
// Adam, gradient clipping by global norm (torch.nn.utils.clip_grad_norm_) and the official IBQ LR lambdas
// (src/IBQ/modules/scheduler/lr_scheduler.py) applied as torch's LambdaLR.
#pragma once
#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

namespace ibq {

struct AdamOptions {
  double lr = 1e-4;
  double beta1 = 0.5, beta2 = 0.9;  // the official tokenizer betas
  double eps = 1e-8;
  double weight_decay = 0.0;
};

// Per-parameter Adam state (torch: state[i] = {step, exp_avg, exp_avg_sq}); absent before the first step.
struct AdamParamState {
  double step = 0;
  at::Tensor exp_avg, exp_avg_sq;
};

class Adam {
 public:
  Adam(std::vector<at::Tensor> params, AdamOptions opts);

  // torch.optim.Adam.step for every parameter with a gradient (parameters without one are skipped):
  // m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
  void step();
  // Drops the gradients (set_to_none, as torch 2.x's zero_grad()).
  void zero_grad();

  std::vector<at::Tensor>& params() { return params_; }
  AdamOptions& options() { return opts_; }
  std::vector<std::optional<AdamParamState>>& state() { return state_; }
  const std::vector<std::optional<AdamParamState>>& state() const { return state_; }

 private:
  std::vector<at::Tensor> params_;
  AdamOptions opts_;
  std::vector<std::optional<AdamParamState>> state_;
};

// torch.nn.utils.clip_grad_norm_(params, max_norm, 2): scales every gradient by min(1, max_norm / (total +
// 1e-6)) with total the 2-norm of the per-parameter 2-norms. Returns the total norm before clipping.
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

// The official LR schedules. "None": constant; "linear-warmup": step / max(1, warmup) until warmup, then 1;
// "linear-warmup_cosine-decay": the same warm-up, then max(0.5 (cos(pi (step - warmup) / (max_steps -
// warmup)) + 1), min_lr / lr). The factor multiplies the base LR (LambdaLR). Made from validated settings
// (TrainerOptions: its declaration holds the allowed types).
struct LrSchedule {
  std::string type = "None";
  int64_t warmup_steps = 0, max_steps = 0;
  double multiplier_min = 0.0;
  bool active() const { return type != "None"; }
  double factor(int64_t step) const;
};

}  // namespace ibq
