#include "ibq/train/accumulate.h"

#include <cmath>
#include <string>

#include "ibq/core/errors.h"
#include "ibq/distributed/data_parallel.h"

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

AccumulateOutcome accumulate_gradients(size_t n, int64_t accumulate, const std::function<at::Tensor(size_t)>& loss_of,
                                       dist::DataParallel* dp, size_t group, const std::vector<at::Tensor>& inputs) {
  const auto backward = [&](const at::Tensor& loss, bool sync) {
    if (dp) dp->backward(group, loss, inputs, sync);
    else if (inputs.empty()) loss.backward();
    else loss.backward({}, /*retain_graph=*/false, /*create_graph=*/false, inputs);
  };
  AccumulateOutcome out;
  at::Tensor last;
  for (size_t i = 0; i < n; ++i) {
    at::Tensor loss = loss_of(i);
    if (!std::isfinite(loss.detach().to(at::kDouble).item<double>())) {
      out.nonfinite = true;
      break;
    }
    // each micro-batch's loss / accumulate, also when an epoch's tail has fewer micro-batches (Lightning)
    if (accumulate > 1) loss = loss / static_cast<double>(accumulate);
    if (i + 1 < n) backward(loss, /*sync=*/false);
    else last = loss;
  }
  if (dp) {
    out.nonfinite_ranks = dp->nonfinite_ranks(out.nonfinite);
    out.nonfinite = !out.nonfinite_ranks.empty();
  }
  if (!out.nonfinite) backward(last, /*sync=*/true);
  return out;
}

}  // namespace ibq
