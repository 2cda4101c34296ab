/**
 * evaluateSamples: FID of generated samples against reference statistics (mu/sigma) or reference images, and
 * the Inception Score (10 splits), from the pytorch-fid Inception (see INCEPTION_NOTE).
 */
import { checkInt } from '../core/errors.js';
import { loadNpz } from '../io/index.js';
import { disposeTensors, Tensor } from '../core/tensor.js';
import { INCEPTION_NOTE, type FidInception } from './inception.js';
import { featureStats, frechetDistance, inceptionScore, type GaussianStats } from './metrics.js';
import { loadNetworks, type EvalWeights } from './networks.js';

/** Images: uint8 [N,H,W,3] (the ADM .npz layout) or float [N,3,H,W] in [0, 1]. */
export type ImageSet = Tensor;

export interface EvaluateSamplesOptions {
  /** An .npz (images in `arr_0`, uint8 [N,H,W,3]) or an image tensor. */
  samples: string | ImageSet;
  /** An .npz with `mu` and `sigma` (else images in `arr_0`), statistics, or an image tensor. */
  ref: string | GaussianStats | ImageSet;
  weights?: EvalWeights;
  batchSize?: number;
  splits?: number;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface SampleMetrics {
  fid: number;
  inceptionScore: { mean: number; std: number; splits: number };
  numSamples: number;
  /** Where the reference statistics came from: 'stats' (mu/sigma given) or 'images'. */
  refFrom: 'stats' | 'images';
  note: string;
  warnings: string[];
}

async function readNpz(path: string): Promise<Map<string, Tensor>> {
  return loadNpz(path);
}

async function features(net: FidInception, images: Tensor, o: EvaluateSamplesOptions, bs: number) {
  const input = images.dtype === 'uint8' ? 'uint8' : 'unit';
  return net.forward(images, { input, batchSize: bs, onProgress: o.onProgress, signal: o.signal });
}

export async function evaluateSamples(o: EvaluateSamplesOptions): Promise<SampleMetrics> {
  if (!o || (typeof o.samples !== 'string' && !(o.samples instanceof Tensor)))
    throw new TypeError('samples: expected an .npz path or an image Tensor');
  if (o.ref === undefined || o.ref === null) throw new TypeError('ref: expected an .npz path, { mu, sigma } or an image Tensor');
  const bs = checkInt(o.batchSize ?? 50, 'batchSize', 1);
  const splits = checkInt(o.splits ?? 10, 'splits', 1);
  const nets = await loadNetworks(o.weights ?? {}, false);
  const owned: Tensor[] = [];
  try {
    let samples: Tensor;
    if (typeof o.samples === 'string') {
      const m = await readNpz(o.samples);
      const arr = m.get('arr_0');
      if (!arr) throw new RangeError(`samples: ${o.samples} has no arr_0 (keys: ${[...m.keys()].join(', ')})`);
      disposeTensors(m, new Set([arr]));
      samples = arr;
      owned.push(arr);
    } else samples = o.samples;

    let refStats: GaussianStats;
    let refFrom: 'stats' | 'images' = 'stats';
    let refImages: Tensor | undefined;
    if (typeof o.ref === 'string') {
      const m = await readNpz(o.ref);
      const [mu, sigma, arr] = [m.get('mu'), m.get('sigma'), m.get('arr_0')];
      if (mu && sigma) {
        disposeTensors(m, new Set([mu, sigma]));
        refStats = { mu, sigma };
        owned.push(mu, sigma);
      } else if (arr) {
        disposeTensors(m, new Set([arr]));
        refImages = arr;
        owned.push(arr);
      } else throw new RangeError(`ref: ${o.ref} has neither mu/sigma nor arr_0 (keys: ${[...m.keys()].join(', ')})`);
    } else if (o.ref instanceof Tensor) refImages = o.ref;
    else refStats = o.ref;

    const f = await features(nets.inception!, samples, o, bs);
    const sampleStats = await featureStats(f.pool3);
    const is = await inceptionScore(f.logitsUnbiased, { splits });
    const numSamples = f.pool3.shape[0];
    f.pool3.dispose(); f.logits.dispose(); f.logitsUnbiased.dispose();
    if (refImages) {
      const r = await features(nets.inception!, refImages, o, bs);
      refStats = await featureStats(r.pool3);
      r.pool3.dispose(); r.logits.dispose(); r.logitsUnbiased.dispose();
      refFrom = 'images';
    }
    const fd = await frechetDistance(sampleStats, refStats!);
    return {
      fid: fd.value,
      inceptionScore: { ...is, splits },
      numSamples,
      refFrom,
      note: INCEPTION_NOTE,
      warnings: fd.warning ? [fd.warning] : [],
    };
  } finally {
    owned.forEach((t) => t.dispose());
    nets.dispose();
  }
}
