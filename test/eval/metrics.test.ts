// Evaluation acceptance on ../shared/fixtures/metrics (made with the official pytorch-fid / skimage code):
// FID Inception outputs, Frechet distance, SSIM/PSNR; plus FID(x, x) = 0 and the error paths.
import { describe, expect, it } from 'vitest';

import {
  FidInception, featureStats, frechetDistance, imageQuality, loadSafetensors, MissingWeightsError, tensor,
  type Tensor,
} from '../../dist/index.js';
import { fixture, HAVE_FIXTURES, NO_FIXTURES_REASON } from '../support/fixtures.js';

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
const scalar = (t: Tensor) => (t.dataSync() as Float32Array)[0];
const mean = (v: Float64Array) => v.reduce((s, x) => s + x, 0) / v.length;

describe.skipIf(!HAVE_FIXTURES)(`metrics fixture ${HAVE_FIXTURES ? '' : NO_FIXTURES_REASON}`, async () => {
  const g = HAVE_FIXTURES ? await loadSafetensors(fixture('metrics', 'golden.safetensors')) : new Map<string, Tensor>();
  const get = (k: string) => g.get(k)!;

  it('the FID Inception reproduces pool3 and logits (float16 weights run in float32)', async () => {
    const net = await FidInception.load(fixture('metrics', 'fid_inception_weights.pth'));
    const out = await net.forward(get('inception_images'));
    expect(out.pool3.shape).toEqual([2, 2048]);
    expect(out.logits.shape).toEqual([2, 1008]);
    const ePool = maxAbs(out.pool3.dataSync() as Float32Array, get('inception_pool3').dataSync() as Float32Array);
    const eLogits = maxAbs(out.logits.dataSync() as Float32Array, get('inception_logits').dataSync() as Float32Array);
    console.log(`inception max abs error: pool3 ${ePool}, logits ${eLogits}`);
    expect(ePool).toBeLessThanOrEqual(1e-5);
    expect(eLogits).toBeLessThanOrEqual(1e-5);
    // the same images given in [-1, 1] ('symmetric') give the same features up to float32 rounding
    net.dispose();
  });

  it('Frechet distance reproduces fd_64 (500 x 64 features)', async () => {
    const fd = await frechetDistance(await featureStats(get('fd_f1')), await featureStats(get('fd_f2')));
    const want = scalar(get('fd_64'));
    console.log(`fd_64: ours ${fd.value}, official ${want}, relative error ${Math.abs(fd.value - want) / want}`);
    expect(Math.abs(fd.value - want) / want).toBeLessThanOrEqual(1e-4);
    expect(fd.warning).toBeUndefined();
  });

  it('singular covariances (100 samples of 2048-d): a finite real value and a warning', async () => {
    const fd = await frechetDistance(await featureStats(get('fd_s1')), await featureStats(get('fd_s2')));
    expect(Number.isFinite(fd.value)).toBe(true);
    expect(fd.value).toBeGreaterThan(0);
    expect(fd.warning).toMatch(/singular.*eps/);
    const official = scalar(get('fd_small'));
    if (!Number.isNaN(official)) console.log(`fd_small: ours ${fd.value}, official ${official}`);
  });

  it('SSIM and PSNR as the official evaluation (uint8 truncation, skimage)', async () => {
    const q = await imageQuality(get('ssim_a'), get('ssim_b'), { range: 'symmetric' });
    expect(q.ssim.length).toBe(3);
    const [eS, eP] = [Math.abs(mean(q.ssim) - scalar(get('ssim'))), Math.abs(mean(q.psnr) - scalar(get('psnr')))];
    console.log(`ssim abs error ${eS}, psnr abs error ${eP}`);
    expect(eS).toBeLessThanOrEqual(1e-5);
    expect(eP).toBeLessThanOrEqual(1e-5);
  });

  it('FID(x, x) = 0, also in the singular eps * I case', async () => {
    for (const k of ['fd_f1', 'fd_s1']) {
      const s = await featureStats(get(k));
      const fd = await frechetDistance(s, s);
      expect(Math.abs(fd.value)).toBeLessThanOrEqual(1e-6);
    }
  });
});

describe('metric errors', () => {
  it('fewer than 2 samples is an error', async () => {
    const one = tensor(new Float64Array(8), [1, 8], { dtype: 'float64' });
    await expect(featureStats(one)).rejects.toThrow(/at least 2 samples, got 1/);
    const mu = tensor(new Float64Array(2), [2], { dtype: 'float64' });
    const sigma = tensor(new Float64Array([1, 0, 0, 1]), [2, 2], { dtype: 'float64' });
    await expect(frechetDistance({ mu, sigma, n: 1 }, { mu, sigma })).rejects.toThrow(RangeError);
    const sigma3 = tensor(new Float64Array(9), [3, 3], { dtype: 'float64' });
    await expect(frechetDistance({ mu, sigma }, { mu, sigma: sigma3 })).rejects.toThrow(/mu \[D\] and sigma \[D, D\]/);
  });

  it('missing Inception weights: an error naming the file and where it is published', async () => {
    const err = await FidInception.load('/nonexistent/weights').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MissingWeightsError);
    expect(String((err as Error).message)).toMatch(/pt_inception-2015-12-05-6726825d\.pth/);
    expect(String((err as Error).message)).toMatch(/github\.com\/mseitzer\/pytorch-fid\/releases/);
  });

  it('SSIM/PSNR reject images smaller than the 7x7 window and mismatched shapes', async () => {
    const a = tensor(new Float32Array(3 * 6 * 6), [1, 3, 6, 6]);
    await expect(imageQuality(a, a)).rejects.toThrow(/H, W >= 7/);
    const b = tensor(new Float32Array(3 * 8 * 8), [1, 3, 8, 8]);
    await expect(imageQuality(b, a)).rejects.toThrow(/same shape/);
  });
});
