#include "ibq/train/ema.h"

#include <unordered_map>

#include <torch/csrc/autograd/variable.h>

#include "ibq/core/cpu_kernels.h"
#include "ibq/core/cpu_multi_tensor.h"
#include "ibq/core/errors.h"

namespace ibq {

std::string ema_buffer_name(const std::string& parameter_name) {
  std::string out;
  out.reserve(parameter_name.size());
  for (char c : parameter_name)
    if (c != '.') out.push_back(c);
  return out;
}

LitEmaImpl::LitEmaImpl(const torch::nn::Module& model, double decay_value, bool use_num_updates) {
  if (decay_value < 0.0 || decay_value > 1.0) throw ValueError("ema decay: must be between 0 and 1");
  decay = register_buffer("decay", torch::tensor(float(decay_value)));
  num_updates = register_buffer("num_updates", torch::tensor(use_num_updates ? 0 : -1, torch::kInt32));
  torch::NoGradGuard no_grad;
  for (const auto& p : model.named_parameters(/*recurse=*/true)) {
    if (!p.value().requires_grad()) continue;
    auto s = ema_buffer_name(p.key());
    register_buffer(s, p.value().detach().clone());
    names_.emplace_back(p.key(), s);
  }
}

void LitEmaImpl::update(const torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  at::Tensor d = decay;
  if (num_updates.item<int32_t>() >= 0) {
    num_updates.add_(1);
    auto warm = (1 + num_updates) / (10 + num_updates);
    if (warm.item<double>() < decay.item<double>()) d = warm;
  }
  auto one_minus_decay = 1.0 - d;
  auto params = model.named_parameters(/*recurse=*/true);
  auto buffers = named_buffers(/*recurse=*/false);
  // float32 CPU buffers in their parameter's layout: one pass of our kernel over all of them (the same float32
  // operations); the others through libtorch
  const kernels::Table* table = kernels::selected();
  std::vector<kernels::EmaSegment> fused;
  for (const auto& [pname, sname] : names_) {
    const at::Tensor* p = params.find(pname);
    if (!p) throw ValueError("ema: the model has no parameter '" + pname + "'");
    at::Tensor& s = buffers[sname];
    if (s.scalar_type() != p->scalar_type()) s.set_data(s.to(p->scalar_type()));
    if (table && p->is_non_overlapping_and_dense() && s.strides() != p->strides() && s.sizes() == p->sizes()) {
      s.set_data(at::empty_like(*p).copy_(s));  // the parameter's layout (a state dict loads contiguous buffers)
    }
    if (table && kernels::same_dense_float(s, *p)) {
      fused.push_back({s.data_ptr<float>(), p->data_ptr<float>(), s.numel()});
      continue;
    }
    s.sub_(one_minus_decay * (s - *p));
  }
  if (fused.empty()) return;
  kernels::ema_segments(*table, fused, one_minus_decay.item<float>());
  for (const auto& [pname, sname] : names_) torch::autograd::impl::bump_version(buffers[sname]);
}

void LitEmaImpl::copy_to(torch::nn::Module& model) const {
  torch::NoGradGuard no_grad;
  auto params = model.named_parameters(/*recurse=*/true);
  auto buffers = named_buffers(/*recurse=*/false);
  for (const auto& [pname, sname] : names_) {
    at::Tensor* p = params.find(pname);
    if (!p) throw ValueError("ema: the model has no parameter '" + pname + "'");
    p->copy_(buffers[sname]);
  }
}

}  // namespace ibq
