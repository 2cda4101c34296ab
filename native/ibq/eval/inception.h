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
  at::Tensor logits_unbiased;  // [B, 1008] float32: pool3 fc.weight^T without the bias (what the original
                               // TensorFlow Inception Score code and the ADM evaluator take the softmax of)
};

// How images given to the FID Inception are encoded.
enum class InceptionInput {
  kUnit,       // float [B, 3, H, W] in [0, 1] (pytorch-fid's input)
  kSymmetric,  // float [B, 3, H, W] in [-1, 1]: clamped to [-1, 1], then (x + 1) / 2 (official tokenizer eval)
  kUint8Nhwc,  // uint8 [B, H, W, 3] (an .npz of samples, ADM layout): x / 255, channels first
};

// x in the encoding `input` -> float [B, 3, H, W] in [0, 1]. ibq::ValueError on a shape or dtype that does
// not fit the encoding.
at::Tensor inception_input_to_unit(const at::Tensor& x, InceptionInput input);

class FidInceptionV3Impl : public torch::nn::Module {
 public:
  FidInceptionV3Impl();
  // x: [B, 3, H, W] float, RGB in [0, 1] (B >= 1, H, W >= 1). As pytorch-fid: resized to 299x299 (bilinear,
  // align_corners false), scaled to [-1, 1] (2x - 1), run in float32. Throws ibq::ValueError on another shape.
  InceptionOutput forward(const at::Tensor& x);
  // The part after the resize/scale: x299 [B, 3, 299, 299] in [-1, 1] -> pool3 [B, 2048].
  at::Tensor features(const at::Tensor& x299);
  // forward() over x in chunks of `batch_size` along dim 0 (x in the encoding `input`), concatenated;
  // `between(done, total)` is called after each chunk (it may throw to abort).
  InceptionOutput forward_batched(const at::Tensor& x, InceptionInput input, int64_t batch_size,
                                  const std::function<void(int64_t, int64_t)>& between = nullptr);
  const torch::nn::Linear& fc() const { return fc_; }

 private:
  // The layers in forward order (convolution blocks, pools), each holding its registered submodule.
  std::vector<std::function<at::Tensor(const at::Tensor&)>> layers_;
  torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(FidInceptionV3);

}  // namespace ibq
