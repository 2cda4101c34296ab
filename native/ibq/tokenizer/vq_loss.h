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

#include "ibq/core/config_field.h"
#include "ibq/eval/lpips.h"
#include "ibq/tokenizer/discriminator.h"

namespace ibq {

// The official lossconfig.params (VQLPIPSWithDiscriminator's arguments), declared once for C++ and TypeScript
// (ibq/config_field.h), with the official defaults except disc_start 0 (official: required; every official config
// gives 0). pixelloss_weight is accepted and, as in the official code, unused; codebook_weight only weighs a
// plain VQ loss (use_entropy_loss false).
struct VQLossOptions {
  int64_t disc_start = 0;
  double codebook_weight = 1.0;
  double pixelloss_weight = 1.0;
  int64_t disc_num_layers = 3;
  int64_t disc_in_channels = 3;
  double disc_factor = 1.0;
  double disc_weight = 1.0;
  double perceptual_weight = 1.0;
  bool use_actnorm = false;
  bool disc_conditional = false;
  int64_t disc_ndf = 64;
  std::string disc_loss = "hinge";
  std::optional<double> gen_loss_weight;
  std::optional<double> lecam_loss_weight;
  double quant_loss_weight = 1.0;
  double entropy_loss_weight = 1.0;

  template <class Self, class Fn>
  static void for_each_field(Self& c, Fn&& fn) {
    fn(Field("disc_start", "Global step from which the discriminator terms count (adopt_weight).").ge(0), c.disc_start);
    fn(Field("codebook_weight", "Weight of a plain VQ codebook loss (use_entropy_loss false)."), c.codebook_weight);
    fn(Field("pixelloss_weight", "Accepted and unused, as in the official code."), c.pixelloss_weight);
    fn(Field("disc_num_layers", "Strided convolution layers of the PatchGAN discriminator.").ge(1).le(8),
       c.disc_num_layers);
    fn(Field("disc_in_channels", "Image channels the discriminator takes.").ge(1), c.disc_in_channels);
    fn(Field("disc_factor", "Factor of the generator and discriminator GAN terms."), c.disc_factor);
    fn(Field("disc_weight", "Factor of the adaptive generator weight (gen_loss_weight null)."), c.disc_weight);
    fn(Field("perceptual_weight", "Weight of LPIPS in the reconstruction loss (0: no LPIPS weights needed).").ge(0),
       c.perceptual_weight);
    fn(Field("use_actnorm", "ActNorm instead of BatchNorm in the discriminator (only false is supported).")
           .only_default(),
       c.use_actnorm);
    fn(Field("disc_conditional", "Class-conditional discriminator (only false: the IBQ tokenizers are unconditional).")
           .only_default(),
       c.disc_conditional);
    fn(Field("disc_ndf", "Channels of the discriminator's first layer.").ge(1), c.disc_ndf);
    fn(Field("disc_loss", "Discriminator loss.").one_of({"hinge", "vanilla"}), c.disc_loss);
    fn(Field("gen_loss_weight", "Fixed weight of the generator GAN loss; null: the adaptive weight of VQGAN."),
       c.gen_loss_weight);
    fn(Field("lecam_loss_weight", "Weight of the LeCAM regulariser of the discriminator; null: none."),
       c.lecam_loss_weight);
    fn(Field("quant_loss_weight", "Weight of the quantizer's quant_loss."), c.quant_loss_weight);
    fn(Field("entropy_loss_weight", "Weight of the quantizer's entropy_loss."), c.entropy_loss_weight);
  }
  void validate() const;  // IBQ_CHECK of the declared ranges and choices
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
