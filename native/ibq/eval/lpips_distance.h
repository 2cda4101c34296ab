// The per-layer distance of LPIPS: (normalize_tensor(f0) - normalize_tensor(f1))^2, with the official
// normalize_tensor x / (sqrt(sum_c x^2) + 1e-10) over the channels of each pixel.
#pragma once
#include <torch/torch.h>

namespace ibq {

// f0, f1: [N, C, H, W] features of the two images. Returns [N, C, H, W] in f0's layout. For float32 CPU
// channels-last inputs of the same shape it is one pass per direction (an autograd node keeping f0, f1 and the
// per-pixel norms; d/df of a pixel whose norm is 0 taken as 0 where torch's composition gives NaN); otherwise
// the composition of libtorch ops. Values within float32 rounding of the composition (the norms are summed in
// float64).
at::Tensor lpips_normalized_sq_diff(const at::Tensor& f0, const at::Tensor& f1);

}  // namespace ibq
