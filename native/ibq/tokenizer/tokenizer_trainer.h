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

#include "ibq/core/config_field.h"
#include "ibq/distributed/data_parallel.h"
#include "ibq/tokenizer/tokenizer.h"
#include "ibq/tokenizer/vq_loss.h"
#include "ibq/train/ema.h"
#include "ibq/train/optim.h"

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

// Tokenizer training settings, declared once for C++ and TypeScript (ibq/config_field.h): the official
// model.init_args optimisation fields (VQModel: learning_rate, scheduler_type, min_learning_rate, lr_drop_epoch,
// lr_drop_rate, gradient_clip_val, use_ema; warm-up and total length in steps where the official counts epochs)
// and LitEma's decay, with the official defaults except learning_rate 1e-4 (official: None, which the official
// optimizers cannot take; every official config gives 1e-4).
struct TrainerOptions {
  double learning_rate = 1e-4;
  std::string scheduler_type = "None";
  int64_t warmup_steps = 0;
  int64_t max_steps = 0;
  double min_learning_rate = 0.0;
  std::vector<int64_t> lr_drop_epoch;
  double lr_drop_rate = 0.1;
  double gradient_clip_val = 0.0;
  bool use_ema = false;
  double ema_decay = 0.999;
  c10::optional<at::ScalarType> autocast;  // not a field: bfloat16 (CPU/CUDA) or float16 (CUDA) forward passes

  template <class Self, class Fn>
  static void for_each_field(Self& c, Fn&& fn) {
    fn(Field("learning_rate", "Base learning rate of both Adam optimizers.").gt(0), c.learning_rate);
    fn(Field("scheduler_type", "LR schedule (LambdaLR of both optimizers).")
           .one_of({"None", "linear-warmup", "linear-warmup_cosine-decay"}),
       c.scheduler_type);
    fn(Field("warmup_steps", "Warm-up steps of the schedule (official warmup_epochs x steps per epoch).").ge(0),
       c.warmup_steps);
    fn(Field("max_steps", "Total steps of the cosine decay (official max_epochs x steps per epoch).").ge(0),
       c.max_steps);
    fn(Field("min_learning_rate", "Floor of the cosine decay.").ge(0), c.min_learning_rate);
    fn(Field("lr_drop_epoch", "After (0-based) epoch e with e + 1 listed, both LRs are multiplied by lr_drop_rate.")
           .ge(0),
       c.lr_drop_epoch);
    fn(Field("lr_drop_rate", "Factor of the LR drops.").ge(0), c.lr_drop_rate);
    fn(Field("gradient_clip_val", "> 0: clip the generator gradients to this global norm.").ge(0), c.gradient_clip_val);
    fn(Field("use_ema", "Keep the LitEma of the weights (model_ema.*)."), c.use_ema);
    fn(Field("ema_decay", "Decay of the LitEma.").ge(0).le(1), c.ema_decay);
  }
  LrSchedule schedule() const { return {scheduler_type, warmup_steps, max_steps, min_learning_rate / learning_rate}; }
  // IBQ_CHECK of the declared ranges and of a cosine decay longer than its warm-up.
  void validate() const;
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
  LrSchedule schedule_;
  std::unique_ptr<Adam> opt_gen_, opt_disc_;
  int64_t scheduler_steps_ = 0;
};

}  // namespace ibq
