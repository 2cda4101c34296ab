// The FID Inception v3 of pytorch-fid (mseitzer/pytorch-fid, inception.py: fid_inception_v3 + InceptionV3
// with output block 3): torchvision's Inception v3 layout with the FID blocks (FIDInceptionA/C/E_1/E_2:
// average pools that do not count padding, a max pool in the last block), a 1008-way fc, and the 2048-d
// pool3 features. Parameter names follow the weight file pt_inception-2015-12-05-6726825d.pth
// (`Conv2d_1a_3x3.conv.weight`, `Mixed_5b.branch1x1.bn.running_mean`, ..., `fc.weight`), so it loads 1:1.
// Always runs in inference mode (BatchNorm uses its running statistics, eps 0.001).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <vector>

namespace ibq {

struct InceptionOutput {
  at::Tensor pool3;   // [B, 2048] float32: the adaptive average pool after Mixed_7c (pytorch-fid's feature)
  at::Tensor logits;  // [B, 1008] float32: fc(pool3), bias included
};

class FidInceptionV3Impl : public torch::nn::Module {
 public:
  FidInceptionV3Impl();
  // x: [B, 3, H, W] float, RGB in [0, 1] (B >= 1, H, W >= 1). As pytorch-fid: resized to 299x299 (bilinear,
  // align_corners false), scaled to [-1, 1] (2x - 1), run in float32. Throws ibq::ValueError on another shape.
  InceptionOutput forward(const at::Tensor& x);
  // The part after the resize/scale: x299 [B, 3, 299, 299] in [-1, 1] -> pool3 [B, 2048].
  at::Tensor features(const at::Tensor& x299);
  const torch::nn::Linear& fc() const { return fc_; }

 private:
  // The layers in forward order (convolution blocks, pools), each holding its registered submodule.
  std::vector<std::function<at::Tensor(const at::Tensor&)>> layers_;
  torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(FidInceptionV3);

}  // namespace ibq
