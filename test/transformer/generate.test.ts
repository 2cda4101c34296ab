// generate(): AR tokens -> the real tokenizer's decoder -> uint8 NHWC images; the official pixel conversion
// (checked against numpy); the PNG grid; the ADM-evaluator .npz read back by numpy.
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { generate, imageGrid, saveSamplesNpz, tensor, toUint8Images, Transformer, type Tensor, type Tokenizer } from '../../dist/index.js';
import { wrap } from '../../dist/core/tensor.js';
import { native } from '../../dist/native.js';
import { fixtureTokenizer, pseudoRandom, TINY_AR, tinyTransformer } from '../support/ar_tiny.js';
import { HAVE_FIXTURES } from '../support/fixtures.js';
import { HAVE_TORCH, runPython } from '../support/torch_ref.js';

describe.skipIf(!HAVE_TORCH)('toUint8Images', () => {
  it('equals the official chw_to_pillow conversion computed by numpy, value for value', async () => {
    const edge = [-1, 1, 0, -2, 2, 0.5, -0.5, 1 / 255, -1 + 2 / 255, 0.99999994, -0.99999994, 3e-8, NaN, Infinity, -Infinity];
    const x = new Float32Array(3 * 4 * 1000);
    x.set(pseudoRandom(x.length, 9, 1.2));
    x.set(edge);
    // values whose (x + 1) / 2 * 255 lands on or next to an integer
    for (let i = 0; i < 400; i++) x[100 + i] = Math.fround(((i % 256) / 255) * 2 - 1 + (i < 256 ? 0 : 1e-7));
    const { data, shape } = toUint8Images(x, [3, 4, 25, 40]);
    expect(shape).toEqual([3, 25, 40, 4]);
    const ref = await runPython(
      `import sys, numpy as np
x = np.frombuffer(sys.stdin.buffer.read(), dtype=np.float32).reshape(3, 4, 25, 40)
with np.errstate(invalid='ignore'):
    out = [(255 * ((xi.transpose(1, 2, 0) + 1.) / 2.)).clip(0, 255).astype(np.uint8) for xi in x]
sys.stdout.write(np.stack(out).tobytes().hex())`,
      [], 60_000, Buffer.from(x.buffer),
    );
    const want = Buffer.from(ref, 'hex');
    const finite = (i: number) => !Number.isNaN(x[(Math.floor(i / 4000) * 4 + (i % 4)) * 1000 + (Math.floor(i / 4) % 1000)]!);
    const diff = [...data].map((v, i) => (finite(i) && v !== want[i] ? i : -1)).filter((i) => i >= 0);
    expect(diff).toEqual([]);
  });
});

describe('the pixel conversion generate runs natively', () => {
  it('equals toUint8Images value for value (edges, NaN and infinities included)', async () => {
    const x = new Float32Array(2 * 3 * 20 * 30);
    x.set(pseudoRandom(x.length, 5, 1.3));
    x.set([-1, 1, 0, -2, 2, 0.5, 1 / 255, 0.99999994, -0.99999994, 3e-8, NaN, Infinity, -Infinity, -0]);
    for (let i = 0; i < 512; i++) x[200 + i] = Math.fround(((i % 256) / 255) * 2 - 1 + (i < 256 ? 0 : 1e-7));
    const t = tensor(x, [2, 3, 20, 30]);
    const u = wrap(await native.metrics.samplePixels(t.handle));
    expect(u.dtype).toBe('uint8');
    expect(u.shape).toEqual([2, 20, 30, 3]);
    const want = toUint8Images(x, [2, 3, 20, 30]).data;
    expect(Buffer.from((await u.data()) as Uint8Array).equals(Buffer.from(want))).toBe(true);
    t.dispose();
    u.dispose();
  });
});

describe.skipIf(!HAVE_FIXTURES)('generate with the tokenizer fixture', () => {
  let tok: Tokenizer;
  let tr: Transformer;
  beforeAll(async () => {
    tok = await fixtureTokenizer();
    tr = await tinyTransformer(1);
  });
  afterAll(() => {
    tok?.dispose();
    tr?.dispose();
  });

  it('samples in seeded batches, decodes each token map and converts to uint8 [N, 32, 32, 3]', async () => {
    const labels = [0, 1, 2, 2, 0];
    const progress: [number, number][] = [];
    const r = await generate({ transformer: tr, tokenizer: tok, labels, seed: 11, batchSize: 2, temperature: 1.0, onProgress: (d, t) => progress.push([d, t]) });
    expect(r.tokens.shape).toEqual([5, 256]);
    expect(r.tokens.dtype).toBe('int64');
    expect(r.images.shape).toEqual([5, 32, 32, 3]);
    expect(r.images.dtype).toBe('uint8');
    const toks = r.tokens.dataSync() as BigInt64Array;
    expect(toks.every((t) => t >= 0n && t < 128n)).toBe(true);
    // batch k starts at label 2k and is seeded 11 + 2k
    const direct = await tr.sample({ labels: [2, 2], seed: 11 + 2, temperature: 1.0 });
    expect(Array.from(toks.subarray(2 * 256, 4 * 256))).toEqual(Array.from(direct.dataSync() as BigInt64Array));
    // every image is the tokenizer's decoding of its tokens (decoded in the same batches: convolution results
    // may differ in the last bit with the batch size)
    const px = r.images.dataSync() as Uint8Array;
    for (const [a, b] of [[0, 2], [2, 4], [4, 5]] as const) {
      const x = await tok.decode(tensor(toks.slice(a * 256, b * 256), [b - a, 16, 16]));
      const want = toUint8Images(x.dataSync() as Float32Array, x.shape).data;
      expect(Buffer.from(px.subarray(a * 32 * 32 * 3, b * 32 * 32 * 3)).equals(Buffer.from(want))).toBe(true);
    }
    // the images are not constant: the decoder's output spans a range of values
    expect(Math.max(...px) - Math.min(...px)).toBeGreaterThan(20);
    // progress counts tokens over all batches, ending at the total
    expect(progress.at(-1)).toEqual([5 * 256, 5 * 256]);
    expect(progress.every(([d], i) => i === 0 || d > progress[i - 1]![0])).toBe(true);
  });

  it('is deterministic for a seed and differs across seeds', async () => {
    const a = await generate({ transformer: tr, tokenizer: tok, labels: [1, 2], seed: 3 });
    const b = await generate({ transformer: tr, tokenizer: tok, labels: [1, 2], seed: 3 });
    const c = await generate({ transformer: tr, tokenizer: tok, labels: [1, 2], seed: 4 });
    expect(Array.from(b.tokens.dataSync() as BigInt64Array)).toEqual(Array.from(a.tokens.dataSync() as BigInt64Array));
    expect(Buffer.from(b.images.dataSync() as Uint8Array).equals(Buffer.from(a.images.dataSync() as Uint8Array))).toBe(true);
    expect(Array.from(c.tokens.dataSync() as BigInt64Array)).not.toEqual(Array.from(a.tokens.dataSync() as BigInt64Array));
  });

  it('writes an .npz numpy reads as arr_0 uint8 [N, H, W, 3] and a PNG grid of the tiles', async () => {
    const { images } = await generate({ transformer: tr, tokenizer: tok, labels: [0, 1, 2], seed: 5 });
    const dir = mkdtempSync(join(tmpdir(), 'ibq-gen-'));
    const npz = join(dir, 'samples.npz');
    await saveSamplesNpz(npz, images);
    const out = await runPython(`import sys, hashlib, numpy as np
a = np.load(sys.argv[1])
print(list(a.keys()), a['arr_0'].dtype, list(a['arr_0'].shape), hashlib.sha256(a['arr_0'].tobytes()).hexdigest())`, [npz]);
    const sha = createHash('sha256').update(images.dataSync() as Uint8Array).digest('hex');
    expect(out.trim()).toBe(`['arr_0'] uint8 [3, 32, 32, 3] ${sha}`);

    const png = await imageGrid(images, { cols: 2, pad: 2 });
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([2 * 32 + 3 * 2, 2 * 32 + 3 * 2, 3]);
    const px = images.dataSync() as Uint8Array;
    const at = (x: number, y: number) => Array.from(data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3));
    const img = (n: number, x: number, y: number) => Array.from(px.subarray(((n * 32 + y) * 32 + x) * 3, ((n * 32 + y) * 32 + x) * 3 + 3));
    expect(at(2 + 32 + 2 + 5, 2 + 7)).toEqual(img(1, 5, 7)); // tile 1: row 0, column 1
    expect(at(2 + 31, 2 + 32 + 2 + 31)).toEqual(img(2, 31, 31)); // tile 2: row 1, column 0
    expect(at(0, 0)).toEqual([0, 0, 0]);
    expect(at(2 + 32 + 2 + 10, 2 + 32 + 2 + 10)).toEqual([0, 0, 0]); // empty cell
  });

  it('rejects a codebook smaller than the vocabulary and bad options', async () => {
    const big = Transformer.create({ ...TINY_AR, vocab_size: 256 });
    await expect(generate({ transformer: big, tokenizer: tok, labels: [0] })).rejects.toThrow(/codebook has 128 entries \(n_embed\).*vocab_size is 256/);
    await expect(generate({ transformer: tr, tokenizer: tok, labels: [3] })).rejects.toThrow(/labels\[0\].*<= 2, got 3/);
    await expect(generate({ transformer: tr, tokenizer: tok, labels: [0], batchSize: 0 })).rejects.toThrow(/batchSize/);
    await expect(saveSamplesNpz('/tmp/x.npz', tensor([1, 2], [2]) as Tensor)).rejects.toThrow(/uint8 Tensor \[N, H, W, 3\]/);
    big.dispose();
  });
});
