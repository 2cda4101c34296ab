#include "ibq/transformer/transformer_sample.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cstring>
#include <limits>
#include <mutex>
#include <sstream>

#include "ibq/core/errors.h"
#include "ibq/transformer/batch_engine.h"
#include "ibq/transformer/draw.h"

namespace ibq {
namespace {

// Restores the module's training flag when the call ends.
struct EvalGuard {
  explicit EvalGuard(torch::nn::Module& m) : m(m), was(m.is_training()) { m.eval(); }
  ~EvalGuard() { m.train(was); }
  torch::nn::Module& m;
  bool was;
};

}  // namespace

at::Tensor top_k_top_p_filtering(at::Tensor logits, int64_t top_k, double top_p) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  if (top_k > 0) {
    int64_t k = std::min(std::max<int64_t>(top_k, 1), logits.size(-1));
    auto kth = std::get<0>(at::topk(logits, k)).select(-1, k - 1).unsqueeze(-1);
    logits.masked_fill_(logits < kth, neg_inf);
  }
  if (top_p < 1.0) {
    auto sorted = at::sort(logits, -1, /*descending=*/true);
    auto cum = at::cumsum(at::softmax(std::get<0>(sorted), -1), -1);
    auto remove = cum > top_p;
    // shift right so the first token above the threshold stays; the most likely token always stays
    auto shifted = at::zeros_like(remove);
    shifted.slice(-1, 1).copy_(remove.slice(-1, 0, -1));
    auto to_remove = shifted.scatter(1, std::get<1>(sorted), shifted);
    logits.masked_fill_(to_remove, neg_inf);
  }
  return logits;
}

at::Tensor pick_next(at::Tensor logits, const SampleOptions& o, const c10::optional<at::Generator>& gen) {
  if (o.temperature == 0) return logits.argmax(-1, /*keepdim=*/true);
  logits = logits / o.temperature;
  if (o.top_k > 0 || o.top_p < 1.0) logits = top_k_top_p_filtering(logits, o.top_k, o.top_p);
  auto probs = at::softmax(logits, -1);
  return o.greedy ? std::get<1>(at::topk(probs, 1, -1)) : multinomial_one(probs, gen);
}

at::Tensor transformer_sample(TransformerImpl& model, const at::Tensor& labels, const SampleOptions& o,
                      const std::function<void(int64_t, int64_t)>& between) {
  const auto& cfg = model.cfg;
  IBQ_CHECK(o.cfg_scale >= 0 && std::isfinite(o.cfg_scale) && o.temperature >= 0 && std::isfinite(o.temperature) &&
                o.top_k >= 0 && o.top_p > 0 && o.top_p <= 1 && (o.steps == -1 || (o.steps >= 1 && o.steps <= cfg.block_size)),
            "sample options out of range");
  auto cond = model.check_labels(labels, "labels", /*allow_null=*/false);
  const int64_t B = cond.size(0);
  if (B == 0) throw ValueError("labels: expected at least one class id");
  const int64_t steps = o.steps == -1 ? cfg.block_size : o.steps;
  const bool guide = o.cfg_scale > 1.0;
  const auto dev = model.head->weight.device();
  const auto wopts = model.head->weight.options();

  torch::NoGradGuard no_grad;
  EvalGuard eval(model);
  cond = cond.to(dev);
  auto all = guide ? at::cat({cond, at::full_like(cond, cfg.class_num)}) : cond;
  const int64_t N = all.size(0);

  c10::optional<at::Generator> gen;
  if (o.seed && !o.greedy && o.temperature > 0) {
    if (dev.is_cpu()) {
      gen = at::make_generator<at::CPUGeneratorImpl>(*o.seed);
    } else {  // the device's default generator, seeded as torch.manual_seed does
      gen = at::globalContext().defaultGenerator(dev);
      // Only while seeding: the sampling kernels take this (non-recursive) mutex themselves.
      std::lock_guard<std::mutex> lock(gen->mutex());
      gen->set_current_seed(*o.seed);
    }
  }

  if (dev.is_cpu() && model.head->weight.scalar_type() == at::kFloat) {
    // the decode step of the serving engine (packed weights, one token over the static cache): rows 2b and 2b + 1
    // are label b's conditional and null-class rows
    BatchEngine engine(std::shared_ptr<TransformerImpl>(&model, [](TransformerImpl*) {}), B);
    auto ids = cond.contiguous();
    for (int64_t b = 0; b < B; ++b) engine.join_rows(ids.data_ptr<int64_t>()[b], guide);
    auto out = at::empty({B, steps}, cond.options());
    std::vector<int64_t> tokens(B);
    for (int64_t n = 0; n < steps; ++n) {
      auto logits = engine.forward();  // [N, V]
      if (guide) {
        auto pair = logits.view({B, 2, -1});
        auto c = pair.select(1, 0), u = pair.select(1, 1);
        logits = u + (c - u) * o.cfg_scale;
      }
      auto next = pick_next(logits, o, gen).contiguous();  // [B, 1]
      std::memcpy(tokens.data(), next.data_ptr<int64_t>(), B * sizeof(int64_t));
      engine.advance(tokens);
      out.select(1, n).copy_(next.select(1, 0));
      if (between) between(n + 1, steps);
    }
    return out;
  }

  // static cache: [N, n_kv_head, 1 + steps, head_dim] per block
  std::vector<KVCache> caches(cfg.n_layer);
  for (auto& c : caches) {
    c.k = at::zeros({N, cfg.kv_heads(), 1 + steps, cfg.head_dim()}, wopts);
    c.v = at::zeros_like(c.k);
  }

  auto cls = model.class_table(all).unsqueeze(1);  // [N, 1, C]
  auto out = at::empty({B, steps}, cond.options());
  at::Tensor next;  // [B, 1]
  for (int64_t n = 0; n < steps; ++n) {
    at::Tensor h;
    int64_t pos;
    if (n == 0) {  // prefill with the class token
      h = cls;
      pos = 0;
    } else {
      h = model.tok_emb(guide ? at::cat({next, next}) : next);
      pos = n;  // token n-1 sits at position n (the class token is position 0)
    }
    auto logits = model.run(h, cls, &caches, pos).select(1, -1);  // [N, V]
    if (guide) {
      auto parts = logits.split(B, 0);
      logits = parts[1] + (parts[0] - parts[1]) * o.cfg_scale;
    }
    next = pick_next(logits, o, gen);
    out.select(1, n).copy_(next.select(1, 0));
    if (between) between(n + 1, steps);
  }
  return out;
}

}  // namespace ibq
