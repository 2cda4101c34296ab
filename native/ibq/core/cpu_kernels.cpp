#include "ibq/core/cpu_kernels.h"

#include <ATen/Parallel.h>

#include <chrono>
#include <cmath>
#include <cstdlib>

#include "ibq/core/errors.h"

namespace ibq::kernels {

std::vector<const Table*> available() {
  std::vector<const Table*> out;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (table_avx512() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) out.push_back(table_avx512());
  if (table_avx2() && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) out.push_back(table_avx2());
#endif
  return out;
}

const Table* selected() {
  static const Table* chosen = [] {
    const char* env = std::getenv("IBQ_KERNEL");
    if (!env) env = std::getenv("IBQ_QUANTIZER_KERNEL");  // one switch for all our kernels (quantizer_fused.cpp)
    const std::string want = env ? env : "";
    if (want == "aten") return static_cast<const Table*>(nullptr);
    for (const auto* t : available())
      if (want.empty() || want == t->name) return t;
    return static_cast<const Table*>(nullptr);
  }();
  return chosen;
}

double fma_peak_gflops(double seconds, std::string* kernel) {
  const auto tables = available();
  const Table* chosen = selected() ? selected() : tables.empty() ? nullptr : tables.front();
  if (!chosen) return 0.0;
  const Table& t = *chosen;
  if (kernel) *kernel = t.name;
  using clock = std::chrono::steady_clock;
  int64_t iters = 1 << 16;
  double best = 0.0;
  const auto stop = clock::now() + std::chrono::duration<double>(seconds);
  do {  // the best of repeated runs: a run that another process interrupted measures less
    const auto t0 = clock::now();
    const double flops = t.fma_chains(iters, 1.0f);
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    if (dt < 0.02) iters *= 2;
    else best = std::max(best, flops / dt / 1e9);
  } while (clock::now() < stop || best == 0.0);
  return best;
}

}  // namespace ibq::kernels
