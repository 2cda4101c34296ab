#include "ibq/quantizer/quantizer_chunked.h"

#include <algorithm>

#include "ibq/core/compat.h"
#include "ibq/quantizer/quantizer_fused.h"

namespace ibq {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Entropy of one block of rows, as compute_entropy_loss: s = logits / T; p = softmax(s);
// q = log_softmax(s + 1e-5). `lf` (float32 logits [rows, K]) is overwritten.
struct EntropyBlock {
  at::Tensor p, q;
};
EntropyBlock entropy_block(at::Tensor& lf, double temperature) {
  lf.div_(temperature);
  auto p = at::softmax(lf, 1);
  auto q = at::log_softmax(lf.add_(1e-5), 1);
  lf = at::Tensor();
  return {p, q};
}

// Gradient wrt float32 logits of the entropy terms for one block, by the chain rule of the dense graph:
// SE = mean_i H_i, H_i = -sum_j p_ij q_ij; AE = -sum_j a_j log(a_j + 1e-5), a = mean_i p_i.
// gH = -gSE / N per row; dL/dp = gH q + gpa / N, dL/dq = gH p; back through softmax(s), then / T.
// The branch through q = log_softmax(s + 1e-5) is left out: it is gq - exp(q) * sum(gq) = gH (p - p * sum(p))
// = 0 (exp(q) = softmax(s) = p, sum(p) = 1); the dense path gets rounding noise of about 1e-7 * |gH| p there.
// `g_avg` is gpa / N [K]. Returns the gradient wrt s (the caller divides by T).
// `e` is consumed (q is overwritten by dL/dp).
at::Tensor entropy_grad_block(EntropyBlock& e, const at::Tensor& g_row, const at::Tensor& g_avg) {
  auto gp = e.q.mul_(g_row).add_(g_avg);  // q * gH + g_avg
  e.q = at::Tensor();
  auto ds = at::_softmax_backward_data(gp, e.p, 1, at::kFloat);  // still to be divided by T
  e.p = at::Tensor();
  return ds;
}

// Indices, per-position entropies H [N] and sum_i softmax(L_i / T) [K] (the last two with the entropy loss) with
// libtorch ops on blocks of `rows` positions (any device, products in zc's dtype).
std::tuple<at::Tensor, at::Tensor, at::Tensor> aten_forward(const at::Tensor& zc, const at::Tensor& Ec, bool entropy,
                                                            double temperature, int64_t rows) {
  const int64_t n = zc.size(0), k = Ec.size(0);
  auto fopt = zc.options().dtype(at::kFloat);
  auto idx = at::empty({n}, zc.options().dtype(at::kLong));
  at::Tensor H, pa_sum;
  if (entropy) {
    H = at::empty({n}, fopt);
    pa_sum = at::zeros({k}, fopt);
  }
  for (int64_t s = 0; s < n; s += rows) {
    const int64_t e = std::min(n, s + rows);
    auto lf = at::mm(zc.slice(0, s, e), Ec.t()).to(at::kFloat);  // [rows, K]
    // argmax of softmax(logits) (first index among equal probabilities), as the dense path
    idx.slice(0, s, e).copy_(std::get<1>(at::softmax(lf, 1).max(1)));
    if (!entropy) continue;
    auto eb = entropy_block(lf, temperature);
    H.slice(0, s, e).copy_(-(eb.p * eb.q).sum(-1));
    pa_sum.add_(eb.p.sum(0));
  }
  return {idx, H, pa_sum};
}

// The logits' share of the gradients with libtorch ops (any device and product dtype `c`): dz [N, D] in dtype c
// (returned) and dE (float32 [K, D], accumulated), recomputing the logits of `rows` positions at a time.
at::Tensor aten_backward(const at::Tensor& z, const at::Tensor& E, const at::Tensor& g_zq, bool g_ent,
                         const at::Tensor& g_row, const at::Tensor& g_avg, double temperature, int64_t rows,
                         at::ScalarType c, at::Tensor& dE) {
  const bool low = c != at::kFloat;
  const int64_t n = z.size(0), k = E.size(0), d = E.size(1);
  auto fopt = z.options().dtype(at::kFloat);
  auto dz = at::zeros({n, d}, z.options().dtype(c));
  if (!g_zq.defined() && !g_ent) return dz;
  auto zc = z.to(c);
  auto Ec = E.to(c);
  auto gc = g_zq.defined() ? g_zq.to(c) : at::Tensor();
  at::Tensor dE_lg = low ? at::zeros({k, d}, fopt) : dE;
  const auto Ec32 = low ? Ec.to(at::kFloat) : at::Tensor();  // E rounded to c, in float32
  for (int64_t s = 0; s < n; s += rows) {
    const int64_t e = std::min(n, s + rows);
    auto zb = zc.slice(0, s, e);
    // logits as [K, rows]: softmax over the codes and its backward run on the dense path's layout
    // ([B, K, H, W], dim 1), whose sequential sums over K the results then share
    auto lt = at::mm(Ec, zb.t()).to(at::kFloat);
    at::Tensor d1t;  // [K, rows]
    if (g_zq.defined()) {
      // d/dlogits of sum(G * softmax(logits)), G = dL/d(one_hot) = g_zq @ E^T
      auto soft_t = at::softmax(lt, 0);
      auto G_t = at::mm(Ec, gc.slice(0, s, e).t()).to(at::kFloat);
      d1t = at::_softmax_backward_data(G_t, soft_t, 0, at::kFloat);
    }
    at::Tensor dlf;  // [rows, K] (possibly a transposed view)
    if (g_ent) {
      auto lf = lt.t().contiguous();
      lt = at::Tensor();
      auto eb = entropy_block(lf, temperature);
      auto ds = entropy_grad_block(eb, g_row, g_avg);
      dlf = d1t.defined() ? at::add(d1t.t(), ds, 1.0 / temperature) : ds.div_(temperature);
    } else {
      dlf = d1t.t();
    }
    lt = d1t = at::Tensor();
    auto dl = dlf.to(c);
    dlf = at::Tensor();
    if (low) {
      // Products of dtype-c operands accumulated in float32, then rounded to c once, as oneDNN's bfloat16 gemm
      // does. libtorch 1.13's own bfloat16 gemm (CPUs without AVX-512, where oneDNN is not used for it) rounds
      // the running sum to bfloat16 after every term when the right operand is not transposed, which over
      // n_embed terms costs several bfloat16 units; these products do not depend on it.
      auto dlf32 = dl.to(at::kFloat);
      dz.slice(0, s, e).copy_(at::mm(dlf32, Ec32));
      dE_lg.addmm_(dlf32.t(), zb.to(at::kFloat));
    } else {
      dz.slice(0, s, e).copy_(at::mm(dl, Ec));
      dE_lg.addmm_(dl.t(), zb);
    }
  }
  if (low) dE.add_(dE_lg.to(c).to(at::kFloat));
  return dz;
}

struct ChunkedIBQFunction : public torch::autograd::Function<ChunkedIBQFunction> {
  // Outputs: z_q [N, D], z_q2 [N, D] (both in dtype `cdt`), sample_entropy, avg_entropy (0-d float32, zero
  // when entropy is off), indices int64 [N] (not differentiable).
  static variable_list forward(AutogradContext* ctx, const at::Tensor& z, const at::Tensor& E, bool entropy,
                               double temperature, int64_t rows, int64_t cdt, bool for_backward) {
    compat::AutocastOff no_autocast;
    const auto c = static_cast<at::ScalarType>(cdt);
    const int64_t n = z.size(0);
    auto zc = z.to(c);
    auto Ec = E.to(c);
    auto fopt = z.options().dtype(at::kFloat);
    at::Tensor idx, H, pa_sum;
    const fused::Kernels* kn = fused_kernels(z, E, c);
    FusedForward f;
    if (kn) {
      f = fused_forward(*kn, z, E, entropy, temperature, rows, for_backward);
      idx = f.indices;
      H = f.sample_entropy;
      pa_sum = f.avg_sum;  // float64
    } else {
      std::tie(idx, H, pa_sum) = aten_forward(zc, Ec, entropy, temperature, rows);
    }
    auto z_q = Ec.index_select(0, idx);
    auto z_q2 = z_q.clone();
    at::Tensor se, ae, pa;
    if (entropy) {
      pa = (pa_sum / static_cast<double>(n)).to(at::kFloat);
      ae = -(pa * at::log(pa + 1e-5)).sum();
      se = H.mean();
    } else {
      se = ae = at::zeros({}, fopt);
    }
    ctx->save_for_backward({z, E});
    ctx->saved_data["idx"] = idx;
    ctx->saved_data["pa"] = entropy ? pa : at::Tensor();
    ctx->saved_data["entropy"] = entropy;
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["rows"] = rows;
    ctx->saved_data["cdt"] = cdt;
    ctx->saved_data["m1"] = f.m1;  // defined when the fused kernels ran
    ctx->saved_data["ss"] = f.ss;
    ctx->mark_non_differentiable({idx});
    return {z_q, z_q2, se, ae, idx};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    compat::AutocastOff no_autocast;
    auto saved = ctx->get_saved_variables();
    const auto& z = saved[0];
    const auto& E = saved[1];
    auto idx = ctx->saved_data["idx"].toTensor();
    const bool entropy = ctx->saved_data["entropy"].toBool();
    const double temperature = ctx->saved_data["temperature"].toDouble();
    const int64_t rows = ctx->saved_data["rows"].toInt();
    const auto c = static_cast<at::ScalarType>(ctx->saved_data["cdt"].toInt());
    const bool low = c != at::kFloat;
    const int64_t n = z.size(0), k = E.size(0), d = E.size(1);
    const auto& g_zq = grads[0];
    const auto& g_zq2 = grads[1];
    const bool g_ent = entropy && (grads[2].defined() || grads[3].defined());
    auto fopt = z.options().dtype(at::kFloat);
    auto m1 = ctx->saved_data["m1"].toTensor();
    const fused::Kernels* kn = m1.defined() ? fused_kernels(z, E, c) : nullptr;
    // the fused kernels' block buffer before the codebook gradient: the forward freed one of this size for it
    const at::Tensor fbuf = kn && (g_zq.defined() || g_ent) ? fused_buffer(*kn, n, k, rows, g_zq.defined()) : at::Tensor();

    // Codebook gradient, accumulated in float32. The dense path's three products (straight-through one-hot,
    // hard one-hot, logits) each give a gradient in dtype c that is converted to float32 and summed.
    auto dE = at::zeros({k, d}, fopt);
    auto add_rows = [&](const at::Tensor& g) {  // one_hot^T @ g: rows of g summed into their codes
      if (!low) {
        dE.index_add_(0, idx, g.to(at::kFloat));
        return;
      }
      dE.add_(at::zeros({k, d}, fopt).index_add_(0, idx, g.to(at::kFloat)).to(c).to(at::kFloat));
    };
    if (g_zq2.defined()) add_rows(g_zq2);
    if (g_zq.defined()) add_rows(g_zq);

    at::Tensor g_row, g_avg;
    if (g_ent) {
      auto gse = grads[2].defined() ? grads[2].to(at::kFloat) : at::zeros({}, fopt);
      auto gae = grads[3].defined() ? grads[3].to(at::kFloat) : at::zeros({}, fopt);
      auto pa = ctx->saved_data["pa"].toTensor();
      g_row = -(gse / static_cast<double>(n));
      auto t1 = pa + 1e-5;
      auto gpa = (-gae) * at::log(t1) + ((-gae) * pa) / t1;
      g_avg = gpa / static_cast<double>(n);
    }

    at::Tensor dz;
    if (kn) {
      FusedForward f;
      f.m1 = m1;
      f.ss = ctx->saved_data["ss"].toTensor();
      fused_backward(*kn, z, E, g_zq, f, g_ent ? g_row.item<double>() : 0.0, g_ent ? g_avg : at::Tensor(),
                     temperature, rows, fbuf, dz, dE);
    } else {
      dz = aten_backward(z, E, g_zq, g_ent, g_row, g_avg, temperature, rows, c, dE);
    }
    return {dz.to(z.scalar_type()), dE.to(E.scalar_type()), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace

int64_t default_rows_per_block(int64_t n_embed) {
  return std::clamp<int64_t>((int64_t(1) << 24) / std::max<int64_t>(1, n_embed), 1, 256);
}

ChunkedIBQOutput ibq_chunked(const at::Tensor& z_flat, const at::Tensor& E, bool use_entropy_loss,
                             double temperature, int64_t rows_per_block) {
  // The dense path's einsum runs in autocast's dtype when autocast is on, else in z's and E's common dtype.
  auto ac = compat::active_autocast_dtype(z_flat.device());
  const auto c = ac.has_value() ? *ac : at::promote_types(z_flat.scalar_type(), E.scalar_type());
  const bool for_backward = at::GradMode::is_enabled() && (z_flat.requires_grad() || E.requires_grad());
  auto out = ChunkedIBQFunction::apply(z_flat, E, use_entropy_loss, temperature, std::max<int64_t>(1, rows_per_block),
                                       static_cast<int64_t>(c), for_backward);
  ChunkedIBQOutput r;
  r.z_q = out[0];
  r.z_q2 = out[1];
  if (use_entropy_loss) {
    r.sample_entropy = out[2];
    r.avg_entropy = out[3];
  }
  r.indices = out[4];
  return r;
}

}  // namespace ibq
