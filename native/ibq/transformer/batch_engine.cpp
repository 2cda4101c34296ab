#include "ibq/transformer/batch_engine.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <limits>

#include "ibq/core/errors.h"
#include "ibq/transformer/rows_linear.h"

namespace ibq {
namespace {

using torch::indexing::Slice;

rows::Packed packed(const torch::nn::Linear& l) { return rows::pack(l->weight); }

// RMSNorm of rows x [n, C] (the model's formula, x * rsqrt(mean(x^2) + eps) * weight), each row's sum of squares
// taken in order, so a row's result never depends on the other rows.
at::Tensor rms_rows(const at::Tensor& x, const at::Tensor& weight, double eps) {
  auto xf = x.to(at::kFloat).contiguous();
  const int64_t n = xf.size(0), C = xf.size(1);
  auto ms = at::empty({n, 1}, xf.options());
  if (xf.device().is_cpu()) {
    const float* p = xf.data_ptr<float>();
    float* m = ms.data_ptr<float>();
    for (int64_t r = 0; r < n; ++r) {
      float s = 0.f;
      for (int64_t c = 0; c < C; ++c) s += p[r * C + c] * p[r * C + c];
      m[r] = s / static_cast<float>(C);
    }
  } else {
    ms = at::mean(xf * xf, -1, /*keepdim=*/true);
  }
  return (xf * at::rsqrt(ms + eps)).to(x.scalar_type()) * weight;
}

}  // namespace

struct BatchEngine::Weights {
  struct Block {
    rows::Packed wqkv, wo, w13, w2, ada;
    at::Tensor ada_b;
  };
  std::vector<Block> blocks;
  rows::Packed head, head_ada, shared_ada;
  at::Tensor head_ada_b, shared_ada_b;
  std::vector<int64_t> versions;
};

BatchEngine::BatchEngine(std::shared_ptr<TransformerImpl> model, int64_t max_batch)
    : model_(std::move(model)), max_batch_(max_batch), slots_(max_batch) {
  IBQ_CHECK(max_batch >= 1, "BatchEngine: max_batch < 1");
  const auto& cfg = model_->cfg;
  const auto wopts = model_->head->weight.options();
  const int64_t R = 2 * max_batch;
  caches_.resize(cfg.n_layer);
  for (auto& c : caches_) {
    c.k = at::zeros({R, cfg.kv_heads(), cfg.head_dim(), cfg.block_size}, wopts);  // keys transposed
    c.v = at::zeros({R, cfg.kv_heads(), cfg.block_size, cfg.head_dim()}, wopts);
  }
  for (int64_t l = 0; l < cfg.n_layer; ++l) mods_.push_back(at::zeros({R, 6, cfg.n_embd}, wopts));
  head_mods_ = at::zeros({R, 2, cfg.n_embd}, wopts);
}

int64_t BatchEngine::active() const {
  int64_t n = 0;
  for (const auto& s : slots_) n += s.used ? 1 : 0;
  return n;
}

void BatchEngine::prepare() {
  std::vector<int64_t> versions;
  for (const auto& p : model_->parameters()) versions.push_back(p._version());
  if (w_ && w_->versions == versions) return;
  torch::NoGradGuard no_grad;
  auto w = std::make_shared<Weights>();
  w->versions = std::move(versions);
  for (const auto& bm : *model_->blocks) {
    auto* b = bm->as<BlockImpl>();
    Weights::Block wb;
    wb.wqkv = packed(b->wqkv);
    wb.wo = packed(b->wo);
    wb.w13 = rows::pack(at::cat({b->w1->weight.detach(), b->w3->weight.detach()}));
    wb.w2 = packed(b->w2);
    if (!model_->cfg.shared_aln) {
      auto* lin = (*b->ada_lin)[1]->as<torch::nn::Linear>();
      wb.ada = rows::pack(lin->weight);
      wb.ada_b = lin->bias.detach();
    }
    w->blocks.push_back(wb);
  }
  w->head = packed(model_->head);
  auto* hl = (*model_->head_ada_lin)[1]->as<torch::nn::Linear>();
  w->head_ada = rows::pack(hl->weight);
  w->head_ada_b = hl->bias.detach();
  if (model_->cfg.shared_aln) {
    auto* sl = (*model_->shared_ada_lin)[1]->as<torch::nn::Linear>();
    w->shared_ada = rows::pack(sl->weight);
    w->shared_ada_b = sl->bias.detach();
  }
  w_ = std::move(w);
  // the modulations of running slots came from the old weights: recompute them
  for (int64_t s = 0; s < max_batch_; ++s)
    if (slots_[s].used) modulations(s);
}

void BatchEngine::modulations(int64_t slot) {
  torch::NoGradGuard no_grad;
  const auto& cfg = model_->cfg;
  const int64_t C = cfg.n_embd;
  const auto& s = slots_[slot];
  const auto dev = model_->head->weight.device();
  std::vector<int64_t> ids{s.req.label};
  if (s.guided) ids.push_back(cfg.class_num);
  auto idx = at::tensor(ids, at::kLong).to(dev);
  auto rows = at::arange(2 * slot, 2 * slot + static_cast<int64_t>(ids.size()), at::kLong).to(dev);
  auto cls = at::silu(model_->class_table->weight.detach().index_select(0, idx));  // [r, C]
  at::Tensor shared;
  if (cfg.shared_aln) shared = rows::linear(cls, w_->shared_ada, w_->shared_ada_b).view({-1, 6, C});
  for (int64_t l = 0; l < cfg.n_layer; ++l) {
    at::Tensor m;
    if (cfg.shared_aln) {
      m = (*model_->blocks)[l]->as<BlockImpl>()->ada_gss.detach().view({1, 6, C}) + shared;
    } else {
      m = rows::linear(cls, w_->blocks[l].ada, w_->blocks[l].ada_b).view({-1, 6, C});
    }
    mods_[l].index_copy_(0, rows, m);
  }
  head_mods_.index_copy_(0, rows, rows::linear(cls, w_->head_ada, w_->head_ada_b).view({-1, 2, C}));
}

int64_t BatchEngine::join(const EngineRequest& r) {
  const auto& cfg = model_->cfg;
  IBQ_CHECK(r.label >= 0 && r.label < cfg.class_num, "BatchEngine::join: label out of range");
  IBQ_CHECK(r.sample.seed.has_value(), "BatchEngine::join: a seed is required");
  const bool guided = r.sample.cfg_scale > 1.0;
  if (guided && cfg.class_rows() == cfg.class_num)
    throw ValueError("cfgScale: guidance needs the null class, which this model lacks (class_dropout_prob 0)");
  for (int64_t s = 0; s < max_batch_; ++s) {
    auto& slot = slots_[s];
    if (slot.used) continue;
    slot.used = true;
    slot.guided = guided;
    slot.pos = 0;
    slot.last = 0;
    slot.req = r;
    slot.gen = at::make_generator<at::CPUGeneratorImpl>(*r.sample.seed);
    slot.out = at::zeros({cfg.block_size}, at::kLong);
    prepare();
    modulations(s);
    return s;
  }
  IBQ_CHECK(false, "BatchEngine::join: no free slot");
}

void BatchEngine::leave(int64_t slot) {
  IBQ_CHECK(slot >= 0 && slot < max_batch_, "BatchEngine::leave: slot out of range");
  slots_[slot].used = false;
  slots_[slot].out = at::Tensor();
}

void BatchEngine::clear() {
  for (int64_t s = 0; s < max_batch_; ++s) leave(s);
}

at::Tensor BatchEngine::take(int64_t slot) {
  IBQ_CHECK(slot >= 0 && slot < max_batch_ && slots_[slot].used, "BatchEngine::take: not a used slot");
  auto out = slots_[slot].out;
  leave(slot);
  return out;
}

at::Tensor BatchEngine::block_step(int64_t layer, const at::Tensor& x, const at::Tensor& rows, const at::Tensor& pos,
                                   const std::vector<int64_t>& row_ids, const std::vector<int64_t>& pos_ids) {
  const auto& cfg = model_->cfg;
  auto* b = (*model_->blocks)[layer]->as<BlockImpl>();
  const auto& w = w_->blocks[layer];
  const int64_t n = x.size(0), H = cfg.n_head, Hkv = cfg.kv_heads(), hd = cfg.head_dim(), T = cfg.block_size;
  auto m = mods_[layer].index_select(0, rows);  // gamma1, gamma2, scale1, scale2, shift1, shift2: [n, 6, C]
  auto a_in = rms_rows(x, b->attention_norm->weight, cfg.norm_eps).mul(m.select(1, 2) + 1).add_(m.select(1, 4));
  auto parts = rows::linear(a_in, w.wqkv).split_with_sizes({H * hd, Hkv * hd, Hkv * hd}, -1);
  auto freqs = model_->freqs_cis.to(x.device()).index_select(0, pos);  // [n, hd / 2, 2]
  auto q = apply_rotary_emb(parts[0].reshape({1, n, H, hd}), freqs)[0];   // [n, H, hd]
  auto k = apply_rotary_emb(parts[1].reshape({1, n, Hkv, hd}), freqs)[0];  // [n, Hkv, hd]
  auto v = parts[2].reshape({n, Hkv, hd});
  auto& cache = caches_[layer];
  cache.k.index_put_({rows, Slice(), Slice(), pos}, k.to(cache.k.scalar_type()));
  cache.v.index_put_({rows, Slice(), pos}, v.to(cache.v.scalar_type()));
  // every (row, head) pair attends over its own positions 0..pos alone (rows::attend)
  std::vector<int64_t> offsets(n * H), len(n * H);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t hh = 0; hh < H; ++hh) {
      offsets[i * H + hh] = (row_ids[i] * Hkv + hh / (H / Hkv)) * hd * T;
      len[i * H + hh] = pos_ids[i] + 1;
    }
  auto o = rows::attend(q.reshape({n * H, hd}).to(at::kFloat), cache.k, cache.v, offsets, len, T,
                        1.0 / std::sqrt(static_cast<double>(hd)))
               .reshape({n, H * hd});
  auto h = x + rows::linear(o.to(x.scalar_type()), w.wo).mul_(m.select(1, 0));
  auto f_in = rms_rows(h, b->ffn_norm->weight, cfg.norm_eps).mul(m.select(1, 3) + 1).add_(m.select(1, 5));
  auto h13 = rows::linear(f_in, w.w13).chunk(2, -1);
  auto f = rows::linear((at::silu(h13[0]) * h13[1]).contiguous(), w.w2).mul_(m.select(1, 1));
  return h + f;
}

std::vector<int64_t> BatchEngine::step() {
  torch::NoGradGuard no_grad;
  const auto& cfg = model_->cfg;
  std::vector<int64_t> row_ids, pos_ids, cls_ids, tok_ids, first;
  for (int64_t s = 0; s < max_batch_; ++s) {
    const auto& slot = slots_[s];
    if (!slot.used) continue;
    for (int64_t u = 0; u < (slot.guided ? 2 : 1); ++u) {
      row_ids.push_back(2 * s + u);
      pos_ids.push_back(slot.pos);
      cls_ids.push_back(u == 0 ? slot.req.label : cfg.class_num);
      tok_ids.push_back(slot.last);
      first.push_back(slot.pos == 0 ? 1 : 0);
    }
  }
  if (row_ids.empty()) return {};
  prepare();
  const auto dev = model_->head->weight.device();
  auto long_t = [&](const std::vector<int64_t>& v) { return at::tensor(v, at::kLong).to(dev); };
  auto rows = long_t(row_ids), pos = long_t(pos_ids);
  auto cls = model_->class_table->weight.detach().index_select(0, long_t(cls_ids));
  auto tok = model_->tok_emb->weight.detach().index_select(0, long_t(tok_ids));
  auto x = at::where(long_t(first).to(at::kBool).unsqueeze(1), cls, tok);
  for (int64_t l = 0; l < cfg.n_layer; ++l) x = block_step(l, x, rows, pos, row_ids, pos_ids);
  auto ss = head_mods_.index_select(0, rows);
  auto hn = rms_rows(x, model_->head_norm->weight, 1e-5).mul(ss.select(1, 0) + 1).add_(ss.select(1, 1));
  auto logits = rows::linear(hn, w_->head).to(at::kFloat);  // [n, V]
  if (!logits.device().is_cpu()) logits = logits.cpu();

  return pick(logits);
}

// The next token of every slot from its rows of logits [n, V] (in step()'s row order): pick_next's rule, with
// the row-wise parts (guidance, temperature, softmax) done for all slots at once, elementwise or per row (so
// each slot's values do not depend on the others), and one draw per slot from its own generator.
std::vector<int64_t> BatchEngine::pick(const at::Tensor& logits) {
  std::vector<Slot*> act;
  std::vector<int64_t> cond_rows, guided, uncond_rows;
  std::vector<float> cfg, temp;
  int64_t i = 0;
  for (auto& slot : slots_) {
    if (!slot.used) continue;
    if (slot.guided) {
      guided.push_back(static_cast<int64_t>(act.size()));
      uncond_rows.push_back(i + 1);
      cfg.push_back(static_cast<float>(slot.req.sample.cfg_scale));
    }
    cond_rows.push_back(i);
    temp.push_back(slot.req.sample.temperature > 0 ? static_cast<float>(slot.req.sample.temperature) : 1.f);
    act.push_back(&slot);
    i += slot.guided ? 2 : 1;
  }
  const int64_t m = static_cast<int64_t>(act.size());
  auto long_t = [](const std::vector<int64_t>& v) { return at::tensor(v, at::kLong); };
  auto l = logits.index_select(0, long_t(cond_rows));  // [m, V]
  if (!guided.empty()) {
    auto g = long_t(guided);
    auto u = logits.index_select(0, long_t(uncond_rows));
    auto c = at::tensor(cfg, at::kFloat).unsqueeze(1);
    l.index_copy_(0, g, u + (l.index_select(0, g) - u) * c);
  }
  auto scaled = l / at::tensor(temp, at::kFloat).unsqueeze(1);
  for (int64_t r = 0; r < m; ++r) {
    const auto& o = act[r]->req.sample;
    if (o.temperature > 0 && (o.top_k > 0 || o.top_p < 1.0))
      scaled.slice(0, r, r + 1).copy_(top_k_top_p_filtering(scaled.slice(0, r, r + 1).clone(), o.top_k, o.top_p));
  }
  auto probs = at::softmax(scaled, -1);
  // one draw per request from its own generator; the requests in parallel (a draw of torch.multinomial walks the
  // whole vocabulary: the largest cost of this step)
  std::vector<int64_t> next(m);
  at::parallel_for(0, m, 1, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      auto& slot = *act[r];
      const auto& o = slot.req.sample;
      if (o.temperature == 0) {
        next[r] = l[r].argmax().item<int64_t>();
      } else if (o.greedy) {
        next[r] = std::get<1>(at::topk(probs.slice(0, r, r + 1), 1, -1)).item<int64_t>();
      } else {
        next[r] = at::multinomial(probs.slice(0, r, r + 1), 1, false, slot.gen).item<int64_t>();
      }
    }
  });
  const auto& cfg_model = model_->cfg;
  std::vector<int64_t> done;
  for (int64_t r = 0; r < m; ++r) {
    auto& slot = *act[r];
    slot.out.data_ptr<int64_t>()[slot.pos] = next[r];
    slot.last = next[r];
    if (++slot.pos == cfg_model.block_size) done.push_back(&slot - slots_.data());
  }
  return done;
}

}  // namespace ibq
