// Internal test operations for the job machinery (not part of the public API).
#pragma once
#include <torch/torch.h>
#include <functional>

namespace ibq::testops {

// Multiplies two seeded [size, size] float32 matrices `iters` times, calling `between` (which may throw,
// e.g. on abort) after every product. Returns the sum of the last product, so the work cannot be elided.
double matmul_loop(int64_t size, int64_t iters, const std::function<void(int64_t)>& between);

// Always throws a c10::Error (through TORCH_CHECK) carrying `message`: tests the error path.
[[noreturn]] void fail_with(const std::string& message);

}  // namespace ibq::testops
