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

}  // namespace ibq::kernels
