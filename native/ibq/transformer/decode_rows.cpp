#include "ibq/transformer/decode_rows.h"

#include <cmath>

namespace ibq::decode {

// Compiled for the baseline instruction set (no FMA contraction): the same roundings as the tensor formulas.
void norm_modulate(const float* x, int64_t C, const float* weight, float eps, const float* scale, const float* shift,
                   float* out) {
  float s = 0.f;
  for (int64_t c = 0; c < C; ++c) s += x[c] * x[c];
  const float r = 1.f / std::sqrt(s / static_cast<float>(C) + eps);
  for (int64_t c = 0; c < C; ++c) out[c] = ((x[c] * r) * weight[c]) * (scale[c] + 1.f) + shift[c];
}

void rotate(const float* x, int64_t heads, int64_t hd, const float* freqs, float* out, int64_t head_stride,
            int64_t elem_stride) {
  for (int64_t h = 0; h < heads; ++h) {
    const float* xh = x + h * hd;
    float* oh = out + h * head_stride;
    for (int64_t j = 0; j < hd / 2; ++j) {
      const float x0 = xh[2 * j], x1 = xh[2 * j + 1], c = freqs[2 * j], s = freqs[2 * j + 1];
      const float a = x0 * c, b = x1 * s, d = x1 * c, e = x0 * s;
      oh[(2 * j) * elem_stride] = a - b;
      oh[(2 * j + 1) * elem_stride] = d + e;
    }
  }
}

void gated_add(float* x, const float* y, const float* gate, int64_t C) {
  for (int64_t c = 0; c < C; ++c) x[c] = x[c] + y[c] * gate[c];
}

}  // namespace ibq::decode
