#include "ibq/transformer/batch_engine.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "ibq/core/errors.h"
#include "ibq/transformer/decode_rows.h"
#include "ibq/transformer/draw.h"
#include "ibq/transformer/rows_linear.h"

namespace ibq {
namespace {

rows::Packed packed(const torch::nn::Linear& l) { return rows::pack(l->weight); }

// Rows per thread from which a step runs as row groups, one per thread (BatchEngine::forward): below it the weights'
// memory traffic dominates and the threads share it better by splitting the columns of each product.
constexpr int64_t kRowsPerGroup = 8;

const float* fptr(const at::Tensor& t) { return t.data_ptr<float>(); }

}  // namespace

struct DecodeWeights {
  struct Block {
    rows::Packed wqkv, wo, w13, w2, ada;
    at::Tensor ada_b;
  };
  std::vector<Block> blocks;
  rows::Packed head, head_ada, shared_ada;
  at::Tensor head_ada_b, shared_ada_b;
  std::vector<std::pair<const void*, int64_t>> versions;  // each parameter's storage and version when packed
};

std::shared_ptr<DecodeWeights> decode_weights(TransformerImpl& model) {
  std::vector<std::pair<const void*, int64_t>> versions;
  for (const auto& p : model.parameters()) versions.emplace_back(p.data_ptr(), p._version());
  if (model.decode_weights && model.decode_weights->versions == versions) return model.decode_weights;
  torch::NoGradGuard no_grad;
  auto w = std::make_shared<DecodeWeights>();
  w->versions = std::move(versions);
  for (const auto& bm : *model.blocks) {
    auto* b = bm->as<BlockImpl>();
    DecodeWeights::Block wb;
    wb.wqkv = packed(b->wqkv);
    wb.wo = packed(b->wo);
    wb.w13 = rows::pack(at::cat({b->w1->weight.detach(), b->w3->weight.detach()}));
    wb.w2 = packed(b->w2);
    if (!model.cfg.shared_aln) {
      auto* lin = (*b->ada_lin)[1]->as<torch::nn::Linear>();
      wb.ada = rows::pack(lin->weight);
      wb.ada_b = lin->bias.detach();
    }
    w->blocks.push_back(wb);
  }
  w->head = packed(model.head);
  auto* hl = (*model.head_ada_lin)[1]->as<torch::nn::Linear>();
  w->head_ada = rows::pack(hl->weight);
  w->head_ada_b = hl->bias.detach();
  if (model.cfg.shared_aln) {
    auto* sl = (*model.shared_ada_lin)[1]->as<torch::nn::Linear>();
    w->shared_ada = rows::pack(sl->weight);
    w->shared_ada_b = sl->bias.detach();
  }
  model.decode_weights = w;
  return w;
}

BatchEngine::BatchEngine(std::shared_ptr<TransformerImpl> model, int64_t max_batch, bool resident)
    : model_(std::move(model)), max_batch_(max_batch), slots_(max_batch) {
  IBQ_CHECK(max_batch >= 1, "BatchEngine: max_batch < 1");
  const auto& cfg = model_->cfg;
  const auto wopts = model_->head->weight.options();
  if (!model_->head->weight.device().is_cpu() || model_->head->weight.scalar_type() != at::kFloat)
    throw ValueError("transformer: the decode engine runs float32 models on the CPU (got " +
                     std::string(c10::toString(model_->head->weight.scalar_type())) + " on " +
                     model_->head->weight.device().str() + ")");
  multinomial_fast_path();  // its self-check, once, here rather than inside a step's parallel draws
  const int64_t R = 2 * max_batch;
  caches_.resize(cfg.n_layer);
  const int64_t Tp = rows::key_positions(cfg.block_size), P = rows::kernels().panel;
  // zeroed only to make it resident: a row reads only the positions it wrote (a partial key panel's other columns are
  // computed and dropped)
  for (auto& c : caches_) {
    c.k = at::empty({R, cfg.kv_heads(), Tp / P, cfg.head_dim(), P}, wopts);  // keys transposed, in panels of positions
    c.v = at::empty({R, cfg.kv_heads(), Tp, cfg.head_dim()}, wopts);
    if (resident) {
      c.k.zero_();
      c.v.zero_();
    }
  }
  for (int64_t l = 0; l < cfg.n_layer; ++l) mods_.push_back(at::zeros({R, 6, cfg.n_embd}, wopts));
  head_mods_ = at::zeros({R, 2, cfg.n_embd}, wopts);
  logits_ = at::empty({R, cfg.vocab_size}, wopts);
  scores_ = at::empty({R * cfg.n_head, Tp}, wopts);
  weights_ = at::empty_like(scores_);
}

int64_t BatchEngine::active() const {
  int64_t n = 0;
  for (const auto& s : slots_) n += s.used ? 1 : 0;
  return n;
}

void BatchEngine::prepare() {
  auto w = decode_weights(*model_);
  if (w == w_) return;
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

int64_t BatchEngine::join_rows(int64_t label, bool guided) {
  const auto& cfg = model_->cfg;
  IBQ_CHECK(label >= 0 && label < cfg.class_num, "BatchEngine::join: label out of range");
  if (guided && cfg.class_rows() == cfg.class_num)
    throw ValueError("cfgScale: guidance needs the null class, which this model lacks (class_dropout_prob 0)");
  for (int64_t s = 0; s < max_batch_; ++s) {
    auto& slot = slots_[s];
    if (slot.used) continue;
    slot.used = true;
    slot.guided = guided;
    slot.pos = 0;
    slot.last = 0;
    slot.req = EngineRequest{label, {}};
    slot.gen = at::Generator();
    slot.out = at::zeros({cfg.block_size}, at::kLong);
    prepare();
    modulations(s);
    return s;
  }
  IBQ_CHECK(false, "BatchEngine::join: no free slot");
}

int64_t BatchEngine::join(const EngineRequest& r) {
  IBQ_CHECK(r.sample.seed.has_value(), "BatchEngine::join: a seed is required");
  const int64_t s = join_rows(r.label, r.sample.cfg_scale > 1.0);
  slots_[s].req = r;
  slots_[s].gen = at::make_generator<at::CPUGeneratorImpl>(*r.sample.seed);
  return s;
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

// One block for rows x [n, C] (updated in place), each row at its own cache row and position.
void BatchEngine::block_step(int64_t layer, at::Tensor& x, const std::vector<int64_t>& row_ids,
                             const std::vector<int64_t>& pos_ids, int64_t scratch_row) {
  const auto& cfg = model_->cfg;
  auto* b = (*model_->blocks)[layer]->as<BlockImpl>();
  const auto& w = w_->blocks[layer];
  const int64_t n = x.size(0), C = cfg.n_embd, H = cfg.n_head, Hkv = cfg.kv_heads(), hd = cfg.head_dim(),
                T = rows::key_positions(cfg.block_size), P = rows::kernels().panel, hid = cfg.ffn_hidden();
  const float eps = static_cast<float>(cfg.norm_eps);
  // modulations per cache row: gamma1, gamma2, scale1, scale2, shift1, shift2 ([6, C])
  const float* mods = fptr(mods_[layer]);
  auto mod = [&](int64_t i, int64_t j) { return mods + (row_ids[i] * 6 + j) * C; };
  float* xp = x.data_ptr<float>();
  auto a_in = at::empty({n, C}, x.options());
  float* ap = a_in.data_ptr<float>();
  const float* an_w = fptr(b->attention_norm->weight);
  for (int64_t i = 0; i < n; ++i) decode::norm_modulate(xp + i * C, C, an_w, eps, mod(i, 2), mod(i, 4), ap + i * C);
  auto qkv = rows::linear(a_in, w.wqkv);  // [n, (H + 2 Hkv) hd]
  const float* qkvp = fptr(qkv);
  const int64_t width = (H + 2 * Hkv) * hd;
  auto& cache = caches_[layer];
  float* kp = cache.k.data_ptr<float>();
  float* vp = cache.v.data_ptr<float>();
  auto q = at::empty({n * H, hd}, x.options());
  float* qp = q.data_ptr<float>();
  const float* freqs = fptr(model_->freqs_cis);
  for (int64_t i = 0; i < n; ++i) {
    const float* f = freqs + pos_ids[i] * hd;  // [hd / 2, 2] at this position
    const float* src = qkvp + i * width;
    decode::rotate(src, H, hd, f, qp + i * H * hd, hd, 1);
    // keys transposed in panels of P positions: [row, head, T / P, d, P]; values [row, head, T, d]
    const int64_t pos = pos_ids[i];
    decode::rotate(src + H * hd, Hkv, hd, f, kp + row_ids[i] * Hkv * hd * T + (pos / P) * hd * P + pos % P, hd * T, P);
    for (int64_t h = 0; h < Hkv; ++h)
      std::memcpy(vp + ((row_ids[i] * Hkv + h) * T + pos_ids[i]) * hd, src + (H + Hkv + h) * hd, hd * sizeof(float));
  }
  // every (row, head) pair attends over its own positions 0..pos alone (rows::attend)
  std::vector<int64_t> offsets(n * H), len(n * H);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t hh = 0; hh < H; ++hh) {
      offsets[i * H + hh] = (row_ids[i] * Hkv + hh / (H / Hkv)) * hd * T;
      len[i * H + hh] = pos_ids[i] + 1;
    }
  auto o = rows::attend(q, cache.k, cache.v, offsets, len, T, 1.0 / std::sqrt(static_cast<double>(hd)),
                        scores_.slice(0, scratch_row * H, (scratch_row + n) * H),
                        weights_.slice(0, scratch_row * H, (scratch_row + n) * H))
               .view({n, H * hd});
  auto y = rows::linear(o, w.wo);
  const float* yp = fptr(y);
  for (int64_t i = 0; i < n; ++i) decode::gated_add(xp + i * C, yp + i * C, mod(i, 0), C);
  const float* fn_w = fptr(b->ffn_norm->weight);
  for (int64_t i = 0; i < n; ++i) decode::norm_modulate(xp + i * C, C, fn_w, eps, mod(i, 3), mod(i, 5), ap + i * C);
  auto h13 = rows::linear(a_in, w.w13);  // [n, 2 hid]: w1 rows, then w3 rows
  auto g = at::silu(h13.slice(1, 0, hid)).mul_(h13.slice(1, hid));
  auto f = rows::linear(g, w.w2);
  const float* fp = fptr(f);
  for (int64_t i = 0; i < n; ++i) decode::gated_add(xp + i * C, fp + i * C, mod(i, 1), C);
}

at::Tensor BatchEngine::forward() {
  torch::NoGradGuard no_grad;
  const auto& cfg = model_->cfg;
  const int64_t C = cfg.n_embd;
  std::vector<int64_t> row_ids, pos_ids;
  auto x = at::empty({2 * max_batch_, C}, model_->head->weight.options());
  float* xp = x.data_ptr<float>();
  const float* cls = fptr(model_->class_table->weight);
  const float* tok = fptr(model_->tok_emb->weight);
  for (int64_t s = 0; s < max_batch_; ++s) {
    const auto& slot = slots_[s];
    if (!slot.used) continue;
    for (int64_t u = 0; u < (slot.guided ? 2 : 1); ++u) {
      const int64_t i = static_cast<int64_t>(row_ids.size());
      const float* src = slot.pos == 0 ? cls + (u == 0 ? slot.req.label : cfg.class_num) * C : tok + slot.last * C;
      std::memcpy(xp + i * C, src, C * sizeof(float));
      row_ids.push_back(2 * s + u);
      pos_ids.push_back(slot.pos);
    }
  }
  const int64_t n = static_cast<int64_t>(row_ids.size());
  if (n == 0) return at::empty({0, cfg.vocab_size}, x.options());
  prepare();
  // Rows [r0, r1) through every block and the head: the products split their columns among the threads; or, with
  // enough rows, each thread takes a group of rows through the whole step alone (one parallel region per step
  // instead of one per product; the same arithmetic per row either way: batch-invariant).
  auto rows_through = [&](int64_t r0, int64_t r1) {
    std::vector<int64_t> ids(row_ids.begin() + r0, row_ids.begin() + r1), pos(pos_ids.begin() + r0, pos_ids.begin() + r1);
    auto xs = x.slice(0, r0, r1);
    for (int64_t l = 0; l < cfg.n_layer; ++l) block_step(l, xs, ids, pos, r0);
    // head_nm: scale, shift per cache row ([2, C])
    const float* hm = fptr(head_mods_);
    const float* hw = fptr(model_->head_norm->weight);
    auto hn = at::empty({r1 - r0, C}, x.options());
    float* hp = hn.data_ptr<float>();
    for (int64_t i = r0; i < r1; ++i)
      decode::norm_modulate(xp + i * C, C, hw, 1e-5f, hm + row_ids[i] * 2 * C, hm + (row_ids[i] * 2 + 1) * C,
                            hp + (i - r0) * C);
    rows::linear(hn, w_->head, {}, logits_.slice(0, r0, r1));
  };
  const int64_t groups = std::min<int64_t>(at::get_num_threads(), n / kRowsPerGroup);
  if (groups <= 1 || at::in_parallel_region()) {
    rows_through(0, n);
  } else {
    at::parallel_for(0, groups, 1, [&](int64_t g0, int64_t g1) {
      for (int64_t g = g0; g < g1; ++g) rows_through(n * g / groups, n * (g + 1) / groups);
    });
  }
  return logits_.slice(0, 0, n);  // [n, V], in the engine's buffer
}

void BatchEngine::advance(const std::vector<int64_t>& next) {
  size_t r = 0;
  for (auto& slot : slots_) {
    if (!slot.used) continue;
    IBQ_CHECK(r < next.size(), "BatchEngine::advance: one token per active slot");
    IBQ_CHECK(slot.pos < model_->cfg.block_size, "BatchEngine::advance: the slot is full");
    slot.out.data_ptr<int64_t>()[slot.pos] = next[r];
    slot.last = next[r++];
    ++slot.pos;
  }
  IBQ_CHECK(r == next.size(), "BatchEngine::advance: one token per active slot");
}

std::vector<int64_t> BatchEngine::step() {
  if (active() == 0) return {};
  return pick(forward());
}

// The next token of every slot from its rows of logits [n, V] (in step()'s row order): pick_next's rule, with
// the row-wise parts (guidance, temperature, softmax) done for all slots at once, elementwise or per row (so
// each slot's values do not depend on the others), and one draw per slot from its own generator.
std::vector<int64_t> BatchEngine::pick(const at::Tensor& logits) {
  std::vector<Slot*> act;
  std::vector<int64_t> first;  // each active slot's first row of logits
  int64_t i = 0;
  for (auto& slot : slots_) {
    if (!slot.used) continue;
    act.push_back(&slot);
    first.push_back(i);
    i += slot.guided ? 2 : 1;
  }
  const int64_t m = static_cast<int64_t>(act.size()), V = logits.size(1);
  const float* lp = logits.data_ptr<float>();
  std::vector<int64_t> next(m);
  // Each slot alone (its values never depend on the others), the slots in parallel: guidance, temperature, top-k /
  // top-p, softmax, then one draw from its own generator (multinomial_one: torch.multinomial's token).
  at::parallel_for(0, m, 1, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      auto& slot = *act[r];
      const auto& o = slot.req.sample;
      auto row = at::empty({1, V}, logits.options());
      float* p = row.data_ptr<float>();
      const float* c = lp + first[r] * V;
      if (slot.guided) {  // u + (c - u) * cfg_scale
        const float* u = c + V;
        const float s = static_cast<float>(o.cfg_scale);
        for (int64_t v = 0; v < V; ++v) p[v] = u[v] + (c[v] - u[v]) * s;
      } else {
        std::memcpy(p, c, V * sizeof(float));
      }
      if (o.temperature == 0) {
        next[r] = row.argmax().item<int64_t>();
        continue;
      }
      const float t = static_cast<float>(o.temperature);
      for (int64_t v = 0; v < V; ++v) p[v] = p[v] / t;
      if (o.top_k > 0 || o.top_p < 1.0) row = top_k_top_p_filtering(row, o.top_k, o.top_p);
      auto probs = at::softmax(row, -1);
      next[r] = o.greedy ? std::get<1>(at::topk(probs, 1, -1)).item<int64_t>()
                         : multinomial_one(probs, slot.gen).item<int64_t>();
    }
  });
  advance(next);
  std::vector<int64_t> done;
  for (int64_t r = 0; r < m; ++r)
    if (act[r]->pos == model_->cfg.block_size) done.push_back(act[r] - slots_.data());
  return done;
}

at::Tensor decode_logits(std::shared_ptr<TransformerImpl> model, const at::Tensor& labels, const at::Tensor& tokens) {
  auto l = model->check_labels(labels, "labels", /*allow_null=*/false);
  model->check_tokens(tokens, "tokens", model->cfg.block_size - 1);
  const int64_t B = l.size(0), T = tokens.size(1);
  if (tokens.size(0) != B) throw ValueError("labels: expected one label per token row");
  BatchEngine engine(std::move(model), B);
  for (int64_t b = 0; b < B; ++b) engine.join_rows(l[b].item<int64_t>(), /*guided=*/false);
  auto t = tokens.to(at::kLong).contiguous();
  std::vector<at::Tensor> out;
  for (int64_t n = 0; n <= T; ++n) {
    out.push_back(engine.forward().clone());  // forward() reuses its buffer
    if (n == T) break;
    std::vector<int64_t> next(B);
    for (int64_t b = 0; b < B; ++b) next[b] = t.data_ptr<int64_t>()[b * T + n];
    engine.advance(next);
  }
  return at::stack(out, 1);
}

}  // namespace ibq
