#include "ibq/core/cpu_multi_tensor.h"

#include <ATen/Parallel.h>

#include <algorithm>

namespace ibq::kernels {
namespace {

// Elements per task of a multi-tensor update (a few memory pages per tensor touched).
constexpr int64_t kGrain = 1 << 15;

// f(segment, offset, count) over segments of the given sizes, their concatenation split among the intra-op threads
// in one parallel region.
template <class F>
void over_segments(const std::vector<int64_t>& sizes, F&& f) {
  std::vector<int64_t> ends(sizes.size());
  int64_t total = 0;
  for (size_t i = 0; i < sizes.size(); ++i) ends[i] = total += sizes[i];
  at::parallel_for(0, total, kGrain, [&](int64_t b, int64_t e) {
    size_t i = std::upper_bound(ends.begin(), ends.end(), b) - ends.begin();
    for (; i < ends.size() && b < e; ++i) {
      const int64_t start = ends[i] - sizes[i], hi = std::min(e, ends[i]);
      f(i, b - start, hi - b);
      b = hi;
    }
  });
}

}  // namespace

bool same_dense_float(const at::Tensor& a, const at::Tensor& b) {
  return a.defined() && b.defined() && a.device().is_cpu() && b.device().is_cpu() && a.scalar_type() == at::kFloat &&
         b.scalar_type() == at::kFloat && a.sizes() == b.sizes() && a.strides() == b.strides() &&
         a.is_non_overlapping_and_dense();
}

void adam_segments(const Table& t, const std::vector<AdamSegment>& segs) {
  std::vector<int64_t> sizes;
  for (const auto& s : segs) sizes.push_back(s.n);
  over_segments(sizes, [&](size_t i, int64_t off, int64_t n) {
    const auto& s = segs[i];
    t.adam(s.p + off, s.g + off, s.m + off, s.v + off, n, s.k);
  });
}

void ema_segments(const Table& t, const std::vector<EmaSegment>& segs, float omd) {
  std::vector<int64_t> sizes;
  for (const auto& s : segs) sizes.push_back(s.n);
  over_segments(sizes, [&](size_t i, int64_t off, int64_t n) { t.ema(segs[i].s + off, segs[i].p + off, n, omd); });
}

}  // namespace ibq::kernels
