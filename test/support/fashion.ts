/** Fashion-MNIST images (data/fashion-mnist, MIT) as tokenizer inputs: 28x28 grey padded to 32x32 RGB in [-1, 1]. */
import { join } from 'node:path';

import { tensor, type Tensor } from '../../dist/index.js';
import { readIdx } from '../../dist/data/idx.js';

export const FASHION_DIR = join(__dirname, '..', '..', 'data', 'fashion-mnist');

/** Images offset..offset+n of the train (6000) or test (1000) file as float32 [n, 3, 32, 32]. */
export async function fashionImages(split: 'train' | 't10k', n: number, offset = 0): Promise<Tensor> {
  const idx = await readIdx(join(FASHION_DIR, `${split}-images-idx3-ubyte.gz`));
  const [count, h, w] = idx.shape as [number, number, number];
  if (offset + n > count) throw new Error(`fashion-mnist ${split}: ${count} images, asked for ${offset}+${n}`);
  const S = 32, pad = (S - h) / 2;
  const out = new Float32Array(n * 3 * S * S).fill(-1);
  for (let i = 0; i < n; i++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const v = idx.data[(offset + i) * h * w + y * w + x]! / 127.5 - 1;
        for (let c = 0; c < 3; c++) out[((i * 3 + c) * S + y + pad) * S + x + pad] = v;
      }
    }
  }
  return tensor(out, [n, 3, S, S]);
}
