// Optimizer updates over many tensors at once on our element-wise kernels (cpu_kernels_table.h): one parallel
// region and one pass over memory for all parameters, instead of several libtorch ops (each a pass over memory and
// a wake-up of the intra-op threads) per parameter. Callers check `same_dense_float` for every tensor pair first.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "ibq/core/cpu_kernels_table.h"

namespace ibq::kernels {

// Whether a and b are float32 CPU tensors of the same sizes and strides, a non-overlapping and dense (so that both
// are one run of a.numel() floats in the same element order).
bool same_dense_float(const at::Tensor& a, const at::Tensor& b);

// One parameter's Adam step: n floats at p, g, m, v (Table::adam).
struct AdamSegment {
  float* p;
  const float* g;
  float* m;
  float* v;
  int64_t n;
  AdamConstants k;
};
void adam_segments(const Table& t, const std::vector<AdamSegment>& segs);

// One LitEma buffer's update: s = s - omd * (s - p) over n floats (Table::ema).
struct EmaSegment {
  float* s;
  const float* p;
  int64_t n;
};
void ema_segments(const Table& t, const std::vector<EmaSegment>& segs, float omd);

}  // namespace ibq::kernels
