#include "ibq/transformer/draw.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/core/MT19937RNGEngine.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <vector>

#include "ibq/transformer/rows_linear.h"

namespace ibq {
namespace {

constexpr double kSlack = 1e-6;  // covers the roundings of log (double), the cast to float and the division

// The engine's next_state() (MT19937RNGEngine.h): the 624-word state advanced once.
void twist(uint32_t* s) {
  constexpr int N = at::MERSENNE_STATE_N, M = at::MERSENNE_STATE_M;
  auto tw = [](uint32_t u, uint32_t v) {
    return (((u & at::UMASK) | (v & at::LMASK)) >> 1) ^ ((v & 1u) ? at::MATRIX_A : 0u);
  };
  int j = 0;
  for (; j < N - M; ++j) s[j] = s[j + M] ^ tw(s[j], s[j + 1]);
  for (; j < N - 1; ++j) s[j] = s[j + M - N] ^ tw(s[j], s[j + 1]);
  s[N - 1] = s[M - 1] ^ tw(s[N - 1], s[0]);
}

void temper(const uint32_t* s, uint32_t* out, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    uint32_t y = s[j];
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= (y >> 18);
    out[j] = y;
  }
}

// The next n words of the engine whose state is `d`, as n calls of its operator() give them (and leave the state),
// a block at a time: the state is twisted when its words are used up, each word tempered.
void words(at::mt19937_data_pod& d, uint32_t* out, int64_t n) {
  while (n > 0) {
    if (d.left_ == 1) {  // operator() would twist before its next word
      twist(d.state_.data());
      d.left_ = at::MERSENNE_STATE_N + 1;
      d.next_ = 0;
    }
    const int64_t k_n = std::min<int64_t>(n, d.left_ - 1);
    temper(d.state_.data() + d.next_, out, k_n);
    out += k_n;
    n -= k_n;
    d.next_ += static_cast<uint32_t>(k_n);
    d.left_ -= static_cast<int>(k_n);
  }
}

double draw_u(const uint32_t* w, int64_t i) {
  // u = (random64 & (2^53 - 1)) / 2^53, random64 = first word << 32 | second word: exactly
  // ((first & (2^21 - 1)) 2^32 + second) / 2^53 (every step exact in double)
  return (static_cast<double>(w[2 * i] & 0x1fffffu) * 4294967296.0 + static_cast<double>(w[2 * i + 1])) *
         (1.0 / 9007199254740992.0);
}

// draw_row's first pass, one entry at a time (the row kernels' draw_scan where this CPU has vectors).
int64_t scan_scalar(const float* p, const uint32_t* w, int64_t V, int64_t* cand, double* m_io, int* flags) {
  double m = *m_io;
  int64_t n = 0;
  for (int64_t i = 0; i < V; ++i) {
    const double u = draw_u(w, i), pi = p[i];
    if (!(pi >= 0.0 && pi < INFINITY)) *flags |= 1;
    if (pi > 0.0) *flags |= 2;
    if (u == 0.0) *flags |= 4;
    // p / q <= p / u (1 + slack): below m, not the argmax
    if (pi * (1.0 + kSlack) + 1e-38 * u < m * u || u == 0.0) continue;
    cand[n++] = i;
    const double lower = pi * (1.0 - u) / u * (1.0 - kSlack) - 1e-38;  // p / q >= p (1 - u) / u (1 - slack)
    if (lower > m) m = lower;
  }
  *m_io = m;
  return n;
}

// The draw of one row from its 2 V engine words `w`. Returns -1 (left to at::multinomial) when a probability is
// negative or not finite, when all are zero (its errors) or when some u is 0 (q = 0: libtorch divides by zero there).
// One pass keeps the entries whose upper bound reaches the running largest lower bound (a superset of those reaching
// the final one); the exact values are computed for those that still do at the end.
int64_t draw_row(const float* p, int64_t V, const uint32_t* w, std::vector<int64_t>& cand) {
  cand.resize(V);
  const auto& k = rows::kernels();
  double m = -1.0;  // the largest lower bound so far, less the slack
  int flags = 0;
  const int64_t n = (k.draw_scan ? k.draw_scan : &scan_scalar)(p, w, V, cand.data(), &m, &flags);
  if (flags != 2) return -1;  // a bad p, none > 0, or some u = 0
  int64_t arg = -1;
  float best = 0.f;
  for (int64_t c = 0; c < n; ++c) {
    const int64_t i = cand[c];
    const double u = draw_u(w, i);
    if (static_cast<double>(p[i]) * (1.0 + kSlack) + 1e-38 * u < m * u) continue;
    // libtorch's values: q = (float)(-1.0 / 1.0 * log(1.0 - u)), then p / q in float
    const float q = static_cast<float>(-1.0 / 1.0 * std::log(1.0 - u));
    const float v = p[i] / q;
    if (arg < 0 || v > best) {  // candidates in index order: the first of equal values wins, as in argmax
      best = v;
      arg = i;
    }
  }
  return arg;
}

at::Tensor draw(const at::Tensor& probs, at::CPUGeneratorImpl* g) {
  auto p = probs.contiguous();
  const int64_t V = p.size(-1), B = p.numel() / std::max<int64_t>(V, 1);
  auto out = at::empty(probs.dim() == 1 ? std::vector<int64_t>{1} : std::vector<int64_t>{B, 1}, at::kLong);
  std::vector<uint32_t> w(2 * V * B);
  std::lock_guard<std::mutex> lock(g->mutex_);
  at::mt19937 engine = g->engine();
  auto d = engine.data();
  words(d, w.data(), 2 * V * B);  // row b takes words [2 V b, 2 V (b + 1)), as libtorch's draws go row by row
  int64_t* o = out.data_ptr<int64_t>();
  const float* pp = p.data_ptr<float>();
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    thread_local std::vector<int64_t> cand;
    for (int64_t b = b0; b < b1; ++b) o[b] = draw_row(pp + b * V, V, w.data() + 2 * V * b, cand);
  });
  for (int64_t b = 0; b < B; ++b)
    if (o[b] < 0) return at::Tensor();  // the generator untouched: at::multinomial draws instead
  engine.set_data(d);
  g->set_engine(engine);
  return out;
}

// Compares draws with at::multinomial on a few distributions and seeds (the same generator states).
bool self_check() {
  auto g0 = at::make_generator<at::CPUGeneratorImpl>(12345);
  std::vector<at::Tensor> cases{at::softmax(at::randn({3, 1000}, g0), -1), at::full({2, 333}, 1.0 / 333),
                                at::softmax(at::randn({2, 64}, g0) * 8, -1)};
  cases[2].select(1, 5).zero_();
  for (uint64_t seed : {0u, 7u, 99u}) {
    for (const auto& c : cases) {
      auto ga = at::make_generator<at::CPUGeneratorImpl>(seed), gb = at::make_generator<at::CPUGeneratorImpl>(seed);
      for (int rep = 0; rep < 3; ++rep) {
        auto mine = draw(c, gb.get<at::CPUGeneratorImpl>());
        auto ref = at::multinomial(c, 1, false, ga);
        if (!mine.defined() || !at::equal(mine, ref)) return false;
      }
      if (at::randint(1 << 30, {4}, ga).ne(at::randint(1 << 30, {4}, gb)).any().item<bool>()) return false;
    }
  }
  return true;
}

}  // namespace

bool multinomial_fast_path() {
  static const bool ok = self_check();
  return ok;
}

at::Tensor multinomial_one(const at::Tensor& probs, const c10::optional<at::Generator>& gen) {
  if (probs.device().is_cpu() && probs.scalar_type() == at::kFloat && (probs.dim() == 1 || probs.dim() == 2) &&
      probs.numel() > 0 && multinomial_fast_path()) {
    at::Generator g = gen.has_value() && gen->defined() ? *gen : at::detail::getDefaultCPUGenerator();
    auto out = draw(probs, g.get<at::CPUGeneratorImpl>());
    if (out.defined()) return out;
  }
  return at::multinomial(probs, 1, false, gen);
}

}  // namespace ibq
