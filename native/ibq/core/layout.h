// The memory layout of 4-D activations on the CPU.
#pragma once
#include <torch/torch.h>

namespace ibq {

// x in channels-last layout when it is a 4-D floating-point CPU tensor (as is otherwise): oneDNN's convolutions,
// forward and backward, run faster on channels-last activations than on NCHW ones on the CPUs measured (bench
// train_step); the elementwise, pooling and normalisation ops keep the layout, so a network converts its input once.
// Values are those of the NCHW computation up to float32 rounding (sums taken in another order).
inline at::Tensor cpu_channels_last(const at::Tensor& x) {
  if (!x.device().is_cpu() || x.dim() != 4 || !at::isFloatingType(x.scalar_type())) return x;
  return x.contiguous(at::MemoryFormat::ChannelsLast);
}

}  // namespace ibq
