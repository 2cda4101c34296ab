// Training of the AR transformer: next-token cross-entropy conditioned on the class (official
// Net2NetTransformer.shared_step of src/IBQ/models/cond_transformer_llama.py), gradients for parity tests,
// and one AdamW step (betas (0.9, 0.95); weight decay on parameters with dim >= 2 only; gradient-norm
// clipping as Lightning's gradient_clip_val).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "ibq/distributed/data_parallel.h"
#include "ibq/transformer/transformer.h"
#include "ibq/io/state_dict.h"

namespace ibq {

// F.cross_entropy(model(tokens[:, :-1], labels) [B, T, V], tokens [B, T]), mean over all B*T tokens.
// tokens: int64 [B, T] with 1 <= T <= block_size; labels [B] or [B, 1]. Uses the module's current mode;
// label dropout (training mode only) when drop_labels.
at::Tensor transformer_loss(TransformerImpl& model, const at::Tensor& tokens, const at::Tensor& labels, bool drop_labels);

struct LossGrads {
  double loss = 0;
  NamedTensors grads;  // copies, in the order of `wrt`
};

// The loss and its gradients w.r.t. the named parameters (state-dict names); no update, the module's
// gradients are left cleared. Throws ValueError naming an unknown parameter.
LossGrads transformer_loss_and_grads(TransformerImpl& model, const at::Tensor& tokens, const at::Tensor& labels,
                             const std::vector<std::string>& wrt, bool drop_labels);

struct StepResult {
  double loss = 0;
  double grad_norm = 0;  // total L2 norm of the gradients before clipping
  // Data-parallel: the ranks whose loss was not finite (every rank then skips the update; loss is NaN).
  std::vector<int> nonfinite_ranks;
};

// AdamW over a GPT's parameters in two groups (dim >= 2: decayed; others: no decay), as the official
// configure_optimizers. lr and weight decay are set per step (official lr_wd_annealing, computed by lib/).
class TransformerTrainer {
 public:
  explicit TransformerTrainer(std::shared_ptr<TransformerImpl> model);
  // One training step in the model's current mode: loss, backward, clip to `clip` (<= 0: no clipping),
  // AdamW update with learning rate `lr` and weight decay `weight_decay` on the decayed group. `autocast`:
  // mixed precision of the forward pass (bfloat16 on the CPU; float16 or bfloat16 on CUDA).
  // tokens/labels hold the micro-batches of ibq/train/accumulate.h (micro_batch rows each, at most `accumulate` of them;
  // micro_batch 0: `accumulate` near-equal ones), whose gradients (each loss / accumulate) are summed before the
  // one update; the loss is their mean. With `data_parallel`
  // set, gradients are averaged over the ranks (last micro-batch only, as DDP's no_sync), the loss is the mean
  // over ranks, all ranks skip the update when one rank's loss is not finite (nonfinite_ranks), and buffers are
  // broadcast from rank 0 after the step. A non-finite loss without data parallelism also skips the update.
  StepResult step(const at::Tensor& tokens, const at::Tensor& labels, double lr, double weight_decay, double clip,
                  c10::optional<at::ScalarType> autocast = c10::nullopt, int64_t accumulate = 1, int64_t micro_batch = 0);

  // Data-parallel training over a process group (null: one process): one parameter group, all parameters.
  void set_data_parallel(std::shared_ptr<dist::ProcessGroup> pg, const dist::DataParallelOptions& opts = {});
  std::shared_ptr<dist::DataParallel> data_parallel;
  // Optimizer state as named tensors: `<param>.exp_avg`, `<param>.exp_avg_sq`, `<param>.step` (int64 []).
  NamedTensors state() const;
  // Restores what state() returned; ValueError naming a key whose shape or parameter does not match.
  void load_state(const NamedTensors& sd);

 private:
  std::shared_ptr<TransformerImpl> model_;
  std::vector<std::pair<std::string, at::Tensor>> params_;  // named_parameters order
  std::unique_ptr<torch::optim::AdamW> opt_;
};

}  // namespace ibq
