/**
 * evaluateTokenizer: rFID, LPIPS (VGG / AlexNet), PSNR, SSIM and codebook utilization of a tokenizer on a
 * validation set, with the definitions of the official IBQ evaluation script: reconstructions clamped to
 * [-1, 1]; both image sets mapped to [0, 1] for the pytorch-fid Inception; LPIPS on [-1, 1]; PSNR/SSIM per
 * image after the uint8 round trip, averaged per batch, then over batches; utilization = distinct indices /
 * n_embed. Reconstructions are decode(indices) of the tokenizer's own encoding.
 */
import { listImages } from '../data/image_files.js';
import { expandShardSpec, isShardSpec, readShard } from '../data/shards.js';
import { shardCounts } from '../data/webdataset.js';

import { checkInt, checkSignal, describe, throwIfAborted } from '../core/errors.js';
import { Tensor } from '../core/tensor.js';
import { INCEPTION_NOTE } from './inception.js';
import { clampAsync, CodebookUsage, FeatureMoments, frechetDistance, imageQuality } from './metrics.js';
import { loadNetworks, type EvalWeights } from './networks.js';
import type { LpipsNetName } from './weights.js';

/** What evaluateTokenizer needs of a tokenizer (the Tokenizer class has it). */
export interface EvaluableTokenizer {
  encode(x: Tensor): Promise<{ indices: Tensor; z_q: Tensor }>;
  decode(indices: Tensor): Promise<Tensor>;
  /** Needed when `data` names files: decoded, shorter side to imageSize, centre crop, [-1, 1]. */
  encodeImages?(inputs: (string | Buffer)[], opts: { imageSize: number }): Promise<{ indices: Tensor; images: Tensor }>;
  eval?(): unknown;
  config?: { n_embed?: number; ddconfig?: { resolution?: number } };
}

export interface EvaluateTokenizerOptions {
  tokenizer: EvaluableTokenizer;
  /** An image folder (searched recursively), WebDataset shards (a shard spec), a list of image files, or batches [B,3,H,W] in [-1, 1]. */
  data: string | string[] | Iterable<Tensor> | AsyncIterable<Tensor>;
  /** Square size images are brought to (files only); default the tokenizer's ddconfig.resolution (its training size), else 256. */
  imageSize?: number;
  /** Images per batch (files only); default 8. */
  batchSize?: number;
  weights?: EvalWeights;
  /** Codebook size; default tokenizer.config.n_embed. */
  nEmbed?: number;
  /** Stop after this many images. */
  limit?: number;
  onProgress?: (images: number, total: number | undefined) => void;
  signal?: AbortSignal;
}

export interface TokenizerMetrics {
  /** null when skipped: no FID Inception weights were named (the reason is in `skipped.rFID`). */
  rFID: number | null;
  /** Mean LPIPS per variant computed (official: sum over images / number of images); {} when skipped. */
  lpips: Partial<Record<LpipsNetName, number>>;
  psnr: number;
  ssim: number;
  utilization: number;
  usedCodes: number;
  nEmbed: number;
  /** Index usage counts, [nEmbed]. */
  histogram: Float64Array;
  numImages: number;
  note: string;
  warnings: string[];
  /** Metrics not computed and why (which weights are missing, where they are published, how to pass them). */
  skipped: { rFID?: string; lpips?: string };
}

function isFileList(data: EvaluateTokenizerOptions['data']): data is string | string[] {
  return typeof data === 'string' || (Array.isArray(data) && data.every((d) => typeof d === 'string'));
}

interface Batch {
  images: Tensor;
  indices: Tensor;
}

async function* batches(o: EvaluateTokenizerOptions, total: number | undefined): AsyncGenerator<Batch> {
  const { tokenizer, data } = o;
  if (typeof data === 'string' && isShardSpec(data)) {
    // WebDataset shards, in the spec's order, centre-cropped as files are
    if (!tokenizer.encodeImages) throw new TypeError('tokenizer: reading image files needs tokenizer.encodeImages');
    const bs = checkInt(o.batchSize ?? 8, 'batchSize', 1);
    const size = checkInt(o.imageSize ?? 256, 'imageSize', 8);
    let part: Buffer[] = [];
    let n = 0;
    for (const path of expandShardSpec(data, 'data')) {
      for await (const x of readShard(path)) {
        if (total !== undefined && n >= total) break;
        part.push(x.image);
        n++;
        if (part.length === bs) {
          yield await tokenizer.encodeImages(part, { imageSize: size });
          part = [];
        }
      }
    }
    if (part.length > 0) yield await tokenizer.encodeImages(part, { imageSize: size });
    return;
  }
  if (isFileList(data)) {
    const files = typeof data === 'string' ? listImages(data, 'val').paths : (data as string[]);
    if (!tokenizer.encodeImages) throw new TypeError('tokenizer: reading image files needs tokenizer.encodeImages');
    const bs = checkInt(o.batchSize ?? 8, 'batchSize', 1);
    const size = checkInt(o.imageSize ?? tokenizer.config?.ddconfig?.resolution ?? 256, 'imageSize', 8);
    for (let i = 0; i < (total ?? files.length); i += bs) {
      const part = files.slice(i, Math.min(i + bs, total ?? files.length));
      yield await tokenizer.encodeImages(part, { imageSize: size });
    }
    return;
  }
  for await (const x of data as AsyncIterable<Tensor>) {
    if (!(x instanceof Tensor)) throw new TypeError('data: expected batches of Tensors [B,3,H,W] in [-1, 1]');
    const { indices, z_q } = await tokenizer.encode(x);
    z_q.dispose();
    yield { images: x, indices };
  }
}

export async function evaluateTokenizer(o: EvaluateTokenizerOptions): Promise<TokenizerMetrics> {
  if (!o || typeof o.tokenizer?.encode !== 'function' || typeof o.tokenizer?.decode !== 'function')
    throw new TypeError('tokenizer: expected a Tokenizer (encode, decode)');
  const nEmbed = checkInt(o.nEmbed ?? o.tokenizer.config?.n_embed, 'nEmbed (or tokenizer.config.n_embed)', 1);
  const fileCount = typeof o.data === 'string' && isShardSpec(o.data) ? (await shardCounts(expandShardSpec(o.data, 'data'))).reduce((a, b) => a + b, 0)
    : !isFileList(o.data) ? undefined : typeof o.data === 'string' ? listImages(o.data, 'val').paths.length : o.data.length;
  checkSignal(o.signal);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new TypeError(`onProgress: expected a function, got ${describe(o.onProgress)}`);
  const limit = o.limit === undefined ? undefined : checkInt(o.limit, 'limit', 1);
  const total = fileCount === undefined ? limit : Math.min(fileCount, limit ?? Infinity);
  // rFID and LPIPS are skipped (and say why) when their weights are not named; PSNR, SSIM and utilization
  // need none
  const nets = await loadNetworks(o.weights ?? {}, true, true);
  o.tokenizer.eval?.();
  const real = new FeatureMoments(), rec = new FeatureMoments();
  const usage = new CodebookUsage(nEmbed);
  const lpipsSum = new Map<LpipsNetName, number>();
  let ssimSum = 0, psnrSum = 0, nBatches = 0, nImages = 0;
  try {
    for await (const { images, indices } of batches(o, total)) {
      throwIfAborted(o.signal);
      const raw = await o.tokenizer.decode(indices);
      const xrec = await clampAsync(raw, -1, 1);
      if (raw !== images) raw.dispose();
      try {
        for (const [x, acc] of nets.inception ? ([[images, real], [xrec, rec]] as const) : []) {
          const f = await nets.inception!.forward(x, { input: 'symmetric', signal: o.signal });
          await acc.add(f.pool3);
          f.pool3.dispose(); f.logits.dispose(); f.logitsUnbiased.dispose();
        }
        for (const m of nets.lpips) {
          const d = await m.forward(images, xrec);
          const v = (await d.data()) as Float32Array;
          d.dispose();
          lpipsSum.set(m.net, (lpipsSum.get(m.net) ?? 0) + v.reduce((s, x) => s + x, 0));
        }
        const q = await imageQuality(images, xrec, { range: 'symmetric' });
        ssimSum += q.ssim.reduce((s, x) => s + x, 0) / q.ssim.length;
        psnrSum += q.psnr.reduce((s, x) => s + x, 0) / q.psnr.length;
        await usage.add(indices);
        nBatches += 1;
        nImages += images.shape[0];
      } finally {
        xrec.dispose();
        indices.dispose();
        if (isFileList(o.data)) images.dispose();
      }
      o.onProgress?.(nImages, total);
      if (limit !== undefined && nImages >= limit) break;
    }
    if (nImages < 2 && nets.inception) throw new RangeError(`data: rFID needs at least 2 images, got ${nImages}`);
    if (nImages === 0) throw new RangeError('data: no images');
    const fd = nets.inception ? await frechetDistance(await real.stats(), await rec.stats()) : undefined;
    const lpips: Partial<Record<LpipsNetName, number>> = {};
    for (const [k, v] of lpipsSum) lpips[k] = v / nImages;
    return {
      rFID: fd ? fd.value : null,
      lpips,
      psnr: psnrSum / nBatches,
      ssim: ssimSum / nBatches,
      utilization: usage.utilization,
      usedCodes: usage.used,
      nEmbed,
      histogram: usage.histogram,
      numImages: nImages,
      note: INCEPTION_NOTE,
      warnings: fd?.warning ? [fd.warning] : [],
      skipped: nets.skipped,
    };
  } finally {
    nets.dispose();
  }
}
