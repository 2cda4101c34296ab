// The one place for libtorch API differences between 1.13 (Debian, CI) and 2.x (Python wheels, CUDA).
#pragma once
#include <torch/torch.h>
#include <torch/version.h>
#include <ATen/autocast_mode.h>

#include <cmath>
#include <limits>
#include <string>

#define IBQ_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// c10::Allocator: allocate() lost its const and copy_data() became a pure virtual in 2.3.
#if IBQ_TORCH_AT_LEAST(2, 3)
#define IBQ_ALLOCATE_CONST
#define IBQ_ALLOCATOR_COPY_DATA \
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
#else
#define IBQ_ALLOCATE_CONST const
#define IBQ_ALLOCATOR_COPY_DATA
#endif

namespace ibq::compat {

// "1.13.0" etc.: the version of the headers this library was compiled against.
inline const char* torch_version() { return TORCH_VERSION; }

// Scaled dot-product attention exists as an ATen op from 2.0 on (flash / memory-efficient kernels on CUDA).
constexpr bool kHasSdpa = IBQ_TORCH_AT_LEAST(2, 0);

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

// ---- autocast: enabling mixed precision for one call on the current thread.

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

// The dtype autocast gives matrix products on `device` right now (kBFloat16 / kHalf), or nullopt when autocast
// is off there (the chunked quantizer mirrors what an autocast einsum would compute).
inline c10::optional<at::ScalarType> active_autocast_dtype(const at::Device& device) {
#if IBQ_TORCH_AT_LEAST(2, 4)
  const auto type = device.is_cuda() ? at::kCUDA : at::kCPU;
  if (!at::autocast::is_autocast_enabled(type)) return c10::nullopt;
  return at::autocast::get_autocast_dtype(type);
#else
  if (device.is_cuda()) {
    if (!at::autocast::is_enabled()) return c10::nullopt;
    return at::autocast::get_autocast_gpu_dtype();
  }
  if (!at::autocast::is_cpu_enabled()) return c10::nullopt;
  return at::autocast::get_autocast_cpu_dtype();
#endif
}

// Turns autocast off for the current thread while alive (ops keep the dtypes they are given).
class AutocastOff {
 public:
  AutocastOff() : guard_(c10::autocast_dispatch_keyset) {}

 private:
  c10::impl::ExcludeDispatchKeyGuard guard_;
};

// ---- warnings: c10 keeps one warning handler per thread. 1.13: c10::Warning::{get,set}_warning_handler and
// process(location, msg, verbatim); 2.x: c10::WarningUtils::{get,set}_warning_handler and process(const Warning&).

// While alive, the calling thread's TORCH_WARN messages for which `drop(message)` is true are discarded; the
// others go to the handler that was installed before.
class WarningFilter : public c10::WarningHandler {
 public:
  using Predicate = bool (*)(const std::string& message);
  explicit WarningFilter(Predicate drop) : drop_(drop), prev_(get()) { set(this); }
  ~WarningFilter() override { set(prev_); }
  WarningFilter(const WarningFilter&) = delete;
  WarningFilter& operator=(const WarningFilter&) = delete;

#if IBQ_TORCH_AT_LEAST(2, 0)
  void process(const c10::Warning& w) override {
    if (!drop_(w.msg())) prev_->process(w);
  }
#else
  void process(const c10::SourceLocation& where, const std::string& msg, const bool verbatim) override {
    if (!drop_(msg)) prev_->process(where, msg, verbatim);
  }
#endif

 private:
#if IBQ_TORCH_AT_LEAST(2, 0)
  static c10::WarningHandler* get() { return c10::WarningUtils::get_warning_handler(); }
  static void set(c10::WarningHandler* h) { c10::WarningUtils::set_warning_handler(h); }
#else
  static c10::WarningHandler* get() { return c10::Warning::get_warning_handler(); }
  static void set(c10::WarningHandler* h) { c10::Warning::set_warning_handler(h); }
#endif
  Predicate drop_;
  c10::WarningHandler* prev_;
};

}  // namespace ibq::compat

// ---- c10d (distributed): only in translation units that define IBQ_C10D before including this header, so the
// gloo/c10d headers stay out of the others. 1.13: ProcessGroupGloo/NCCL derive from c10d::ProcessGroup and the
// Reducer takes per_bucket_size_limits; 2.x: they are c10d::Backend objects registered on a c10d::ProcessGroup,
// and later 2.x Reducers drop per_bucket_size_limits and add skip_all_reduce_unused_params / use_python_reducer.
// The overloads are picked by what the headers offer (std::is_constructible / is_base_of), not by version number.
#if defined(IBQ_C10D)
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1  // Debian's libtorch and the official builds ship Gloo
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/comm.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#if defined(USE_C10D_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <type_traits>
#include <unordered_map>
#include <string>
#include <vector>

namespace ibq::compat {

// Wraps a communication backend (Gloo or NCCL) in the ProcessGroup the Reducer and the collectives take.
// (PG is a template parameter only so that the 2.x branch is not checked against 1.13's headers.)
template <class B, class PG = c10d::ProcessGroup>
c10::intrusive_ptr<PG> as_process_group(const c10::intrusive_ptr<c10d::Store>& store, const c10::intrusive_ptr<B>& backend,
                                        bool cuda) {
  if constexpr (std::is_base_of_v<PG, B>) {
    (void)store;
    (void)cuda;
    return backend;  // 1.13
  } else {
    c10::intrusive_ptr<PG> pg;
    if constexpr (std::is_constructible_v<PG, const c10::intrusive_ptr<c10d::Store>&, int, int>) {
      pg = c10::make_intrusive<PG>(store, backend->getRank(), backend->getSize());
    } else {
      auto o = c10::make_intrusive<typename PG::Options>(cuda ? "nccl" : "gloo", backend->getBackendOptions()->timeout);
      pg = c10::make_intrusive<PG>(store, backend->getRank(), backend->getSize(), o);
    }
    const auto type = cuda ? PG::BackendType::NCCL : PG::BackendType::GLOO;
    pg->setDefaultBackend(type);
    pg->setBackend(cuda ? c10::DeviceType::CUDA : c10::DeviceType::CPU, type, backend);
    return pg;
  }
}

// c10d::Reducer over `params` (one model replica) with DDP's defaults otherwise.
template <class R = c10d::Reducer>
std::unique_ptr<R> make_reducer(std::vector<at::Tensor> params, std::vector<std::vector<size_t>> buckets,
                                std::vector<size_t> bucket_limits, c10::intrusive_ptr<c10d::ProcessGroup> pg,
                                int64_t bucket_bytes_cap, bool find_unused,
                                std::unordered_map<size_t, std::string> names, int64_t first_bucket_bytes_cap) {
  using P = c10::intrusive_ptr<c10d::ProcessGroup>;
  using V = std::vector<at::Tensor>;
  using I = std::vector<std::vector<size_t>>;
  using S = std::vector<size_t>;
  using B = std::vector<bool>;
  using N = std::unordered_map<size_t, std::string>;
  std::vector<bool> sparse(params.size(), false);
  if constexpr (std::is_constructible_v<R, V, I, S, P, B, int64_t, bool, bool, N, int64_t>) {
    return std::make_unique<R>(std::move(params), std::move(buckets), std::move(bucket_limits), std::move(pg),
                               std::move(sparse), bucket_bytes_cap, find_unused, /*gradient_as_bucket_view=*/false,
                               std::move(names), first_bucket_bytes_cap);
  } else if constexpr (std::is_constructible_v<R, V, I, P, B, int64_t, bool, bool, N, int64_t>) {
    return std::make_unique<R>(std::move(params), std::move(buckets), std::move(pg), std::move(sparse),
                               bucket_bytes_cap, find_unused, false, std::move(names), first_bucket_bytes_cap);
  } else {
    return std::make_unique<R>(std::move(params), std::move(buckets), std::move(pg), std::move(sparse),
                               bucket_bytes_cap, find_unused, false, std::move(names), first_bucket_bytes_cap,
                               /*skip_all_reduce_unused_params=*/false, /*use_python_reducer=*/false);
  }
}

}  // namespace ibq::compat
#endif  // IBQ_C10D
