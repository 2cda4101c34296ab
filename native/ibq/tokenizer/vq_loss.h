// The tokenizer training loss of the official IBQ repo (`VQLPIPSWithDiscriminator` in
// src/IBQ/modules/losses/vqperceptual.py): L1 + perceptual_weight * LPIPS reconstruction loss, the
// non-saturating generator loss of a PatchGAN discriminator weighted by a fixed gen_loss_weight or the
// adaptive weight of VQGAN (Esser et al. 2021, Eq. 7), the quantizer's quant/entropy losses, and a hinge or
// vanilla discriminator loss with the LeCAM regulariser (Tseng et al. 2021) on EMAs of the mean logits.
// Child modules as in the official checkpoints: `perceptual_loss.*` (LPIPS VGG16) then `discriminator.*`.
#pragma once
#include <torch/torch.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ibq/tokenizer/discriminator.h"
#include "ibq/eval/lpips.h"

namespace ibq {

// The official lossconfig.params (same names and defaults). pixelloss_weight is accepted and, as in the
// official code, unused; codebook_weight only weighs a plain VQ loss (use_entropy_loss false).
struct VQLossOptions {
  int64_t disc_start = 0;
  double codebook_weight = 1.0;
  double pixelloss_weight = 1.0;
  int64_t disc_num_layers = 3;
  int64_t disc_in_channels = 3;
  double disc_factor = 1.0;
  double disc_weight = 1.0;
  double perceptual_weight = 1.0;
  bool use_actnorm = false;       // only false is supported (ValueError otherwise)
  bool disc_conditional = false;  // only false is supported (ValueError otherwise)
  int64_t disc_ndf = 64;
  std::string disc_loss = "hinge";  // "hinge" | "vanilla"
  std::optional<double> gen_loss_weight;    // absent: the adaptive weight
  std::optional<double> lecam_loss_weight;  // absent: no LeCAM regulariser
  double quant_loss_weight = 1.0;
  double entropy_loss_weight = 1.0;
  void validate() const;  // ibq::ValueError naming the field
};

// Official LeCAM_EMA: EMAs (Python floats, so double here) of the mean real / fake logits, start 0,
// decay 0.999; updated by each discriminator loss evaluation with disc_factor > 0.
struct LeCamEma {
  double logits_real_ema = 0.0, logits_fake_ema = 0.0, decay = 0.999;
  void update(const at::Tensor& logits_real, const at::Tensor& logits_fake);
};

// A log dictionary: official names ("train/total_loss", ...) in the official order, 0-d float tensors.
using LossLog = std::vector<std::pair<std::string, at::Tensor>>;

struct LossResult {
  at::Tensor loss;  // 0-d float32, differentiable
  LossLog log;
};

// The quantizer's terms as the official module receives them (`codebook_loss`): a tuple of four 0-d tensors
// when the quantizer uses the entropy loss, else quant_loss alone.
struct CodebookLoss {
  at::Tensor quant_loss, sample_entropy, avg_entropy, entropy_loss;
  bool use_entropy_loss = true;
};

// Official non-saturating losses on logits [B, 1, h, w] (per-image mean logits, then a sigmoid cross entropy).
at::Tensor non_saturate_gen_loss(const at::Tensor& logits_fake);
at::Tensor hinge_d_loss(const at::Tensor& logits_real, const at::Tensor& logits_fake);
at::Tensor vanilla_d_loss(const at::Tensor& logits_real, const at::Tensor& logits_fake);
// mean(relu(real - ema.fake)^2) + mean(relu(ema.real - fake)^2)
at::Tensor lecam_reg(const at::Tensor& logits_real, const at::Tensor& logits_fake, const LeCamEma& ema);
// Official adopt_weight: `value` before step `threshold`, else `weight`.
double adopt_weight(double weight, int64_t global_step, int64_t threshold, double value = 0.0);

class VQLPIPSWithDiscriminatorImpl : public torch::nn::Module {
 public:
  explicit VQLPIPSWithDiscriminatorImpl(const VQLossOptions& opts);

  // Generator loss (official optimizer_idx 0): x, xrec float [B, C, H, W] in [-1, 1] (xrec differentiable),
  // last_layer the decoder's conv_out.weight (for the adaptive weight; gradients of nll and g losses w.r.t.
  // it, so the graph is kept). loss = mean(|x - xrec| + pw * LPIPS) + d_weight * disc_factor * g_loss +
  // codebook terms; the log has the official keys for `split` (training-mode keys when this module is in
  // train mode, incl. the official spelling "unsacled_g_loss").
  LossResult generator_loss(const CodebookLoss& codebook, const at::Tensor& x, const at::Tensor& xrec,
                            int64_t global_step, const at::Tensor& last_layer, const std::string& split = "train");

  // Discriminator loss (official optimizer_idx 1) on x and xrec (both detached here): disc_factor *
  // (lecam_loss_weight * LeCAM + hinge/vanilla). Updates the LeCAM EMA first (when enabled and
  // disc_factor > 0), as the official code does.
  LossResult discriminator_loss(const at::Tensor& x, const at::Tensor& xrec, int64_t global_step,
                                const std::string& split = "train");

  const VQLossOptions& options() const { return opts_; }
  bool has_lecam() const { return opts_.lecam_loss_weight.has_value(); }

  LPIPS perceptual_loss{nullptr};
  NLayerDiscriminator discriminator{nullptr};
  LeCamEma lecam_ema;

 private:
  VQLossOptions opts_;
};
TORCH_MODULE(VQLPIPSWithDiscriminator);

}  // namespace ibq
