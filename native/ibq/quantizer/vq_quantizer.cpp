#include "ibq/quantizer/vq_quantizer.h"

#include "ibq/core/config_check.h"
#include "ibq/core/errors.h"
#include "ibq/quantizer/quantizer.h"

namespace ibq {

void VQOptions::validate() const { check_fields(*this, "vq_quantizer"); }

VectorQuantizerImpl::VectorQuantizerImpl(const VQOptions& opts) : opts_(opts) {
  opts_.validate();
  embedding = register_module("embedding", torch::nn::Embedding(opts.n_embed, opts.embed_dim));
  torch::NoGradGuard no_grad;
  embedding->weight.uniform_(-1.0 / double(opts.n_embed), 1.0 / double(opts.n_embed));
}

VQOutput VectorQuantizerImpl::forward(const at::Tensor& z_in) {
  check_latent(z_in, opts_.embed_dim, "z");
  const auto& E = embedding->weight;
  auto z = z_in.permute({0, 2, 3, 1}).contiguous();
  auto zf = z.view({-1, opts_.embed_dim});
  at::Tensor d;
  if (opts_.l2_normalize) {
    namespace F = torch::nn::functional;
    auto zn = F::normalize(zf, F::NormalizeFuncOptions().dim(1));
    auto en = F::normalize(E, F::NormalizeFuncOptions().dim(1));
    d = torch::sum(zn.pow(2), 1, true) + torch::sum(en.pow(2), 1) - 2 * torch::einsum("bd,nd->bn", {zn, en});
  } else {
    d = torch::sum(zf.pow(2), 1, true) + torch::sum(E.pow(2), 1) - 2 * torch::einsum("bd,dn->bn", {zf, E.t()});
  }
  auto idx = torch::argmin(d, 1);
  auto z_q = embedding(idx).view(z.sizes());
  auto commit = torch::mean(torch::pow(z_q.detach() - z, 2));
  auto codebook = torch::mean(torch::pow(z_q - z.detach(), 2));
  auto loss = opts_.legacy ? commit + opts_.beta * codebook : opts_.beta * commit + codebook;
  z_q = z + (z_q - z).detach();
  VQOutput out;
  out.z_q = z_q.permute({0, 3, 1, 2}).contiguous();
  out.loss = loss;
  out.indices = idx.view({z.size(0), z.size(1), z.size(2)});
  return out;
}

at::Tensor VectorQuantizerImpl::get_codebook_entry(const at::Tensor& indices) {
  check_indices(indices, opts_.n_embed, "indices");
  return embedding(indices.to(at::kLong)).permute({0, 3, 1, 2}).contiguous();
}

}  // namespace ibq
