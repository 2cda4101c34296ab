#include "ibq/tokenizer/tokenizer_trainer.h"

#include <algorithm>
#include <cmath>

#include "ibq/core/compat.h"
#include "ibq/core/config_check.h"
#include "ibq/core/errors.h"
#include "ibq/core/layout.h"
#include "ibq/train/accumulate.h"

namespace ibq {
namespace {

std::vector<at::Tensor> params_of(const torch::nn::Module& m) { return m.parameters(/*recurse=*/true); }

StepLog to_values(const LossLog& log) {
  StepLog out;
  for (const auto& [k, v] : log) out.emplace_back(k, v.to(at::kDouble).item<double>());
  return out;
}

at::Device device_of(const torch::nn::Module& m) {
  auto ps = m.parameters();
  return ps.empty() ? at::Device(at::kCPU) : ps[0].device();
}

// Running mean of step logs with the same keys in the same order (one per micro-batch).
struct LogMean {
  StepLog sum;
  size_t count = 0;
  void add(const StepLog& log) {
    if (count == 0) sum = log;
    else
      for (size_t i = 0; i < sum.size() && i < log.size(); ++i) sum[i].second += log[i].second;
    ++count;
  }
  StepLog mean() const {
    StepLog out = sum;
    for (auto& kv : out) kv.second /= static_cast<double>(count ? count : 1);
    return out;
  }
};

}  // namespace

TokenizerTrainingModuleImpl::TokenizerTrainingModuleImpl(std::shared_ptr<TokenizerImpl> tok,
                                                         const VQLossOptions& loss_opts, bool use_ema,
                                                         double ema_decay)
    : tokenizer(std::move(tok)) {
  if (!tokenizer) throw TypeError("tokenizer: expected a live tokenizer");
  if (loss_opts.disc_in_channels != tokenizer->config().ddconfig.out_ch)
    throw ValueError("disc_in_channels: " + std::to_string(loss_opts.disc_in_channels) +
                     " differs from the tokenizer's out_ch " + std::to_string(tokenizer->config().ddconfig.out_ch));
  register_module("encoder", tokenizer->encoder);
  register_module("decoder", tokenizer->decoder);
  loss = register_module("loss", VQLPIPSWithDiscriminator(loss_opts));
  register_module("quantize", tokenizer->quantize);
  register_module("quant_conv", tokenizer->quant_conv);
  register_module("post_quant_conv", tokenizer->post_quant_conv);
  loss->to(device_of(*tokenizer));
  // Convolution weights channels-last on the CPU, as the activations of training are (core/layout.h): oneDNN then
  // reorders neither the weights nor their gradients at each call. Values, names and saved files are unchanged
  // (files are written from contiguous copies); the optimizer state and the EMA copies take the same layout.
  {
    torch::NoGradGuard no_grad;
    for (auto& p : parameters(/*recurse=*/true))
      if (p.dim() == 4 && p.device().is_cpu()) p.set_data(cpu_channels_last(p));
  }
  if (use_ema) model_ema = register_module("model_ema", LitEma(*this, ema_decay));
  train(tokenizer->is_training());
}

void TokenizerTrainingModuleImpl::train(bool on) {
  torch::nn::Module::train(on);
  if (loss) loss->perceptual_loss->eval();
}

std::vector<at::Tensor> TokenizerTrainingModuleImpl::generator_parameters() const {
  std::vector<at::Tensor> out;
  for (const torch::nn::Module* m : {static_cast<const torch::nn::Module*>(tokenizer->encoder.get()),
                                     static_cast<const torch::nn::Module*>(tokenizer->decoder.get()),
                                     static_cast<const torch::nn::Module*>(tokenizer->quantize.get()),
                                     static_cast<const torch::nn::Module*>(tokenizer->quant_conv.get()),
                                     static_cast<const torch::nn::Module*>(tokenizer->post_quant_conv.get())}) {
    auto ps = params_of(*m);
    out.insert(out.end(), ps.begin(), ps.end());
  }
  return out;
}

std::vector<at::Tensor> TokenizerTrainingModuleImpl::discriminator_parameters() const {
  return params_of(*loss->discriminator);
}

void TrainerOptions::validate() const {
  check_fields(*this, "tokenizer_trainer");
  IBQ_CHECK(scheduler_type != "linear-warmup_cosine-decay" || max_steps > warmup_steps,
            "tokenizer_trainer: a cosine decay of " + std::to_string(max_steps) + " steps after " +
                std::to_string(warmup_steps) + " warm-up steps");
}

TokenizerTrainer::TokenizerTrainer(std::shared_ptr<TokenizerImpl> tokenizer, const VQLossOptions& loss_opts,
                                   const TrainerOptions& opts)
    : opts_(opts), schedule_(opts.schedule()) {
  opts_.validate();
  module_ = TokenizerTrainingModule(std::move(tokenizer), loss_opts, opts_.use_ema, opts_.ema_decay);
  AdamOptions a;
  a.lr = opts_.learning_rate;
  opt_gen_ = std::make_unique<Adam>(module_->generator_parameters(), a);
  opt_disc_ = std::make_unique<Adam>(module_->discriminator_parameters(), a);
  set_scheduler_steps(0);
}

void TokenizerTrainer::set_scheduler_steps(int64_t n) {
  scheduler_steps_ = n;
  if (!schedule_.active()) return;
  const double lr = opts_.learning_rate * schedule_.factor(n);
  opt_gen_->options().lr = lr;
  opt_disc_->options().lr = lr;
}

void TokenizerTrainer::scheduler_step() {
  if (schedule_.active()) set_scheduler_steps(scheduler_steps_ + 1);
}

void TokenizerTrainer::end_epoch(int64_t epoch) {
  const auto& drops = opts_.lr_drop_epoch;
  if (std::find(drops.begin(), drops.end(), epoch + 1) == drops.end()) return;
  opt_gen_->options().lr *= opts_.lr_drop_rate;
  opt_disc_->options().lr *= opts_.lr_drop_rate;
}

CodebookLoss TokenizerTrainer::codebook(const TokenizerOutput& out) const {
  return {out.quant_loss, out.sample_entropy, out.avg_entropy, out.entropy_loss,
          module_->tokenizer->config().quantizer.use_entropy_loss};
}

void TokenizerTrainer::set_data_parallel(std::shared_ptr<dist::ProcessGroup> pg, const dist::DataParallelOptions& o) {
  data_parallel.reset();
  if (!pg) return;
  data_parallel = std::make_shared<dist::DataParallel>(
      std::move(pg), module_.ptr(), std::vector<std::vector<at::Tensor>>{opt_gen_->params(), opt_disc_->params()}, o);
}

StepResult TokenizerTrainer::step(const at::Tensor& x_in, int64_t global_step, int64_t accumulate, int64_t micro_batch) {
  auto& m = *module_;
  m.train(true);
  const auto dev = device_of(m);
  const at::Tensor x = x_in.to(dev, at::kFloat);
  const auto xs = x.split_with_sizes(micro_batch_sizes(x.dim() ? x.size(0) : 0, accumulate, micro_batch, "images"));
  const size_t n = xs.size();
  const at::Tensor last_layer = m.tokenizer->decoder->conv_out->weight;
  auto* dp = data_parallel.get();
  StepResult result;
  LogMean dlog, glog;
  result.lr_gen = opt_gen_->options().lr;
  result.lr_disc = opt_disc_->options().lr;

  // discriminator step: each micro-batch's tokenizer forward is kept for its generator loss
  std::vector<TokenizerOutput> outs(n);
  opt_disc_->zero_grad();
  auto acc = accumulate_gradients(n, accumulate, [&](size_t i) {
    compat::AutocastGuard ac(opts_.autocast, dev);
    outs[i] = m.tokenizer->forward(xs[i]);
    LossResult d = m.loss->discriminator_loss(xs[i], outs[i].xrec, global_step);
    dlog.add(to_values(d.log));
    return d.loss;
  }, dp, /*group=*/1);
  if (acc.nonfinite) {
    result.nonfinite_ranks = std::move(acc.nonfinite_ranks);
    result.log = dlog.mean();
    result.nonfinite = "discriminator";
    return result;
  }
  if (on_gradients) on_gradients(opt_disc_->params(), 1);
  opt_disc_->step();

  // generator step (through the updated discriminator, as the official order)
  opt_gen_->zero_grad();
  const auto gen = opt_gen_->params();
  acc = accumulate_gradients(n, accumulate, [&](size_t i) {
    compat::AutocastGuard ac(opts_.autocast, dev);
    LossResult g = m.loss->generator_loss(codebook(outs[i]), xs[i], outs[i].xrec, global_step, last_layer);
    glog.add(to_values(g.log));
    return g.loss;
  }, dp, /*group=*/0, gen);
  result.nonfinite_ranks = std::move(acc.nonfinite_ranks);
  result.log = dlog.mean();
  auto gl = glog.mean();
  result.log.insert(result.log.end(), gl.begin(), gl.end());
  if (acc.nonfinite) {
    result.nonfinite = "generator";
    return result;
  }
  if (on_gradients) on_gradients(gen, 0);
  if (opts_.gradient_clip_val > 0) clip_grad_norm(gen, opts_.gradient_clip_val);
  opt_gen_->step();

  scheduler_step();
  if (m.model_ema) m.model_ema->update(m);
  if (dp) {
    std::vector<double> v;
    for (const auto& kv : result.log) v.push_back(kv.second);
    v = dp->mean(v);
    for (size_t i = 0; i < v.size(); ++i) result.log[i].second = v[i];
    dp->sync_buffers();
    if (m.loss->has_lecam()) {
      // the LeCAM EMA is state of the loss like a buffer (plain floats in the official code): rank 0's too
      auto& e = m.loss->lecam_ema;
      auto t = torch::tensor({e.logits_real_ema, e.logits_fake_ema}, torch::dtype(at::kDouble)).to(dp->group().device());
      dp->group().broadcast({t}, 0);
      t = t.cpu();
      e.logits_real_ema = t[0].item<double>();
      e.logits_fake_ema = t[1].item<double>();
    }
  }
  return result;
}

LossAndGradsResult TokenizerTrainer::loss_and_grads(const at::Tensor& x_in, int optimizer_idx, int64_t global_step,
                                                    const std::vector<std::string>& wrt) {
  if (optimizer_idx != 0 && optimizer_idx != 1)
    throw ValueError("optimizerIdx: expected 0 (generator) or 1 (discriminator), got " + std::to_string(optimizer_idx));
  auto& m = *module_;
  auto named = m.named_parameters(/*recurse=*/true);
  std::vector<at::Tensor> params;
  for (const auto& name : wrt) {
    const at::Tensor* p = named.find(name);
    if (!p) throw ValueError("wrt: the training module has no parameter '" + name + "'");
    if (!p->requires_grad()) throw ValueError("wrt: '" + name + "' is frozen (requires_grad false)");
    params.push_back(*p);
  }
  const auto dev = device_of(m);
  const at::Tensor x = x_in.to(dev, at::kFloat);
  LossResult r;
  {
    compat::AutocastGuard ac(opts_.autocast, dev);
    auto out = m.tokenizer->forward(x);
    r = optimizer_idx == 0
            ? m.loss->generator_loss(codebook(out), x, out.xrec, global_step, m.tokenizer->decoder->conv_out->weight)
            : m.loss->discriminator_loss(x, out.xrec, global_step);
  }
  LossAndGradsResult res;
  res.loss = r.loss.detach().to(at::kDouble).item<double>();
  res.log = to_values(r.log);
  if (!params.empty()) {
    auto grads = torch::autograd::grad({r.loss}, params, {}, /*retain_graph=*/false, /*create_graph=*/false,
                                       /*allow_unused=*/true);
    for (size_t i = 0; i < params.size(); ++i)
      res.grads.emplace_back(wrt[i], grads[i].defined() ? grads[i] : at::zeros_like(params[i]));
  }
  return res;
}

}  // namespace ibq
