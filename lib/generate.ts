/**
 * generate: class labels -> AR tokens -> tokenizer decode -> uint8 images [N, H, W, 3].
 * Written against the Tokenizer API of DESIGN.md (tok.decode(indices int64 [B, h, w]) -> [B, 3, H, W] in
 * [-1, 1]); the tokenizer itself is issue 4. Pixel conversion as LlamaGen's sample_c2i (which IBQ's sampling
 * follows): clamp(127.5 * x + 128, 0, 255) truncated to uint8, NCHW -> NHWC.
 */
import { describe } from './errors.js';
import { tensor, type Tensor } from './tensor.js';
import { checkSampleOptions, type SampleOptions, type Transformer } from './transformer.js';

/** The part of the Tokenizer generate() uses. */
export interface TokenDecoder {
  decode(indices: Tensor): Promise<Tensor>;
}

/** float [N, 3, H, W] in [-1, 1] -> uint8 [N, H, W, 3]. */
export function toUint8Images(x: Float32Array, shape: number[]): { data: Uint8Array; shape: number[] } {
  const [N, C, H, W] = shape;
  const out = new Uint8Array(N * H * W * C);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let i = 0; i < H * W; i++) {
        const v = 127.5 * x[(n * C + c) * H * W + i] + 128;
        out[(n * H * W + i) * C + c] = v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
      }
  return { data: out, shape: [N, H, W, C] };
}

export async function generate(
  opts: SampleOptions & { transformer: Transformer; tokenizer: TokenDecoder; batchSize?: number },
): Promise<{ tokens: Tensor; images: Tensor }> {
  if (!opts || typeof opts !== 'object') throw new TypeError(`options: expected an object, got ${describe(opts)}`);
  const { transformer, tokenizer, batchSize = 50, ...sample } = opts;
  checkSampleOptions(sample, transformer.config.class_num);
  const L = transformer.config.block_size;
  const side = Math.round(Math.sqrt(L));
  const toks: BigInt64Array[] = [];
  const imgs: Uint8Array[] = [];
  let hw: number[] = [];
  for (let i = 0; i < sample.labels.length; i += batchSize) {
    const labels = sample.labels.slice(i, i + batchSize);
    const seed = sample.seed === undefined ? undefined : sample.seed + i;
    const t = await transformer.sample({ ...sample, labels, seed });
    const flat = (await t.data()) as BigInt64Array;
    toks.push(flat);
    const x = await tokenizer.decode(tensor(flat, [labels.length, side, side]));
    const u8 = toUint8Images((await x.data()) as Float32Array, x.shape);
    imgs.push(u8.data);
    hw = u8.shape.slice(1);
    x.dispose();
  }
  const N = sample.labels.length;
  const tokAll = new BigInt64Array(N * L);
  toks.forEach((t, i) => tokAll.set(t, i * batchSize * L));
  const imgAll = new Uint8Array(N * hw[0] * hw[1] * hw[2]);
  let off = 0;
  for (const a of imgs) (imgAll.set(a, off), (off += a.length));
  return { tokens: tensor(tokAll, [N, L]), images: tensor(imgAll, [N, ...hw], { dtype: 'uint8' }) };
}
