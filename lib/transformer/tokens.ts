/**
 * Token data for AR training from an image folder: the frozen tokenizer's indices, computed once and cached
 * on disk (reused while the image list and the tokenizer weights are unchanged).
 * Layout: DIR/<class name>/<image>, classes sorted by name -> ids 0..K-1 (torchvision ImageFolder); images
 * are read by lib/images.ts (through Tokenizer.encodeImages). In-memory images (a [N, 3, H, W] tensor in
 * [-1, 1]) are encoded directly, without a cache. The tokenizer is switched to eval mode while encoding.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { listImages } from '../data/image_files.js';
import { loadSafetensors, saveSafetensors } from '../io/index.js';
import { describe } from '../core/errors.js';
import { selectRows, tensor, Tensor } from '../core/tensor.js';

/** The part of the Tokenizer this module uses. */
export interface TokenizerLike {
  encodeImages(paths: string[], opts: { imageSize: number }): Promise<{ indices: Tensor; images?: Tensor }>;
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

/** Key of (image list with sizes and mtimes, tokenizer weights, image size). */
async function cacheKey(paths: string[], tok: TokenizerLike, imageSize: number): Promise<string> {
  const h = createHash('sha256');
  h.update(`v${CACHE_VERSION} imageSize=${imageSize}\n`);
  for (const p of paths) {
    const s = statSync(p);
    h.update(`${p}\t${s.size}\t${s.mtimeMs}\n`);
  }
  for (const [k, t] of tok.stateDict()) {
    const a = await t.data();
    h.update(`${k}\t${t.dtype}\t${t.shape}\n`);
    h.update(Buffer.from(a.buffer, a.byteOffset, a.byteLength));
    t.dispose();
  }
  return h.digest('hex').slice(0, 16);
}

/**
 * Token maps of an image folder: int64 tokens [N, h * w] (flattened h x w) and labels [N], read from
 * `cacheDir/tokens-<key>.safetensors` when the key (image paths, sizes and mtimes; tokenizer weights; image
 * size) matches, otherwise encoded with `tok` and written there (unless `writeCache` is false: data-parallel
 * ranks other than 0 encode for themselves and leave the cache to rank 0).
 * @returns also `cached` (true when read from the cache), the class names and the cache key
 */
export async function tokensFromImages(
  tok: TokenizerLike,
  dir: string,
  opts: { cacheDir: string; imageSize: number; batchSize?: number; writeCache?: boolean; split?: 'train' | 'val' },
): Promise<{ tokens: Tensor; labels: Tensor; classes: string[]; cached: boolean; key: string }> {
  const { paths, labels, classes, layout } = listImages(dir, opts.split ?? 'train');
  if (classes.length === 0) throw new RangeError(`data: ${dir} has no class sub-folders (found a ${layout} of images); the AR model needs one folder per class`);
  const key = await cacheKey(paths, tok, opts.imageSize);
  const file = join(opts.cacheDir, `tokens-${key}.safetensors`);
  if (existsSync(file)) {
    const m = await loadSafetensors(file);
    if (m.has('tokens') && m.has('labels')) return { tokens: m.get('tokens')!, labels: m.get('labels')!, classes, cached: true, key };
  }
  const bs = opts.batchSize ?? 32;
  const batches: Tensor[] = [];
  await inEval(tok, async () => {
    for (let i = 0; i < paths.length; i += bs) {
      const r = await tok.encodeImages(paths.slice(i, i + bs), { imageSize: opts.imageSize });
      r.images?.dispose();
      batches.push(r.indices);
    }
  });
  const tokens = await flatten(batches);
  const lab = tensor(BigInt64Array.from(labels, BigInt), [labels.length]);
  if (opts.writeCache === false) return { tokens, labels: lab, classes, cached: false, key };
  mkdirSync(opts.cacheDir, { recursive: true });
  await saveSafetensors(file, new Map([['tokens', tokens], ['labels', lab]]), { source: dir, classes: JSON.stringify(classes) });
  return { tokens, labels: lab, classes, cached: false, key };
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
