// The one place for libtorch API differences between 1.13 (Debian, CI) and 2.x (Python wheels, CUDA).
#pragma once
#include <torch/torch.h>
#include <torch/version.h>

#define IBQ_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace ibq::compat {

// "1.13.0" etc.: the version of the headers this library was compiled against.
inline const char* torch_version() { return TORCH_VERSION; }

// Scaled dot-product attention exists as an ATen op from 2.0 on (flash / memory-efficient kernels on CUDA).
constexpr bool kHasSdpa = IBQ_TORCH_AT_LEAST(2, 0);

}  // namespace ibq::compat
