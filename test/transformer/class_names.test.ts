// The AR checkpoint keeps the class names of its training data; `ibq sample --classes` takes names as well
// as ids; the sample grid is labelled with them.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';

import { imageGrid, loadCheckpoint, loadSafetensors, saveCheckpoint, tensor, Tokenizer, trainTransformer, Transformer } from '../../dist/index.js';
import { parseClasses } from '../../dist/cli/transformer.js';
import { run } from '../support/run.js';

const BIN = new URL('../../bin/ibq.js', import.meta.url).pathname;
const NAMES = ['emu', 'cat', 'dog'];
// 16 x 16 images, ch_mult [1, 2] -> 8 x 8 = 64 tokens over a 16-code codebook
const TOK = {
  ddconfig: { double_z: false, z_channels: 32, resolution: 16, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2],
    num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 },
  n_embed: 16, embed_dim: 8,
};
const AR = { transformer_config: { params: { vocab_size: 16, block_size: 64, n_layer: 1, n_head: 2, n_embd: 32, class_num: 3, multiple_of: 32 } } };

describe('class names', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibq-classnames-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('parseClasses takes ids, names or both; unknown names list the known ones', () => {
    expect(parseClasses('dog,0,cat', 3, undefined, NAMES)).toEqual([2, 0, 1]);
    expect(parseClasses('all', 3, undefined, NAMES)).toEqual([0, 1, 2]);
    expect(() => parseClasses('cow', 3, undefined, NAMES)).toThrow(/--classes: 'cow' is neither a class id in \[0, 2\] nor a class name of this checkpoint \(emu, cat, dog\)/);
    expect(() => parseClasses('3', 3, undefined, NAMES)).toThrow(/class ids must be integers in \[0, 2\] or class names, got '3'/);
    expect(() => parseClasses('cat', 3)).toThrow(/class ids must be integers in \[0, 2\], got 'cat'/);
  });

  it('trainTransformer stores the class names; Transformer.fromCheckpoint reads them back', async () => {
    const N = 6;
    const tokens = tensor(BigInt64Array.from({ length: N * 64 }, (_, i) => BigInt((i * 7) % 16)), [N, 64]);
    const labels = tensor(BigInt64Array.from({ length: N }, (_, i) => BigInt(i % 3)), [N]);
    const out = join(dir, 'run');
    await trainTransformer(AR, { tokens: { tokens, labels, classes: NAMES }, outDir: out, maxSteps: 1, batchSize: 2, seed: 1 });
    const ck = await loadCheckpoint(join(out, 'last.ckpt'));
    expect((ck.meta.hyper_parameters as Record<string, unknown>).class_names).toEqual(NAMES);
    const tr = await Transformer.fromCheckpoint(join(out, 'last.ckpt'));
    expect(tr.classNames).toEqual(NAMES);
  }, 120_000);

  it('imageGrid writes row labels in a column on the left', async () => {
    const img = tensor(new Uint8Array(4 * 16 * 16 * 3).fill(128), [4, 16, 16, 3], { dtype: 'uint8' });
    const plain = await sharp(await imageGrid(img, { cols: 2 })).raw().toBuffer({ resolveWithObject: true });
    const labelled = await sharp(await imageGrid(img, { cols: 2, rowLabels: ['emu', 'dog'] })).raw().toBuffer({ resolveWithObject: true });
    const extra = labelled.info.width - plain.info.width;
    expect(extra).toBeGreaterThan(0);
    // the label column has white-ish text pixels in each row band, the unlabelled grid has none there
    const { width, height, channels } = labelled.info;
    for (const [y0, y1] of [[2, 18], [20, 36]]) {
      let bright = 0;
      for (let y = y0; y < y1 && y < height; y++) for (let x = 0; x < extra; x++) if (labelled.data[(y * width + x) * channels]! > 200) bright++;
      expect(bright).toBeGreaterThan(5);
    }
    await expect(imageGrid(img, { cols: 2, rowLabels: ['one'] })).rejects.toThrow(/rowLabels: expected 2 strings/);
  });

  it('imageGrid enlarges each image `scale` times by pixel replication', async () => {
    const src = Uint8Array.from({ length: 2 * 2 * 2 * 3 }, (_, i) => (i * 11) % 256);
    const big = await sharp(await imageGrid(tensor(src, [2, 2, 2, 3], { dtype: 'uint8' }), { cols: 2, pad: 0, scale: 3 })).raw().toBuffer({ resolveWithObject: true });
    expect([big.info.width, big.info.height]).toEqual([12, 6]);
    for (let y = 0; y < 6; y++) {
      for (let x = 0; x < 12; x++) {
        const n = Math.floor(x / 6), sx = Math.floor((x % 6) / 3), sy = Math.floor(y / 3);
        const want = [...src.subarray(((n * 2 + sy) * 2 + sx) * 3, ((n * 2 + sy) * 2 + sx) * 3 + 3)];
        expect([...big.data.subarray((y * 12 + x) * 3, (y * 12 + x) * 3 + 3)], `pixel ${x},${y}`).toEqual(want);
      }
    }
    await expect(imageGrid(tensor(src, [2, 2, 2, 3], { dtype: 'uint8' }), { scale: 0 })).rejects.toThrow(/scale/);
  });

  it('ibq sample --classes by name writes a grid labelled with the names', async () => {
    const tok = Tokenizer.create(TOK as never, { seed: 1 });
    await saveCheckpoint(join(dir, 'tok.ckpt'), { stateDict: tok.stateDict() });
    const out = join(dir, 'samples');
    const r = await run(process.execPath, [BIN, 'sample', '--ar', join(dir, 'run', 'last.ckpt'), '--tokenizer', join(dir, 'tok.ckpt'),
      '--classes', 'dog,emu', '--per-class', '2', '--out', out], { timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const saved = await loadSafetensors(join(out, 'tokens.safetensors'));
    expect(Array.from(saved.get('labels')!.dataSync() as BigInt64Array, Number)).toEqual([2, 2, 0, 0]);
    const grid = await sharp(join(out, 'grid.png')).metadata();
    expect(grid.width).toBeGreaterThan(2 * 16 + 3 * 2); // two tiles per row plus the label column
    expect(grid.height).toBe(2 * 16 + 3 * 2);
    const bad = await run(process.execPath, [BIN, 'sample', '--ar', join(dir, 'run', 'last.ckpt'), '--classes', 'cow', '--out', out]);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/'cow' is neither a class id in \[0, 2\] nor a class name of this checkpoint \(emu, cat, dog\)/);
  }, 180_000);
});
