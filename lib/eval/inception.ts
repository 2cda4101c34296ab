/**
 * The FID Inception v3 of pytorch-fid (native/ibq/eval/inception.h): FIDInceptionA/C/E blocks, 1008-way fc,
 * 2048-d pool3 features; inputs resized to 299x299 (bilinear, align_corners false) and scaled to [-1, 1].
 * This is the PyTorch port; the ADM evaluator runs the TensorFlow graph, whose numbers differ slightly.
 */
import { checkInt, checkString } from '../core/errors.js';
import { runJob } from '../core/job.js';
import { loadCheckpoint } from '../io/index.js';
import { Module } from '../core/module.js';
import { native, type FidInceptionHandleNative } from '../native.js';
import { Tensor, wrap } from '../core/tensor.js';
import { resolveInceptionWeights } from './weights.js';

export const INCEPTION_NOTE =
  'Inception: pytorch-fid port (pt_inception-2015-12-05); the ADM evaluator runs the TensorFlow graph, whose numbers differ slightly';

/** How images are encoded: 'unit' float [N,3,H,W] in [0,1]; 'symmetric' float in [-1,1]; 'uint8' [N,H,W,3]. */
export type InceptionInput = 'unit' | 'symmetric' | 'uint8';

export interface InceptionFeatures {
  /** [N, 2048] float32: the features FID uses. */
  pool3: Tensor;
  /** [N, 1008] float32: fc(pool3), bias included. */
  logits: Tensor;
  /** [N, 1008] float32: pool3 W^T without the bias (the Inception Score's logits, as the TF IS code). */
  logitsUnbiased: Tensor;
}

export class FidInception extends Module<FidInceptionHandleNative> {
  /** Randomly initialised (for tests); use `load()` for the FID weights. */
  static create(): FidInception {
    return new FidInception(new native.FidInceptionHandle());
  }

  /**
   * Loads pt_inception-2015-12-05-6726825d.pth (`path`, or $IBQ_INCEPTION_WEIGHTS). Any float dtype in the
   * file is converted to float32. Errors: MissingWeightsError (file absent), RangeError (keys/shapes differ).
   */
  static async load(path?: string): Promise<FidInception> {
    const file = resolveInceptionWeights(path);
    const ckpt = await loadCheckpoint(file);
    const net = FidInception.create();
    try {
      await net.loadStateDict(ckpt.stateDict);
    } finally {
      for (const t of ckpt.stateDict.values()) t.dispose();
    }
    return net;
  }

  /**
   * Features of `images` ([N,3,H,W] float, or uint8 [N,H,W,3] with input 'uint8'), run in chunks of
   * `batchSize` (default 50). Errors: RangeError for shapes/dtypes that do not fit `input`.
   */
  async forward(
    images: Tensor,
    opts: { input?: InceptionInput; batchSize?: number; onProgress?: (done: number, total: number) => void; signal?: AbortSignal } = {},
  ): Promise<InceptionFeatures> {
    if (!(images instanceof Tensor)) throw new TypeError('images: expected a Tensor');
    const input = opts.input === undefined ? 'unit' : checkString(opts.input, 'input');
    const batchSize = opts.batchSize === undefined ? 50 : checkInt(opts.batchSize, 'batchSize', 1);
    const r = await runJob(opts, (hooks) => this.native.forward(images.handle, { input: input as InceptionInput, batchSize, ...hooks }),
      (r) => [r.pool3, r.logits, r.logitsUnbiased].forEach((h) => h.dispose()));
    return { pool3: wrap(r.pool3), logits: wrap(r.logits), logitsUnbiased: wrap(r.logitsUnbiased) };
  }
}
