// generate(): tokens -> decoder -> uint8 NHWC images (with a stand-in decoder: the tokenizer is issue 4).
import { describe, expect, it } from 'vitest';

import { generate, tensor, toUint8Images, Transformer, type Tensor } from '../dist/index.js';

describe('generate', () => {
  it('converts [-1, 1] NCHW floats to uint8 NHWC as clamp(127.5 x + 128) truncated', () => {
    const x = Float32Array.from([-1, 0, 1, 2, -0.5, 0.3, 0.999, -3]); // N=1, C=2, H=2, W=2
    const { data, shape } = toUint8Images(x, [1, 2, 2, 2]);
    expect(shape).toEqual([1, 2, 2, 2]);
    const ref = Array.from(x, (v) => Math.trunc(Math.min(255, Math.max(0, 127.5 * v + 128))));
    // NHWC: pixel i, channel c <- x[c * 4 + i]
    expect(Array.from(data)).toEqual([0, 1, 2, 3].flatMap((i) => [ref[i], ref[4 + i]]));
  });

  it('decodes each sampled token map with the tokenizer, in label order across batches', async () => {
    const tr = Transformer.create({ vocab_size: 8, block_size: 4, n_layer: 1, n_head: 1, n_embd: 8, class_num: 3, multiple_of: 8 }, { seed: 2 });
    const seen: number[][] = [];
    const decoder = {
      async decode(indices: Tensor) {
        const [B, h, w] = indices.shape;
        const ids = Array.from(indices.dataSync() as BigInt64Array, Number);
        for (let b = 0; b < B; b++) seen.push(ids.slice(b * h * w, (b + 1) * h * w));
        // one channel per image: pixel value = token / 7 * 2 - 1, repeated on 3 channels
        const out = new Float32Array(B * 3 * h * w);
        for (let b = 0; b < B; b++) for (let c = 0; c < 3; c++) for (let i = 0; i < h * w; i++) out[(b * 3 + c) * h * w + i] = (ids[b * h * w + i] / 7) * 2 - 1;
        return tensor(out, [B, 3, h, w]);
      },
    };
    const { tokens, images } = await generate({ transformer: tr, tokenizer: decoder, labels: [0, 1, 2], seed: 7, batchSize: 2 });
    expect(tokens.shape).toEqual([3, 4]);
    expect(images.shape).toEqual([3, 2, 2, 3]);
    expect(seen).toEqual([0, 1, 2].map((b) => Array.from(tokens.dataSync() as BigInt64Array, Number).slice(b * 4, b * 4 + 4)));
    const px = images.dataSync() as Uint8Array;
    const tk = Array.from(tokens.dataSync() as BigInt64Array, Number);
    expect(px[0]).toBe(Math.trunc(Math.min(255, 127.5 * ((tk[0] / 7) * 2 - 1) + 128)));
    // batches are seeded seed + offset: the second batch equals a direct sample of its label with seed 9
    const direct = await tr.sample({ labels: [2], seed: 9 });
    expect(tk.slice(8)).toEqual(Array.from(direct.dataSync() as BigInt64Array, Number));
  });
});
