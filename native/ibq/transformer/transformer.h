// The class-conditional Llama-AdaLN transformer of IBQ stage II (official
// src/IBQ/modules/transformer/llama.py `GPT`, built on LlamaGen's autoregressive/models/gpt.py).
// Parameter names follow the official module, so `transformer.*` keys of the official AR checkpoints
// load 1:1 once the prefix is stripped: tok_emb.weight, class_emb.embedding_table.weight,
// blocks.N.attention.{wqkv,wo}.weight, blocks.N.feed_forward.{w1,w3,w2}.weight,
// blocks.N.{attention_norm,ffn_norm}.weight, blocks.N.ada_lin.1.{weight,bias} (or blocks.N.ada_gss with
// shared_aln, plus shared_ada_lin.1.*), head_nm.rmsnorm.weight, head_nm.ada_lin.1.{weight,bias}, head.weight.
#pragma once
#include <torch/torch.h>

#include <optional>
#include <vector>

namespace ibq {

// The official `transformer_config.params` (GPT.__init__ arguments), with the official defaults.
struct TransformerConfig {
  int64_t vocab_size = 16384;
  int64_t block_size = 256;  // number of image tokens; must be a square (2D RoPE grid)
  int64_t n_layer = 12;
  int64_t n_head = 8;
  int64_t n_embd = 256;
  int64_t cond_dim = 256;  // must equal n_embd (the condition is the class embedding)
  int64_t class_num = 1000;
  int64_t cls_token_num = 1;  // zero RoPE rows in front of the token grid
  double rope_base = 10000;
  double norm_eps = 1e-5;
  int64_t multiple_of = 256;
  std::optional<int64_t> n_kv_head;            // grouped-query attention; absent: n_head
  std::optional<double> ffn_dim_multiplier;    // absent: 1
  bool shared_aln = false;
  double resid_dropout_p = 0.0;
  double ffn_dropout_p = 0.1;
  double attn_dropout_p = 0.0;
  double token_drop = 0.1;
  double drop_path_rate = 0.0;
  double class_dropout_prob = 0.1;  // LabelEmbedder dropout (fixed to 0.1 in the official code)
  double alng = 1e-3;               // init scale of the AdaLN gammas (initalize_weights(init_adaln_gamma))
  double initializer_range = 0.02;

  // Calls fn(official_name, field) for every field above, in the official order: the one list of the config's
  // fields that the bindings read and write (int64_t, double, bool, std::optional<int64_t>, std::optional<double>).
  template <class Self, class Fn>
  static void for_each_field(Self& c, Fn&& fn) {
    fn("vocab_size", c.vocab_size);
    fn("block_size", c.block_size);
    fn("n_layer", c.n_layer);
    fn("n_head", c.n_head);
    fn("n_embd", c.n_embd);
    fn("cond_dim", c.cond_dim);
    fn("class_num", c.class_num);
    fn("cls_token_num", c.cls_token_num);
    fn("rope_base", c.rope_base);
    fn("norm_eps", c.norm_eps);
    fn("multiple_of", c.multiple_of);
    fn("n_kv_head", c.n_kv_head);
    fn("ffn_dim_multiplier", c.ffn_dim_multiplier);
    fn("shared_aln", c.shared_aln);
    fn("resid_dropout_p", c.resid_dropout_p);
    fn("ffn_dropout_p", c.ffn_dropout_p);
    fn("attn_dropout_p", c.attn_dropout_p);
    fn("token_drop", c.token_drop);
    fn("drop_path_rate", c.drop_path_rate);
    fn("class_dropout_prob", c.class_dropout_prob);
    fn("alng", c.alng);
    fn("initalizer_range", c.initializer_range);  // the official keyword's spelling
  }

  int64_t head_dim() const { return n_embd / n_head; }
  int64_t kv_heads() const { return n_kv_head.value_or(n_head); }
  // FeedForward hidden size: int(2 * 4 * n_embd / 3), times ffn_dim_multiplier, rounded up to multiple_of.
  int64_t ffn_hidden() const;
  // Embedding rows: class_num + 1 (the null class of guidance) when class_dropout_prob > 0.
  int64_t class_rows() const { return class_num + (class_dropout_prob > 0 ? 1 : 0); }
  int64_t grid_size() const;
  // Throws ibq::ValueError naming the first field out of range.
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
};
TORCH_MODULE(Transformer);

// 2D rotary table of the official precompute_freqs_cis_2d: cls_token_num zero rows, then the
// grid_size x grid_size grid (row frequencies then column frequencies), [.., head_dim / 2, (cos, sin)].
at::Tensor precompute_freqs_cis_2d(int64_t grid_size, int64_t head_dim, double base, int64_t cls_token_num);
// Rotates pairs (x0, x1) of x [B, L, H, D] by freqs [L, D/2, 2]; result float32 (official apply_rotary_emb).
at::Tensor apply_rotary_emb(const at::Tensor& x, const at::Tensor& freqs);

}  // namespace ibq
