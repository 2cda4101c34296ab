// Checks of our CPU kernels against libtorch, for the tests (testOps.groupNorm) and the benchmark's probes.
#pragma once
#include <torch/torch.h>

namespace ibq::kernels {

struct GroupNormCheck {
  bool used = false;          // the kernel took the input (else both sides are libtorch's)
  double max_diff = 0.0;      // max |kernel - float64 truth|
  double aten_max_diff = 0.0; // max |libtorch float32 - float64 truth|
  double kernel_s = 0.0;      // seconds per call, best of `reps` (channels-last input)
  double aten_s = 0.0;        // libtorch group_norm (+ silu) on the contiguous input, best of `reps`
  double aten_cl_s = 0.0;     // the same on the channels-last input
  // Backward of sum(out * grad_out) (grad_out seeded uniform in [-1, 1]): max |d - float64 truth| of our kernel's
  // autograd node and of libtorch's float32 group_norm (+ silu), for d/dx, d/dweight, d/dbias.
  double dx_diff = 0.0, dweight_diff = 0.0, dbias_diff = 0.0;
  double aten_dx_diff = 0.0, aten_dweight_diff = 0.0, aten_dbias_diff = 0.0;
};

// GroupNorm(groups, eps, weight, bias) (+ SiLU) of x [N, C, H, W] float32 by our kernel and by libtorch, against
// libtorch's float64 result, forward and backward (through autograd); timings (forward, no autograd) when reps > 0.
GroupNormCheck group_norm_check(const at::Tensor& x, int64_t groups, const at::Tensor& weight, const at::Tensor& bias,
                                double eps, bool silu, int64_t reps);

struct BmmCheck {
  double out_diff = 0.0, da_diff = 0.0, db_diff = 0.0;  // max |parallel_bmm - torch::bmm in float64|, and of grads
  double aten_out_diff = 0.0, aten_da_diff = 0.0, aten_db_diff = 0.0;  // the same of torch::bmm in float32
  bool layouts_kept = false;  // each gradient has its input's strides (a transposed view gets a transposed grad)
};

// parallel_bmm (core/parallel_bmm.h) of a [B, M, K] (given as [B, K, M] and transposed when `a_transposed`) and
// b [B, K, N] (likewise) against torch::bmm: forward, and backward of sum(out * g) with g seeded in [-1, 1].
BmmCheck bmm_check(const at::Tensor& a, const at::Tensor& b, bool a_transposed, bool b_transposed);

}  // namespace ibq::kernels
