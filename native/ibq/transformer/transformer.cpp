#include "ibq/transformer/transformer.h"

#include <cmath>
#include <sstream>

#include "ibq/core/compat.h"
#include "ibq/core/config_check.h"
#include "ibq/core/errors.h"

namespace ibq {
namespace {

int64_t find_multiple(int64_t n, int64_t k) { return n % k == 0 ? n : n + k - (n % k); }

[[noreturn]] void bad(const std::string& what) { throw ValueError(what); }

// Dropout on whole samples of the residual branch (timm DropPath with scale_by_keep).
at::Tensor drop_path(const at::Tensor& x, double p, bool training) {
  if (p == 0.0 || !training) return x;
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = x.size(0);
  auto keep = at::empty(shape, x.options()).bernoulli_(1 - p);
  if (p < 1.0) keep.div_(1 - p);
  return x * keep;
}

torch::nn::Module& holder(torch::nn::Module& parent, const std::string& name) {
  return *parent.register_module(name, std::make_shared<torch::nn::Module>());
}

}  // namespace

int64_t TransformerConfig::ffn_hidden() const {
  int64_t hidden = static_cast<int64_t>(2.0 * (4 * n_embd) / 3.0);
  if (ffn_dim_multiplier) hidden = static_cast<int64_t>(*ffn_dim_multiplier * static_cast<double>(hidden));
  return find_multiple(hidden, multiple_of);
}

int64_t TransformerConfig::grid_size() const { return static_cast<int64_t>(std::sqrt(static_cast<double>(block_size))); }

void TransformerConfig::validate() const {
  check_fields(*this, "transformer");
  const int64_t g = grid_size();
  IBQ_CHECK(g * g == block_size && n_embd % n_head == 0 && head_dim() % 4 == 0 && cond_channels() == n_embd &&
                n_head % kv_heads() == 0,
            "transformer: block_size " + std::to_string(block_size) + ", n_embd " + std::to_string(n_embd) + ", n_head " +
                std::to_string(n_head) + ", cond_dim " + std::to_string(cond_channels()) + ", n_kv_head " +
                std::to_string(kv_heads()) + " break the rules between fields");
}

int64_t TransformerConfig::parameter_count() const {
  const int64_t C = n_embd, hd = head_dim();
  int64_t block = C * (n_head + 2 * kv_heads()) * hd  // wqkv
                  + C * C                             // wo
                  + 3 * C * ffn_hidden()              // w1, w3, w2
                  + 2 * C;                            // attention_norm, ffn_norm
  block += shared_aln ? 6 * C : cond_channels() * 6 * C + 6 * C;
  int64_t total = vocab_size * C + class_rows() * C + n_layer * block;
  if (shared_aln) total += cond_channels() * 6 * C + 6 * C;
  total += C + C * 2 * C + 2 * C;  // head_nm: rmsnorm, ada_lin (D = n_embd)
  total += C * vocab_size;         // head
  return total;
}

TransformerConfig transformer_preset(const std::string& name) {
  TransformerConfig c;
  c.vocab_size = 16384;
  c.block_size = 256;
  c.class_num = 1000;
  struct P { const char* name; int64_t layers, heads, width; };
  for (auto p : {P{"B", 16, 16, 1024}, P{"L", 20, 20, 1280}, P{"XL", 24, 24, 1536}, P{"XXL", 30, 30, 1920}}) {
    if (name == p.name) {
      c.n_layer = p.layers;
      c.n_head = p.heads;
      c.n_embd = p.width;
      c.cond_dim = p.width;
      return c;
    }
  }
  bad("preset: expected one of B, L, XL, XXL, got '" + name + "'");
}

std::string transformer_preset_name(const TransformerConfig& cfg) {
  for (const char* n : {"B", "L", "XL", "XXL"}) {
    auto p = transformer_preset(n);
    if (p.vocab_size == cfg.vocab_size && p.block_size == cfg.block_size && p.n_layer == cfg.n_layer &&
        p.n_head == cfg.n_head && p.n_embd == cfg.n_embd && p.class_num == cfg.class_num)
      return n;
  }
  return "";
}

at::Tensor precompute_freqs_cis_2d(int64_t grid_size, int64_t head_dim, double base, int64_t cls_token_num) {
  const int64_t half = head_dim / 2;
  auto exps = at::arange(0, half, 2, at::kLong).slice(0, 0, half / 2).to(at::kFloat) / static_cast<double>(half);
  auto freqs = at::reciprocal(at::pow(base, exps));  // 1 / base^(2i / half), float32
  auto t = at::arange(grid_size, at::kLong);
  freqs = at::outer(t, freqs);  // [grid, half / 2]
  auto grid = at::cat({freqs.unsqueeze(1).expand({-1, grid_size, -1}), freqs.unsqueeze(0).expand({grid_size, -1, -1})},
                      -1);  // [grid, grid, half]
  auto cache = at::stack({at::cos(grid), at::sin(grid)}, -1).flatten(0, 1);  // [grid^2, half, 2]
  return at::cat({at::zeros({cls_token_num, half, 2}, cache.options()), cache});
}

at::Tensor apply_rotary_emb(const at::Tensor& x, const at::Tensor& freqs) {
  auto xs = x.contiguous().to(at::kFloat).view({x.size(0), x.size(1), x.size(2), -1, 2});
  auto f = freqs.view({1, xs.size(1), 1, xs.size(3), 2}).to(xs.scalar_type());
  auto x0 = xs.select(-1, 0), x1 = xs.select(-1, 1);
  auto c = f.select(-1, 0), s = f.select(-1, 1);
  return at::stack({x0 * c - x1 * s, x1 * c + x0 * s}, -1).flatten(3);
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  auto xf = x.to(at::kFloat);
  auto normed = xf * at::rsqrt(at::mean(xf * xf, -1, /*keepdim=*/true) + eps);
  return normed.to(x.scalar_type()) * weight;
}

BlockImpl::BlockImpl(const TransformerConfig& c, double dp) : cfg(c), drop_path_p(dp) {
  const int64_t C = c.n_embd, hd = c.head_dim();
  if (c.shared_aln) ada_gss = register_parameter("ada_gss", torch::randn({1, 1, 6, C}) / std::sqrt(double(C)));
  auto& att = holder(*this, "attention");
  wqkv = att.register_module("wqkv", torch::nn::Linear(torch::nn::LinearOptions(C, (c.n_head + 2 * c.kv_heads()) * hd).bias(false)));
  wo = att.register_module("wo", torch::nn::Linear(torch::nn::LinearOptions(C, C).bias(false)));
  auto& ff = holder(*this, "feed_forward");
  const int64_t hidden = c.ffn_hidden();
  w1 = ff.register_module("w1", torch::nn::Linear(torch::nn::LinearOptions(C, hidden).bias(false)));
  w3 = ff.register_module("w3", torch::nn::Linear(torch::nn::LinearOptions(C, hidden).bias(false)));
  w2 = ff.register_module("w2", torch::nn::Linear(torch::nn::LinearOptions(hidden, C).bias(false)));
  attention_norm = register_module("attention_norm", RMSNorm(C, c.norm_eps));
  ffn_norm = register_module("ffn_norm", RMSNorm(C, c.norm_eps));
  if (!c.shared_aln)
    ada_lin = register_module("ada_lin", torch::nn::Sequential(torch::nn::SiLU(), torch::nn::Linear(c.cond_channels(), 6 * C)));
}

at::Tensor BlockImpl::attention(const at::Tensor& x, const at::Tensor& freqs, KVCache* cache, int64_t pos) {
  const int64_t B = x.size(0), L = x.size(1), H = cfg.n_head, Hkv = cfg.kv_heads(), hd = cfg.head_dim();
  auto parts = wqkv(x).split_with_sizes({H * hd, Hkv * hd, Hkv * hd}, -1);
  auto q = apply_rotary_emb(parts[0].view({B, L, H, hd}), freqs).transpose(1, 2);
  auto k = apply_rotary_emb(parts[1].view({B, L, Hkv, hd}), freqs).transpose(1, 2);
  auto v = parts[2].view({B, L, Hkv, hd}).transpose(1, 2);
  c10::optional<at::Tensor> mask;
  bool causal = true;
  if (cache) {
    cache->k.slice(0, 0, B).slice(2, pos, pos + L).copy_(k);
    cache->v.slice(0, 0, B).slice(2, pos, pos + L).copy_(v);
    k = cache->k.slice(0, 0, B).slice(2, 0, pos + L);
    v = cache->v.slice(0, 0, B).slice(2, 0, pos + L);
    causal = false;
    if (L > 1) {  // query i sits at position pos + i and sees keys 0..pos+i
      auto qi = at::arange(L, x.options().dtype(at::kLong)).unsqueeze(1) + pos;
      mask = at::arange(pos + L, x.options().dtype(at::kLong)).unsqueeze(0) <= qi;
    }
  }
  if (Hkv != H) {
    k = k.repeat_interleave(H / Hkv, 1);
    v = v.repeat_interleave(H / Hkv, 1);
  }
  auto out = compat::attention(q, k, v, mask, causal, is_training() ? cfg.attn_dropout_p : 0.0);
  out = wo(out.transpose(1, 2).contiguous().view({B, L, cfg.n_embd}));
  return at::dropout(out, cfg.resid_dropout_p, is_training());
}

at::Tensor BlockImpl::forward(const at::Tensor& x, const at::Tensor& cond, const at::Tensor& freqs, KVCache* cache,
                              int64_t pos) {
  const int64_t C = cfg.n_embd;
  at::Tensor mod = cfg.shared_aln ? ada_gss + cond : ada_lin->forward(cond).view({-1, 1, 6, C});
  auto m = mod.unbind(2);  // gamma1, gamma2, scale1, scale2, shift1, shift2: each [B, 1, C]
  const bool tr = is_training();
  auto a = attention(attention_norm(x).mul(m[2] + 1).add_(m[4]), freqs, cache, pos).mul_(m[0]);
  auto h = x + drop_path(a, drop_path_p, tr);
  auto hn = ffn_norm(h).mul(m[3] + 1).add_(m[5]);
  auto f = at::dropout(w2(at::silu(w1(hn)) * w3(hn)), cfg.ffn_dropout_p, tr).mul(m[1]);
  return h + drop_path(f, drop_path_p, tr);
}

TransformerImpl::TransformerImpl(const TransformerConfig& c) : cfg(c) {
  cfg.validate();
  const int64_t C = c.n_embd;
  tok_emb = register_module("tok_emb", torch::nn::Embedding(c.vocab_size, C));
  class_table = holder(*this, "class_emb").register_module("embedding_table", torch::nn::Embedding(c.class_rows(), C));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.n_layer; ++i) {
    // torch.linspace(0, drop_path_rate, n_layer)[i], as float32 then widened (official `dpr`)
    double dp = c.n_layer == 1 ? 0.0 : at::linspace(0, c.drop_path_rate, c.n_layer)[i].item<double>();
    blocks->push_back(Block(c, dp));
  }
  if (c.shared_aln)
    shared_ada_lin = register_module("shared_ada_lin",
                                     torch::nn::Sequential(torch::nn::SiLU(), torch::nn::Linear(c.cond_channels(), 6 * C)));
  auto& hn = holder(*this, "head_nm");
  head_norm = hn.register_module("rmsnorm", RMSNorm(C, 1e-5));
  head_ada_lin = hn.register_module("ada_lin", torch::nn::Sequential(torch::nn::SiLU(), torch::nn::Linear(C, 2 * C)));
  head = register_module("head", torch::nn::Linear(torch::nn::LinearOptions(C, c.vocab_size).bias(false)));
  freqs_cis = precompute_freqs_cis_2d(c.grid_size(), c.head_dim(), c.rope_base, c.cls_token_num);
  init_weights();
}

void TransformerImpl::init_weights() {
  torch::NoGradGuard no_grad;
  const double std = cfg.initializer_range;
  const int64_t C = cfg.n_embd;
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* lin = m->as<torch::nn::Linear>()) {
      lin->weight.normal_(0, std);
      if (lin->bias.defined()) lin->bias.zero_();
    } else if (auto* emb = m->as<torch::nn::Embedding>()) {
      emb->weight.normal_(0, std);
    }
  }
  for (auto& bm : *blocks) {
    auto* b = bm->as<BlockImpl>();
    if (!cfg.shared_aln) {
      auto* lin = (*b->ada_lin)[1]->as<torch::nn::Linear>();
      lin->weight.slice(0, 2 * C).mul_(0.5);
      lin->weight.slice(0, 0, 2 * C).mul_(cfg.alng);
      lin->bias.zero_();
    } else {
      b->ada_gss.slice(2, 2).mul_(0.5);
      b->ada_gss.slice(2, 0, 2).mul_(cfg.alng);
    }
  }
  auto* hl = (*head_ada_lin)[1]->as<torch::nn::Linear>();
  hl->weight.mul_(0.5);
  hl->bias.zero_();
  head->weight.zero_();
}

at::Tensor TransformerImpl::check_labels(const at::Tensor& labels, const char* arg, bool allow_null) const {
  if (!at::isIntegralType(labels.scalar_type(), /*includeBool=*/false))
    throw TypeError(std::string(arg) + ": expected an integer tensor of class ids, got " + std::string(c10::toString(labels.scalar_type())));
  if (!(labels.dim() == 1 || (labels.dim() == 2 && labels.size(1) == 1)))
    throw ShapeError(std::string(arg) + ": expected shape [B] or [B, 1], got " + c10::str(labels.sizes()));
  auto l = labels.reshape({-1}).to(at::kLong);
  const int64_t hi = allow_null ? cfg.class_rows() : cfg.class_num;
  if (l.numel() > 0) {
    int64_t lo_v = l.min().item<int64_t>(), hi_v = l.max().item<int64_t>();
    if (lo_v < 0 || hi_v >= hi)
      throw ValueError(std::string(arg) + ": class ids must be in [0, " + std::to_string(hi - 1) + "] (class_num " +
                       std::to_string(cfg.class_num) + "), got " + std::to_string(lo_v < 0 ? lo_v : hi_v));
  }
  return l;
}

void TransformerImpl::check_tokens(const at::Tensor& tokens, const char* arg, int64_t max_len) const {
  if (!at::isIntegralType(tokens.scalar_type(), false))
    throw TypeError(std::string(arg) + ": expected an integer tensor of token ids, got " + std::string(c10::toString(tokens.scalar_type())));
  if (tokens.dim() != 2) throw ShapeError(std::string(arg) + ": expected shape [B, T], got " + c10::str(tokens.sizes()));
  if (tokens.size(1) > max_len)
    throw ValueError(std::string(arg) + ": sequence length " + std::to_string(tokens.size(1)) +
                     " exceeds the allowed " + std::to_string(max_len) + " (block_size " + std::to_string(cfg.block_size) + ")");
  if (tokens.numel() > 0) {
    int64_t lo = tokens.min().item<int64_t>(), hi = tokens.max().item<int64_t>();
    if (lo < 0 || hi >= cfg.vocab_size)
      throw ValueError(std::string(arg) + ": token ids must be in [0, " + std::to_string(cfg.vocab_size - 1) +
                       "] (vocab_size), got " + std::to_string(lo < 0 ? lo : hi));
  }
}

at::Tensor TransformerImpl::forward(const at::Tensor& tokens, const at::Tensor& labels, bool drop_labels) {
  check_tokens(tokens, "tokens", cfg.block_size - 1);
  auto l = check_labels(labels, "labels", /*allow_null=*/false);
  if (l.size(0) != tokens.size(0))
    throw ValueError("labels: expected " + std::to_string(tokens.size(0)) + " labels (one per token row), got " +
                     std::to_string(l.size(0)));
  const auto dev = head->weight.device();
  l = l.to(dev);
  if (is_training() && drop_labels && cfg.class_dropout_prob > 0) {  // LabelEmbedder.token_drop
    auto drop = at::rand({l.size(0)}, head->weight.options()) < cfg.class_dropout_prob;
    l = at::where(drop, at::full_like(l, cfg.class_num), l);
  }
  auto cls = class_table(l).unsqueeze(1);  // [B, 1, C]
  auto h = at::cat({cls, tok_emb(tokens.to(dev, at::kLong))}, 1);
  h = at::dropout(h, cfg.token_drop, is_training());
  return run(h, cls, nullptr, 0);
}

at::Tensor TransformerImpl::run(at::Tensor h, const at::Tensor& cls, std::vector<KVCache>* caches, int64_t pos) {
  const int64_t L = h.size(1);
  at::Tensor cond = cfg.shared_aln ? shared_ada_lin->forward(cls).view({-1, 1, 6, cfg.n_embd}) : cls;
  auto freqs = freqs_cis.slice(0, pos, pos + L).to(h.device());
  for (size_t i = 0; i < blocks->size(); ++i)
    h = (*blocks)[i]->as<BlockImpl>()->forward(h, cond, freqs, caches ? &(*caches)[i] : nullptr, pos);
  // head_nm (AdaLNBeforeHead): the official code feeds it cond_BD; with shared_aln that tensor is the
  // [B, 1, 6, C] shared modulation, which does not fit its Linear(n_embd, 2 n_embd) batch-wise, so the
  // class embedding is used there instead.
  auto ss = head_ada_lin->forward(cls).view({-1, 1, 2, cfg.n_embd}).unbind(2);
  return head(head_norm(h).mul(ss[0] + 1).add_(ss[1]));
}

}  // namespace ibq
