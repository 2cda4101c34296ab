#include "ibq/eval/lpips.h"

#include <unordered_map>

#include "ibq/core/errors.h"
#include "ibq/core/layout.h"
#include "ibq/eval/lpips_distance.h"

namespace ibq {
namespace {

using Op = std::function<at::Tensor(const at::Tensor&)>;

// One layer of a torchvision `features` Sequential: a 3x3/5x5/11x11 convolution, ReLU or max pool.
struct Layer {
  enum Kind { kConv, kRelu, kPool } kind;
  int64_t in = 0, out = 0, k = 0, stride = 1, pad = 0;  // conv
  int64_t pool_k = 0, pool_s = 0;                       // pool
};
Layer conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
  return {Layer::kConv, in, out, k, stride, pad};
}
Layer relu() { return {Layer::kRelu}; }
Layer pool(int64_t k, int64_t s) { return {Layer::kPool, 0, 0, 0, 1, 0, k, s}; }

// torchvision vgg16().features (indices 0..29 used by LPIPS) and alexnet().features (0..11).
std::vector<Layer> features(LpipsNet net) {
  if (net == LpipsNet::kVgg) {
    std::vector<Layer> f;
    int64_t in = 3;
    const std::vector<std::vector<int64_t>> stages = {{64, 64}, {128, 128}, {256, 256, 256}, {512, 512, 512},
                                                      {512, 512, 512}};
    for (size_t s = 0; s < stages.size(); ++s) {
      if (s > 0) f.push_back(pool(2, 2));
      for (int64_t c : stages[s]) {
        f.push_back(conv(in, c, 3, 1, 1));
        f.push_back(relu());
        in = c;
      }
    }
    return f;  // 30 layers
  }
  return {conv(3, 64, 11, 4, 2), relu(), pool(3, 2), conv(64, 192, 5, 1, 2), relu(), pool(3, 2),
          conv(192, 384, 3, 1, 1), relu(), conv(384, 256, 3, 1, 1), relu(), conv(256, 256, 3, 1, 1), relu()};
}

// Slice boundaries in the features index (official lpips pretrained_networks / taming vgg16).
std::vector<int64_t> bounds(LpipsNet net) {
  return net == LpipsNet::kVgg ? std::vector<int64_t>{0, 4, 9, 16, 23, 30} : std::vector<int64_t>{0, 2, 5, 8, 10, 12};
}
std::vector<int64_t> channels(LpipsNet net) {
  return net == LpipsNet::kVgg ? std::vector<int64_t>{64, 128, 256, 512, 512} : std::vector<int64_t>{64, 192, 384, 256, 256};
}

class ScalingLayerImpl : public torch::nn::Module {
 public:
  ScalingLayerImpl() {
    shift = register_buffer("shift", torch::tensor({-.030f, -.088f, -.188f}).view({1, 3, 1, 1}));
    scale = register_buffer("scale", torch::tensor({.458f, .448f, .450f}).view({1, 3, 1, 1}));
  }
  at::Tensor forward(const at::Tensor& x) { return (x - shift) / scale; }
  at::Tensor shift, scale;
};
TORCH_MODULE(ScalingLayer);

void check_image(const at::Tensor& x, const char* arg, int64_t min_hw) {
  if (x.dim() != 4 || x.size(1) != 3 || !at::isFloatingType(x.scalar_type()))
    throw ShapeError(std::string(arg) + ": expected a float tensor [B, 3, H, W], got shape " + c10::str(x.sizes()));
  if (x.size(2) < min_hw || x.size(3) < min_hw)
    throw ValueError(std::string(arg) + ": LPIPS with this backbone needs H, W >= " + std::to_string(min_hw) +
                     ", got " + c10::str(x.sizes()));
}

}  // namespace

LpipsNet lpips_net_from_string(const std::string& name, const char* arg) {
  if (name == "vgg" || name == "vgg16") return LpipsNet::kVgg;
  if (name == "alex" || name == "alexnet") return LpipsNet::kAlex;
  throw ValueError(std::string(arg) + ": expected 'vgg' or 'alex', got '" + name + "'");
}
const char* lpips_net_name(LpipsNet net) { return net == LpipsNet::kVgg ? "vgg" : "alex"; }

LPIPSImpl::LPIPSImpl(LpipsNet net) : net_(net) {
  auto scaling = ScalingLayer();
  scaling_ = register_module("scaling_layer", scaling);
  auto backbone = std::make_shared<torch::nn::Module>("net");
  backbone_ = register_module("net", backbone);
  auto layers = features(net);
  auto b = bounds(net);
  for (size_t s = 0; s + 1 < b.size(); ++s) {
    auto slice = std::make_shared<torch::nn::Module>("slice");
    std::vector<Op> ops;
    for (int64_t i = b[s]; i < b[s + 1]; ++i) {
      const Layer& l = layers[size_t(i)];
      if (l.kind == Layer::kConv) {
        auto c = torch::nn::Conv2d(torch::nn::Conv2dOptions(l.in, l.out, l.k).stride(l.stride).padding(l.pad));
        slice->register_module(std::to_string(i), c);
        ops.push_back([c](const at::Tensor& x) mutable { return c->forward(x); });
      } else if (l.kind == Layer::kRelu) {
        // in place, as the official torchvision VGG (ReLU(inplace=True)): it follows a convolution, whose backward
        // does not need its output
        ops.push_back([](const at::Tensor& x) { return x.relu_(); });
      } else {
        int64_t k = l.pool_k, st = l.pool_s;
        ops.push_back([k, st](const at::Tensor& x) { return at::max_pool2d(x, {k, k}, {st, st}); });
      }
    }
    backbone->register_module("slice" + std::to_string(s + 1), slice);
    slices_.push_back(std::move(ops));
  }
  auto ch = channels(net);
  for (size_t k = 0; k < ch.size(); ++k) {
    torch::nn::Sequential model(torch::nn::Dropout(0.5),
                                torch::nn::Conv2d(torch::nn::Conv2dOptions(ch[k], 1, 1).bias(false)));
    auto lin = std::make_shared<torch::nn::Module>("NetLinLayer");
    lin->register_module("model", model);
    register_module("lin" + std::to_string(k), lin);
    lin_models_.push_back(model);
  }
  for (auto& p : parameters()) p.set_requires_grad(false);
  eval();
}

std::vector<at::Tensor> LPIPSImpl::slices(const at::Tensor& scaled) {
  std::vector<at::Tensor> outs;
  at::Tensor h = scaled;
  for (const auto& ops : slices_) {
    for (const auto& op : ops) h = op(h);
    outs.push_back(h);
  }
  return outs;
}

at::Tensor LPIPSImpl::forward(const at::Tensor& in0, const at::Tensor& in1, bool normalize) {
  int64_t min_hw = net_ == LpipsNet::kVgg ? 16 : 31;
  check_image(in0, "in0", min_hw);
  check_image(in1, "in1", min_hw);
  if (in0.sizes().slice(1) != in1.sizes().slice(1) ||
      (in0.size(0) != in1.size(0) && in0.size(0) != 1 && in1.size(0) != 1))
    throw ShapeError("in0, in1: expected the same shape [B, 3, H, W], got " + c10::str(in0.sizes()) + " and " +
                     c10::str(in1.sizes()));
  auto& scaling = static_cast<ScalingLayerImpl&>(*scaling_);
  auto dev = scaling.shift.device();
  auto dt = lin_models_[0]->ptr<torch::nn::Conv2dImpl>(1)->weight.scalar_type();
  at::Tensor a = in0.to(dev, dt), b = in1.to(dev, dt);
  if (normalize) {
    a = 2 * a - 1;
    b = 2 * b - 1;
  }
  auto f0 = slices(cpu_channels_last(scaling.forward(a)));
  auto f1 = slices(cpu_channels_last(scaling.forward(b)));
  at::Tensor val;
  for (size_t k = 0; k < f0.size(); ++k) {
    auto r = lin_models_[k]->forward(lpips_normalized_sq_diff(f0[k], f1[k])).mean({2, 3}, /*keepdim=*/true);
    val = k == 0 ? r : val + r;
  }
  return val;
}

NamedTensors select_prefix(const NamedTensors& sd, const std::string& prefix) {
  NamedTensors out;
  for (const auto& [k, v] : sd)
    if (k.rfind(prefix, 0) == 0) out.emplace_back(k.substr(prefix.size()), v);
  return out;
}

NamedTensors lpips_state_from_torchvision(const LPIPSImpl& lpips, const NamedTensors& backbone,
                                          const NamedTensors& lin) {
  const LpipsNet net = lpips.net_type();
  std::unordered_map<std::string, at::Tensor> bb(backbone.begin(), backbone.end());
  std::unordered_map<std::string, at::Tensor> ln(lin.begin(), lin.end());
  NamedTensors out;
  for (const auto& [key, own] : state_dict(lpips)) {
    if (key.rfind("scaling_layer.", 0) == 0) {
      out.emplace_back(key, own.detach().clone());
      continue;
    }
    const char* role;
    std::vector<std::string> candidates;
    if (key.rfind("net.", 0) == 0) {  // net.sliceS.N.weight -> features.N.weight
      role = "backbone";
      auto rest = key.substr(key.find('.', 4) + 1);
      candidates = {"features." + rest};
    } else {  // linK.model.1.weight, or the package's lins.K.model.1.weight
      role = "lin layers";
      candidates = {key, "lins." + key.substr(3)};
    }
    const auto& src = role[0] == 'b' ? bb : ln;
    const at::Tensor* found = nullptr;
    for (const auto& c : candidates) {
      auto it = src.find(c);
      if (it != src.end()) {
        found = &it->second;
        break;
      }
    }
    if (!found)
      throw ValueError(std::string("LPIPS ") + lpips_net_name(net) + " " + role + ": key '" + candidates[0] +
                       "' is missing (is this the " + (role[0] == 'b' ? "torchvision " : "LPIPS ") +
                       (net == LpipsNet::kVgg ? "vgg16" : "alexnet") + " file?)");
    if (found->sizes() != own.sizes())
      throw ValueError(std::string("LPIPS ") + lpips_net_name(net) + " " + role + ": key '" + candidates[0] +
                       "' has shape " + c10::str(found->sizes()) + ", expected " + c10::str(own.sizes()));
    out.emplace_back(key, *found);
  }
  return out;
}

void load_lpips(LPIPSImpl& lpips, const NamedTensors& sd) {
  NamedTensors full;
  bool has_shift = false, has_scale = false;
  for (const auto& [k, v] : sd) {
    has_shift |= k == "scaling_layer.shift";
    has_scale |= k == "scaling_layer.scale";
    if (k.rfind("lins.", 0) != 0) full.emplace_back(k, v);
  }
  auto own = state_dict(lpips);
  for (const auto& [k, v] : own) {
    if ((k == "scaling_layer.shift" && !has_shift) || (k == "scaling_layer.scale" && !has_scale))
      full.emplace_back(k, v.detach().clone());
  }
  load_state_dict(lpips, full, /*strict=*/true);
}

}  // namespace ibq
