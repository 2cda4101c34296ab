// The one place for libtorch API differences between 1.13 (Debian, CI) and 2.x (Python wheels, CUDA).
#pragma once
#include <torch/torch.h>
#include <torch/version.h>

#include <cmath>
#include <limits>

#define IBQ_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace ibq::compat {

// "1.13.0" etc.: the version of the headers this library was compiled against.
inline const char* torch_version() { return TORCH_VERSION; }

// Scaled dot-product attention exists as an ATen op from 2.0 on (flash / memory-efficient kernels on CUDA).
constexpr bool kHasSdpa = IBQ_TORCH_AT_LEAST(2, 0);

}  // namespace ibq::compat

namespace ibq::compat {

// Scaled dot-product attention softmax(q k^T / sqrt(D) [+ mask]) v over [B, H, L, D] queries and [B, H, S, D]
// keys/values. `mask` (optional, bool, broadcastable to [B, H, L, S]) is true where a query may attend;
// `causal` (only without a mask, L == S) masks the upper triangle. Dropout on the attention weights with
// probability dropout_p. 2.x: at::scaled_dot_product_attention (flash / memory-efficient kernels on CUDA);
// 1.13: the same math written out (torch.nn.functional.scaled_dot_product_attention's math backend).
inline at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const c10::optional<at::Tensor>& mask, bool causal, double dropout_p) {
#if IBQ_TORCH_AT_LEAST(2, 0)
  return at::scaled_dot_product_attention(q, k, v, mask, dropout_p, causal && !mask.has_value());
#else
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  auto scores = at::matmul(q, k.transpose(-2, -1)).mul_(scale);
  if (mask.has_value()) {
    scores.masked_fill_(mask->logical_not(), -std::numeric_limits<float>::infinity());
  } else if (causal) {
    auto keep = at::ones({q.size(-2), k.size(-2)}, q.options().dtype(at::kBool)).tril();
    scores.masked_fill_(keep.logical_not(), -std::numeric_limits<float>::infinity());
  }
  auto w = at::softmax(scores, -1);
  if (dropout_p > 0) w = at::dropout(w, dropout_p, /*train=*/true);
  return at::matmul(w, v);
#endif
}

}  // namespace ibq::compat
