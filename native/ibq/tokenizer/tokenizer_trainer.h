// Tokenizer training as the official IBQ `VQModel.training_step` (src/IBQ/models/ibqgan.py, manual
// optimisation): one step = tokenizer forward, discriminator loss -> backward -> Adam step, generator loss
// (through the updated discriminator) -> backward -> optional clipping -> Adam step, LR schedulers, EMA.
//
// TokenizerTrainingModule has the official module tree (encoder, decoder, loss.{perceptual_loss,
// discriminator}, quantize, quant_conv, post_quant_conv, model_ema), sharing the tokenizer's submodules, so its
// state_dict() has exactly the keys and order of an official training checkpoint.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ibq/distributed/data_parallel.h"
#include "ibq/train/ema.h"
#include "ibq/train/optim.h"
#include "ibq/tokenizer/tokenizer.h"
#include "ibq/tokenizer/vq_loss.h"

namespace ibq {

class TokenizerTrainingModuleImpl : public torch::nn::Module {
 public:
  // Registers the tokenizer's submodules under the official names, then the loss, then (use_ema) the LitEma of
  // every parameter that requires grad (the discriminator's included, LPIPS excluded, as the official LitEma).
  TokenizerTrainingModuleImpl(std::shared_ptr<TokenizerImpl> tokenizer, const VQLossOptions& loss_opts,
                              bool use_ema, double ema_decay);
  // As torch's train(), but loss.perceptual_loss stays in eval mode (LPIPS().eval() in the official code).
  void train(bool on = true) override;

  // Official optimizer parameter lists: opt_gen = encoder, decoder, quantize, quant_conv, post_quant_conv;
  // opt_disc = loss.discriminator.
  std::vector<at::Tensor> generator_parameters() const;
  std::vector<at::Tensor> discriminator_parameters() const;

  std::shared_ptr<TokenizerImpl> tokenizer;
  VQLPIPSWithDiscriminator loss{nullptr};
  LitEma model_ema{nullptr};  // null when use_ema is false
};
TORCH_MODULE(TokenizerTrainingModule);

struct TrainerOptions {
  double learning_rate = 1e-4;             // base LR of both optimizers (official learning_rate)
  LrSchedule schedule;                     // scheduler_type, warm-up and total steps, min LR multiplier
  std::vector<int64_t> lr_drop_epoch;      // official lr_drop_epoch: after epoch e with e + 1 listed,
  double lr_drop_rate = 0.1;               //   both LRs are multiplied by lr_drop_rate
  double gradient_clip_val = 0.0;          // > 0: clip the generator gradients by global norm
  bool use_ema = true;
  double ema_decay = 0.999;
  c10::optional<at::ScalarType> autocast;  // bfloat16 (CPU/CUDA) or float16 (CUDA) for the forward passes
};

// Values of one step's log dictionary (official names; the discriminator's entries first).
using StepLog = std::vector<std::pair<std::string, double>>;

struct StepResult {
  StepLog log;
  // "" when both losses were finite; otherwise "discriminator" or "generator": that loss was not finite and its
  // update (and everything after it) was skipped.
  std::string nonfinite;
  // Data-parallel: the ranks whose loss was not finite (every rank then skips the update).
  std::vector<int> nonfinite_ranks;
  // Learning rates the step's updates used: generator, discriminator.
  double lr_gen = 0, lr_disc = 0;
};

struct LossAndGradsResult {
  double loss = 0;
  StepLog log;
  std::vector<std::pair<std::string, at::Tensor>> grads;
};

class TokenizerTrainer {
 public:
  TokenizerTrainer(std::shared_ptr<TokenizerImpl> tokenizer, const VQLossOptions& loss_opts,
                   const TrainerOptions& opts);

  // One official training step on images x [B, C, H, W] in [-1, 1] at `global_step` (completed steps so far).
  // Puts the module in train mode. x holds the micro-batches of ibq/train/accumulate.h (micro_batch rows each, at most
  // `accumulate` of them; micro_batch 0: `accumulate` near-equal ones); each optimizer's gradients are accumulated
  // over them (each micro-batch loss / accumulate, its own forward, the generator losses through the updated
  // discriminator) before its one update; the log is the micro-batch mean. With `data_parallel` set, gradients are also averaged over the ranks (on the last micro-batch only,
  // as DDP's no_sync), the log is averaged over the ranks, every rank stops when one rank's loss is not finite,
  // and the buffers are broadcast from rank 0 after the step.
  // Errors: ibq::ValueError for bad images (see TokenizerImpl::forward) or micro-batches that do not fit
  // (micro_batch_sizes); ibq::dist::DistError when a collective fails.
  StepResult step(const at::Tensor& x, int64_t global_step, int64_t accumulate = 1, int64_t micro_batch = 0);

  // The loss of optimizer_idx 0 (generator) or 1 (discriminator) at global_step, in the module's current mode,
  // and its gradients w.r.t. the named parameters (training-module names, e.g. "decoder.conv_out.weight",
  // "loss.discriminator.main.0.weight"; zeros where unused). No optimizer step; the discriminator loss does
  // update the LeCAM EMA and BatchNorm running statistics, as the official forward does.
  LossAndGradsResult loss_and_grads(const at::Tensor& x, int optimizer_idx, int64_t global_step,
                                    const std::vector<std::string>& wrt);

  // End of epoch `epoch` (0-based): the official lr_annealing (LR drop).
  void end_epoch(int64_t epoch);

  // Called with an optimizer's parameters once their gradients are final and before clipping and the step
  // (0: generator, 1: discriminator): the place for a data-parallel all-reduce.
  std::function<void(const std::vector<at::Tensor>& params, int optimizer_idx)> on_gradients;

  // Data-parallel training over a process group (null: one process). Built on module() with two parameter
  // groups: 0 the generator's, 1 the discriminator's parameters (the optimizers' lists).
  void set_data_parallel(std::shared_ptr<dist::ProcessGroup> pg, const dist::DataParallelOptions& opts = {});
  std::shared_ptr<dist::DataParallel> data_parallel;

  TokenizerTrainingModule module() const { return module_; }
  Adam& opt_gen() { return *opt_gen_; }
  Adam& opt_disc() { return *opt_disc_; }
  const TrainerOptions& options() const { return opts_; }
  // LambdaLR.last_epoch of both schedulers (steps taken); setting it recomputes the scheduled LRs.
  int64_t scheduler_steps() const { return scheduler_steps_; }
  void set_scheduler_steps(int64_t n);

 private:
  void scheduler_step();
  CodebookLoss codebook(const TokenizerOutput& out) const;

  TokenizerTrainingModule module_{nullptr};
  TrainerOptions opts_;
  std::unique_ptr<Adam> opt_gen_, opt_disc_;
  int64_t scheduler_steps_ = 0;
};

}  // namespace ibq
