#include "ibq/eval/metrics.h"

#include <cmath>
#include <limits>

#include "ibq/core/errors.h"

namespace ibq::metrics {
namespace {

void check_features(const at::Tensor& f, const char* arg) {
  if (f.dim() != 2 || !at::isFloatingType(f.scalar_type()))
    throw ShapeError(std::string(arg) + ": expected float features [N, D], got shape " + c10::str(f.sizes()) +
                     " dtype " + c10::toString(f.scalar_type()));
}

void check_stats(const GaussianStats& s, const char* arg) {
  if (!s.mu.defined() || !s.sigma.defined() || s.mu.dim() != 1 || s.sigma.dim() != 2 ||
      s.sigma.size(0) != s.mu.size(0) || s.sigma.size(1) != s.mu.size(0))
    throw ValueError(std::string(arg) + ": expected mu [D] and sigma [D, D], got " +
                     (s.mu.defined() ? c10::str(s.mu.sizes()) : "none") + " and " +
                     (s.sigma.defined() ? c10::str(s.sigma.sizes()) : "none"));
  if (s.n == 1)
    throw ValueError(std::string(arg) + ": the Frechet distance needs at least 2 samples, got 1");
}

// Eigen-decomposition of a symmetric matrix; eigenvalues clamped at 0 (PSD up to rounding).
at::Tensor psd_sqrt(const at::Tensor& s) {
  auto [w, v] = at::linalg_eigh(s);
  return at::matmul(v * at::sqrt(at::clamp_min(w, 0)).unsqueeze(0), v.transpose(0, 1));
}

// Smallest eigenvalue relative to the largest: a covariance whose ratio is below D * 2^-52 is treated as
// singular (numpy.linalg.matrix_rank's default tolerance).
bool singular(const at::Tensor& s) {
  auto w = at::linalg_eigvalsh(s);
  double lo = w.min().item<double>(), hi = w.abs().max().item<double>();
  double tol = hi * double(s.size(0)) * std::numeric_limits<double>::epsilon();
  return lo <= tol;
}

// C-contiguous float32 channels-last copy of u / 255 (what `astype(np.float32) / 255.` gives), as float64.
at::Tensor unit_from_uint8(const at::Tensor& u) { return (u.to(at::kFloat) / 255.0f).to(at::kDouble); }

void check_pair(const at::Tensor& a, const at::Tensor& b, int64_t min_hw) {
  if (a.dim() != 4 || !at::isFloatingType(a.scalar_type()) || a.sizes() != b.sizes() ||
      !at::isFloatingType(b.scalar_type()))
    throw ShapeError("a, b: expected two float image batches [B, C, H, W] of the same shape, got " +
                     c10::str(a.sizes()) + " and " + c10::str(b.sizes()));
  if (a.size(2) < min_hw || a.size(3) < min_hw)
    throw ValueError("a, b: SSIM's 7x7 window needs H, W >= 7, got " + c10::str(a.sizes()));
}

}  // namespace

void FeatureMoments::add(const at::Tensor& feats) {
  check_features(feats, "features");
  auto f = feats.detach().to(at::kCPU, at::kDouble);
  if (!sum.defined()) {
    sum = at::zeros({f.size(1)}, f.options());
    outer = at::zeros({f.size(1), f.size(1)}, f.options());
  } else if (f.size(1) != sum.size(0)) {
    throw ValueError("features: expected " + std::to_string(sum.size(0)) + " dimensions as earlier batches, got " +
                     std::to_string(f.size(1)));
  }
  sum += f.sum(0);
  outer.addmm_(f.transpose(0, 1), f);
  n += f.size(0);
}

GaussianStats FeatureMoments::stats() const {
  if (n < 2) throw ValueError("features: the Frechet distance needs at least 2 samples, got " + std::to_string(n));
  GaussianStats s;
  s.mu = sum / double(n);
  s.sigma = (outer - double(n) * at::outer(s.mu, s.mu)) / double(n - 1);
  s.n = n;
  return s;
}

GaussianStats feature_stats(const at::Tensor& feats) {
  check_features(feats, "features");
  if (feats.size(0) < 2)
    throw ValueError("features: the Frechet distance needs at least 2 samples, got " + std::to_string(feats.size(0)));
  auto f = feats.detach().to(at::kCPU, at::kDouble);
  GaussianStats s;
  s.mu = f.mean(0);
  auto c = f - s.mu;
  s.sigma = at::matmul(c.transpose(0, 1), c) / double(f.size(0) - 1);
  s.n = f.size(0);
  return s;
}

FrechetResult frechet_distance(const GaussianStats& a, const GaussianStats& b, double eps) {
  check_stats(a, "stats1");
  check_stats(b, "stats2");
  if (a.mu.size(0) != b.mu.size(0))
    throw ValueError("stats1, stats2: feature dimensions differ (" + std::to_string(a.mu.size(0)) + " vs " +
                     std::to_string(b.mu.size(0)) + ")");
  auto mu1 = a.mu.to(at::kCPU, at::kDouble), mu2 = b.mu.to(at::kCPU, at::kDouble);
  auto s1 = a.sigma.to(at::kCPU, at::kDouble), s2 = b.sigma.to(at::kCPU, at::kDouble);
  s1 = (s1 + s1.transpose(0, 1)) / 2;  // exact symmetry for eigh
  s2 = (s2 + s2.transpose(0, 1)) / 2;
  const int64_t d = mu1.size(0);
  FrechetResult r;
  bool few = (a.n > 0 && a.n < d) || (b.n > 0 && b.n < d);
  if (few || singular(s1) || singular(s2)) {  // (short-circuit: no eigenvalues needed when n < D)
    r.warning = "Frechet distance: singular covariance, so eps * I (eps " + c10::str(eps) +
                ") was added to both covariances" +
                (few ? " (fewer samples (" + std::to_string(std::min(a.n > 0 ? a.n : d, b.n > 0 ? b.n : d)) +
                           ") than feature dimensions (" + std::to_string(d) + "))"
                     : " (a covariance is singular)");
    auto offset = eps * at::eye(d, s1.options());
    s1 = s1 + offset;
    s2 = s2 + offset;
  }
  // S1^(1/2) S2 S1^(1/2) = A A^T with A = S1^(1/2) S2^(1/2): its eigenvalues are the squared singular values
  // of A, so tr((S1 S2)^(1/2)) = sum of A's singular values (no squaring of tiny eigenvalues, no complex part).
  auto a_mat = at::matmul(psd_sqrt(s1), psd_sqrt(s2));
  double tr_covmean = at::linalg_svdvals(a_mat).sum().item<double>();
  auto diff = mu1 - mu2;
  r.value = at::dot(diff, diff).item<double>() + s1.trace().item<double>() + s2.trace().item<double>() -
            2 * tr_covmean;
  return r;
}

InceptionScore inception_score(const at::Tensor& logits, int64_t splits) {
  if (logits.dim() != 2 || !at::isFloatingType(logits.scalar_type()))
    throw ShapeError("logits: expected float logits [N, C], got shape " + c10::str(logits.sizes()));
  if (splits < 1) throw ValueError("splits: expected an integer >= 1, got " + std::to_string(splits));
  const int64_t n = logits.size(0);
  if (n < splits)
    throw ValueError("logits: the Inception Score with " + std::to_string(splits) + " splits needs at least " +
                     std::to_string(splits) + " samples, got " + std::to_string(n));
  auto logp = at::log_softmax(logits.detach().to(at::kCPU, at::kDouble), 1);
  auto p = logp.exp();
  std::vector<double> scores;
  int64_t start = 0;
  for (int64_t k = 0; k < splits; ++k) {
    int64_t len = n / splits + (k < n % splits ? 1 : 0);
    auto part_p = p.narrow(0, start, len), part_logp = logp.narrow(0, start, len);
    auto log_py = at::log(part_p.mean(0, /*keepdim=*/true));
    auto kl = (part_p * (part_logp - log_py)).sum(1).mean();
    scores.push_back(std::exp(kl.item<double>()));
    start += len;
  }
  auto t = at::tensor(scores, at::kDouble);
  return {t.mean().item<double>(), splits > 1 ? t.std(/*unbiased=*/false).item<double>() : 0.0};
}

at::Tensor unit_from_symmetric(const at::Tensor& x) { return (at::clamp(x, -1, 1) + 1) / 2; }

at::Tensor sample_pixels_uint8(const at::Tensor& x) {
  if (x.dim() != 4) throw ValueError("images: expected [B, C, H, W], got " + std::to_string(x.dim()) + " dimensions");
  at::Tensor v = x.detach().to(at::kCPU, at::kFloat).add(1.0f).div(2.0f).mul(255.0f);
  v = at::clamp(at::nan_to_num(v, 0.0, 255.0, 0.0), 0, 255);  // then the cast truncates toward zero
  return v.to(at::kByte).permute({0, 2, 3, 1}).contiguous();
}

at::Tensor to_uint8(const at::Tensor& x01) {
  // (x * 255) then a float -> uint8 cast, which truncates toward zero; clamping first keeps it defined.
  return (at::clamp(x01.detach().to(at::kCPU, at::kFloat), 0, 1) * 255.0f).to(at::kByte);
}

at::Tensor ssim_per_image(const at::Tensor& a, const at::Tensor& b) {
  check_pair(a, b, 7);
  auto x = unit_from_uint8(to_uint8(a)), y = unit_from_uint8(to_uint8(b));
  const int64_t bsz = x.size(0), ch = x.size(1), h = x.size(2), w = x.size(3);
  // Per channel 2-D images; the valid 7x7 averages are exactly the border-cropped region skimage averages.
  auto x4 = x.reshape({bsz * ch, 1, h, w}), y4 = y.reshape({bsz * ch, 1, h, w});
  auto box = [](const at::Tensor& t) { return at::avg_pool2d(t, {7, 7}, {1, 1}); };
  const double np = 49.0, cov_norm = np / (np - 1);
  auto ux = box(x4), uy = box(y4);
  auto vx = cov_norm * (box(x4 * x4) - ux * ux);
  auto vy = cov_norm * (box(y4 * y4) - uy * uy);
  auto vxy = cov_norm * (box(x4 * y4) - ux * uy);
  const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;  // (K R)^2 with data_range R = 1
  auto s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
  return s.reshape({bsz, ch, -1}).mean(2).mean(1);
}

at::Tensor psnr_per_image(const at::Tensor& a, const at::Tensor& b) {
  check_pair(a, b, 1);
  auto x = (to_uint8(a).to(at::kFloat) / 255.0f), y = (to_uint8(b).to(at::kFloat) / 255.0f);
  auto d = (x - y);  // float32 difference, as skimage on float32 inputs
  auto mse = (d * d).to(at::kDouble).flatten(1).mean(1);
  return 10 * at::log10(1.0 / mse);
}

CodebookUsage codebook_usage(const at::Tensor& indices, int64_t n_embed) {
  if (n_embed < 1) throw ValueError("n_embed: expected an integer >= 1, got " + std::to_string(n_embed));
  if (at::isFloatingType(indices.scalar_type()) || indices.scalar_type() == at::kBool)
    throw ValueError("indices: expected an integer tensor, got dtype " + std::string(c10::toString(indices.scalar_type())));
  auto idx = indices.detach().to(at::kCPU, at::kLong).flatten();
  if (idx.numel() > 0) {
    int64_t lo = idx.min().item<int64_t>(), hi = idx.max().item<int64_t>();
    if (lo < 0 || hi >= n_embed)
      throw ValueError("indices: values must lie in [0, " + std::to_string(n_embed) + "), found " +
                       std::to_string(lo < 0 ? lo : hi));
  }
  CodebookUsage u;
  u.histogram = at::bincount(idx, {}, n_embed);
  u.used = (u.histogram > 0).sum().item<int64_t>();
  u.utilization = double(u.used) / double(n_embed);
  return u;
}

}  // namespace ibq::metrics
