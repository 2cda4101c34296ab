// Row-wise pieces of the one-token decode step (batch_engine.h) on raw float32 rows, without intermediate tensors:
// AdaLN-modulated RMSNorm, 2D rotary embedding with the KV-cache write, gated residual. Each row is computed alone,
// in a fixed order of float operations (one rounding per product or sum, no fused multiply-add), so a row's
// result never depends on the other rows. The formulas are the model's (transformer.h): RMSNorm
// x * rsqrt(mean(x^2) + eps) * weight, then * (1 + scale) + shift; rotation (x0 c - x1 s, x1 c + x0 s).
#pragma once
#include <cstdint>

namespace ibq::decode {

// out[c] = ((x[c] * r) * weight[c]) * (scale[c] + 1) + shift[c], r = 1 / sqrt(sum_c(x[c] x[c]) / C + eps) (the sum
// taken in order c = 0..C-1).
void norm_modulate(const float* x, int64_t C, const float* weight, float eps, const float* scale, const float* shift,
                   float* out);

// Rotates `heads` vectors of hd floats (pairs (x[2j], x[2j+1]) by freqs[j] = (cos, sin)) from `x` into `out`, the
// head h at out + h * head_stride with element stride `elem_stride` (the transposed key cache: stride T).
void rotate(const float* x, int64_t heads, int64_t hd, const float* freqs, float* out, int64_t head_stride,
            int64_t elem_stride);

// x[c] += y[c] * gate[c] for c < C.
void gated_add(float* x, const float* y, const float* gate, int64_t C);

}  // namespace ibq::decode
