#include "ibq/core/testops.h"

#include "ibq/core/errors.h"

namespace ibq::testops {

double matmul_loop(int64_t size, int64_t iters, const std::function<void(int64_t)>& between) {
  if (size <= 0 || iters <= 0) throw ValueError("size and iters must be positive integers");
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(1234);
  auto a = at::randn({size, size}, gen, at::kFloat) / std::sqrt(static_cast<double>(size));
  auto b = a.clone();
  for (int64_t i = 0; i < iters; ++i) {
    b = at::mm(a, b);
    if (between) between(i + 1);
  }
  return b.sum().item<double>();
}

void fail_with(const std::string& message) {
  TORCH_CHECK(false, message);
  throw std::logic_error("unreachable");
}

}  // namespace ibq::testops
