// Large CPU blocks kept for reuse while our jobs run.
#pragma once

#include <cstddef>

namespace ibq {

/**
 * libtorch's CPU allocator hands every tensor of 32 MB or more to glibc, which maps it afresh from the kernel and
 * unmaps it when freed: every new activation of a 256 px decoder (134 MB at batch 4) is page-faulted and zeroed by
 * the kernel again (a sixth of encode + decode's time in the kernel). Installed as libtorch's CPU allocator, this
 * keeps blocks of kMinBytes or more that are freed without autograd (inference: encode, decode, evaluation; a
 * training step's peak would grow by what is kept) while one of our jobs runs, and hands them to the next
 * allocation of the same rounded size; blocks are aligned to 2 MB and, when allocated without autograd, advised as
 * transparent huge pages where the kernel has them. It never raises the peak: an allocation that finds no block of its size first returns every
 * kept block to the system, and when the last running job ends all are returned. Smaller allocations, and all
 * allocations while no job runs, behave as libtorch's own allocator.
 */
class LargeBlocks {
 public:
  static constexpr size_t kMinBytes = size_t(4) << 20;
  // Installs the allocator (once; IBQ_LARGE_BLOCKS=0 leaves libtorch's).
  static void install();
  static bool installed();
  // While one of these exists (one per running job), freed large blocks are kept.
  struct JobScope {
    JobScope();
    ~JobScope();
    JobScope(const JobScope&) = delete;
    JobScope& operator=(const JobScope&) = delete;
  };
  // Blocks kept now and their bytes (for tests).
  static size_t kept_bytes();
};

}  // namespace ibq
