// Image-quality and generation metrics with the definitions the IBQ paper's tables use (official evaluation
// script of TencentARC/SEED-Voken and pytorch-fid). Pure libtorch; all reductions in float64.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

namespace ibq::metrics {

// ---- Frechet distance (pytorch-fid calculate_frechet_distance; Heusel et al. 2017)

struct GaussianStats {
  at::Tensor mu;     // [D] float64
  at::Tensor sigma;  // [D, D] float64, unbiased covariance (numpy.cov(rowvar=False))
  int64_t n = 0;     // number of samples behind them (0: unknown, e.g. read from a file)
};

// Running sums for mean and covariance of feature batches, so that 50k x 2048 features need not be kept.
struct FeatureMoments {
  at::Tensor sum;    // [D] float64
  at::Tensor outer;  // [D, D] float64: sum of x x^T
  int64_t n = 0;
  // Adds a batch [B, D] (any float dtype; converted to float64). D must match earlier batches.
  void add(const at::Tensor& feats);
  // mu = sum / n, sigma = (outer - n mu mu^T) / (n - 1). Throws ibq::ValueError when n < 2.
  GaussianStats stats() const;
};

// Stats of features [N, D] computed directly (centred, as numpy.cov). N < 2: ibq::ValueError.
GaussianStats feature_stats(const at::Tensor& feats);

struct FrechetResult {
  double value = 0;
  std::string warning;  // non-empty when the eps * I fallback was used (and why)
};

// ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)), in float64. S1^(1/2), S2^(1/2) come from symmetric
// eigen-decompositions; tr((S1 S2)^(1/2)) is the sum of the singular values of S1^(1/2) S2^(1/2) (the square
// roots of the eigenvalues of the PSD matrix S1^(1/2) S2 S1^(1/2), which is similar to S1 S2), so there is
// no imaginary residue. When a covariance is singular (fewer samples than dimensions, or numerically rank
// deficient), eps * I is added to both (pytorch-fid's fallback, eps 1e-6) and `warning` says so.
// Errors (ibq::ValueError): shapes that do not match, a sample count below 2 in either stats.
FrechetResult frechet_distance(const GaussianStats& a, const GaussianStats& b, double eps = 1e-6);

// ---- Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))) per split, mean and std over splits.
struct InceptionScore {
  double mean = 0, std = 0;
};
// logits [N, C] (C 1008 for the FID Inception); softmax in float64; N split into `splits` consecutive parts of
// sizes N / splits (the first N % splits parts one larger). Errors: N < splits, splits < 1.
InceptionScore inception_score(const at::Tensor& logits, int64_t splits = 10);

// ---- PSNR / SSIM as the official tokenizer evaluation computes them
// x in [0, 1] (clamped), u = trunc(255 x) as a uint8 cast, u / 255 as float32, channels last; then
// skimage.metrics.structural_similarity(data_range=1, channel_axis=-1, 7x7 uniform window, K1 0.01, K2 0.03,
// sample covariance N / (N - 1)) averaged over the valid (border-cropped) region and the channels, and
// skimage.metrics.peak_signal_noise_ratio(data_range=1) per image.

// [-1, 1] -> [0, 1]: (clamp(x, -1, 1) + 1) / 2, in x's dtype (the official script's mapping of images and
// clamped reconstructions).
at::Tensor unit_from_symmetric(const at::Tensor& x);
// The uint8 round trip of the official script: [B, C, H, W] in [0, 1] -> uint8 [B, C, H, W] = trunc(255 x).
at::Tensor to_uint8(const at::Tensor& x01);
// The official sample script's pixels (chw_to_pillow of generate.py): [B, C, H, W] about [-1, 1] -> uint8
// [B, H, W, C] = trunc(clip(255 * ((x + 1) / 2), 0, 255)) in float32 arithmetic, NaN -> 0.
at::Tensor sample_pixels_uint8(const at::Tensor& x);
// a, b: [B, C, H, W] images in [0, 1] (any float dtype; quantised with to_uint8 first), H, W >= 7.
// Returns [B] float64 values per image. Identical images give PSNR +inf (as skimage).
at::Tensor ssim_per_image(const at::Tensor& a, const at::Tensor& b);
at::Tensor psnr_per_image(const at::Tensor& a, const at::Tensor& b);

// ---- Codebook usage
struct CodebookUsage {
  at::Tensor histogram;  // [n_embed] int64: how often each index occurs
  int64_t used = 0;      // distinct indices
  double utilization = 0;  // used / n_embed
};
// indices: int64 tensor of any shape with values in [0, n_embed) (others: ibq::ValueError).
CodebookUsage codebook_usage(const at::Tensor& indices, int64_t n_embed);

}  // namespace ibq::metrics
