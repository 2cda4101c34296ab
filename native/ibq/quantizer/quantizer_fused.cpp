// Driver of the fused kernels: blocks of positions, parts of the codebook per thread, merges in part order.
//
// Gradients (official IndexPropagationQuantize + compute_entropy_loss, chain rule of the dense graph): with
// L = z E^T, p = softmax(L), G = g E^T (g = dLoss/dz_q), c_i = sum_j p_ij G_ij,
//   dLoss/dL_ij = p_ij (G_ij - c_i) + ps_ij (gp_ij - r_i) / T,
// where s = L / T, ps = softmax(s), q = log_softmax(s + 1e-5), gp_ij = g_row q_ij + g_avg_j (g_row = dLoss/dH_i =
// -dLoss/dSE / N, g_avg = dLoss/d avg_probs / N) and r_i = sum_j ps_ij gp_ij (the log_softmax branch is zero,
// see quantizer_chunked.cpp). Then dz = dL E and dE += dL^T z.
#include "ibq/quantizer/quantizer_fused.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

namespace ibq {
namespace {

struct Parts {
  std::vector<int64_t> bounds;  // codes [bounds[p], bounds[p + 1]) of part p, at tile boundaries
  int64_t count() const { return static_cast<int64_t>(bounds.size()) - 1; }
};

Parts split_codes(int64_t k) {
  const int64_t tiles = (k + fused::kTileCodes - 1) / fused::kTileCodes;
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), tiles));
  Parts p;
  for (int64_t i = 0; i <= parts; ++i) p.bounds.push_back(std::min(k, (tiles * i / parts) * fused::kTileCodes));
  return p;
}

template <class F>
void each_part(const Parts& parts, F&& f) {
  at::parallel_for(0, parts.count(), 1, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) f(p, parts.bounds[p], parts.bounds[p + 1]);
  });
}

int64_t round_up(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

// The block's positions as the right operand of the logits, [D, ncols] in panels of `panel` columns: z^T in
// columns [0, rows), g^T in [rp, rp + rows) when g is defined; zero padding.
void pack_positions(at::Tensor& B, const at::Tensor& z, const at::Tensor& g, int64_t s, int64_t rows, int64_t rp,
                    int64_t panel) {
  B.zero_();
  const int64_t d = z.size(1), ncols = B.size(1);
  float* out = B.data_ptr<float>();
  auto put = [&](const float* src, int64_t col0) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t k = 0; k < d; ++k) out[fused::panel_index(k, col0 + r, d, ncols, panel)] = src[(s + r) * d + k];
  };
  put(z.data_ptr<float>(), 0);
  if (g.defined()) put(g.data_ptr<float>(), rp);
}

// z rows [s, s + rows) as the right operand of the codebook gradient: [rows, D] in panels of `panel` columns.
void pack_rows(at::Tensor& Zp, const at::Tensor& z, int64_t s, int64_t rows, int64_t panel) {
  const int64_t d = z.size(1);
  const float* src = z.data_ptr<float>() + s * d;
  float* out = Zp.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < d; ++k) out[fused::panel_index(r, k, rows, d, panel)] = src[r * d + k];
}

}  // namespace

std::vector<const fused::Kernels*> fused_cpu_kernels() {
  std::vector<const fused::Kernels*> out;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (fused::kernels_avx512() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
    out.push_back(fused::kernels_avx512());
  if (fused::kernels_avx2() && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    out.push_back(fused::kernels_avx2());
#endif
  return out;
}

const fused::Kernels* fused_kernels(const at::Tensor& z, const at::Tensor& E, at::ScalarType compute) {
  if (!z.device().is_cpu() || !E.device().is_cpu() || compute != at::kFloat || z.scalar_type() != at::kFloat ||
      E.scalar_type() != at::kFloat || E.size(0) >= (int64_t(1) << 24))
    return nullptr;
  const char* env = std::getenv("IBQ_QUANTIZER_KERNEL");
  if (!env) env = std::getenv("IBQ_KERNEL");  // the switch of all our CPU kernels (kernels/cpu_kernels.h)
  const std::string want = env ? env : "";
  if (want == "aten") return nullptr;
  for (const auto* kn : fused_cpu_kernels()) {
    if ((want.empty() || want == kn->name) && E.size(1) % kn->d_align == 0) return kn;
  }
  return nullptr;
}

at::Tensor fused_buffer(const fused::Kernels& kn, int64_t n, int64_t k, int64_t rows, bool with_g) {
  const int64_t R = std::max<int64_t>(1, std::min(rows, n)), rp = round_up(R, kn.row_align);
  return at::empty({k, with_g ? 2 * rp : rp}, at::TensorOptions().dtype(at::kFloat));
}

FusedForward fused_forward(const fused::Kernels& kn, const at::Tensor& z_in, const at::Tensor& E_in, bool entropy,
                           double temperature, int64_t rows, bool for_backward) {
  const auto z = z_in.contiguous(), E = E_in.contiguous();
  const int64_t n = z.size(0), k = E.size(0), d = E.size(1);
  const int64_t R = std::max<int64_t>(1, std::min(rows, n)), rp = round_up(R, kn.row_align);
  const auto fopt = z.options().dtype(at::kFloat), dopt = z.options().dtype(at::kDouble);
  const Parts parts = split_codes(k);
  const int64_t np = parts.count();

  FusedForward f;
  f.indices = at::empty({n}, z.options().dtype(at::kLong));
  f.m1 = at::empty({n}, fopt);
  if (entropy) {
    f.ss = at::empty({n}, dopt);
    f.sample_entropy = at::empty({n}, fopt);
    f.avg_sum = at::zeros({k}, dopt);
  }
  auto B = at::empty({d, rp}, fopt);
  // the block's logits [k][rp] at the start of a buffer of the backward's size when one follows (freed here and
  // kept by the allocator for it: core/large_blocks.h)
  auto buf = entropy ? fused_buffer(kn, n, k, rows, for_backward) : at::Tensor();
  auto scratch = at::empty({np, fused::kTileCodes, rp}, fopt);
  auto pm = at::empty({np, rp}, fopt), pidx = at::empty({np, rp}, fopt);
  auto m1 = at::zeros({rp}, fopt), inv_ss = at::zeros({rp}, fopt);
  auto psum = at::empty({2, np, rp}, dopt);

  fused::Block b;
  b.k = k, b.d = d, b.rp = rp, b.ncols = rp, b.E = E.data_ptr<float>(), b.B = B.data_ptr<float>();
  b.buf = entropy ? buf.data_ptr<float>() : nullptr;
  b.temperature = static_cast<float>(temperature);
  b.m1 = m1.data_ptr<float>();
  b.inv_ss = inv_ss.data_ptr<float>();
  for (int64_t s = 0; s < n; s += R) {
    const int64_t r = std::min(R, n - s);
    b.rows = r;
    pack_positions(B, z, at::Tensor(), s, r, rp, kn.row_align);
    pm.fill_(-std::numeric_limits<float>::infinity());
    pidx.zero_();
    each_part(parts, [&](int64_t p, int64_t k0, int64_t k1) {
      kn.max_pass(b, k0, k1, scratch[p].data_ptr<float>(), {pm[p].data_ptr<float>(), pidx[p].data_ptr<float>()});
    });
    // parts in code order; a later part wins only with a strictly larger logit (first index of the max)
    const float* pmp = pm.data_ptr<float>();
    const float* pip = pidx.data_ptr<float>();
    float* m1p = m1.data_ptr<float>();
    int64_t* idx = f.indices.data_ptr<int64_t>() + s;
    m1.zero_();
    for (int64_t i = 0; i < r; ++i) {
      float best = pmp[i], at = pip[i];
      for (int64_t p = 1; p < np; ++p) {
        if (pmp[p * rp + i] > best) best = pmp[p * rp + i], at = pip[p * rp + i];
      }
      m1p[i] = best;
      idx[i] = static_cast<int64_t>(at);
    }
    f.m1.slice(0, s, s + r).copy_(m1.slice(0, 0, r));
    if (!entropy) continue;

    psum.zero_();
    each_part(parts, [&](int64_t p, int64_t k0, int64_t k1) {
      kn.entropy_sums(b, k0, k1, {psum[0][p].data_ptr<double>(), psum[1][p].data_ptr<double>(), nullptr});
    });
    auto S = psum[0].sum(0), Bt = psum[1].sum(0);
    // H_i = -sum_j ps_j ((t_j - mt) - log S) = log S - sum_j e_j (t_j - mt) / S
    auto H = (S.log() - Bt / S).to(at::kFloat);
    f.sample_entropy.slice(0, s, s + r).copy_(H.slice(0, 0, r));
    f.ss.slice(0, s, s + r).copy_(S.slice(0, 0, r));
    inv_ss.zero_();
    inv_ss.slice(0, 0, r).copy_(S.slice(0, 0, r).reciprocal());
    double* avg = f.avg_sum.data_ptr<double>();
    each_part(parts, [&](int64_t, int64_t k0, int64_t k1) { kn.avg_probs(b, k0, k1, avg); });
  }
  return f;
}

void fused_backward(const fused::Kernels& kn, const at::Tensor& z_in, const at::Tensor& E_in, const at::Tensor& g_in,
                    const FusedForward& f, double g_row, const at::Tensor& g_avg_in, double temperature, int64_t rows,
                    const at::Tensor& buf, at::Tensor& dz, at::Tensor& dE) {
  const auto z = z_in.contiguous(), E = E_in.contiguous();
  const auto g = g_in.defined() ? g_in.to(at::kFloat).contiguous() : at::Tensor();
  const auto g_avg = g_avg_in.defined() ? g_avg_in.to(at::kFloat).contiguous() : at::Tensor();
  const bool has_g = g.defined(), ent = g_avg.defined();
  const int64_t n = z.size(0), k = E.size(0), d = E.size(1);
  const int64_t R = std::max<int64_t>(1, std::min(rows, n)), rp = round_up(R, kn.row_align);
  const int64_t ncols = has_g ? 2 * rp : rp;
  const auto fopt = z.options().dtype(at::kFloat), dopt = z.options().dtype(at::kDouble);
  const Parts parts = split_codes(k);
  const int64_t np = parts.count();
  TORCH_CHECK(dE.is_contiguous() && dE.scalar_type() == at::kFloat, "fused_backward: dE must be contiguous float32");

  dz = at::zeros({n, d}, fopt);
  if (!has_g && !ent) return;
  auto B = at::empty({d, ncols}, fopt);
  TORCH_CHECK(buf.is_contiguous() && buf.numel() >= k * ncols, "fused_backward: buffer too small");
  auto scratch = at::empty({np, fused::kTileCodes * ncols + rp * d}, fopt);
  auto Zp = at::empty({R, d}, fopt);
  auto dzp = at::empty({np, d, rp}, dopt);  // dz^T of the block, per part
  auto psum = at::empty({3, np, rp}, dopt);
  // per-position constants; padding positions keep finite values (their gradient columns are zeroed)
  auto cst = at::zeros({6, rp}, fopt);  // m1, inv_ss, log_ss, inv_s1, c, r

  fused::Block b;
  b.k = k, b.d = d, b.rp = rp, b.ncols = ncols, b.E = E.data_ptr<float>(), b.B = B.data_ptr<float>();
  b.buf = buf.data_ptr<float>();
  b.zp = Zp.data_ptr<float>();
  b.temperature = static_cast<float>(temperature);
  b.m1 = cst[0].data_ptr<float>();
  b.inv_ss = cst[1].data_ptr<float>();
  b.log_ss = cst[2].data_ptr<float>();
  b.inv_s1 = cst[3].data_ptr<float>();
  b.c = cst[4].data_ptr<float>();
  b.r = cst[5].data_ptr<float>();
  b.g_avg = ent ? g_avg.data_ptr<float>() : nullptr;
  b.g_row = static_cast<float>(g_row);
  float* dEp = dE.data_ptr<float>();
  for (int64_t s = 0; s < n; s += R) {
    const int64_t r = std::min(R, n - s);
    b.rows = r;
    pack_positions(B, z, g, s, r, rp, kn.row_align);
    pack_rows(Zp, z, s, r, kn.row_align);
    cst.zero_();
    cst[0].slice(0, 0, r).copy_(f.m1.slice(0, s, s + r));
    at::Tensor ss;
    if (ent) {
      ss = f.ss.slice(0, s, s + r);
      cst[1].slice(0, 0, r).copy_(ss.reciprocal());
      cst[2].slice(0, 0, r).copy_(ss.log());
    }
    psum.zero_();
    each_part(parts, [&](int64_t p, int64_t k0, int64_t k1) {
      kn.grad_sums(b, k0, k1, scratch[p].data_ptr<float>(),
                   {psum[0][p].data_ptr<double>(), psum[1][p].data_ptr<double>(), psum[2][p].data_ptr<double>()});
    });
    if (has_g) {
      auto S1 = psum[0].sum(0).slice(0, 0, r);
      cst[3].slice(0, 0, r).copy_(S1.reciprocal());
      cst[4].slice(0, 0, r).copy_(psum[1].sum(0).slice(0, 0, r) / S1);
    }
    if (ent) cst[5].slice(0, 0, r).copy_(psum[2].sum(0).slice(0, 0, r) / ss);
    dzp.zero_();
    each_part(parts, [&](int64_t p, int64_t k0, int64_t k1) {
      kn.grads(b, k0, k1, scratch[p].data_ptr<float>(), dzp[p].data_ptr<double>(), dEp);
    });
    dz.slice(0, s, s + r).copy_(dzp.narrow(2, 0, r).sum(0).t());
  }
}

}  // namespace ibq
