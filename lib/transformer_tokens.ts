/**
 * Token data for AR training from an image folder: the frozen tokenizer's indices, computed once and cached
 * on disk (reused while the image list and the tokenizer weights are unchanged).
 * Layout: DIR/<class name>/<image>, classes sorted by name -> ids 0..K-1 (torchvision ImageFolder).
 * Written against the Tokenizer API of DESIGN.md (tok.encodeImages(paths, { imageSize }) -> { indices }).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { loadSafetensors, saveSafetensors } from './io/index.js';
import { tensor, type Tensor } from './tensor.js';

/** The part of the Tokenizer this module uses. */
export interface TokenizerLike {
  encodeImages(paths: string[], opts: { imageSize: number }): Promise<{ indices: Tensor }>;
  stateDict(): Map<string, Tensor>;
}

const IMAGE = /\.(png|jpe?g|webp|bmp|gif|tiff?)$/i;

export function listImageFolder(dir: string): { paths: string[]; labels: number[]; classes: string[] } {
  const classes = readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  if (classes.length === 0) throw new RangeError(`data: ${dir} has no class sub-folders`);
  const paths: string[] = [];
  const labels: number[] = [];
  classes.forEach((c, i) => {
    for (const f of readdirSync(join(dir, c)).filter((f) => IMAGE.test(f)).sort()) {
      paths.push(join(dir, c, f));
      labels.push(i);
    }
  });
  if (paths.length === 0) throw new RangeError(`data: no images under ${dir}`);
  return { paths, labels, classes };
}

/** Key of (image list with sizes and mtimes, tokenizer weights, image size). */
async function cacheKey(paths: string[], tok: TokenizerLike, imageSize: number): Promise<string> {
  const h = createHash('sha256');
  h.update(`imageSize=${imageSize}\n`);
  for (const p of paths) {
    const s = statSync(p);
    h.update(`${p}\t${s.size}\t${s.mtimeMs}\n`);
  }
  for (const [k, t] of tok.stateDict()) {
    h.update(k);
    h.update(Buffer.from(((await t.data()) as Float32Array).buffer));
    t.dispose();
  }
  return h.digest('hex').slice(0, 16);
}

export async function tokensFromImages(
  tok: TokenizerLike,
  dir: string,
  opts: { cacheDir: string; imageSize: number; batchSize?: number },
): Promise<{ tokens: Tensor; labels: Tensor }> {
  const { paths, labels } = listImageFolder(dir);
  const key = await cacheKey(paths, tok, opts.imageSize);
  const file = join(opts.cacheDir, `tokens-${key}.safetensors`);
  if (existsSync(file)) {
    const m = await loadSafetensors(file);
    return { tokens: m.get('tokens')!, labels: m.get('labels')! };
  }
  const bs = opts.batchSize ?? 32;
  const rows: BigInt64Array[] = [];
  let L = 0;
  for (let i = 0; i < paths.length; i += bs) {
    const { indices } = await tok.encodeImages(paths.slice(i, i + bs), { imageSize: opts.imageSize });
    const [b, h, w] = indices.shape;
    L = h * w;
    const data = (await indices.data()) as BigInt64Array;
    for (let j = 0; j < b; j++) rows.push(data.slice(j * L, (j + 1) * L));
    indices.dispose();
  }
  const flat = new BigInt64Array(rows.length * L);
  rows.forEach((r, i) => flat.set(r, i * L));
  const tokens = tensor(flat, [rows.length, L]);
  const lab = tensor(BigInt64Array.from(labels, BigInt), [labels.length]);
  await saveSafetensors(file, new Map([['tokens', tokens], ['labels', lab]]), { source: dir });
  return { tokens, labels: lab };
}
