#include "ibq/quantizer/quantizer.h"

#include <sstream>

#include "ibq/core/compat.h"
#include "ibq/core/config_check.h"
#include "ibq/core/errors.h"
#include "ibq/quantizer/quantizer_chunked.h"
#include "ibq/quantizer/quantizer_fused.h"

namespace ibq {

void IBQOptions::validate() const { check_fields(*this, "ibq_quantizer"); }

void check_latent(const at::Tensor& z, int64_t embed_dim, const char* arg) {
  if (z.dim() != 4 || z.size(1) != embed_dim) {
    std::ostringstream os;
    os << arg << ": expected a [B, " << embed_dim << ", H, W] tensor (embed_dim " << embed_dim << "), got shape "
       << z.sizes();
    throw ValueError(os.str());
  }
  if (!z.is_floating_point()) throw TypeError(std::string(arg) + ": expected a floating-point tensor");
}

void check_finite(const at::Tensor& x, const char* arg) {
  if (x.is_floating_point() && !torch::isfinite(x).all().item<bool>())
    throw ValueError(std::string(arg) + ": contains NaN or infinite values");
}

void check_indices(const at::Tensor& indices, int64_t n_embed, const char* arg) {
  if (indices.scalar_type() != at::kLong && indices.scalar_type() != at::kInt)
    throw TypeError(std::string(arg) + ": expected an int64 tensor of codebook indices");
  if (indices.dim() != 3) {
    std::ostringstream os;
    os << arg << ": expected an int64 [B, h, w] tensor, got shape " << indices.sizes();
    throw ValueError(os.str());
  }
  if (indices.numel() == 0) return;
  const int64_t lo = indices.min().item<int64_t>(), hi = indices.max().item<int64_t>();
  if (lo < 0 || hi >= n_embed) {
    throw ValueError(std::string(arg) + ": indices must lie in [0, " + std::to_string(n_embed - 1) + "] (n_embed " +
                     std::to_string(n_embed) + "), got values from " + std::to_string(lo) + " to " +
                     std::to_string(hi));
  }
}

EntropyTerms entropy_terms(const at::Tensor& logits, double temperature, double smw, double bmw) {
  auto scaled = logits.to(at::kFloat) / temperature;
  auto probs = torch::softmax(scaled, -1);
  auto log_probs = torch::log_softmax(scaled + 1e-5, -1);
  auto avg_probs = probs.mean(0);
  auto avg_entropy = -(avg_probs * torch::log(avg_probs + 1e-5)).sum();
  auto sample_entropy = (-(probs * log_probs).sum(-1)).mean();
  auto loss = smw * sample_entropy - bmw * avg_entropy;
  return {sample_entropy, avg_entropy, loss};
}

namespace {

// The official IBQ outputs from z_q (straight-through), z_q2 = hard one-hot @ E, the entropy terms (when the
// loss is on) and the indices: quant_loss = mean((z_q - z)^2) + mean((sg(z_q2) - z)^2) + beta * mean((z_q2 -
// sg(z))^2); entropy_loss = smw * sample_entropy - bmw * avg_entropy. One place for both quantizer paths.
IBQOutput assemble(const IBQOptions& o, const at::Tensor& z, const at::Tensor& z_q, const at::Tensor& z_q2,
                   const c10::optional<std::pair<at::Tensor, at::Tensor>>& entropy, const at::Tensor& indices) {
  auto quant_loss = torch::mean(torch::pow(z_q - z, 2)) + torch::mean(torch::pow(z_q2.detach() - z, 2)) +
                    o.beta * torch::mean(torch::pow(z_q2 - z.detach(), 2));
  IBQOutput out;
  out.z_q = z_q;
  out.quant_loss = quant_loss.to(at::kFloat);
  if (entropy) {
    out.sample_entropy = entropy->first;
    out.avg_entropy = entropy->second;
    out.entropy_loss = o.sample_minimization_weight * entropy->first - o.batch_maximization_weight * entropy->second;
  } else {
    out.sample_entropy = out.avg_entropy = out.entropy_loss = torch::zeros({}, z.options().dtype(at::kFloat));
  }
  out.indices = indices;
  return out;
}

}  // namespace

IBQuantizerImpl::IBQuantizerImpl(const IBQOptions& opts) : opts_(opts) {
  opts_.validate();
  embedding = register_module("embedding", torch::nn::Embedding(opts.n_embed, opts.embed_dim));
}

int64_t IBQuantizerImpl::rows_per_block(int64_t positions) const {
  if (opts_.quantizer_chunk >= 0) return opts_.quantizer_chunk;
  return positions * opts_.n_embed >= kAutoChunkElements ? default_rows_per_block(opts_.n_embed) : 0;
}

IBQOutput IBQuantizerImpl::forward(const at::Tensor& z) {
  check_latent(z, opts_.embed_dim, "z");
  const int64_t rows = rows_per_block(z.size(0) * z.size(2) * z.size(3));
  return rows > 0 ? forward_chunked(z, rows) : forward_dense(z);
}

IBQOutput IBQuantizerImpl::forward_chunked(const at::Tensor& z, int64_t rows) {
  const int64_t b = z.size(0), h = z.size(2), w = z.size(3);
  auto flat = z.permute({0, 2, 3, 1}).reshape({b * h * w, opts_.embed_dim});
  auto c = ibq_chunked(flat, embedding->weight, opts_.use_entropy_loss, opts_.entropy_temperature, rows);
  auto to_bdhw = [&](const at::Tensor& t) { return t.view({b, h, w, opts_.embed_dim}).permute({0, 3, 1, 2}); };
  c10::optional<std::pair<at::Tensor, at::Tensor>> entropy;
  if (opts_.use_entropy_loss) entropy = std::make_pair(c.sample_entropy, c.avg_entropy);
  return assemble(opts_, z, to_bdhw(c.z_q), to_bdhw(c.z_q2), entropy, c.indices.view({b, h, w}));
}

IBQOutput IBQuantizerImpl::forward_dense(const at::Tensor& z) {
  const auto& E = embedding->weight;
  auto logits = torch::einsum("bdhw,nd->bnhw", {z, E});
  auto logits_f = logits.to(at::kFloat);  // softmax, argmax and the entropy run in float32 under autocast
  auto soft = torch::softmax(logits_f, 1);
  auto ind = std::get<1>(soft.max(1, /*keepdim=*/true));
  auto hard = torch::zeros_like(logits_f, at::MemoryFormat::Contiguous).scatter_(1, ind, 1.0);
  auto one_hot = hard - soft.detach() + soft;
  auto z_q = torch::einsum("bnhw,nd->bdhw", {one_hot, E});
  auto z_q2 = torch::einsum("bnhw,nd->bdhw", {hard, E});
  c10::optional<std::pair<at::Tensor, at::Tensor>> entropy;
  if (opts_.use_entropy_loss) {
    auto flat = logits_f.permute({0, 2, 3, 1}).reshape({-1, opts_.n_embed});
    auto e = entropy_terms(flat, opts_.entropy_temperature, opts_.sample_minimization_weight,
                           opts_.batch_maximization_weight);
    entropy = std::make_pair(e.sample_entropy, e.avg_entropy);
  }
  return assemble(opts_, z, z_q, z_q2, entropy, ind.squeeze(1));
}

at::Tensor IBQuantizerImpl::encode_indices(const at::Tensor& z, int64_t max_chunk_elements) {
  check_latent(z, opts_.embed_dim, "z");
  const int64_t b = z.size(0), h = z.size(2), w = z.size(3), n = b * h * w;
  auto flat = z.permute({0, 2, 3, 1}).reshape({n, opts_.embed_dim});
  const auto& E = embedding->weight;
  const auto ac = compat::active_autocast_dtype(flat.device());
  if (const auto* kn = fused_kernels(flat, E, ac ? *ac : at::promote_types(flat.scalar_type(), E.scalar_type()))) {
    return fused_forward(*kn, flat, E, false, 1.0, default_rows_per_block(opts_.n_embed), false).indices.view({b, h, w});
  }
  auto Et = E.t();
  const int64_t chunk = std::max<int64_t>(1, max_chunk_elements / std::max<int64_t>(1, opts_.n_embed));
  auto out = torch::empty({n}, z.options().dtype(at::kLong));
  for (int64_t s = 0; s < n; s += chunk) {
    const int64_t e = std::min(n, s + chunk);
    auto logits = torch::mm(flat.slice(0, s, e), Et).to(at::kFloat);
    out.slice(0, s, e).copy_(logits.argmax(1));
  }
  return out.view({b, h, w});
}

at::Tensor IBQuantizerImpl::get_codebook_entry(const at::Tensor& indices) {
  check_indices(indices, opts_.n_embed, "indices");
  return embedding(indices.to(at::kLong)).permute({0, 3, 1, 2}).contiguous();
}

}  // namespace ibq
