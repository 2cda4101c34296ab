#include "ibq/transformer/draw.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/MT19937RNGEngine.h>

#include <cmath>
#include <mutex>
#include <vector>

namespace ibq {
namespace {

constexpr double kSlack = 1e-6;  // covers the roundings of log (double), the cast to float and the division

// The draw of one row with `engine` (advanced by 2 V words). Returns -1 (left to at::multinomial) when a
// probability is negative or not finite, when all are zero (its errors) or when some u is 0 (q = 0: libtorch
// divides by zero there).
int64_t draw_row(const float* p, int64_t V, at::mt19937& engine, std::vector<double>& u) {
  u.resize(V);
  double best_lo = -1.0;
  bool zero = false, bad = false, any = false;
  for (int64_t i = 0; i < V; ++i) {
    const uint32_t hi = engine(), lo = engine();
    const uint64_t r = (static_cast<uint64_t>(hi) << 32) | lo;
    const double ui = static_cast<double>(r & ((uint64_t(1) << 53) - 1)) * (1.0 / static_cast<double>(uint64_t(1) << 53));
    u[i] = ui;
    zero |= ui == 0.0;
    // lower bound of p / q: p (1 - u) / u, compared without dividing
    const double pi = p[i];
    bad |= !(pi >= 0.0 && pi < INFINITY);
    any |= pi > 0.0;
    if (pi * (1.0 - ui) > best_lo * ui) best_lo = pi * (1.0 - ui) / ui;
  }
  if (zero || bad || !any) return -1;
  const double m = best_lo * (1.0 - kSlack) - 1e-38;
  int64_t arg = -1;
  float best = 0.f;
  for (int64_t i = 0; i < V; ++i) {
    // upper bound p / u (with slack) below the largest lower bound: not the argmax
    if (static_cast<double>(p[i]) * (1.0 + kSlack) + 1e-38 * u[i] < m * u[i]) continue;
    // libtorch's values: q = (float)(-1.0 / 1.0 * log(1.0 - u)), then p / q in float
    const float q = static_cast<float>(-1.0 / 1.0 * std::log(1.0 - u[i]));
    const float v = p[i] / q;
    if (arg < 0 || v > best) {
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
  std::vector<double> u;
  std::lock_guard<std::mutex> lock(g->mutex_);
  const at::mt19937 saved = g->engine();
  at::mt19937 engine = saved;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t arg = draw_row(p.data_ptr<float>() + b * V, V, engine, u);
    if (arg < 0) return at::Tensor();
    out.data_ptr<int64_t>()[b] = arg;
  }
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
