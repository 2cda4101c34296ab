/**
 * generate: class labels -> AR tokens (Transformer.sample) -> tokenizer decode -> uint8 images [N, H, W, 3];
 * and the two ways samples are written: a PNG grid (sharp) and the .npz the ADM evaluator reads (arr_0 uint8
 * [N, H, W, 3]). Pixel conversion as the official IBQ sample script (chw_to_pillow of generate.py): in float32,
 * (255 * ((x + 1) / 2)).clip(0, 255) truncated to uint8, CHW -> HWC.
 */
import sharp from 'sharp';

import { checkInt, checkOptionKeys, describe } from '../core/errors.js';
import { saveNpz } from '../io/index.js';
import { catRows, tensor, Tensor, wrap } from '../core/tensor.js';
import { native } from '../native.js';
import { checkSampleOptions, SAMPLE_OPTION_KEYS, type SampleOptions, type Transformer } from './transformer.js';

/** The part of the Tokenizer generate() uses (a Tokenizer is one). */
export interface TokenDecoder {
  /** int64 [B, h, w] in [0, n_embed) -> float32 [B, 3, h * f, w * f], about [-1, 1]. */
  decode(indices: Tensor): Promise<Tensor>;
  /** decode() and the sample script's uint8 conversion in one call (Tokenizer.decodePixels); optional. */
  decodePixels?(indices: Tensor, opts?: { signal?: AbortSignal }): Promise<Tensor>;
  readonly config?: { n_embed?: number };
}

/** uint8 [B, H, W, 3] images of `indices`, converted on a worker thread (toUint8Images' rule). */
export async function decodePixels(tokenizer: TokenDecoder, indices: Tensor, signal?: AbortSignal): Promise<Tensor> {
  if (typeof tokenizer.decodePixels === 'function') return tokenizer.decodePixels(indices, signal ? { signal } : undefined);
  const x = await tokenizer.decode(indices);
  try {
    if (x.shape.length !== 4) throw new RangeError(`tokenizer.decode: expected [B, C, H, W], got [${x.shape}]`);
    return wrap(await native.metrics.samplePixels(x.handle));
  } finally {
    x.dispose();
  }
}

export interface GenerateOptions extends Omit<SampleOptions, 'onProgress'> {
  transformer: Transformer;
  tokenizer: TokenDecoder;
  /** Images per native sampling call (default 50). The batch starting at label i is seeded seed + i. */
  batchSize?: number;
  /** Tokens generated so far over all batches (total = labels.length * block_size). */
  onProgress?(done: number, total: number): void;
}

/**
 * float32 [N, C, H, W] (about [-1, 1]) -> uint8 [N, H, W, C] as the official sample script converts:
 * float32 arithmetic (x + 1) / 2 * 255, clipped to [0, 255], truncated (NaN -> 0).
 */
export function toUint8Images(x: Float32Array, shape: number[]): { data: Uint8Array; shape: number[] } {
  const [N, C, H, W] = shape as [number, number, number, number];
  const f = Math.fround;
  const out = new Uint8Array(N * H * W * C);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let i = 0; i < H * W; i++) {
        const v = f(255 * f(f(x[(n * C + c) * H * W + i]! + 1) / 2));
        out[(n * H * W + i) * C + c] = v > 0 ? (v >= 255 ? 255 : Math.trunc(v)) : 0;
      }
  return { data: out, shape: [N, H, W, C] };
}

/**
 * Token maps for `labels` in batches of `batchSize` (one native sampling call each; the batch starting at
 * label i is seeded seed + i): yields each batch's offset, labels and int64 tokens [B * block_size]. The sample
 * options (all labels) are checked once, before the first batch.
 */
export async function* sampleBatches(
  transformer: Transformer,
  opts: Omit<GenerateOptions, 'transformer' | 'tokenizer'> & { batchSize: number },
): AsyncGenerator<{ offset: number; labels: number[]; tokens: BigInt64Array }> {
  const { batchSize, ...sample } = opts;
  const o = checkSampleOptions(sample, transformer.config.class_num);
  const N = o.labels.length;
  const L = transformer.config.block_size;
  const onProgress = o.onProgress;
  for (let i = 0; i < N; i += batchSize) {
    const labels = o.labels.slice(i, i + batchSize);
    const t = await transformer.sampleChecked({
      ...o, labels, seed: o.seed === undefined ? undefined : o.seed + i,
      onProgress: onProgress && ((step) => onProgress(i * L + step * labels.length, N * L)),
    });
    const tokens = (await t.data()) as BigInt64Array;
    t.dispose();
    yield { offset: i, labels, tokens };
  }
}

/**
 * Samples one image per label and decodes it.
 * @returns tokens int64 [N, block_size] (flattened h x w), images uint8 [N, H, W, 3]
 * @throws RangeError for bad sample options (see Transformer.sample) or a tokenizer whose codebook (n_embed)
 *   is smaller than the transformer's vocab_size; AbortError on `signal`
 */
export async function generate(opts: GenerateOptions): Promise<{ tokens: Tensor; images: Tensor }> {
  if (!opts || typeof opts !== 'object') throw new TypeError(`options: expected an object, got ${describe(opts)}`);
  checkOptionKeys(opts, [...SAMPLE_OPTION_KEYS, 'transformer', 'tokenizer', 'batchSize']);
  const { transformer, tokenizer, batchSize: bs = 50, onProgress, ...sample } = opts;
  if (!transformer || typeof transformer.sample !== 'function') throw new TypeError(`transformer: expected a Transformer, got ${describe(transformer)}`);
  if (!tokenizer || typeof tokenizer.decode !== 'function') throw new TypeError(`tokenizer: expected a Tokenizer, got ${describe(tokenizer)}`);
  const batchSize = checkInt(bs, 'batchSize', 1);
  const cfg = transformer.config;
  const L = cfg.block_size;
  const side = Math.round(Math.sqrt(L)); // a square: the config validation requires it (2D RoPE grid)
  const nEmbed = tokenizer.config?.n_embed;
  if (nEmbed !== undefined && nEmbed < cfg.vocab_size) {
    throw new RangeError(`tokenizer: its codebook has ${nEmbed} entries (n_embed) but the transformer's vocab_size is ${cfg.vocab_size}`);
  }
  const N = sample.labels.length;
  const tokAll = new BigInt64Array(N * L);
  // the images stay native: batches are decoded to uint8 in one job each and joined on a worker thread (no large
  // buffer or copy on the JS thread, whatever N)
  const parts: Tensor[] = [];
  try {
    for await (const { offset, labels, tokens } of sampleBatches(transformer, { ...sample, batchSize, onProgress })) {
      tokAll.set(tokens, offset * L);
      const idx = tensor(tokens, [labels.length, side, side]);
      try {
        parts.push(await decodePixels(tokenizer, idx));
      } finally {
        idx.dispose();
      }
    }
    const images = parts.length === 1 ? parts.pop()! : await catRows(parts);
    return { tokens: tensor(tokAll, [N, L]), images };
  } finally {
    for (const p of parts) p.dispose();
  }
}

function checkImages(images: Tensor): [number, number, number, number] {
  if (!(images instanceof Tensor) || images.dtype !== 'uint8' || images.shape.length !== 4 || images.shape[3] !== 3) {
    throw new TypeError(`images: expected a uint8 Tensor [N, H, W, 3], got ${images instanceof Tensor ? `${images.dtype} [${images.shape}]` : describe(images)}`);
  }
  return images.shape as [number, number, number, number];
}

/**
 * PNG of images uint8 [N, H, W, 3] tiled row by row, `cols` per row (default ceil(sqrt(N))), `pad` pixels
 * (default 2, black) between and around them; each image enlarged `scale` times (integer 1-16, default 1, nearest
 * neighbour, so small images stay crisp); `rowLabels` (one string per row, e.g. the class names) are written in
 * white in a column on the left. The one labelled-grid builder of the package (the CLI's grid.png, the demo's
 * figures).
 * @throws TypeError when images are not uint8 [N, H, W, 3] or rowLabels is not one string per row; RangeError for
 *   cols, pad or scale out of range
 */
export async function imageGrid(
  images: Tensor,
  opts: { cols?: number; pad?: number; scale?: number; rowLabels?: readonly string[] } = {},
): Promise<Buffer> {
  const [N, H0, W0] = checkImages(images);
  const cols = checkInt(opts.cols ?? Math.ceil(Math.sqrt(N)), 'cols', 1);
  const pad = checkInt(opts.pad ?? 2, 'pad', 0, 64);
  const scale = checkInt(opts.scale ?? 1, 'scale', 1, 16);
  const [H, W] = [H0 * scale, W0 * scale];
  const c = Math.min(cols, N);
  const rows = Math.ceil(N / c);
  const labels = opts.rowLabels;
  if (labels !== undefined && (!Array.isArray(labels) || labels.length !== rows || labels.some((l) => typeof l !== 'string'))) {
    throw new TypeError(`rowLabels: expected ${rows} strings (one per row), got ${describe(labels)}`);
  }
  // a column on the left for the row labels: text of about 60% of a tile's height, clipped at ~24 characters
  const font = Math.max(8, Math.min(24, Math.round(H * 0.6)));
  const labelW = labels ? Math.ceil(Math.min(24, Math.max(...labels.map((l) => l.length))) * font * 0.62) + 2 * pad : 0;
  const GW = labelW + c * W + (c + 1) * pad;
  const GH = rows * H + (rows + 1) * pad;
  const px = (await images.data()) as Uint8Array;
  const grid = Buffer.alloc(GW * GH * 3);
  const line = Buffer.alloc(W * 3);
  for (let n = 0; n < N; n++) {
    const x0 = labelW + pad + (n % c) * (W + pad);
    const y0 = pad + Math.floor(n / c) * (H + pad);
    for (let y = 0; y < H; y++) {
      const src = (n * H0 + Math.floor(y / scale)) * W0 * 3;
      let row = px.subarray(src, src + W0 * 3);
      if (scale > 1) {
        for (let x = 0; x < W; x++) line.set(row.subarray(Math.floor(x / scale) * 3, Math.floor(x / scale) * 3 + 3), x * 3);
        row = line;
      }
      grid.set(row, ((y0 + y) * GW + x0) * 3);
    }
  }
  const img = sharp(grid, { raw: { width: GW, height: GH, channels: 3 } });
  if (!labels) return img.png().toBuffer();
  const esc = (t: string) => t.replace(/[<>&"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
  const texts = labels.map((l, r) => {
    const y = pad + r * (H + pad) + H / 2;
    const t = l.length > 24 ? l.slice(0, 23) + '…' : l;
    return `<text x="${labelW - pad}" y="${y}" font-size="${font}" font-family="sans-serif" fill="#fff" text-anchor="end" dominant-baseline="middle">${esc(t)}</text>`;
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${GW}" height="${GH}">${texts.join('')}</svg>`;
  return img.composite([{ input: Buffer.from(svg), top: 0, left: 0 }]).png().toBuffer();
}

/** Writes images uint8 [N, H, W, 3] as `arr_0` of an .npz (the layout the ADM evaluator reads). */
export async function saveSamplesNpz(path: string, images: Tensor): Promise<void> {
  checkImages(images);
  await saveNpz(path, new Map([['arr_0', images]]));
}
