#include "ibq/train/accumulate.h"

#include <string>

#include "ibq/core/errors.h"

namespace ibq {

std::vector<int64_t> micro_batch_sizes(int64_t rows, int64_t accumulate, int64_t micro_batch, const char* what) {
  const std::string w(what);
  if (accumulate < 1) throw ValueError("accumulate: expected an integer >= 1, got " + std::to_string(accumulate));
  if (micro_batch < 0) throw ValueError("micro_batch: expected an integer >= 0, got " + std::to_string(micro_batch));
  if (rows < 1) throw ValueError(w + ": expected at least one row, got " + std::to_string(rows));
  std::vector<int64_t> sizes;
  if (micro_batch == 0) {
    if (rows < accumulate)
      throw ValueError("accumulate: " + std::to_string(accumulate) + " near-equal micro-batches need at least as many " + w +
                       ", got " + std::to_string(rows));
    for (int64_t i = 0; i < accumulate; ++i) sizes.push_back(rows / accumulate + (i < rows % accumulate ? 1 : 0));
    return sizes;
  }
  const int64_t n = (rows + micro_batch - 1) / micro_batch;
  if (n > accumulate)
    throw ValueError(w + ": " + std::to_string(rows) + " rows make " + std::to_string(n) + " micro-batches of " +
                     std::to_string(micro_batch) + ", more than accumulate = " + std::to_string(accumulate));
  for (int64_t i = 0; i < n; ++i) sizes.push_back(i + 1 < n ? micro_batch : rows - micro_batch * (n - 1));
  return sizes;
}

}  // namespace ibq
