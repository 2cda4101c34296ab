// Validation during data-parallel training: each of 2 ranks evaluates its half of the validation set, the sums are
// added over the ranks, and the figures (tokenizer: losses, PSNR, SSIM, codebook utilization; AR: held-out loss)
// equal those of one process on the same set within 1e-6 relative. Learning rate 1e-30, so both runs validate the
// same weights. CPU, Gloo on loopback.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { saveNpy, saveSafetensors, tensor } from '../../dist/index.js';
import { fashionImages } from '../support/fashion.js';
import { run } from '../support/run.js';
import { runRanks } from './support.js';

const WORKER = join(__dirname, 'workers', 'validation_rank.mjs');

const CONFIG = {
  ddconfig: {
    double_z: false, z_channels: 32, resolution: 32, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2],
    num_res_blocks: 1, attn_resolutions: [], dropout: 0.0,
  },
  n_embed: 64, embed_dim: 8, use_entropy_loss: true,
  lossconfig: { params: { disc_start: 0, perceptual_weight: 0.0, disc_num_layers: 2, disc_ndf: 8 } },
};
const AR = { transformer_config: { params: { vocab_size: 64, block_size: 16, n_layer: 1, n_head: 2, n_embd: 32, class_num: 3, multiple_of: 32 } } };

function tokens(n: number, seed: number) {
  let s = seed;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s);
  return new Map([
    ['tokens', tensor(BigInt64Array.from({ length: n * 16 }, () => BigInt(next() % 64)), [n, 16])],
    ['labels', tensor(BigInt64Array.from({ length: n }, () => BigInt(next() % 3)), [n])],
  ]);
}

describe('validation figures: 2 ranks == 1 process', () => {
  const root = mkdtempSync(join(tmpdir(), 'ibq-val-ddp-'));
  let one: any, two: any[];
  beforeAll(async () => {
    const job = {
      images: join(root, 'train.npy'), valImages: join(root, 'val.npy'), tokens: join(root, 'tokens.safetensors'),
      valTokens: join(root, 'val_tokens.safetensors'), out: root, config: CONFIG, ar: AR,
    };
    await saveNpy(job.images, await fashionImages('train', 8, 0));
    await saveNpy(job.valImages, await fashionImages('t10k', 11, 0)); // odd: the ranks hold 6 and 5 images
    await saveSafetensors(job.tokens, tokens(8, 1));
    await saveSafetensors(job.valTokens, tokens(9, 2));
    const read = (model: string, w: number, r: number) => JSON.parse(readFileSync(join(root, `validation-${model}-${w}-rank${r}.json`), 'utf8'));
    one = {};
    two = [{}, {}];
    for (const model of ['tokenizer', 'ar']) {
      const single = await run(process.execPath, [WORKER, JSON.stringify({ ...job, model })], { env: { ...process.env, OMP_NUM_THREADS: '1' } });
      expect(single.status, single.stderr).toBe(0);
      const ranks = await runRanks(WORKER, { ...job, model }, 2);
      for (const [r, x] of ranks.entries()) expect(x.code, `rank ${r}: ${x.stderr.slice(-2000)}`).toBe(0);
      one[model] = read(model, 1, 0);
      for (const r of [0, 1]) two[r][model] = read(model, 2, r);
    }
  }, 300_000);
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('every rank gets the reduced figures of the whole set', () => {
    expect(two[0]).toEqual(two[1]);
    expect(one.tokenizer[0].values['val/images']).toBe(11);
    expect(two[0].tokenizer[0].values['val/images']).toBe(11);
    expect(two[0].ar[0].values['val/sequences']).toBe(9);
  });

  it('tokenizer and AR figures equal one process within 1e-6 relative, after each of two steps', () => {
    for (const model of ['tokenizer', 'ar'] as const) {
      expect(one[model].map((v: { step: number }) => v.step)).toEqual([0, 1]);
      expect(two[0][model].map((v: { step: number }) => v.step)).toEqual([0, 1]);
      for (const i of [0, 1]) {
        const a = one[model][i].values as Record<string, number>, b = two[0][model][i].values as Record<string, number>;
        expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
        for (const k of Object.keys(a)) {
          const rel = Math.abs(b[k]! - a[k]!) / Math.max(Math.abs(a[k]!), 1e-12);
          expect(rel, `${model} ${k}: ${a[k]} vs ${b[k]}`).toBeLessThanOrEqual(1e-6);
        }
      }
    }
    expect(Object.keys(one.tokenizer[0].values)).toEqual(expect.arrayContaining(['val/rec_loss', 'val/quant_loss', 'val/psnr', 'val/ssim', 'val/codebook_utilization']));
    expect(one.ar[0].values['val/loss']).toBeGreaterThan(0);
  });
});
