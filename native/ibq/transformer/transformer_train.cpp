#include "ibq/transformer/transformer_train.h"

#include <cmath>
#include <limits>
#include <unordered_map>

#include "ibq/core/compat.h"
#include "ibq/core/errors.h"
#include "ibq/train/accumulate.h"

namespace ibq {
namespace {

torch::optim::AdamWParamState* adam_state(torch::optim::AdamW& opt, const at::Tensor& p) {
  auto& st = opt.state();
  auto it = st.find(c10::guts::to_string(p.unsafeGetTensorImpl()));
  return it == st.end() ? nullptr : static_cast<torch::optim::AdamWParamState*>(it->second.get());
}

}  // namespace

at::Tensor transformer_loss(TransformerImpl& model, const at::Tensor& tokens, const at::Tensor& labels, bool drop_labels) {
  model.check_tokens(tokens, "tokens", model.cfg.block_size);
  if (tokens.size(1) < 1) throw ShapeError("tokens: expected at least one token per row, got shape " + c10::str(tokens.sizes()));
  auto t = tokens.to(model.head->weight.device(), at::kLong);
  auto logits = model.forward(t.slice(1, 0, -1), labels, drop_labels);  // [B, T, V]
  return at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), t.reshape({-1}));
}

LossGrads transformer_loss_and_grads(TransformerImpl& model, const at::Tensor& tokens, const at::Tensor& labels,
                             const std::vector<std::string>& wrt, bool drop_labels) {
  auto named = model.named_parameters();
  for (const auto& w : wrt)
    if (!named.contains(w)) throw ValueError("wrt: '" + w + "' is not a parameter of the transformer");
  LossGrads r;
  if (wrt.empty()) {  // the loss alone: no graph, no backward
    at::NoGradGuard no_grad;
    r.loss = transformer_loss(model, tokens, labels, drop_labels).item<double>();
    return r;
  }
  for (auto& p : model.parameters()) p.mutable_grad() = at::Tensor();
  auto loss = transformer_loss(model, tokens, labels, drop_labels);
  loss.backward();
  r.loss = loss.item<double>();
  for (const auto& w : wrt) {
    auto g = named[w].grad();
    r.grads.emplace_back(w, g.defined() ? g.clone() : at::zeros_like(named[w]));
  }
  for (auto& p : model.parameters()) p.mutable_grad() = at::Tensor();
  return r;
}

TransformerTrainer::TransformerTrainer(std::shared_ptr<TransformerImpl> model) : model_(std::move(model)) {
  std::vector<at::Tensor> decay, no_decay;
  for (const auto& p : model_->named_parameters()) {
    params_.emplace_back(p.key(), p.value());
    (p.value().dim() >= 2 ? decay : no_decay).push_back(p.value());
  }
  auto opts = torch::optim::AdamWOptions(1e-4).betas({0.9, 0.95});
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(opts));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(opts).weight_decay(0)));
  opt_ = std::make_unique<torch::optim::AdamW>(groups, opts);
}

void TransformerTrainer::set_data_parallel(std::shared_ptr<dist::ProcessGroup> pg, const dist::DataParallelOptions& o) {
  data_parallel.reset();
  if (!pg) return;
  std::vector<at::Tensor> ps;
  for (auto& [_, p] : params_) ps.push_back(p);
  data_parallel = std::make_shared<dist::DataParallel>(std::move(pg), model_, std::vector<std::vector<at::Tensor>>{ps}, o);
}

StepResult TransformerTrainer::step(const at::Tensor& tokens, const at::Tensor& labels, double lr, double weight_decay,
                                    double clip, c10::optional<at::ScalarType> autocast, int64_t accumulate,
                                    int64_t micro_batch) {
  if (!(lr >= 0)) throw ValueError("lr: expected a number >= 0");
  if (!(weight_decay >= 0)) throw ValueError("weight_decay: expected a number >= 0");
  const auto sizes = micro_batch_sizes(tokens.dim() ? tokens.size(0) : 0, accumulate, micro_batch, "tokens");
  auto& groups = opt_->param_groups();
  static_cast<torch::optim::AdamWOptions&>(groups[0].options()).lr(lr).weight_decay(weight_decay);
  static_cast<torch::optim::AdamWOptions&>(groups[1].options()).lr(lr).weight_decay(0);
  opt_->zero_grad();
  const auto ts = tokens.split_with_sizes(sizes);
  const bool per_row_labels = labels.dim() >= 1 && labels.size(0) == tokens.size(0);
  const auto ls = per_row_labels ? labels.split_with_sizes(sizes) : std::vector<at::Tensor>(ts.size(), labels);
  StepResult r;
  double sum = 0;
  auto acc = accumulate_gradients(ts.size(), accumulate, [&](size_t i) {
    compat::AutocastGuard ac(autocast, model_->tok_emb->weight.device());
    at::Tensor loss = transformer_loss(*model_, ts[i], ls[i], /*drop_labels=*/true).to(at::kFloat);
    sum += loss.item<double>();
    return loss;
  }, data_parallel.get());
  r.nonfinite_ranks = std::move(acc.nonfinite_ranks);
  r.loss = sum / static_cast<double>(ts.size());
  if (acc.nonfinite) {
    opt_->zero_grad();
    if (std::isfinite(r.loss)) r.loss = std::numeric_limits<double>::quiet_NaN();  // another rank's loss
    r.grad_norm = std::numeric_limits<double>::quiet_NaN();
    return r;
  }
  std::vector<at::Tensor> ps;
  for (auto& [_, p] : params_) ps.push_back(p);
  r.grad_norm = clip > 0 ? torch::nn::utils::clip_grad_norm_(ps, clip)
                         : torch::nn::utils::clip_grad_norm_(ps, std::numeric_limits<double>::infinity());
  opt_->step();
  opt_->zero_grad();
  if (auto* dp = data_parallel.get()) {
    r.loss = dp->mean({r.loss})[0];
    dp->sync_buffers();
  }
  return r;
}

NamedTensors TransformerTrainer::state() const {
  NamedTensors out;
  for (const auto& [name, p] : params_) {
    auto* s = adam_state(*opt_, p);
    if (!s) continue;
    out.emplace_back(name + ".exp_avg", s->exp_avg().clone());
    out.emplace_back(name + ".exp_avg_sq", s->exp_avg_sq().clone());
    out.emplace_back(name + ".step", at::scalar_tensor(s->step(), at::kLong));
  }
  return out;
}

void TransformerTrainer::load_state(const NamedTensors& sd) {
  std::unordered_map<std::string, at::Tensor> by;
  for (const auto& [k, v] : sd) by[k] = v;
  torch::NoGradGuard no_grad;
  for (const auto& [name, p] : params_) {
    auto a = by.find(name + ".exp_avg"), b = by.find(name + ".exp_avg_sq"), c = by.find(name + ".step");
    if (a == by.end() && b == by.end() && c == by.end()) continue;
    if (a == by.end() || b == by.end() || c == by.end())
      throw ValueError("optimizer state: '" + name + "' needs exp_avg, exp_avg_sq and step");
    if (a->second.sizes() != p.sizes() || b->second.sizes() != p.sizes())
      throw ShapeError("optimizer state: '" + name + "' expected shape " + c10::str(p.sizes()) + ", got " +
                       c10::str(a->second.sizes()));
    auto st = std::make_unique<torch::optim::AdamWParamState>();
    st->step(c->second.item<int64_t>());
    st->exp_avg(a->second.to(p.device(), p.scalar_type()).clone());
    st->exp_avg_sq(b->second.to(p.device(), p.scalar_type()).clone());
    opt_->state()[c10::guts::to_string(p.unsafeGetTensorImpl())] = std::move(st);
  }
}

}  // namespace ibq
