// The class-conditional Llama-AdaLN transformer of IBQ stage II (official
// src/IBQ/modules/transformer/llama.py `GPT`, built on LlamaGen's autoregressive/models/gpt.py).
// Parameter names follow the official module, so `transformer.*` keys of the official AR checkpoints
// load 1:1 once the prefix is stripped: tok_emb.weight, class_emb.embedding_table.weight,
// blocks.N.attention.{wqkv,wo}.weight, blocks.N.feed_forward.{w1,w3,w2}.weight,
// blocks.N.{attention_norm,ffn_norm}.weight, blocks.N.ada_lin.1.{weight,bias} (or blocks.N.ada_gss with
// shared_aln, plus shared_ada_lin.1.*), head_nm.rmsnorm.weight, head_nm.ada_lin.1.{weight,bias}, head.weight.
#pragma once
#include <torch/torch.h>

#include "ibq/core/config_field.h"

#include <optional>
#include <vector>

namespace ibq {

// The official `transformer_config.params` (GPT.__init__ arguments), declared once for C++ and TypeScript
// (ibq/config_field.h), with the official defaults except cond_dim (official 256; here absent means n_embd, the
// only value that works: the condition is the class embedding) and class_dropout_prob (not an official argument:
// the official code fixes 0.1).
struct TransformerConfig {
  int64_t vocab_size = 0;  // required
  int64_t block_size = 0;  // required
  int64_t n_layer = 12;
  int64_t n_head = 8;
  int64_t n_embd = 256;
  std::optional<int64_t> cond_dim;  // absent: n_embd
  int64_t class_num = 1000;
  int64_t cls_token_num = 1;
  double rope_base = 10000;
  double norm_eps = 1e-5;
  int64_t multiple_of = 256;
  std::optional<int64_t> n_kv_head;          // absent: n_head
  std::optional<double> ffn_dim_multiplier;  // absent: 1
  bool shared_aln = false;
  double resid_dropout_p = 0.0;
  double ffn_dropout_p = 0.1;
  double attn_dropout_p = 0.0;
  double token_drop = 0.1;
  double drop_path_rate = 0.0;
  double class_dropout_prob = 0.1;
  double alng = 1e-3;
  double initializer_range = 0.02;

  template <class Self, class Fn>
  static void for_each_field(Self& c, Fn&& fn) {
    fn(Field("vocab_size", "Token ids are in [0, vocab_size) (the tokenizer's n_embed or less).").req().ge(1),
       c.vocab_size);
    fn(Field("block_size", "Image tokens per sample: a square number (the 2D RoPE grid).").req().ge(1), c.block_size);
    fn(Field("n_layer", "Transformer blocks.").ge(1), c.n_layer);
    fn(Field("n_head", "Attention heads.").ge(1), c.n_head);
    fn(Field("n_embd", "Width: a multiple of n_head whose head size (n_embd / n_head) is divisible by 4 (2D RoPE).")
           .ge(1),
       c.n_embd);
    fn(Field("cond_dim", "Width of the condition: must equal n_embd (the condition is the class embedding); null: "
                         "n_embd (the official default, 256, works only for n_embd 256)."),
       c.cond_dim);
    fn(Field("class_num", "Classes (labels in [0, class_num); guidance adds a null class).").ge(1), c.class_num);
    fn(Field("cls_token_num", "Class-token positions in front of the token grid.").ge(1), c.cls_token_num);
    fn(Field("rope_base", "RoPE frequency base.").gt(0), c.rope_base);
    fn(Field("norm_eps", "RMSNorm epsilon.").gt(0), c.norm_eps);
    fn(Field("multiple_of", "The FeedForward hidden size is rounded up to a multiple of this.").ge(1), c.multiple_of);
    fn(Field("n_kv_head", "Key/value heads of grouped-query attention (a divisor of n_head); null: n_head.").ge(1),
       c.n_kv_head);
    fn(Field("ffn_dim_multiplier", "Factor of the FeedForward hidden size; null: 1.").gt(0), c.ffn_dim_multiplier);
    fn(Field("shared_aln", "One AdaLN projection shared by all blocks (each block keeps an ada_gss table)."),
       c.shared_aln);
    fn(Field("resid_dropout_p", "Dropout of the attention output.").ge(0).lt(1), c.resid_dropout_p);
    fn(Field("ffn_dropout_p", "Dropout of the FeedForward output.").ge(0).lt(1), c.ffn_dropout_p);
    fn(Field("attn_dropout_p", "Dropout of the attention weights.").ge(0).lt(1), c.attn_dropout_p);
    fn(Field("token_drop", "Dropout of the token embeddings.").ge(0).lt(1), c.token_drop);
    fn(Field("drop_path_rate", "Stochastic depth of the last block (linear from 0 over the blocks).").ge(0).lt(1),
       c.drop_path_rate);
    fn(Field("class_dropout_prob", "LabelEmbedder dropout (not an official argument: the official code fixes 0.1); > 0 "
                                   "adds the null-class row that guidance uses.").ge(0).lt(1),
       c.class_dropout_prob);
    fn(Field("alng", "Initial scale of the AdaLN gammas.").ge(0), c.alng);
    fn(Field("initalizer_range", "Std of the initial weights (the official keyword keeps its spelling).").ge(0),
       c.initializer_range);
  }

  int64_t cond_channels() const { return cond_dim.value_or(n_embd); }
  int64_t head_dim() const { return n_embd / n_head; }
  int64_t kv_heads() const { return n_kv_head.value_or(n_head); }
  // FeedForward hidden size: int(2 * 4 * n_embd / 3), times ffn_dim_multiplier, rounded up to multiple_of.
  int64_t ffn_hidden() const;
  // Embedding rows: class_num + 1 (the null class of guidance) when class_dropout_prob > 0.
  int64_t class_rows() const { return class_num + (class_dropout_prob > 0 ? 1 : 0); }
  int64_t grid_size() const;
  // IBQ_CHECK of the declared ranges and of the rules between fields (lib/transformer checks them first).
  void validate() const;
  // sum(p.numel() for p in GPT(...).parameters()), computed without building the model.
  int64_t parameter_count() const;
};

// Official presets (IBQ paper Table 7 / official configs): B, L, XL, XXL. Throws ValueError for other names.
TransformerConfig transformer_preset(const std::string& name);
// The preset whose shapes equal `cfg`'s (vocab, block size, layers, heads, width, classes), or "".
std::string transformer_preset_name(const TransformerConfig& cfg);

// RMSNorm: x * rsqrt(mean(x^2, -1) + eps) * weight (computed in float32, cast back).
struct RMSNormImpl : torch::nn::Module {
  RMSNormImpl(int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

// Per-block static KV cache: [batch capacity, n_kv_head, max_seq, head_dim] keys and values.
struct KVCache {
  at::Tensor k, v;
};

struct TransformerImpl;
struct DecodeWeights;  // the weights packed for the one-token decode step (batch_engine.cpp)

// One Llama block with AdaLN modulation (official `Block`).
struct BlockImpl : torch::nn::Module {
  BlockImpl(const TransformerConfig& cfg, double drop_path);
  // x [B, L, C]; cond [B, 1, C] (or [B, 1, 6, C] with shared_aln); freqs [L, head_dim/2, 2];
  // cache/pos: KV-cache mode (keys of positions < pos come from the cache), else causal self-attention.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cond, const at::Tensor& freqs, KVCache* cache,
                     int64_t pos);

  const TransformerConfig cfg;
  double drop_path_p;  // this block's stochastic-depth rate (linspace(0, drop_path_rate, n_layer)[i])
  torch::nn::Linear wqkv{nullptr}, wo{nullptr}, w1{nullptr}, w3{nullptr}, w2{nullptr};
  RMSNorm attention_norm{nullptr}, ffn_norm{nullptr};
  torch::nn::Sequential ada_lin{nullptr};
  at::Tensor ada_gss;

 private:
  at::Tensor attention(const at::Tensor& x, const at::Tensor& freqs, KVCache* cache, int64_t pos);
};
TORCH_MODULE(Block);

struct TransformerImpl : torch::nn::Module {
  explicit TransformerImpl(const TransformerConfig& cfg);

  // Teacher-forced logits. tokens: int64 [B, T], 0 <= T <= block_size - 1, ids in [0, vocab_size);
  // labels: int64 [B] or [B, 1] in [0, class_rows()). Returns [B, T + 1, vocab_size] (position 0: the class
  // token). In training mode applies label dropout (class_dropout_prob, when drop_labels), token dropout,
  // attention/residual/FFN dropout and drop path. Throws ValueError for out-of-range ids or lengths.
  at::Tensor forward(const at::Tensor& tokens, const at::Tensor& labels, bool drop_labels = true);

  // Runs the blocks and head on embeddings h [B, L, C] at positions pos..pos+L-1 under the class
  // embeddings cls [B, 1, C] (KV-cache mode when caches is non-null, one cache per block).
  // Returns logits [B, L, vocab_size].
  at::Tensor run(at::Tensor h, const at::Tensor& cls, std::vector<KVCache>* caches, int64_t pos);

  // Official initialisation: normal(0, initializer_range) for Linear/Embedding weights, zero biases,
  // AdaLN gamma rows x alng and the rest x 0.5, head_nm AdaLN x 0.5, zero head.
  void init_weights();
  // Throws ValueError naming `arg` unless labels are integers in [0, class_rows()) of shape [B] or [B, 1];
  // returns them as int64 [B].
  at::Tensor check_labels(const at::Tensor& labels, const char* arg, bool allow_null) const;
  void check_tokens(const at::Tensor& tokens, const char* arg, int64_t max_len) const;

  const TransformerConfig cfg;
  torch::nn::Embedding tok_emb{nullptr};
  torch::nn::Embedding class_table{nullptr};  // class_emb.embedding_table
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::Sequential shared_ada_lin{nullptr};
  RMSNorm head_norm{nullptr};                // head_nm.rmsnorm
  torch::nn::Sequential head_ada_lin{nullptr};  // head_nm.ada_lin
  torch::nn::Linear head{nullptr};
  at::Tensor freqs_cis;  // [cls_token_num + block_size, head_dim / 2, 2] (not a parameter or buffer)
  // Packed copies of the weights for the decode step (sampling, serving): made once and kept until the parameters
  // change (batch_engine.cpp, decode_weights()). Only the model's job queue touches it.
  std::shared_ptr<DecodeWeights> decode_weights;
};
TORCH_MODULE(Transformer);

// 2D rotary table of the official precompute_freqs_cis_2d: cls_token_num zero rows, then the
// grid_size x grid_size grid (row frequencies then column frequencies), [.., head_dim / 2, (cos, sin)].
at::Tensor precompute_freqs_cis_2d(int64_t grid_size, int64_t head_dim, double base, int64_t cls_token_num);
// Rotates pairs (x0, x1) of x [B, L, H, D] by freqs [L, D/2, 2]; result float32 (official apply_rotary_emb).
at::Tensor apply_rotary_emb(const at::Tensor& x, const at::Tensor& freqs);

}  // namespace ibq
