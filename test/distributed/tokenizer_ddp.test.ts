// Acceptance 2 of the distributed issue: the tokenizer (generator and discriminator steps, EMA on, BatchNorm in the
// discriminator) trained data-parallel on 2 ranks with batch b equals one process with batch 2b accumulating
// over the 2 ranks' micro-batches (LeCAM off); with LeCAM on, both ranks hold bit-identical parameters and
// buffers after every step. CPU, Gloo on loopback.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadSafetensors, saveNpy, type Tensor } from '../../dist/index.js';
import { maxAbsDiff } from '../support/compare.js';
import { fashionImages } from '../support/fashion.js';
import { runRanks, type Run } from './support.js';

const WORKER = join(__dirname, 'workers', 'tokenizer_rank.mjs');
const STEPS = 5, B = 2, W = 2;

const config = (lecam: number) => ({
  ddconfig: {
    double_z: false, z_channels: 32, resolution: 32, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2],
    num_res_blocks: 1, attn_resolutions: [], dropout: 0.0,
  },
  n_embed: 128, embed_dim: 16, use_entropy_loss: true, learning_rate: 1e-3,
  lossconfig: {
    disc_start: 0, disc_weight: 0.4, quant_loss_weight: 1.0, entropy_loss_weight: 0.05, lecam_loss_weight: lecam,
    perceptual_weight: 0.0, disc_num_layers: 2, disc_ndf: 8,
  },
});

// BatchNorm running statistics differ by construction (each rank normalises its own batch, one process its two
// micro-batches); LeCAM (its EMA is not a module buffer) is off in the comparison run.
const SKIP = /running_mean|running_var|num_batches_tracked/;

function ok(runs: Run[]): void {
  for (const [r, x] of runs.entries()) expect(x.code, `rank ${r}: ${x.stderr.slice(-2000)}`).toBe(0);
}

describe('tokenizer: data-parallel == gradient accumulation', () => {
  const root = mkdtempSync(join(tmpdir(), 'ibq-ddp-tok-'));
  const images = join(root, 'images.npy');
  beforeAll(async () => {
    await saveNpy(images, await fashionImages('train', STEPS * W * B, 300));
  }, 60_000);
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('2 ranks x batch 2 == 1 process x 2 micro-batches of 2 (parameters and EMA within 1e-5)', async () => {
    const job = { images, out: root, config: config(0), steps: STEPS, batch: B, seed: 3, worldSize: W };
    ok(await runRanks(WORKER, { ...job, mode: 'ddp' }, W));
    ok(await runRanks(WORKER, { ...job, mode: 'accumulate' }, 1, { WORLD_SIZE: '1' }));
    const single = await loadSafetensors(join(root, 'single.safetensors'));
    const rank0 = await loadSafetensors(join(root, 'rank0.safetensors'));
    const start = await loadSafetensors(join(root, 'rank0-step0.safetensors'));
    let compared = 0, worst = 0, moved = 0;
    for (const [k, v] of single) {
      if (SKIP.test(k)) continue;
      const d = maxAbsDiff(v, rank0.get(k)!);
      worst = Math.max(worst, d);
      expect(d, k).toBeLessThanOrEqual(1e-5);
      compared++;
      if (k.startsWith('decoder.') && maxAbsDiff(v, start.get(k)!) > 1e-4) moved++;
    }
    expect(compared).toBeGreaterThan(50);
    expect([...single.keys()].some((k) => k.startsWith('model_ema.'))).toBe(true);
    expect([...single.keys()].some((k) => k.startsWith('loss.discriminator.') && k.endsWith('running_mean'))).toBe(true);
    expect(moved).toBeGreaterThan(0); // the weights really train after step 0
    console.log(`tokenizer DDP vs accumulation: ${compared} tensors, max |diff| ${worst}`);
  }, 300_000);

  it('with LeCAM on, both ranks hold bit-identical parameters and buffers after every step', async () => {
    const out = join(root, 'lecam');
    mkdirSync(out);
    const job = { images, out, config: config(0.05), steps: STEPS, batch: B, seed: 4, worldSize: W, mode: 'ddp' };
    ok(await runRanks(WORKER, job, W));
    for (let s = 0; s < STEPS; s++) {
      const a = await loadSafetensors(join(out, `rank0-step${s}.safetensors`));
      const b = await loadSafetensors(join(out, `rank1-step${s}.safetensors`));
      expect([...b.keys()]).toEqual([...a.keys()]);
      expect([...a.keys()].some((k) => k.endsWith('running_var'))).toBe(true);
      const la = JSON.parse(readFileSync(join(out, `rank0-step${s}.lecam.json`), 'utf8')) as number[];
      const lb = JSON.parse(readFileSync(join(out, `rank1-step${s}.lecam.json`), 'utf8')) as number[];
      expect(la.some((v) => v !== 0), 'the LeCAM EMA is in use').toBe(true);
      expect(lb).toEqual(la);
      for (const [k, v] of a) {
        const x = v.dataSync(), y = (b.get(k) as Tensor).dataSync();
        expect(Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength)), `step ${s} ${k}`).toBe(true);
      }
    }
  }, 300_000);
});
