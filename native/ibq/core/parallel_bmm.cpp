#include "ibq/core/parallel_bmm.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/custom_function.h>

namespace ibq {
namespace {

// a [B, M, K] @ b [B, K, N] -> [B, M, N] contiguous; the work split in B * parts row blocks.
at::Tensor product(const at::Tensor& a, const at::Tensor& b) {
  const int64_t B = a.size(0), M = a.size(1);
  auto out = at::empty({B, M, b.size(2)}, a.options());
  const int64_t threads = at::get_num_threads();
  const int64_t parts = B >= threads ? 1 : std::min<int64_t>(M, (threads + B - 1) / B);
  at::parallel_for(0, B * parts, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t s = i / parts, p = i % parts, r0 = M * p / parts, r1 = M * (p + 1) / parts;
      if (r1 <= r0) continue;
      auto o = out.select(0, s).narrow(0, r0, r1 - r0);
      at::mm_out(o, a.select(0, s).narrow(0, r0, r1 - r0), b.select(0, s));
    }
  });
  return out;
}

// Whether t [B, R, C] is a transposed view of a contiguous [B, C, R] tensor.
bool transposed(const at::Tensor& t) {
  return t.stride(1) == 1 && t.stride(2) == t.size(1) && t.stride(0) == t.size(1) * t.size(2) && t.size(1) > 1;
}

// x @ y in the layout of `like`: contiguous, or transposed (computed as (y^T x^T)^T) when `like` is transposed.
at::Tensor product_like(const at::Tensor& x, const at::Tensor& y, const at::Tensor& like) {
  if (transposed(like)) return product(y.transpose(1, 2), x.transpose(1, 2)).transpose(1, 2);
  return product(x, y);
}

struct ParallelBmm : torch::autograd::Function<ParallelBmm> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& a, const at::Tensor& b) {
    ctx->save_for_backward({a, b});
    return product(a, b);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &a = saved[0], &b = saved[1], &g = grads[0];
    at::Tensor da, db;
    if (ctx->needs_input_grad(0)) da = product_like(g, b.transpose(1, 2), a);
    if (ctx->needs_input_grad(1)) db = product_like(a.transpose(1, 2), g, b);
    return {da, db};
  }
};

}  // namespace

at::Tensor parallel_bmm(const at::Tensor& a, const at::Tensor& b) {
  const bool ours = a.device().is_cpu() && b.device().is_cpu() && a.scalar_type() == at::kFloat &&
                    b.scalar_type() == at::kFloat && a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0) &&
                    a.size(2) == b.size(1) && !at::autocast::is_cpu_enabled() && at::get_num_threads() > 1;
  if (!ours) return torch::bmm(a, b);
  if (at::GradMode::is_enabled() && (a.requires_grad() || b.requires_grad())) return ParallelBmm::apply(a, b);
  return product(a, b);
}

}  // namespace ibq
