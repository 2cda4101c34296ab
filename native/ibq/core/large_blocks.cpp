#include "ibq/core/large_blocks.h"

#include <ATen/core/grad_mode.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <sys/mman.h>

#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "ibq/core/compat.h"

namespace ibq {
namespace {

constexpr size_t kAlign = size_t(2) << 20;

struct State {
  std::mutex mu;
  std::unordered_map<void*, size_t> live;              // our large blocks in use: their sizes
  std::unordered_map<size_t, std::vector<void*>> kept;  // freed while jobs ran, by size
  size_t kept_bytes = 0;
  int jobs = 0;
  bool installed = false;
};

State& state() {
  static State* s = new State();  // never destroyed: tensors may be freed while the process exits
  return *s;
}

// Caller holds the lock.
void release_kept(State& s) {
  for (auto& [size, blocks] : s.kept)
    for (void* p : blocks) std::free(p);
  s.kept.clear();
  s.kept_bytes = 0;
}

void delete_block(void* p) {
  if (!p) return;
  State& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.live.find(p);
    if (it != s.live.end()) {
      const size_t size = it->second;
      s.live.erase(it);
      // kept only when freed in inference (no autograd on this thread): encode, decode, evaluation. A training step
      // interleaves many sizes, and its peak is what it is without keeping.
      if (s.jobs > 0 && !at::GradMode::is_enabled()) {
        s.kept[size].push_back(p);
        s.kept_bytes += size;
      } else {
        std::free(p);
      }
      return;
    }
  }
  c10::free_cpu(p);  // a small block (raw_deallocate)
}

class Allocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) IBQ_ALLOCATE_CONST override {
    const c10::Device cpu(c10::DeviceType::CPU);
    if (n < LargeBlocks::kMinBytes) {
      void* p = c10::alloc_cpu(n);
      return {p, p, &c10::free_cpu, cpu};
    }
    const size_t size = (n + kAlign - 1) / kAlign * kAlign;
    State& s = state();
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(s.mu);
      auto it = s.kept.find(size);
      if (it != s.kept.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
        s.kept_bytes -= size;
      } else {
        release_kept(s);  // no block of this size: the kept ones go first, so the peak stays what it was
      }
    }
    if (!p) {
      if (posix_memalign(&p, kAlign, size) != 0 || !p) {
        void* q = c10::alloc_cpu(n);  // throws libtorch's out-of-memory error
        return {q, q, &c10::free_cpu, cpu};
      }
#ifdef MADV_HUGEPAGE
      // huge pages only where the block may be kept and reused (inference): a training step's blocks go back to
      // the system when freed, and faulting a fresh one in as 2 MB pages (each zeroed whole) cost a train_step
      // 0.1-1.6 s of kernel time per step on the bench's VM instead of ~0.15 s in 4 KB pages
      if (!at::GradMode::is_enabled()) madvise(p, size, MADV_HUGEPAGE);
#endif
    }
    {
      std::lock_guard<std::mutex> lock(s.mu);
      s.live[p] = size;
    }
    return {p, p, &delete_block, cpu};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &delete_block; }
  IBQ_ALLOCATOR_COPY_DATA
};

}  // namespace

void LargeBlocks::install() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.installed) return;
  const char* env = std::getenv("IBQ_LARGE_BLOCKS");
  if (env && std::string(env) == "0") return;
  static Allocator* allocator = new Allocator();
  c10::SetCPUAllocator(allocator, /*priority=*/1);
  s.installed = true;
}

bool LargeBlocks::installed() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return s.installed;
}

LargeBlocks::JobScope::JobScope() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  ++s.jobs;
}

LargeBlocks::JobScope::~JobScope() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (--s.jobs == 0) release_kept(s);
}

size_t LargeBlocks::kept_bytes() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return s.kept_bytes;
}

}  // namespace ibq
