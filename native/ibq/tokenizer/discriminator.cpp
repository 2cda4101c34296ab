#include "ibq/tokenizer/discriminator.h"

#include <sstream>

#include "ibq/core/errors.h"
#include "ibq/core/layout.h"

namespace ibq {
namespace {

using namespace torch::nn;

Conv2d conv4(int64_t in, int64_t out, int64_t stride, bool bias) {
  return Conv2d(Conv2dOptions(in, out, 4).stride(stride).padding(1).bias(bias));
}
LeakyReLU lrelu() { return LeakyReLU(LeakyReLUOptions().negative_slope(0.2)); }

// Output side of a 4x4 convolution with padding 1.
int64_t out_side(int64_t s, int64_t stride) { return (s + 2 - 4) / stride + 1; }

}  // namespace

NLayerDiscriminatorImpl::NLayerDiscriminatorImpl(const DiscriminatorOptions& opts) : opts_(opts) {
  Sequential seq;
  seq->push_back(conv4(opts_.input_nc, opts_.ndf, 2, true));
  seq->push_back(lrelu());
  int64_t mult = 1, prev = 1;
  for (int64_t n = 1; n < opts_.n_layers; ++n) {
    prev = mult;
    mult = std::min<int64_t>(int64_t(1) << n, 8);
    seq->push_back(conv4(opts_.ndf * prev, opts_.ndf * mult, 2, false));
    seq->push_back(BatchNorm2d(opts_.ndf * mult));
    seq->push_back(lrelu());
  }
  prev = mult;
  mult = std::min<int64_t>(int64_t(1) << opts_.n_layers, 8);
  seq->push_back(conv4(opts_.ndf * prev, opts_.ndf * mult, 1, false));
  seq->push_back(BatchNorm2d(opts_.ndf * mult));
  seq->push_back(lrelu());
  seq->push_back(conv4(opts_.ndf * mult, 1, 1, true));
  main = register_module("main", seq);
  reset_parameters();
}

void NLayerDiscriminatorImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  for (auto& m : main->children()) {
    if (auto* c = m->as<Conv2d>()) {
      c->weight.normal_(0.0, 0.02);
    } else if (auto* bn = m->as<BatchNorm2d>()) {
      bn->weight.normal_(1.0, 0.02);
      bn->bias.zero_();
    }
  }
}

int64_t NLayerDiscriminatorImpl::min_input_size() const {
  for (int64_t s = 1;; ++s) {
    int64_t h = s;
    for (int64_t n = 0; n < opts_.n_layers; ++n) h = out_side(h, 2);
    h = out_side(out_side(h, 1), 1);
    if (h >= 1) return s;
  }
}

at::Tensor NLayerDiscriminatorImpl::forward(const at::Tensor& x) {
  if (x.dim() != 4 || x.size(1) != opts_.input_nc) {
    std::ostringstream os;
    os << "discriminator input: expected [B, " << opts_.input_nc << ", H, W], got shape " << x.sizes();
    throw ValueError(os.str());
  }
  const int64_t m = min_input_size();
  if (x.size(2) < m || x.size(3) < m) {
    std::ostringstream os;
    os << "discriminator input: the PatchGAN discriminator (disc_num_layers " << opts_.n_layers
       << ") needs images of at least " << m << "x" << m << " pixels, got " << x.size(2) << "x" << x.size(3);
    throw ValueError(os.str());
  }
  return main->forward(cpu_channels_last(x));
}

}  // namespace ibq
