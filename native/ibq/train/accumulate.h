// Micro-batches of one accumulated optimizer update (Lightning's accumulate_grad_batches), shared by the tokenizer
// and transformer trainers. Each micro-batch's loss (the mean over its rows) is divided by `accumulate`, whatever
// the number and size of the micro-batches: an epoch's last update may hold fewer micro-batches than `accumulate`,
// or a smaller last one, and Lightning weighs those as the others (its loss / accumulate_grad_batches).
#pragma once
#include <cstdint>
#include <vector>

namespace ibq {

// Sizes of the micro-batches of `rows` rows along dim 0: chunks of `micro_batch` rows, the last one smaller
// (at most `accumulate` of them), or, with micro_batch 0, `accumulate` near-equal chunks (at::tensor_split's
// sizes: the first rows % accumulate one row larger). `what` names the rows in errors.
// Errors: ibq::ValueError when accumulate < 1, micro_batch < 0, rows < 1, rows < accumulate (micro_batch 0) or
// rows needing more than `accumulate` micro-batches of micro_batch.
std::vector<int64_t> micro_batch_sizes(int64_t rows, int64_t accumulate, int64_t micro_batch, const char* what);

}  // namespace ibq
