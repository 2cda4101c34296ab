// Continuous batching for class-conditional sampling (serving): requests join a running decode at the next token
// step and leave when they finish or are cancelled, freeing their slot. Every buffer is allocated once for
// max_batch requests (static shapes): per block a KV cache (keys [2 max_batch, n_kv_head, T / P, head_dim, P]:
// transposed, in panels of P = rows::kernels().panel positions; values [2 max_batch, n_kv_head, T, head_dim]; T =
// rows::key_positions(block_size); rows
// 2s and 2s + 1: the conditional and unconditional row of slot s, so a guided request's pair stays together) and
// the AdaLN modulations of the slot's class, computed when it joins.
//
// Batch invariance: a request's tokens do not depend on the other requests or on the step it joined at. Each
// row runs one token per step at its own position; the matrix products are rows::linear (one fma chain per
// element whatever the rows, weights packed once per model: decode_weights()), the row-wise parts (AdaLN RMSNorm,
// rotary embedding and cache write, gated residuals: decode_rows.h) take each row alone in a fixed order,
// attention runs per (row, head) pair over its own positions (rows::attend), and each request draws from its own
// generator (multinomial_one over [1, vocab]: torch.multinomial's token, seeded with its seed). The sampling rule
// (guidance, temperature, top-k/top-p, softmax, one multinomial draw) is pick_next's. transformer_sample() runs
// this decode step too (one slot per label, its single generator drawing for all rows as torch.multinomial does).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "ibq/transformer/transformer.h"
#include "ibq/transformer/transformer_sample.h"

namespace ibq {

struct EngineRequest {
  int64_t label = 0;  // in [0, class_num)
  SampleOptions sample;  // cfg_scale, temperature, top_k, top_p, greedy; seed required (one stream per request)
};

class BatchEngine {
 public:
  // The engine uses the model's packed weights (rows::pack, kept on the model: decode_weights(); refreshed by
  // prepare() after the model's parameters change). A float32 model on the CPU. resident: the KV cache's memory is
  // written once here (a long-lived engine: no page faults while it serves), else on first use.
  BatchEngine(std::shared_ptr<TransformerImpl> model, int64_t max_batch, bool resident = false);

  int64_t max_batch() const { return max_batch_; }
  int64_t active() const;  // slots in use
  // Re-packs the weights if the model's parameters changed since the last copy (load_state_dict);
  // call before steps (the worker thread that runs them).
  void prepare();
  // Puts `r` in a free slot (throws InternalError when none is free): its class token runs at the next step.
  int64_t join(const EngineRequest& r);
  // A slot without a generator or sampling options, for a caller that draws the tokens itself (forward() and
  // advance(); transformer_sample): one row (`guided` false) or the conditional and null-class rows.
  int64_t join_rows(int64_t label, bool guided);
  // Frees `slot` (a cancelled request).
  void leave(int64_t slot);
  // Frees every slot (after a failed step: the requests it held are failed by the caller).
  void clear();
  // One token for every active slot. Returns the slots that produced their last token in this step (their
  // tokens: take(slot), which frees the slot).
  std::vector<int64_t> step();
  // The logits float32 [rows, vocab_size] of this step's token of every active slot, rows in slot order (a guided
  // slot: its conditional row, then its null-class row), in the engine's buffer (valid until the next forward()).
  // advance() then feeds the tokens drawn.
  at::Tensor forward();
  // Records the next token of each active slot (slot order) and moves them one position on.
  void advance(const std::vector<int64_t>& next);
  // int64 [block_size] tokens of a finished slot, which is freed.
  at::Tensor take(int64_t slot);

 private:
  struct Slot {
    bool used = false, guided = false;
    int64_t pos = 0;  // next position to feed (0: the class token)
    int64_t last = 0;  // last token drawn
    EngineRequest req;
    at::Generator gen;
    at::Tensor out;  // int64 [block_size]
  };
  // One block for the rows x [n, C] (in place) at cache rows row_ids and positions pos_ids; scratch_row: the first of
  // the n rows of the attention scratch buffers it may use.
  void block_step(int64_t layer, at::Tensor& x, const std::vector<int64_t>& row_ids, const std::vector<int64_t>& pos_ids,
                  int64_t scratch_row);
  void modulations(int64_t slot);
  std::vector<int64_t> pick(const at::Tensor& logits);

  std::shared_ptr<TransformerImpl> model_;
  const int64_t max_batch_;
  std::vector<Slot> slots_;
  std::vector<KVCache> caches_;
  std::vector<at::Tensor> mods_;  // per block [2 max_batch, 6, C]
  at::Tensor head_mods_;          // [2 max_batch, 2, C]
  at::Tensor logits_;             // [2 max_batch, vocab_size]: forward()'s result
  at::Tensor scores_, weights_;   // [2 max_batch n_head, block_size]: attention scores and their softmax
  std::shared_ptr<DecodeWeights> w_;
};

// Teacher-forced logits through the decode step (for checks against forward() and the official logits): labels
// int64 [B] in [0, class_num), tokens int64 [B, T] with T < block_size, no guidance. Returns float32 [B, T + 1,
// vocab_size] (position 0: the class token), one engine step per position.
at::Tensor decode_logits(std::shared_ptr<TransformerImpl> model, const at::Tensor& labels, const at::Tensor& tokens);

// The model's weights packed for the decode step, made on first use and again after its parameters change
// (compared by version and storage). Call on the model's queue.
std::shared_ptr<DecodeWeights> decode_weights(TransformerImpl& model);

}  // namespace ibq
