// The thread settings of the libraries our jobs call, and the CPU features the package reports.
#pragma once

#include <string>
#include <utility>

namespace ibq {

// Intra-op threads of our jobs (each worker applies it before a job runs), and why: `source` is 'user'
// (setNumThreads, --threads) or the default's ('affinity', 'cgroup', 'env', 'launch'; lib/core/threads.ts). A
// default applies only while nothing was set (false: ignored), so a worker_thread loading the addon keeps the
// process's choice. Sets the calling thread's count too.
bool set_job_threads(int n, const std::string& source, const std::string& reason);
// The count set (libtorch's own count on the calling thread while none is).
int job_threads();
// {source, reason}; empty strings while nothing was set.
std::pair<std::string, std::string> job_threads_source();

/**
 * Holds the BLAS library's own thread pool to one thread while any of our jobs runs, and gives back the
 * process's previous setting when the last one ends. libtorch sends float32 matrix products to the BLAS
 * (OpenBLAS in Debian's build), whose pthreads pool spins in sched_yield for a while after every call; next to
 * libtorch's intra-op threads on the same cores that spinning takes a third of the CPU. Our parallelism is
 * libtorch's (at::set_num_threads per worker). Nothing is changed when the user chose the BLAS thread count
 * (OPENBLAS_NUM_THREADS / GOTO_NUM_THREADS in the environment) or when the BLAS has no such control (MKL:
 * at::set_num_threads sets it; found at run time, so any libtorch build links).
 */
class BlasJobThreads {
 public:
  BlasJobThreads();
  ~BlasJobThreads();
  BlasJobThreads(const BlasJobThreads&) = delete;
  BlasJobThreads& operator=(const BlasJobThreads&) = delete;
  // Whether jobs run the BLAS on one thread (false: the user's or the library's setting stays).
  static bool active();
};

/** The BLAS library's thread count now (OpenBLAS); 0 when it has no such query. */
int blas_threads();

/** Whether the CPU computes bfloat16 natively: AVX-512 BF16 or AMX-BF16 (with the OS saving their state). */
bool cpu_has_native_bf16();

}  // namespace ibq
