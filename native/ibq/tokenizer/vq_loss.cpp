#include "ibq/tokenizer/vq_loss.h"

#include "ibq/core/config_check.h"
#include "ibq/core/errors.h"

namespace ibq {
namespace {

at::Tensor scalar(double v) { return torch::tensor(float(v)); }

// Official _sigmoid_cross_entropy_with_logits: relu(l) - l * labels + log1p(exp(-|l|)), written with where()
// as the official code (same values and gradients).
at::Tensor sigmoid_ce(const at::Tensor& labels, const at::Tensor& logits) {
  auto zeros = at::zeros_like(logits);
  auto cond = logits >= zeros;
  auto relu_logits = at::where(cond, logits, zeros);
  auto neg_abs = at::where(cond, -logits, logits);
  return relu_logits - logits * labels + at::log1p(at::exp(neg_abs));
}

void check_pair(const at::Tensor& x, const at::Tensor& xrec) {
  if (x.sizes() != xrec.sizes())
    throw ShapeError("inputs, reconstructions: expected the same shape, got " + c10::str(x.sizes()) + " and " +
                     c10::str(xrec.sizes()));
}

}  // namespace

void VQLossOptions::validate() const {
  check_fields(*this, "lossconfig");
  IBQ_CHECK(!use_actnorm && !disc_conditional, "lossconfig: use_actnorm and disc_conditional are only supported false");
}

void LeCamEma::update(const at::Tensor& logits_real, const at::Tensor& logits_fake) {
  const double r = logits_real.detach().mean().item<double>();
  const double f = logits_fake.detach().mean().item<double>();
  logits_real_ema = logits_real_ema * decay + r * (1 - decay);
  logits_fake_ema = logits_fake_ema * decay + f * (1 - decay);
}

at::Tensor non_saturate_gen_loss(const at::Tensor& logits_fake) {
  auto l = logits_fake.reshape({logits_fake.size(0), -1}).mean(-1);
  return sigmoid_ce(at::ones_like(l), l).mean();
}

at::Tensor hinge_d_loss(const at::Tensor& logits_real, const at::Tensor& logits_fake) {
  auto real = at::relu(1. - logits_real).mean();
  auto fake = at::relu(1. + logits_fake).mean();
  return 0.5 * (real + fake);
}

at::Tensor vanilla_d_loss(const at::Tensor& logits_real, const at::Tensor& logits_fake) {
  return 0.5 * (at::softplus(-logits_real).mean() + at::softplus(logits_fake).mean());
}

at::Tensor lecam_reg(const at::Tensor& logits_real, const at::Tensor& logits_fake, const LeCamEma& ema) {
  return at::relu(logits_real - ema.logits_fake_ema).pow(2).mean() +
         at::relu(ema.logits_real_ema - logits_fake).pow(2).mean();
}

double adopt_weight(double weight, int64_t global_step, int64_t threshold, double value) {
  return global_step < threshold ? value : weight;
}

VQLPIPSWithDiscriminatorImpl::VQLPIPSWithDiscriminatorImpl(const VQLossOptions& opts) : opts_(opts) {
  opts_.validate();
  perceptual_loss = register_module("perceptual_loss", LPIPS(LpipsNet::kVgg));
  discriminator = register_module(
      "discriminator", NLayerDiscriminator(DiscriminatorOptions{opts_.disc_in_channels, opts_.disc_ndf,
                                                                opts_.disc_num_layers}));
}

LossResult VQLPIPSWithDiscriminatorImpl::generator_loss(const CodebookLoss& codebook, const at::Tensor& x,
                                                        const at::Tensor& xrec, int64_t global_step,
                                                        const at::Tensor& last_layer, const std::string& split) {
  check_pair(x, xrec);
  const auto in = x.contiguous(), rec = xrec.contiguous();
  auto rec_loss = at::abs(in - rec);
  at::Tensor nll = rec_loss.clone(), p_loss;
  if (opts_.perceptual_weight > 0) {
    p_loss = perceptual_loss->forward(in, rec);
    nll = nll + opts_.perceptual_weight * p_loss;
  } else {
    p_loss = torch::zeros({1});
  }
  nll = nll.mean();

  auto logits_fake = discriminator->forward(rec);
  at::Tensor g_loss = non_saturate_gen_loss(logits_fake), d_weight;
  if (!opts_.gen_loss_weight) {
    if (last_layer.defined() && last_layer.requires_grad() && nll.requires_grad() && g_loss.requires_grad()) {
      auto nll_grads = torch::autograd::grad({nll}, {last_layer}, {}, /*retain_graph=*/true)[0];
      auto g_grads = torch::autograd::grad({g_loss}, {last_layer}, {}, /*retain_graph=*/true)[0];
      d_weight = (at::norm(nll_grads) / (at::norm(g_grads) + 1e-4)).clamp(0.0, 1e4).detach();
      d_weight = d_weight * opts_.disc_weight;
    } else if (!is_training()) {
      d_weight = scalar(0.0);  // the official fallback when no graph exists (evaluation)
    } else {
      throw ValueError("adaptive generator weight: no gradient graph to decoder.conv_out.weight in train mode");
    }
  } else {
    d_weight = scalar(*opts_.gen_loss_weight);
  }
  const double disc_factor = adopt_weight(opts_.disc_factor, global_step, opts_.disc_start);
  auto real_g_loss = disc_factor * g_loss;
  g_loss = d_weight * disc_factor * g_loss;

  at::Tensor cb_loss;
  if (codebook.use_entropy_loss)
    cb_loss = opts_.quant_loss_weight * codebook.quant_loss + opts_.entropy_loss_weight * codebook.entropy_loss;
  else
    cb_loss = opts_.codebook_weight * codebook.quant_loss;
  auto loss = nll + g_loss + cb_loss;

  LossLog log;
  auto add = [&](const char* k, const at::Tensor& v) { log.emplace_back(split + "/" + k, v.detach().mean()); };
  add("total_loss", loss);
  if (codebook.use_entropy_loss) {
    add("codebook_quant_loss", codebook.quant_loss);
    add("codebook_entropy_loss", codebook.entropy_loss);
    add("codebook_sample_entropy_loss", codebook.sample_entropy);
    add("codebook_avg_entropy_loss", codebook.avg_entropy);
    add("codebook_loss", cb_loss);
  } else {
    add("codebook_quant_loss", cb_loss);
  }
  add("nll_loss", nll);
  add("reconstruct_loss", rec_loss);
  add("perceptual_loss", p_loss);
  if (disc_factor == 0) {
    for (const char* k : {"d_weight", "disc_factor", "g_loss", "unsacled_g_loss"}) add(k, scalar(0.0));
  } else if (is_training()) {
    add("d_weight", d_weight);
    add("disc_factor", scalar(disc_factor));
    add("g_loss", g_loss);
    add("unsacled_g_loss", real_g_loss);
  } else {
    add("d_weight", d_weight);
    add("disc_factor", scalar(disc_factor));
    add("g_loss", real_g_loss);
  }
  return {loss, log};
}

LossResult VQLPIPSWithDiscriminatorImpl::discriminator_loss(const at::Tensor& x, const at::Tensor& xrec,
                                                            int64_t global_step, const std::string& split) {
  check_pair(x, xrec);
  auto logits_real = discriminator->forward(x.contiguous().detach());
  auto logits_fake = discriminator->forward(xrec.contiguous().detach());
  const double disc_factor = adopt_weight(opts_.disc_factor, global_step, opts_.disc_start);
  at::Tensor d_loss, lecam_loss;
  auto base = [&] {
    return opts_.disc_loss == "hinge" ? hinge_d_loss(logits_real, logits_fake) : vanilla_d_loss(logits_real, logits_fake);
  };
  if (opts_.lecam_loss_weight && disc_factor > 0) {
    lecam_ema.update(logits_real, logits_fake);
    lecam_loss = lecam_reg(logits_real, logits_fake, lecam_ema);
    auto non_saturate_d_loss = base();
    d_loss = disc_factor * (lecam_loss * *opts_.lecam_loss_weight + non_saturate_d_loss);
  } else {
    d_loss = disc_factor * base();
  }
  LossLog log;
  auto add = [&](const char* k, const at::Tensor& v) { log.emplace_back(split + "/" + k, v.detach().mean()); };
  if (disc_factor == 0) {
    for (const char* k : {"disc_loss", "logits_real", "logits_fake"}) add(k, scalar(0.0));
    add("disc_factor", scalar(disc_factor));
    if (has_lecam()) add("lecam_loss", scalar(0.0));
  } else {
    add("disc_loss", d_loss);
    add("logits_real", logits_real);
    add("logits_fake", logits_fake);
    add("disc_factor", scalar(disc_factor));
    if (lecam_loss.defined()) add("lecam_loss", lecam_loss);
  }
  return {d_loss, log};
}

}  // namespace ibq
