#include "ibq/tokenizer/vqgan_blocks.h"

#include "ibq/core/errors.h"
#include "ibq/core/cpu_kernels.h"
#include "ibq/core/parallel_bmm.h"

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
  if (!x.device().is_cpu() || x.dim() != 4) return false;
  if (at::GradMode::is_enabled()) return x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16;
  return kernels::selected() && x.scalar_type() == at::kFloat && !x.requires_grad();
}

at::Tensor norm_act(torch::nn::GroupNorm& norm, const at::Tensor& x, bool silu, bool in_place) {
  const int64_t groups = norm->options.num_groups();
  if (norm->weight.scalar_type() == at::kFloat) {
    // under autocast a bfloat16 activation, normalised in float32 as apply_norm does
    const at::Tensor xf = x.scalar_type() == at::kFloat ? x : x.to(at::kFloat);
    if (kernels::group_norm_cl_applies(xf, groups))
      return kernels::group_norm_silu_cl(xf, groups, norm->weight, norm->bias, norm->options.eps(), silu,
                                         in_place && xf.is_same(x));
  }
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
  const int64_t n = hh * ww;
  const double scale = std::pow(double(c), -0.5);
  // Without gradients (inference: encode, decode, evaluation) the [hw, hw] weights are made in blocks of queries,
  // at most kBlockWeights elements at a time: memory linear in the positions, each query's row computed as in the
  // dense form. With gradients the dense form keeps autograd's graph as the official module's.
  constexpr int64_t kBlockWeights = int64_t(1) << 22;
  const bool dense = at::GradMode::is_enabled() || b * n * n <= kBlockWeights;
  const int64_t rows = std::max<int64_t>(1, kBlockWeights / (b * n));
  if (channels_last_path(x) && qh.is_contiguous(at::MemoryFormat::ChannelsLast) &&
      kh.is_contiguous(at::MemoryFormat::ChannelsLast) && vh.is_contiguous(at::MemoryFormat::ChannelsLast)) {
    // channels-last: [b, hw, c] views of q, k, v; the result [b, hw, c] is a channels-last [b, c, h, w] view
    auto as_rows = [&](const at::Tensor& t) { return t.permute({0, 2, 3, 1}).reshape({b, n, c}); };
    auto qr = as_rows(qh), kt = as_rows(kh).transpose(1, 2), vr = as_rows(vh);
    at::Tensor out;
    if (dense) {
      out = parallel_bmm(torch::softmax(parallel_bmm(qr, kt).mul_(scale), 2), vr);
    } else {
      out = at::empty({b, n, c}, vr.options());
      for (int64_t i = 0; i < n; i += rows) {
        const int64_t r = std::min(rows, n - i);
        out.narrow(1, i, r).copy_(parallel_bmm(torch::softmax(parallel_bmm(qr.narrow(1, i, r), kt).mul_(scale), 2), vr));
      }
    }
    return residual(x, proj_out(out.view({b, hh, ww, c}).permute({0, 3, 1, 2})));
  }
  auto qs = qh.reshape({b, c, n}).permute({0, 2, 1});  // b, hw, c
  auto ks = kh.reshape({b, c, n});                     // b, c, hw
  auto vs = vh.reshape({b, c, n});
  if (dense) {
    auto w = torch::softmax(torch::bmm(qs, ks) * scale, 2);  // b, hw(query), hw(key)
    return residual(x, proj_out(torch::bmm(vs, w.permute({0, 2, 1})).reshape({b, c, hh, ww})));
  }
  auto out = at::empty({b, c, n}, vs.options());
  for (int64_t i = 0; i < n; i += rows) {
    const int64_t r = std::min(rows, n - i);
    auto w = torch::softmax(torch::bmm(qs.narrow(1, i, r), ks) * scale, 2);  // b, r(query), hw(key)
    out.narrow(2, i, r).copy_(torch::bmm(vs, w.permute({0, 2, 1})));          // b, c, r
  }
  return residual(x, proj_out(out.reshape({b, c, hh, ww})));
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
