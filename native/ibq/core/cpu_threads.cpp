#include "ibq/core/cpu_threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <atomic>

#include <cstdlib>
#include <mutex>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

namespace ibq {
namespace {

using SetThreads = void (*)(int);
using GetThreads = int (*)();

struct Blas {
  SetThreads set = nullptr;
  GetThreads get = nullptr;
  std::mutex mu;
  int jobs = 0;       // our jobs running now
  int previous = 0;   // the setting before the first of them
};

Blas* blas() {
  static Blas* b = [] {
    auto* out = new Blas();  // never destroyed: jobs may end while the process exits
    if (std::getenv("OPENBLAS_NUM_THREADS") || std::getenv("GOTO_NUM_THREADS")) return out;
    out->set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    out->get = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
    if (!out->set || !out->get) out->set = nullptr;
    return out;
  }();
  return b;
}

std::atomic<int> g_job_threads{0};  // 0: nothing set
std::mutex g_source_mu;
std::string g_source, g_reason;

}  // namespace

bool set_job_threads(int n, const std::string& source, const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(g_source_mu);
    if (source != "user" && !g_source.empty()) return false;  // a default never replaces a choice
    g_source = source;
    g_reason = reason;
  }
  g_job_threads.store(n);
  at::set_num_threads(n);
  return true;
}

int job_threads() {
  const int n = g_job_threads.load();
  return n > 0 ? n : at::get_num_threads();
}

std::pair<std::string, std::string> job_threads_source() {
  std::lock_guard<std::mutex> lock(g_source_mu);
  return {g_source, g_reason};
}

BlasJobThreads::BlasJobThreads() {
  Blas* b = blas();
  if (!b->set) return;
  std::lock_guard<std::mutex> lock(b->mu);
  if (b->jobs++ == 0) {
    b->previous = b->get();
    if (b->previous != 1) b->set(1);
  }
}

BlasJobThreads::~BlasJobThreads() {
  Blas* b = blas();
  if (!b->set) return;
  std::lock_guard<std::mutex> lock(b->mu);
  if (--b->jobs == 0 && b->previous != 1) b->set(b->previous);
}

bool BlasJobThreads::active() { return blas()->set != nullptr; }

int blas_threads() {
  static const auto get = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return get ? get() : 0;
}

bool cpu_has_native_bf16() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  unsigned a, b, c, d;
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(1, 0, a, b, c, d);
  if (!(c & (1u << 27))) return false;  // OSXSAVE
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  const unsigned long long xcr0 = (static_cast<unsigned long long>(hi) << 32) | lo;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx512_os = (xcr0 & 0xe6) == 0xe6;  // SSE, AVX, opmask, ZMM state
  const bool amx_os = (xcr0 & (3ull << 17)) == (3ull << 17);
  const bool amx_bf16 = d & (1u << 22);
  const bool avx512f = b & (1u << 16);
  __cpuid_count(7, 1, a, b, c, d);
  const bool avx512_bf16 = a & (1u << 5);
  return (avx512_os && avx512f && avx512_bf16) || (amx_os && amx_bf16);
#else
  return false;
#endif
}

}  // namespace ibq
