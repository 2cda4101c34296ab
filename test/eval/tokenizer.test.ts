// evaluateTokenizer's aggregation (official script: per-batch means of PSNR/SSIM then over batches, LPIPS sum /
// images, rFID over all features, utilization) with a stand-in tokenizer and random-weight networks; the
// CLI's missing-weights error.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import sharp from 'sharp';

import { describe, expect, it } from 'vitest';

import {
  clamp, evaluateSamples, evaluateTokenizer, featureStats, inceptionScore, FidInception, frechetDistance, imageQuality, LPIPS, MissingWeightsError,
  saveCheckpoint, tensor, Tokenizer, type EvaluableTokenizer, type Tensor,
} from '../../dist/index.js';
import { run } from '../support/run.js';

function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}
function images(n: number, seed: number, amplitude = 1): Tensor {
  const r = rng(seed);
  return tensor(Float32Array.from({ length: n * 3 * 32 * 32 }, () => (r() * 2 - 1) * amplitude), [n, 3, 32, 32]);
}

/** encode: indices given per batch; decode: the reconstruction registered for those indices. */
function standIn(recon: (x: Tensor, batch: number) => Tensor, indices: bigint[][]): EvaluableTokenizer {
  const table = new Map<Tensor, Tensor>();
  let batch = 0;
  return {
    config: { n_embed: 16 },
    async encode(x) {
      const idx = tensor(indices[batch], [x.shape[0], 1, 2], { dtype: 'int64' });
      table.set(idx, recon(x, batch++));
      return { indices: idx, z_q: tensor([0], [1]) };
    },
    async decode(idx) {  // a new tensor, as a real decoder returns
      const t = table.get(idx)!;
      return tensor(t.dataSync() as Float32Array, t.shape);
    },
  };
}

describe('evaluateTokenizer', () => {
  const inception = FidInception.create();
  const lpips = [LPIPS.create('vgg'), LPIPS.create('alex')];
  const models = { inception, lpips };

  it('perfect reconstructions: rFID 0, LPIPS 0, SSIM 1, PSNR Infinity; utilization counts distinct codes', async () => {
    const data = [images(2, 1), images(2, 2)];
    const m = await evaluateTokenizer({
      tokenizer: standIn((x) => x, [[0n, 1n, 1n, 5n], [5n, 7n, 0n, 0n]]),
      data, weights: { models },
    });
    expect(m.numImages).toBe(4);
    expect(Math.abs(m.rFID)).toBeLessThanOrEqual(1e-6);
    expect(m.warnings[0]).toMatch(/singular/);  // 4 samples of 2048-d features
    expect(m.lpips).toEqual({ vgg: 0, alex: 0 });
    expect(m.ssim).toBe(1);
    expect(m.psnr).toBe(Infinity);
    expect(m.usedCodes).toBe(4);
    expect(m.utilization).toBe(4 / 16);
    expect(m.histogram[0]).toBe(3);
  });

  it('PSNR/SSIM are averaged per batch, then over batches; reconstructions are clamped to [-1, 1]', async () => {
    const data = [images(2, 3), images(1, 4)];
    const recs = [images(2, 5, 1.5), images(1, 6, 1.5)];  // partly outside [-1, 1]
    const m = await evaluateTokenizer({
      tokenizer: standIn((_x, b) => recs[b], [[1n, 2n, 3n, 4n], [9n, 9n]]),
      data, weights: { models },
    });
    const q = [await imageQuality(data[0], recs[0], { range: 'symmetric' }), await imageQuality(data[1], recs[1], { range: 'symmetric' })];
    const perBatch = (k: 'psnr' | 'ssim') => ((q[0][k][0] + q[0][k][1]) / 2 + q[1][k][0]) / 2;
    const perImage = (k: 'psnr' | 'ssim') => (q[0][k][0] + q[0][k][1] + q[1][k][0]) / 3;
    expect(m.psnr).toBeCloseTo(perBatch('psnr'), 12);
    expect(Math.abs(m.psnr - perImage('psnr'))).toBeGreaterThan(1e-6);
    expect(m.ssim).toBeCloseTo(perBatch('ssim'), 12);
    let sum = 0;
    let sumUnclamped = 0;
    for (let b = 0; b < 2; b++) {
      sum += (await lpips[0].forward(data[b], clamp(recs[b], -1, 1))).dataSync().reduce((s, v) => s + v, 0);
      sumUnclamped += (await lpips[0].forward(data[b], recs[b])).dataSync().reduce((s, v) => s + v, 0);
    }
    expect(m.lpips.vgg).toBeCloseTo(sum / 3, 6);
    // the LPIPS nets are randomly initialised (libtorch's default generator is seeded nondeterministically), so
    // how much clamping moves their value varies from run to run (seen: 9e-6 .. 1e-4): the reported value must
    // be the clamped one, far closer to it than to the unclamped one
    const dClamped = Math.abs(m.lpips.vgg! - sum / 3), dUnclamped = Math.abs(m.lpips.vgg! - sumUnclamped / 3);
    expect(dUnclamped).toBeGreaterThan(1e-6);
    expect(dUnclamped).toBeGreaterThan(10 * dClamped);
    // rFID over all features of both sets
    const feats = async (ts: Tensor[]) => {
      const all: number[] = [];
      for (const t of ts) all.push(...((await inception.forward(t, { input: 'symmetric' })).pool3.dataSync() as Float32Array));
      return featureStats(tensor(Float32Array.from(all), [3, 2048]));
    };
    const fd = await frechetDistance(await feats(data), await feats(recs));
    expect(Math.abs(m.rFID - fd.value)).toBeLessThanOrEqual(1e-6 * Math.max(1, fd.value));
    expect(m.utilization).toBe(5 / 16);
  }, 300_000); // LPIPS (VGG16, AlexNet) and Inception on 3 images: > 120 s on 2 busy cores

  it('Inception weights named but missing: MissingWeightsError before any image is encoded', async () => {
    const tok: EvaluableTokenizer = {
      config: { n_embed: 4 },
      encode: () => Promise.reject(new Error('must not be called')),
      decode: () => Promise.reject(new Error('must not be called')),
    };
    const err = await evaluateTokenizer({ tokenizer: tok, data: [images(2, 1)], weights: { inception: '/nonexistent/x.pth' } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MissingWeightsError);
    expect((err as Error).message).toMatch(/pt_inception-2015-12-05-6726825d\.pth.*not found at \/nonexistent\/x\.pth/);
  });

  it('no FID/LPIPS weights named: PSNR, SSIM and utilization are reported, rFID and LPIPS skipped naming the API options', async () => {
    const saved = [process.env.IBQ_INCEPTION_WEIGHTS, process.env.IBQ_LPIPS_WEIGHTS];
    delete process.env.IBQ_INCEPTION_WEIGHTS;
    delete process.env.IBQ_LPIPS_WEIGHTS;
    try {
      const data = [images(2, 3), images(2, 4)];
      const tok = standIn((x) => clamp(x, -0.5, 0.5), [[1n, 2n, 1n, 2n], [3n, 3n, 3n, 3n]]);
      const m = await evaluateTokenizer({ tokenizer: tok, data });
      expect(m.rFID).toBeNull();
      expect(m.skipped.rFID).toMatch(/pt_inception-2015-12-05-6726825d\.pth not given \(pass weights\.inception .*or set IBQ_INCEPTION_WEIGHTS\)/);
      expect(m.skipped.rFID).not.toMatch(/--inception-weights/);
      expect(m.lpips).toEqual({});
      expect(m.skipped.lpips).toMatch(/pass weights\.lpips .*or set IBQ_LPIPS_WEIGHTS/);
      expect(m.utilization).toBe(3 / 16);
      expect(m.numImages).toBe(4);
      const q = await Promise.all(data.map((x) => imageQuality(x, clamp(x, -0.5, 0.5), { range: 'symmetric' })));
      const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
      expect(m.psnr).toBeCloseTo(mean(q.map((b) => mean(b.psnr))), 10);
      expect(m.ssim).toBeCloseTo(mean(q.map((b) => mean(b.ssim))), 10);
    } finally {
      if (saved[0] !== undefined) process.env.IBQ_INCEPTION_WEIGHTS = saved[0];
      if (saved[1] !== undefined) process.env.IBQ_LPIPS_WEIGHTS = saved[1];
    }
  });
});

describe('ibq eval-tokenizer / eval-samples CLI', () => {
  const bin = join(__dirname, '..', '..', 'bin', 'ibq.js');
  const env = { ...process.env, IBQ_INCEPTION_WEIGHTS: '', IBQ_LPIPS_WEIGHTS: '' };
  it('eval-samples without Inception weights stops, naming the file, the flag and where it is published', async () => {
    const r = await run(process.execPath, [bin, 'eval-samples', 's.npz', '--ref', 'r.npz'], { env });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/pt_inception-2015-12-05-6726825d\.pth not given \(pass --inception-weights FILE or set IBQ_INCEPTION_WEIGHTS\)/);
    expect(r.stderr).toMatch(/https:\/\/github\.com\/mseitzer\/pytorch-fid\/releases/);
  });

  it('eval-tokenizer without FID/LPIPS weights prints PSNR, SSIM, utilization and why rFID/LPIPS were skipped (CLI flags)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ibq-eval-cli-'));
    try {
      const tok = Tokenizer.create({
        ddconfig: { double_z: false, z_channels: 32, resolution: 16, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2],
          num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 },
        n_embed: 16, embed_dim: 8,
      } as never, { seed: 1 });
      await saveCheckpoint(join(dir, 'tok.ckpt'), { stateDict: tok.stateDict() });
      mkdirSync(join(dir, 'img'));
      for (const [i, c] of ['#c33', '#3c3', '#33c'].entries()) {
        writeFileSync(join(dir, 'img', `${i}.png`), await sharp({ create: { width: 16, height: 16, channels: 3, background: c } }).png().toBuffer());
      }
      const r = await run(process.execPath, [bin, 'eval-tokenizer', '--ckpt', join(dir, 'tok.ckpt'), '--data', join(dir, 'img'), '--image-size', '16'], { env });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/images +3/);
      expect(r.stdout).toMatch(/PSNR +\d+\.\d{4}/);
      expect(r.stdout).toMatch(/SSIM +-?\d\.\d{4}/);
      expect(r.stdout).toMatch(/utilization +[\d.]+% \(\d+ \/ 16 codes\)/);
      expect(r.stdout).toMatch(/rFID +skipped: .*pass --inception-weights FILE or set IBQ_INCEPTION_WEIGHTS/);
      expect(r.stdout).toMatch(/LPIPS +skipped: .*pass --lpips-weights DIR or set IBQ_LPIPS_WEIGHTS/);
      expect(r.stdout + r.stderr).not.toMatch(/weights\.inception|weights\.lpips|batchSize/);
      const bad = await run(process.execPath, [bin, 'eval-tokenizer', '--ckpt', join(dir, 'tok.ckpt'), '--data', join(dir, 'img'), '--batch-size', '0'], { env });
      expect(bad.status).toBe(1);
      expect(bad.stderr).toMatch(/--batch-size: expected an integer >= 1, got '0'/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('evaluateSamples', () => {
  const inception = FidInception.create();
  const r = rng(7);
  const n = 10;
  const u8 = Uint8Array.from({ length: n * 16 * 16 * 3 }, () => Math.floor(r() * 256));
  const samples = tensor(u8, [n, 16, 16, 3], { dtype: 'uint8' });
  // the same images as float [N,3,H,W] in [0, 1]
  const f = new Float32Array(n * 3 * 16 * 16);
  for (let i = 0; i < n; i++)
    for (let y = 0; y < 16; y++)
      for (let x = 0; x < 16; x++)
        for (let c = 0; c < 3; c++) f[((i * 3 + c) * 16 + y) * 16 + x] = u8[((i * 16 + y) * 16 + x) * 3 + c] / 255;
  const asFloat = tensor(f, [n, 3, 16, 16]);

  it('uint8 NHWC samples vs the same images as float reference: FID 0; IS from the unbiased logits', async () => {
    const m = await evaluateSamples({ samples, ref: asFloat, batchSize: 4, weights: { models: { inception } } });
    expect(m.refFrom).toBe('images');
    expect(m.numSamples).toBe(n);
    expect(Math.abs(m.fid)).toBeLessThanOrEqual(1e-6);
    const feats = await inception.forward(asFloat);
    const is = await inceptionScore(feats.logitsUnbiased, { splits: 10 });
    expect(m.inceptionScore.mean).toBeCloseTo(is.mean, 10);
    expect(m.inceptionScore.splits).toBe(10);
    expect(m.note).toMatch(/pytorch-fid port/);
    // reference statistics given directly
    const stats = await featureStats(feats.pool3);
    const m2 = await evaluateSamples({ samples, ref: stats, weights: { models: { inception } } });
    expect(m2.refFrom).toBe('stats');
    expect(Math.abs(m2.fid)).toBeLessThanOrEqual(1e-6);
  }, 300_000); // two 2048-d Frechet distances (eigendecompositions) and Inception runs: > 120 s on 2 busy cores
});
