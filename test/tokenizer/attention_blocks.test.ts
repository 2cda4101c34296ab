// The VQGAN attention blocks without gradients (encode, decode, evaluation) are computed in blocks of queries: the
// same values as the dense form within 1e-5, and memory linear in the positions, so evaluating a tokenizer trained
// at 32 px (one downsampling: 128 x 128 = 16384 attention positions at 256 px) needs no [16384, 16384] weights.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';

import { tensor, Tokenizer } from '../../dist/index.js';
import { run } from '../support/run.js';

const CONFIG = {
  ddconfig: {
    double_z: false, z_channels: 32, resolution: 32, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2],
    num_res_blocks: 1, attn_resolutions: [16], dropout: 0.0,
  },
  n_embed: 128, embed_dim: 16,
};

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** n smooth images [n, 3, s, s] in [-1, 1]. */
function images(n: number, s: number) {
  const x = new Float32Array(n * 3 * s * s);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.013 + Math.floor(i / (3 * s * s)) * 1.7) * 0.8;
  return tensor(x, [n, 3, s, s]);
}

describe('VQGAN attention in blocks of queries', () => {
  const root = mkdtempSync(join(tmpdir(), 'ibq-attn-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('a batch whose [positions, positions] weights are split into blocks equals each image alone (dense) within 1e-5', async () => {
    const tok = Tokenizer.create(CONFIG, { seed: 2 }).eval();
    // 64 px: 32 x 32 = 1024 positions in the attention levels; one image (1M weights) is computed densely, five
    // (5M weights) in two blocks of queries
    const x = images(5, 64);
    const batch = await tok.forward(x);
    const all = (await batch.xrec.data()) as Float32Array;
    const per = 3 * 64 * 64;
    for (let k = 0; k < 5; k++) {
      const one = await tok.forward(tensor(((await x.data()) as Float32Array).slice(k * per, (k + 1) * per), [1, 3, 64, 64]));
      expect(maxAbsDiff(all.subarray(k * per, (k + 1) * per), (await one.xrec.data()) as Float32Array)).toBeLessThanOrEqual(1e-5);
      expect(Array.from((await one.indices.data()) as BigInt64Array)).toEqual(
        Array.from(((await batch.indices.data()) as BigInt64Array).subarray(k * 32 * 32, (k + 1) * 32 * 32)));
    }
  });

  it('evaluating the 32 px tokenizer at 256 px stays under 2 GB peak RSS', async () => {
    const files: string[] = [];
    for (let k = 0; k < 2; k++) {
      const px = Buffer.alloc(300 * 300 * 3);
      for (let i = 0; i < px.length; i++) px[i] = (i * (k + 5) + (i >> 8)) & 255;
      files.push(join(root, `im${k}.png`));
      await sharp(px, { raw: { width: 300, height: 300, channels: 3 } }).png().toFile(files[k]!);
    }
    // dense, these 2 images would hold 2 x 16384^2 float32 weights (2 GiB) twice (scores and softmax)
    const r = await run(process.execPath, [join(__dirname, 'workers', 'eval_rss.mjs'), JSON.stringify(CONFIG), ...files], {
      env: { ...process.env, OMP_NUM_THREADS: '2' }, timeout: 400_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const m = JSON.parse(r.stdout);
    expect(m.peakMB).toBeLessThan(2048);
    expect(m.psnr).toBeGreaterThan(0);
  }, 420_000);
});
