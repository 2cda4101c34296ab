/**
 * Metric functions (native/ibq/eval/metrics.h): Frechet distance, feature statistics, Inception Score, SSIM/PSNR as
 * the official IBQ evaluation, codebook usage. Usable on their own (e.g. by the demo) and by evaluate*.
 */
import { checkInt, checkNumber } from '../core/errors.js';
import { native } from '../native.js';
import { Tensor, wrap } from '../core/tensor.js';

/** Gaussian statistics of features: mu [D] and sigma [D,D] (float64), n samples (0 or absent: unknown). */
export interface GaussianStats {
  mu: Tensor;
  sigma: Tensor;
  n?: number;
}

function checkTensor(v: unknown, name: string): Tensor {
  if (!(v instanceof Tensor)) throw new TypeError(`${name}: expected a Tensor`);
  return v;
}

function statsToNative(s: GaussianStats, name: string) {
  if (s === null || typeof s !== 'object') throw new TypeError(`${name}: expected { mu, sigma, n? }`);
  return { mu: checkTensor(s.mu, `${name}.mu`).handle, sigma: checkTensor(s.sigma, `${name}.sigma`).handle, n: s.n };
}

/** mu and the unbiased covariance (numpy.cov rowvar=False) of features [N, D] in float64. RangeError if N < 2. */
export async function featureStats(features: Tensor): Promise<GaussianStats> {
  const r = await native.metrics.featureStats(checkTensor(features, 'features').handle);
  return { mu: wrap(r.mu), sigma: wrap(r.sigma), n: r.n };
}

/** Accumulates features batch by batch (float64 sums), so large sets need not be kept in memory. */
export class FeatureMoments {
  readonly #h = new native.metrics.FeatureMomentsHandle();
  /** features: [B, D], D fixed across calls (RangeError otherwise). */
  add(features: Tensor): Promise<void> {
    return this.#h.add(checkTensor(features, 'features').handle);
  }
  get count(): number {
    return this.#h.count();
  }
  /** RangeError when fewer than 2 samples were added. */
  async stats(): Promise<GaussianStats> {
    const r = await this.#h.stats();
    return { mu: wrap(r.mu), sigma: wrap(r.sigma), n: r.n };
  }
}

/**
 * Frechet distance (pytorch-fid's calculate_frechet_distance; Heusel et al. 2017) in float64, with the trace
 * of the matrix square root from eigen-decompositions of the covariances and the singular values of
 * S1^(1/2) S2^(1/2) (real, no imaginary residue). When a covariance is
 * singular (e.g. fewer samples than dimensions) eps * I is added to both and `warning` says so.
 * Errors: RangeError for mismatched shapes or n = 1.
 */
export async function frechetDistance(
  stats1: GaussianStats,
  stats2: GaussianStats,
  opts: { eps?: number } = {},
): Promise<{ value: number; warning?: string }> {
  const eps = opts.eps === undefined ? 1e-6 : checkNumber(opts.eps, 'eps', 0);
  const r = await native.metrics.frechetDistance(statsToNative(stats1, 'stats1'), statsToNative(stats2, 'stats2'), eps);
  return r.warning ? { value: r.value, warning: r.warning } : { value: r.value };
}

/**
 * Inception Score (Salimans et al. 2016): exp(E KL(p(y|x) || p(y))) over `splits` consecutive parts (default
 * 10), mean and (population) std. logits [N, C]; use FidInception's `logitsUnbiased` as the TF IS code does.
 */
export async function inceptionScore(logits: Tensor, opts: { splits?: number } = {}): Promise<{ mean: number; std: number }> {
  const splits = opts.splits === undefined ? 10 : checkInt(opts.splits, 'splits', 1);
  return native.metrics.inceptionScore(checkTensor(logits, 'logits').handle, splits);
}

/**
 * SSIM and PSNR per image as the official IBQ evaluation: images [B,C,H,W] (range 'unit': [0,1], default;
 * 'symmetric': [-1,1], clamped and mapped by (x+1)/2), quantised to uint8 by truncation, / 255, then
 * skimage's structural_similarity (data_range 1, 7x7 uniform window, channel_axis last) and
 * peak_signal_noise_ratio (data_range 1). H, W >= 7. Identical images: PSNR Infinity.
 */
export async function imageQuality(
  a: Tensor,
  b: Tensor,
  opts: { range?: 'unit' | 'symmetric' } = {},
): Promise<{ ssim: Float64Array; psnr: Float64Array }> {
  const range = opts.range ?? 'unit';
  if (range !== 'unit' && range !== 'symmetric') throw new RangeError(`range: expected 'unit' or 'symmetric', got ${String(range)}`);
  const r = await native.metrics.ssimPsnr(checkTensor(a, 'a').handle, checkTensor(b, 'b').handle, range === 'symmetric');
  const [ssim, psnr] = [wrap(r.ssim), wrap(r.psnr)];
  const out = { ssim: (await ssim.data()) as Float64Array, psnr: (await psnr.data()) as Float64Array };
  ssim.dispose();
  psnr.dispose();
  return out;
}

const mean = (v: Float64Array) => v.reduce((s, x) => s + x, 0) / v.length;

/** Mean SSIM over the batch (see imageQuality). */
export async function ssim(a: Tensor, b: Tensor, opts: { range?: 'unit' | 'symmetric' } = {}): Promise<number> {
  return mean((await imageQuality(a, b, opts)).ssim);
}
/** Mean PSNR (dB) over the batch, per image first (see imageQuality). */
export async function psnr(a: Tensor, b: Tensor, opts: { range?: 'unit' | 'symmetric' } = {}): Promise<number> {
  return mean((await imageQuality(a, b, opts)).psnr);
}

/** A copy of `x` clamped to [lo, hi] (reconstructions to [-1, 1] before evaluation, as the official script). */
export function clamp(x: Tensor, lo: number, hi: number): Tensor {
  return wrap(native.metrics.clamp(checkTensor(x, 'x').handle, checkNumber(lo, 'lo'), checkNumber(hi, 'hi')));
}

/** clamp() computed on a worker thread (large batches without blocking the event loop). */
export async function clampAsync(x: Tensor, lo: number, hi: number): Promise<Tensor> {
  return wrap(await native.metrics.clampAsync(checkTensor(x, 'x').handle, checkNumber(lo, 'lo'), checkNumber(hi, 'hi')));
}

/** Codebook usage counts accumulated over batches of indices. */
export class CodebookUsage {
  readonly histogram: Float64Array;
  constructor(readonly nEmbed: number) {
    checkInt(nEmbed, 'nEmbed', 1);
    this.histogram = new Float64Array(nEmbed);
  }
  /** indices: int64 tensor of any shape, values in [0, nEmbed) (RangeError otherwise). */
  async add(indices: Tensor): Promise<void> {
    const r = await native.metrics.codebookUsage(checkTensor(indices, 'indices').handle, this.nEmbed);
    const h = wrap(r.histogram);
    const counts = (await h.data()) as BigInt64Array;
    h.dispose();
    for (let i = 0; i < counts.length; i++) if (counts[i] !== 0n) this.histogram[i] += Number(counts[i]);
  }
  /** Distinct indices seen. */
  get used(): number {
    return this.histogram.reduce((s, c) => s + (c > 0 ? 1 : 0), 0);
  }
  /** used / nEmbed. */
  get utilization(): number {
    return this.used / this.nEmbed;
  }
}

/** Usage of one set of indices: { histogram [nEmbed], used, utilization }. */
export async function codebookUsage(indices: Tensor, nEmbed: number): Promise<{ histogram: Float64Array; used: number; utilization: number }> {
  const u = new CodebookUsage(nEmbed);
  await u.add(indices);
  return { histogram: u.histogram, used: u.used, utilization: u.utilization };
}
