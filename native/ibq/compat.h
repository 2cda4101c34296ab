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

// ---- autocast (tokenizer area): enabling mixed precision for one call on the current thread.
#include <ATen/autocast_mode.h>

namespace ibq::compat {

// Enables autocast with `dtype` (kBFloat16 / kHalf) for `device` while alive, restoring the previous state
// (autocast state is thread-local; jobs run on worker threads). A null dtype leaves autocast untouched.
class AutocastGuard {
 public:
  AutocastGuard(c10::optional<at::ScalarType> dtype, const at::Device& device) : active_(dtype.has_value()) {
    if (!active_) return;
    cuda_ = device.is_cuda();
#if IBQ_TORCH_AT_LEAST(2, 4)
    const auto type = cuda_ ? at::kCUDA : at::kCPU;
    prev_enabled_ = at::autocast::is_autocast_enabled(type);
    prev_dtype_ = at::autocast::get_autocast_dtype(type);
    at::autocast::set_autocast_enabled(type, true);
    at::autocast::set_autocast_dtype(type, *dtype);
#else
    if (cuda_) {
      prev_enabled_ = at::autocast::is_enabled();
      prev_dtype_ = at::autocast::get_autocast_gpu_dtype();
      at::autocast::set_enabled(true);
      at::autocast::set_autocast_gpu_dtype(*dtype);
    } else {
      prev_enabled_ = at::autocast::is_cpu_enabled();
      prev_dtype_ = at::autocast::get_autocast_cpu_dtype();
      at::autocast::set_cpu_enabled(true);
      at::autocast::set_autocast_cpu_dtype(*dtype);
    }
#endif
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (!active_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if IBQ_TORCH_AT_LEAST(2, 4)
    const auto type = cuda_ ? at::kCUDA : at::kCPU;
    at::autocast::set_autocast_enabled(type, prev_enabled_);
    at::autocast::set_autocast_dtype(type, prev_dtype_);
#else
    if (cuda_) {
      at::autocast::set_enabled(prev_enabled_);
      at::autocast::set_autocast_gpu_dtype(prev_dtype_);
    } else {
      at::autocast::set_cpu_enabled(prev_enabled_);
      at::autocast::set_autocast_cpu_dtype(prev_dtype_);
    }
#endif
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_, cuda_ = false, prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kBFloat16;
};

}  // namespace ibq::compat
