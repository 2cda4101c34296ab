// Drivers of our element-wise CPU kernels (cpu_kernels_table.h): choice of the instruction set at run time,
// threads (at::parallel_for), and the libtorch-facing functions.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "ibq/core/cpu_kernels_table.h"

namespace ibq::kernels {

// The kernel tables this CPU runs, widest first ('avx512', 'avx2').
std::vector<const Table*> available();
// The table our kernels use: IBQ_KERNEL (else IBQ_QUANTIZER_KERNEL; avx512, avx2, or aten: none) picks one, else
// the widest this CPU runs.
// Null: libtorch ops everywhere (no table, or IBQ_KERNEL=aten).
const Table* selected();

// Whether group_norm_silu_cl takes x: a channels-last float32 CPU tensor [N, C, H, W] (C a multiple of the
// groups and of the vector width), a table selected. (cpu_group_norm.cpp)
bool group_norm_cl_applies(const at::Tensor& x, int64_t groups);
// GroupNorm(groups, eps) with the affine weight and bias, followed by SiLU when `silu`: the values of
// torch.group_norm (+ silu) on the same input, within float32 rounding (the statistics are summed in another
// order). Reads x twice (statistics, then normalisation) and writes the result channels-last; into x itself
// when `in_place` (without autograd only). With autograd on and x, weight or bias requiring gradients it is a node
// of the graph whose backward runs on our kernels too: it keeps x and the per-group mean and 1/std (not the
// normalised values nor the SiLU's), recomputes y = GroupNorm(x) and gives d/dx, d/dweight, d/dbias of
// GroupNorm(+SiLU) (libtorch's group_norm backward makes channels-last tensors contiguous and back, two copies).
at::Tensor group_norm_silu_cl(const at::Tensor& x, int64_t groups, const at::Tensor& weight, const at::Tensor& bias,
                              double eps, bool silu, bool in_place);

// This CPU's float32 FMA peak on one thread, GFLOP/s (2 operations per lane and FMA), measured for about
// `seconds` with the selected kernel (else the widest; `kernel` receives its name); 0 without a table.
double fma_peak_gflops(double seconds, std::string* kernel);

}  // namespace ibq::kernels
