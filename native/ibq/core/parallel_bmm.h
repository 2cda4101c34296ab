// Batched matrix products split among our intra-op threads.
#pragma once
#include <torch/torch.h>

namespace ibq {

/**
 * torch::bmm(a, b) for float32 CPU tensors a [B, M, K], b [B, K, N], with autograd: the products of the batch (and of
 * row blocks of each, when B is below the thread count) run on the intra-op threads (at::parallel_for), each as one
 * single-threaded BLAS call, in forward and backward. Our jobs hold OpenBLAS to one thread (core/cpu_threads.h:
 * its own threads would spin beside ours), under which torch::bmm runs on one core. Each gradient comes in its input's
 * layout (a transposed view gets a transposed gradient), so that a channels-last activation gets a channels-last
 * gradient. Other dtypes, devices, and autocast: torch::bmm itself.
 */
at::Tensor parallel_bmm(const at::Tensor& a, const at::Tensor& b);

}  // namespace ibq
