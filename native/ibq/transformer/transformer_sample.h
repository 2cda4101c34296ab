// Class-conditional sampling with a static KV cache and classifier-free guidance (official sample_IBQ of
// src/IBQ/modules/transformer/llama.py, with its top_k_top_p_filtering from HF transformers v3.2).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <optional>

#include "ibq/transformer/transformer.h"

namespace ibq {

struct SampleOptions {
  double cfg_scale = 1.0;    // > 1: guidance (batch doubled with the null class); <= 1: plain conditional
  double temperature = 1.0;  // > 0 divides the logits; 0 means greedy argmax
  int64_t top_k = 0;         // 0: off; larger than vocab_size: clamped
  double top_p = 1.0;        // (0, 1]; 1: off; the most likely token is always kept
  bool greedy = false;       // argmax (torch.topk(probs, 1)) instead of torch.multinomial
  std::optional<uint64_t> seed;  // torch.manual_seed(seed) right before sampling; absent: the default generator
  int64_t steps = -1;            // tokens to generate; -1: block_size
};

// Removes (sets to -inf) logits outside the top_k largest and outside the smallest set whose probability
// reaches top_p (keeping the most likely token), in place on logits [B, V]; returns it.
at::Tensor top_k_top_p_filtering(at::Tensor logits, int64_t top_k, double top_p);

// The next token of each row of logits [B, V] (guidance already applied): argmax at temperature 0, else
// logits / temperature, top-k / top-p filtered, softmax, then argmax (greedy) or one torch.multinomial draw from
// `gen` (absent: the default generator). Returns int64 [B, 1].
at::Tensor pick_next(at::Tensor logits, const SampleOptions& o, const c10::optional<at::Generator>& gen);

// Generates int64 [B, steps] tokens for class ids `labels` (int64 [B] or [B, 1], in [0, class_num)). The
// model runs in eval mode for the call (its mode is restored). `between(step, total)` runs after every
// token (progress; it may throw ibq::Aborted). The options must be in range (lib/transformer checks them:
// IBQ_CHECK here). Random draws: one torch.multinomial over [B, vocab] per step (multinomial_one: the same
// tokens and generator state), from a generator seeded like torch.manual_seed(seed), so results equal the official
// loop's. A float32 model on the CPU runs BatchEngine's decode step (packed weights, batch-invariant kernels; logits
// within 1e-5 of the official ones); elsewhere the model's own modules with a static KV cache.
at::Tensor transformer_sample(TransformerImpl& model, const at::Tensor& labels, const SampleOptions& opts,
                      const std::function<void(int64_t, int64_t)>& between);

}  // namespace ibq
