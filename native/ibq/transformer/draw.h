// One torch.multinomial(probs, 1) draw per row, the same token as libtorch's CPU kernel for the same generator state,
// and the generator left in the same state, computed faster. libtorch draws q_i ~ Exp(1) for every entry (two
// mt19937 words each, u = 53 bits / 2^53, q_i = float(-log(1 - u))) and returns argmax_i p_i / q_i. Here the words
// come from a copy of the generator's engine (inlined), and the logarithm, the costly part, is computed only for the
// few entries that can be the argmax: u <= -log(1 - u) <= u / (1 - u) bounds every p_i / q_i, and only entries
// whose upper bound reaches the largest lower bound are evaluated exactly (the same float operations as
// libtorch's). A self-check against at::multinomial at first use (and entries with u = 0) fall back to
// at::multinomial itself, so the result is libtorch's in every case.
#pragma once
#include <ATen/ATen.h>

namespace ibq {

// probs: float32 [B, V] (or [V]) on the CPU, each row finite, >= 0 and not all zero (else at::multinomial's error);
// gen: a CPU generator, absent: the default one. Returns int64 [B, 1] ([1]) like at::multinomial(probs, 1, false,
// gen).
at::Tensor multinomial_one(const at::Tensor& probs, const c10::optional<at::Generator>& gen);

// Whether the fast path is in use (false when the self-check found libtorch's draws differ, e.g. another libtorch).
bool multinomial_fast_path();

}  // namespace ibq
