#include "ibq/eval/inception.h"

#include "ibq/core/errors.h"

namespace ibq {
namespace {

namespace F = torch::nn::functional;
using Fn = std::function<at::Tensor(const at::Tensor&)>;

// torchvision BasicConv2d: conv (no bias) -> BatchNorm (eps 0.001, running statistics) -> ReLU.
class BasicConv2dImpl : public torch::nn::Module {
 public:
  BasicConv2dImpl(int64_t in, int64_t out, std::array<int64_t, 2> k, int64_t stride = 1,
                  std::array<int64_t, 2> pad = {0, 0}) {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, {k[0], k[1]})
                                                         .stride(stride)
                                                         .padding({pad[0], pad[1]})
                                                         .bias(false)));
    bn = register_module("bn", torch::nn::BatchNorm2d(torch::nn::BatchNormOptions(out).eps(0.001)));
  }
  at::Tensor forward(const at::Tensor& x) {
    auto y = conv->forward(x);
    y = at::batch_norm(y, bn->weight, bn->bias, bn->running_mean, bn->running_var, /*training=*/false,
                       /*momentum=*/0.1, /*eps=*/0.001, at::globalContext().userEnabledCuDNN());
    return at::relu(y);
  }
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
};
TORCH_MODULE(BasicConv2d);

BasicConv2d basic(int64_t in, int64_t out, std::array<int64_t, 2> k, int64_t stride = 1,
                  std::array<int64_t, 2> pad = {0, 0}) {
  return BasicConv2d(std::make_shared<BasicConv2dImpl>(in, out, k, stride, pad));
}

at::Tensor avg3(const at::Tensor& x) {  // FID blocks: 3x3 average, stride 1, padding 1, padding not counted
  return at::avg_pool2d(x, {3, 3}, {1, 1}, {1, 1}, /*ceil_mode=*/false, /*count_include_pad=*/false);
}
at::Tensor max3s2(const at::Tensor& x) { return at::max_pool2d(x, {3, 3}, {2, 2}); }

// A block's convolutions, registered by name in torchvision's order.
class Block : public torch::nn::Module {
 protected:
  BasicConv2d conv(const std::string& name, int64_t in, int64_t out, std::array<int64_t, 2> k, int64_t stride = 1,
                   std::array<int64_t, 2> pad = {0, 0}) {
    return register_module(name, basic(in, out, k, stride, pad));
  }
};

// FIDInceptionA (Mixed_5b/c/d).
class FidAImpl : public Block {
 public:
  FidAImpl(int64_t in, int64_t pool_features) {
    b1 = conv("branch1x1", in, 64, {1, 1});
    b5_1 = conv("branch5x5_1", in, 48, {1, 1});
    b5_2 = conv("branch5x5_2", 48, 64, {5, 5}, 1, {2, 2});
    d1 = conv("branch3x3dbl_1", in, 64, {1, 1});
    d2 = conv("branch3x3dbl_2", 64, 96, {3, 3}, 1, {1, 1});
    d3 = conv("branch3x3dbl_3", 96, 96, {3, 3}, 1, {1, 1});
    pool = conv("branch_pool", in, pool_features, {1, 1});
  }
  at::Tensor forward(const at::Tensor& x) {
    return at::cat({b1(x), b5_2(b5_1(x)), d3(d2(d1(x))), pool(avg3(x))}, 1);
  }
  BasicConv2d b1{nullptr}, b5_1{nullptr}, b5_2{nullptr}, d1{nullptr}, d2{nullptr}, d3{nullptr}, pool{nullptr};
};
TORCH_MODULE(FidA);

// InceptionB (Mixed_6a), unchanged in pytorch-fid.
class InceptionBImpl : public Block {
 public:
  explicit InceptionBImpl(int64_t in) {
    b3 = conv("branch3x3", in, 384, {3, 3}, 2);
    d1 = conv("branch3x3dbl_1", in, 64, {1, 1});
    d2 = conv("branch3x3dbl_2", 64, 96, {3, 3}, 1, {1, 1});
    d3 = conv("branch3x3dbl_3", 96, 96, {3, 3}, 2);
  }
  at::Tensor forward(const at::Tensor& x) { return at::cat({b3(x), d3(d2(d1(x))), max3s2(x)}, 1); }
  BasicConv2d b3{nullptr}, d1{nullptr}, d2{nullptr}, d3{nullptr};
};
TORCH_MODULE(InceptionB);

// FIDInceptionC (Mixed_6b..6e).
class FidCImpl : public Block {
 public:
  FidCImpl(int64_t in, int64_t c7) {
    b1 = conv("branch1x1", in, 192, {1, 1});
    s1 = conv("branch7x7_1", in, c7, {1, 1});
    s2 = conv("branch7x7_2", c7, c7, {1, 7}, 1, {0, 3});
    s3 = conv("branch7x7_3", c7, 192, {7, 1}, 1, {3, 0});
    d1 = conv("branch7x7dbl_1", in, c7, {1, 1});
    d2 = conv("branch7x7dbl_2", c7, c7, {7, 1}, 1, {3, 0});
    d3 = conv("branch7x7dbl_3", c7, c7, {1, 7}, 1, {0, 3});
    d4 = conv("branch7x7dbl_4", c7, c7, {7, 1}, 1, {3, 0});
    d5 = conv("branch7x7dbl_5", c7, 192, {1, 7}, 1, {0, 3});
    pool = conv("branch_pool", in, 192, {1, 1});
  }
  at::Tensor forward(const at::Tensor& x) {
    return at::cat({b1(x), s3(s2(s1(x))), d5(d4(d3(d2(d1(x))))), pool(avg3(x))}, 1);
  }
  BasicConv2d b1{nullptr}, s1{nullptr}, s2{nullptr}, s3{nullptr}, d1{nullptr}, d2{nullptr}, d3{nullptr},
      d4{nullptr}, d5{nullptr}, pool{nullptr};
};
TORCH_MODULE(FidC);

// InceptionD (Mixed_7a), unchanged in pytorch-fid.
class InceptionDImpl : public Block {
 public:
  explicit InceptionDImpl(int64_t in) {
    a1 = conv("branch3x3_1", in, 192, {1, 1});
    a2 = conv("branch3x3_2", 192, 320, {3, 3}, 2);
    b1 = conv("branch7x7x3_1", in, 192, {1, 1});
    b2 = conv("branch7x7x3_2", 192, 192, {1, 7}, 1, {0, 3});
    b3 = conv("branch7x7x3_3", 192, 192, {7, 1}, 1, {3, 0});
    b4 = conv("branch7x7x3_4", 192, 192, {3, 3}, 2);
  }
  at::Tensor forward(const at::Tensor& x) { return at::cat({a2(a1(x)), b4(b3(b2(b1(x)))), max3s2(x)}, 1); }
  BasicConv2d a1{nullptr}, a2{nullptr}, b1{nullptr}, b2{nullptr}, b3{nullptr}, b4{nullptr};
};
TORCH_MODULE(InceptionD);

// FIDInceptionE_1 (Mixed_7b: average pool without padding counts) and FIDInceptionE_2 (Mixed_7c: max pool).
class FidEImpl : public Block {
 public:
  FidEImpl(int64_t in, bool max_pool) : max_pool_(max_pool) {
    b1 = conv("branch1x1", in, 320, {1, 1});
    t1 = conv("branch3x3_1", in, 384, {1, 1});
    t2a = conv("branch3x3_2a", 384, 384, {1, 3}, 1, {0, 1});
    t2b = conv("branch3x3_2b", 384, 384, {3, 1}, 1, {1, 0});
    d1 = conv("branch3x3dbl_1", in, 448, {1, 1});
    d2 = conv("branch3x3dbl_2", 448, 384, {3, 3}, 1, {1, 1});
    d3a = conv("branch3x3dbl_3a", 384, 384, {1, 3}, 1, {0, 1});
    d3b = conv("branch3x3dbl_3b", 384, 384, {3, 1}, 1, {1, 0});
    pool = conv("branch_pool", in, 192, {1, 1});
  }
  at::Tensor forward(const at::Tensor& x) {
    auto t = t1(x);
    auto d = d2(d1(x));
    auto p = max_pool_ ? at::max_pool2d(x, {3, 3}, {1, 1}, {1, 1}) : avg3(x);
    return at::cat({b1(x), at::cat({t2a(t), t2b(t)}, 1), at::cat({d3a(d), d3b(d)}, 1), pool(p)}, 1);
  }
  bool max_pool_;
  BasicConv2d b1{nullptr}, t1{nullptr}, t2a{nullptr}, t2b{nullptr}, d1{nullptr}, d2{nullptr}, d3a{nullptr},
      d3b{nullptr}, pool{nullptr};
};
TORCH_MODULE(FidE);

}  // namespace

FidInceptionV3Impl::FidInceptionV3Impl() {
  auto add = [this](const std::string& name, auto holder) {
    register_module(name, holder);
    layers_.push_back([holder](const at::Tensor& x) mutable { return holder->forward(x); });
  };
  add("Conv2d_1a_3x3", basic(3, 32, {3, 3}, 2));
  add("Conv2d_2a_3x3", basic(32, 32, {3, 3}));
  add("Conv2d_2b_3x3", basic(32, 64, {3, 3}, 1, {1, 1}));
  layers_.push_back(max3s2);
  add("Conv2d_3b_1x1", basic(64, 80, {1, 1}));
  add("Conv2d_4a_3x3", basic(80, 192, {3, 3}));
  layers_.push_back(max3s2);
  add("Mixed_5b", FidA(192, 32));
  add("Mixed_5c", FidA(256, 64));
  add("Mixed_5d", FidA(288, 64));
  add("Mixed_6a", InceptionB(288));
  add("Mixed_6b", FidC(768, 128));
  add("Mixed_6c", FidC(768, 160));
  add("Mixed_6d", FidC(768, 160));
  add("Mixed_6e", FidC(768, 192));
  add("Mixed_7a", InceptionD(768));
  add("Mixed_7b", FidE(1280, false));
  add("Mixed_7c", FidE(2048, true));
  fc_ = register_module("fc", torch::nn::Linear(2048, 1008));
  eval();
}

at::Tensor FidInceptionV3Impl::features(const at::Tensor& x299) {
  at::Tensor h = x299;
  for (const auto& layer : layers_) h = layer(h);
  return at::adaptive_avg_pool2d(h, {1, 1}).flatten(1);
}

InceptionOutput FidInceptionV3Impl::forward(const at::Tensor& x) {
  if (x.dim() != 4 || x.size(1) != 3 || x.size(0) < 1 || x.size(2) < 1 || x.size(3) < 1 ||
      !at::isFloatingType(x.scalar_type()))
    throw ShapeError("x: expected a float tensor [B, 3, H, W] of RGB values in [0, 1], got shape " +
                     c10::str(x.sizes()) + " dtype " + std::string(c10::toString(x.scalar_type())));
  auto w = fc_->weight;
  auto h = x.to(w.device(), at::kFloat);
  h = at::upsample_bilinear2d(h, {299, 299}, /*align_corners=*/false);
  h = 2 * h - 1;
  InceptionOutput out;
  out.pool3 = features(h);
  out.logits = fc_->forward(out.pool3);
  out.logits_unbiased = at::matmul(out.pool3, fc_->weight.t());
  return out;
}

at::Tensor inception_input_to_unit(const at::Tensor& x, InceptionInput input) {
  if (input == InceptionInput::kUint8Nhwc) {
    if (x.dim() != 4 || x.size(3) != 3 || x.scalar_type() != at::kByte)
      throw ShapeError("images: expected uint8 [N, H, W, 3], got shape " + c10::str(x.sizes()) + " dtype " +
                       std::string(c10::toString(x.scalar_type())));
    return x.permute({0, 3, 1, 2}).to(at::kFloat) / 255.0f;
  }
  if (!at::isFloatingType(x.scalar_type()))
    throw ValueError("images: expected a float tensor [N, 3, H, W], got dtype " +
                     std::string(c10::toString(x.scalar_type())));
  if (input == InceptionInput::kSymmetric) return (at::clamp(x, -1, 1) + 1) / 2;
  return x;
}

InceptionOutput FidInceptionV3Impl::forward_batched(const at::Tensor& x, InceptionInput input, int64_t batch_size,
                                                    const std::function<void(int64_t, int64_t)>& between) {
  if (batch_size < 1) throw ValueError("batchSize: expected an integer >= 1, got " + std::to_string(batch_size));
  if (x.dim() < 1 || x.size(0) < 1) throw ShapeError("images: expected at least one image, got shape " + c10::str(x.sizes()));
  const int64_t n = x.size(0);
  std::vector<at::Tensor> pool3, logits, unbiased;
  for (int64_t start = 0; start < n; start += batch_size) {
    auto out = forward(inception_input_to_unit(x.narrow(0, start, std::min(batch_size, n - start)), input));
    pool3.push_back(out.pool3);
    logits.push_back(out.logits);
    unbiased.push_back(out.logits_unbiased);
    if (between) between(std::min(start + batch_size, n), n);
  }
  return {at::cat(pool3), at::cat(logits), at::cat(unbiased)};
}

}  // namespace ibq
