/**
 * Token data for AR training from an image folder: the frozen tokenizer's indices, computed once and cached
 * on disk (reused while the image list and the tokenizer weights are unchanged).
 * Layout: DIR/<class name>/<image>, classes sorted by name -> ids 0..K-1 (torchvision ImageFolder); images
 * are read by lib/images.ts (through Tokenizer.encodeImages). In-memory images (a [N, 3, H, W] tensor in
 * [-1, 1]) are encoded directly, without a cache. The tokenizer is switched to eval mode while encoding.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { loadSafetensors, saveSafetensors } from '../io/index.js';
import { describe } from '../core/errors.js';
import { selectRows, tensor, Tensor } from '../core/tensor.js';
import type { ProcessGroup } from '../distributed/process_group.js';
import { tokenSource, type SourceImage } from './token_sources.js';

/** The part of the Tokenizer this module uses. */
export interface TokenizerLike {
  encodeImages(inputs: (string | Buffer)[], opts: { imageSize: number }): Promise<{ indices: Tensor; images?: Tensor }>;
  encode(x: Tensor): Promise<{ indices: Tensor; z_q?: Tensor }>;
  stateDict(): Map<string, Tensor>;
  readonly training?: boolean;
  train?(training?: boolean): unknown;
}

/** Bumped when the cache file layout changes. */
const CACHE_VERSION = 1;

/** Runs `fn` with the tokenizer in eval mode, restoring its mode after. */
async function inEval<T>(tok: TokenizerLike, fn: () => Promise<T>): Promise<T> {
  const was = tok.training;
  if (was && tok.train) tok.train(false);
  try {
    return await fn();
  } finally {
    if (was && tok.train) tok.train(true);
  }
}

/** Concatenates int64 [b, h, w] index batches into [N, h * w]. */
async function flatten(batches: Tensor[]): Promise<Tensor> {
  let L = 0;
  let N = 0;
  const rows: BigInt64Array[] = [];
  for (const b of batches) {
    L = b.shape[1]! * b.shape[2]!;
    N += b.shape[0]!;
    rows.push((await b.data()) as BigInt64Array);
    b.dispose();
  }
  const flat = new BigInt64Array(N * L);
  let off = 0;
  for (const r of rows) (flat.set(r, off), (off += r.length));
  return tensor(flat, [N, L]);
}

/** Key of (image files with sizes and mtimes, tokenizer weights, image size). */
async function cacheKey(lines: string[], tok: TokenizerLike, imageSize: number): Promise<string> {
  const h = createHash('sha256');
  h.update(`v${CACHE_VERSION} imageSize=${imageSize}\n`);
  for (const l of lines) h.update(`${l}\n`);
  for (const [k, t] of tok.stateDict()) {
    const a = await t.data();
    h.update(`${k}\t${t.dtype}\t${t.shape}\n`);
    h.update(Buffer.from(a.buffer, a.byteOffset, a.byteLength));
    t.dispose();
  }
  return h.digest('hex').slice(0, 16);
}

/** The process group a data-parallel run tokenizes in (each rank encodes its share; c10d sums the shares). */
export interface TokenGroup {
  rank: number;
  worldSize: number;
  group: Pick<ProcessGroup, 'sum' | 'sumTensors'>;
}

/**
 * Token maps of an image folder (class sub-folders) or of WebDataset shards (labels from .cls / .json): int64
 * tokens [N, h * w] (flattened h x w) and labels [N], read from `cacheDir/tokens-<key>.safetensors` when the key
 * (image files with sizes and mtimes; tokenizer weights; image size) matches, otherwise encoded with `tok` and
 * written there by the process with `writeCache` (default true). With `dist`, every image is encoded once across
 * the ranks: rank r encodes images [r N / W, (r + 1) N / W) and a c10d sum gives every rank all token maps (no
 * shared folder needed); the cache is read only when every rank finds it. `tokensPerImage` (the transformer's
 * block_size) is required with `dist`.
 * @returns also `cached` (true when read from the cache), the class names, the cache key and `encoded`: the
 *   images this process encoded
 * @throws RangeError for a folder without class sub-folders, a sample without a label, or token maps of another
 *   size than tokensPerImage
 */
export async function tokensFromImages(
  tok: TokenizerLike,
  data: string,
  opts: { cacheDir: string; imageSize: number; batchSize?: number; writeCache?: boolean; tokensPerImage?: number; dist?: TokenGroup; split?: 'train' | 'val' },
): Promise<{ tokens: Tensor; labels: Tensor; classes: string[]; cached: boolean; key: string; encoded: number }> {
  const dist = opts.dist && opts.dist.worldSize > 1 ? opts.dist : undefined;
  const src = await tokenSource(data, { rank: dist?.rank ?? 0, worldSize: dist?.worldSize ?? 1 }, dist && ((v) => dist.group.sum(v)), opts.split);
  const key = await cacheKey(src.keyLines, tok, opts.imageSize);
  const file = join(opts.cacheDir, `tokens-${key}.safetensors`);
  const have = existsSync(file);
  const everyone = dist ? (await dist.group.sum([have ? 1 : 0]))[0] === dist.worldSize : have;
  if (everyone) {
    const m = await loadSafetensors(file);
    if (m.has('tokens') && m.has('labels')) return { tokens: m.get('tokens')!, labels: m.get('labels')!, classes: src.classes, cached: true, key, encoded: 0 };
  }
  const N = src.count;
  const [lo, hi] = dist ? [Math.floor((dist.rank * N) / dist.worldSize), Math.floor(((dist.rank + 1) * N) / dist.worldSize)] : [0, N];
  const bs = opts.batchSize ?? 32;
  const batches: Tensor[] = [];
  const labels: number[] = [];
  await inEval(tok, async () => {
    let part: SourceImage[] = [];
    const flush = async () => {
      const r = await tok.encodeImages(part.map((x) => x.input), { imageSize: opts.imageSize });
      r.images?.dispose();
      batches.push(r.indices);
      part = [];
    };
    for await (const x of src.read(lo, hi)) {
      part.push(x);
      labels.push(x.label);
      if (part.length === bs) await flush();
    }
    if (part.length > 0) await flush();
  });
  let tokens = await flatten(batches);
  const L = opts.tokensPerImage ?? tokens.shape[1]!;
  if (tokens.shape[0]! > 0 && tokens.shape[1] !== L) {
    throw new RangeError(`tokens: the tokenizer gives ${tokens.shape[1]} tokens per image at imageSize ${opts.imageSize}, the transformer's block_size is ${L}`);
  }
  let lab = tensor(BigInt64Array.from(labels, BigInt), [labels.length]);
  if (dist) {
    if (opts.tokensPerImage === undefined) throw new TypeError('tokensPerImage: required with dist (every rank sums [N, tokensPerImage] token maps)');
    // each rank's share in place, zeros elsewhere; the sum over the ranks is the whole set
    const all = new BigInt64Array(N * L);
    all.set((await tokens.data()) as BigInt64Array, lo * L);
    const allLabels = new BigInt64Array(N);
    allLabels.set(BigInt64Array.from(labels, BigInt), lo);
    tokens.dispose();
    lab.dispose();
    tokens = tensor(all, [N, L]);
    lab = tensor(allLabels, [N]);
    await dist.group.sumTensors([tokens, lab]);
  }
  if (opts.writeCache !== false) {
    mkdirSync(opts.cacheDir, { recursive: true });
    await saveSafetensors(file, new Map([['tokens', tokens], ['labels', lab]]), { source: data, classes: JSON.stringify(src.classes) });
  }
  if (dist) await dist.group.sum([0]); // the cache is written before any rank goes on (a barrier)
  return { tokens, labels: lab, classes: src.classes, cached: false, key, encoded: hi - lo };
}

/**
 * Token maps of in-memory images: `images` float32 [N, 3, H, W] in [-1, 1] (H, W multiples of the
 * tokenizer's factor), `labels` class ids (number[] or int64 [N]). Encoded in batches of `batchSize`; no cache.
 */
export async function tokensFromTensor(
  tok: TokenizerLike,
  images: Tensor,
  labels: Tensor | number[],
  opts: { batchSize?: number } = {},
): Promise<{ tokens: Tensor; labels: Tensor }> {
  if (!(images instanceof Tensor) || images.shape.length !== 4 || images.dtype !== 'float32') {
    throw new TypeError(`images: expected a float32 Tensor [N, 3, H, W], got ${images instanceof Tensor ? `${images.dtype} [${images.shape}]` : describe(images)}`);
  }
  const N = images.shape[0]!;
  const lab = labels instanceof Tensor ? labels : tensor(BigInt64Array.from(labels, (v) => BigInt(v)), [labels.length]);
  if (lab.shape.length !== 1 || lab.shape[0] !== N) throw new RangeError(`labels: expected ${N} class ids, got shape [${lab.shape}]`);
  const bs = opts.batchSize ?? 32;
  const batches: Tensor[] = [];
  await inEval(tok, async () => {
    for (let i = 0; i < N; i += bs) {
      const n = Math.min(bs, N - i);
      const x = await selectRows(images, Array.from({ length: n }, (_, k) => i + k));
      const r = await tok.encode(x);
      r.z_q?.dispose();
      x.dispose();
      batches.push(r.indices);
    }
  });
  return { tokens: await flatten(batches), labels: lab };
}
