// Micro-batches of one accumulated optimizer update (Lightning's accumulate_grad_batches), shared by the tokenizer
// and transformer trainers. Each micro-batch's loss (the mean over its rows) is divided by `accumulate`, whatever
// the number and size of the micro-batches: an epoch's last update may hold fewer micro-batches than `accumulate`,
// or a smaller last one, and Lightning weighs those as the others (its loss / accumulate_grad_batches).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace ibq {

namespace dist {
class DataParallel;
}

// Sizes of the micro-batches of `rows` rows along dim 0: chunks of `micro_batch` rows, the last one smaller
// (at most `accumulate` of them), or, with micro_batch 0, `accumulate` near-equal chunks (at::tensor_split's
// sizes: the first rows % accumulate one row larger). `what` names the rows in errors.
// Errors: ibq::ValueError when accumulate < 1, micro_batch < 0, rows < 1, rows < accumulate (micro_batch 0) or
// rows needing more than `accumulate` micro-batches of micro_batch.
std::vector<int64_t> micro_batch_sizes(int64_t rows, int64_t accumulate, int64_t micro_batch, const char* what);

// How the backward passes of one update ended.
struct AccumulateOutcome {
  // A loss was not finite on this rank or (data-parallel) on any rank: no gradient was synchronised, the
  // gradients hold a partial sum (the caller zeroes them and skips the update).
  bool nonfinite = false;
  // Data-parallel: the ranks whose loss was not finite (every rank gets the same list); empty otherwise.
  std::vector<int> nonfinite_ranks;
};

// One update's gradients, summed over `n` micro-batches: `loss_of(i)` runs micro-batch i's forward and returns
// its loss (a 0-d tensor, the mean over its rows); the loop stops at the first non-finite loss. Each loss is
// divided by `accumulate` and back-propagated (into `inputs` only, when given). Data-parallel (`dp` not null):
// the micro-batches before the last accumulate locally, the ranks agree on non-finite losses before the last
// backward, and that one synchronises the gradients of parameter group `group` (DataParallel::backward).
AccumulateOutcome accumulate_gradients(size_t n, int64_t accumulate, const std::function<at::Tensor(size_t)>& loss_of,
                                       dist::DataParallel* dp, size_t group = 0,
                                       const std::vector<at::Tensor>& inputs = {});

}  // namespace ibq
