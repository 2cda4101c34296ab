#include "ibq/tokenizer/vqgan_blocks.h"

#include "ibq/core/errors.h"
#include "ibq/core/cpu_kernels.h"

namespace ibq::vqgan {
namespace F = torch::nn::functional;

namespace {
torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(pad));
}
}  // namespace

torch::nn::GroupNorm make_norm(int64_t channels) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(32, channels).eps(1e-6).affine(true));
}

at::Tensor apply_norm(torch::nn::GroupNorm& norm, const at::Tensor& x) {
  return norm(x.scalar_type() == norm->weight.scalar_type() ? x : x.to(norm->weight.scalar_type()));
}

// Without autograd (encode, decode, evaluation) the product is written into the sigmoid's result: the same
// values (x * s == s * x), one [B, C, H, W] temporary fewer.
at::Tensor swish(const at::Tensor& x) {
  if (!at::GradMode::is_enabled()) return torch::sigmoid(x).mul_(x);
  return x * torch::sigmoid(x);
}

bool channels_last_path(const at::Tensor& x) {
  return kernels::selected() && !at::GradMode::is_enabled() && x.device().is_cpu() && x.scalar_type() == at::kFloat &&
         !x.requires_grad();
}

at::Tensor norm_act(torch::nn::GroupNorm& norm, const at::Tensor& x, bool silu, bool in_place) {
  const int64_t groups = norm->options.num_groups();
  if (norm->weight.scalar_type() == at::kFloat && kernels::group_norm_cl_applies(x, groups))
    return kernels::group_norm_silu_cl(x, groups, norm->weight, norm->bias, norm->options.eps(), silu, in_place);
  return silu ? swish(apply_norm(norm, x)) : apply_norm(norm, x);
}

namespace {
// shortcut + h; without autograd added into h (a temporary of the block) when no type promotion is involved:
// the same values, one temporary fewer.
at::Tensor residual(const at::Tensor& shortcut, at::Tensor h) {
  if (!at::GradMode::is_enabled() && h.scalar_type() == shortcut.scalar_type() && h.sizes() == shortcut.sizes())
    return h.add_(shortcut);
  return shortcut + h;
}
}  // namespace

ResnetBlockImpl::ResnetBlockImpl(int64_t in, int64_t out, double dropout)
    : in_channels(in), out_channels(out), dropout(dropout) {
  norm1 = register_module("norm1", make_norm(in));
  conv1 = register_module("conv1", conv(in, out, 3, 1, 1));
  norm2 = register_module("norm2", make_norm(out));
  conv2 = register_module("conv2", conv(out, out, 3, 1, 1));
  if (in != out) nin_shortcut = register_module("nin_shortcut", conv(in, out, 1, 1, 0));
}

at::Tensor ResnetBlockImpl::forward(const at::Tensor& x) {
  auto h = conv1(norm_act(norm1, x, true));
  h = norm_act(norm2, h, true, /*in_place=*/true);  // conv1's result, no one else's
  if (dropout > 0) h = torch::dropout(h, dropout, is_training());
  h = conv2(h);
  return residual(nin_shortcut ? nin_shortcut(x) : x, h);
}

AttnBlockImpl::AttnBlockImpl(int64_t c) {
  norm = register_module("norm", make_norm(c));
  q = register_module("q", conv(c, c, 1, 1, 0));
  k = register_module("k", conv(c, c, 1, 1, 0));
  v = register_module("v", conv(c, c, 1, 1, 0));
  proj_out = register_module("proj_out", conv(c, c, 1, 1, 0));
}

at::Tensor AttnBlockImpl::forward(const at::Tensor& x) {
  auto h = norm_act(norm, x, false);
  auto qh = q(h), kh = k(h), vh = v(h);
  const int64_t b = qh.size(0), c = qh.size(1), hh = qh.size(2), ww = qh.size(3);
  if (channels_last_path(x) && qh.is_contiguous(at::MemoryFormat::ChannelsLast) &&
      kh.is_contiguous(at::MemoryFormat::ChannelsLast) && vh.is_contiguous(at::MemoryFormat::ChannelsLast)) {
    // channels-last: [b, hw, c] views of q, k, v; the result [b, hw, c] is a channels-last [b, c, h, w] view
    auto rows = [&](const at::Tensor& t) { return t.permute({0, 2, 3, 1}).reshape({b, hh * ww, c}); };
    auto w = torch::bmm(rows(qh), rows(kh).transpose(1, 2)).mul_(std::pow(double(c), -0.5));
    w = torch::softmax(w, 2);
    auto out = torch::bmm(w, rows(vh)).view({b, hh, ww, c}).permute({0, 3, 1, 2});
    return residual(x, proj_out(out));
  }
  auto qs = qh.reshape({b, c, hh * ww}).permute({0, 2, 1});  // b, hw, c
  auto ks = kh.reshape({b, c, hh * ww});                      // b, c, hw
  auto w = torch::bmm(qs, ks) * std::pow(double(c), -0.5);    // b, hw(query), hw(key)
  w = torch::softmax(w, 2);
  auto vs = vh.reshape({b, c, hh * ww});
  auto out = torch::bmm(vs, w.permute({0, 2, 1})).reshape({b, c, hh, ww});
  return residual(x, proj_out(out));
}

UpsampleImpl::UpsampleImpl(int64_t c) { conv = register_module("conv", vqgan::conv(c, c, 3, 1, 1)); }

at::Tensor UpsampleImpl::forward(const at::Tensor& x) {
  auto up = at::upsample_nearest2d(x, {x.size(2) * 2, x.size(3) * 2});
  return conv(up);
}

DownsampleImpl::DownsampleImpl(int64_t c) { conv = register_module("conv", vqgan::conv(c, c, 3, 2, 0)); }

at::Tensor DownsampleImpl::forward(const at::Tensor& x) {
  if (channels_last_path(x) && x.is_contiguous(at::MemoryFormat::ChannelsLast)) {
    // the zero pad, channels-last (constant_pad_nd would return it contiguous)
    const int64_t h = x.size(2), w = x.size(3);
    auto p = at::empty({x.size(0), x.size(1), h + 1, w + 1}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
    p.narrow(2, h, 1).zero_();
    p.narrow(3, w, 1).zero_();
    p.narrow(2, 0, h).narrow(3, 0, w).copy_(x);
    return conv(p);
  }
  return conv(at::constant_pad_nd(x, {0, 1, 0, 1}, 0));
}

}  // namespace ibq::vqgan
