/**
 * Validation during training, for both trainers: when it runs (every `everyNEpochs` epochs at the epoch's end,
 * every `everySteps` updates, and once before training with `sanityBatches`), and how: each rank evaluates its
 * shard of the validation set (rank r takes samples r, r + W, ...: no sample twice, none left out) in batches,
 * every figure is kept as a sum over samples, the sums are added over the ranks (one all-reduce), and only then
 * turned into means. So W ranks give the figures of one process on the same set (up to the order of float64 sums).
 *
 * Figures (log.jsonl keys, also TensorBoard tags):
 * - tokenizer (tokenizerValidation): `val/rec_loss` (mean |x - xrec| per image, the official rec_loss),
 *   `val/p_loss` (LPIPS, when the trainer holds its weights), `val/quant_loss` (the quantizer's loss, batch mean
 *   weighted by batch size), `val/psnr` and `val/ssim` (per image as the official evaluation: reconstructions
 *   clamped to [-1, 1], uint8 truncation, skimage formulas; lib/eval/metrics.ts), `val/codebook_utilization`
 *   (distinct indices over the whole set / n_embed) and `val/used_codes`;
 * - AR model (transformerValidation): `val/loss`, next-token cross-entropy (nats per token) in eval mode without
 *   label dropout.
 */
import { checkInt } from '../core/errors.js';
import { tensor, type Tensor } from '../core/tensor.js';
import { clampAsync, codebookUsage, imageQuality } from '../eval/metrics.js';

/** A validation set as additive sums: `batch` returns one vector of `width` sums per batch; `finish` makes the figures. */
export interface ValidationSource {
  readonly length: number;
  readonly width: number;
  batch(indices: number[]): Promise<Float64Array>;
  finish(sums: Float64Array): Record<string, number>;
  dispose?(): void;
}

/** When validation runs. */
export interface ValidationSchedule {
  /** Validate at the end of every n-th epoch (Lightning's check_val_every_n_epoch; default 1). */
  everyNEpochs?: number;
  /** Validate every n updates (val_check_interval as an integer / --val-every). */
  everySteps?: number;
  /** Batches per rank evaluated before the first step (num_sanity_val_steps; -1: all; default 0). */
  sanityBatches: number;
  /** Batches per rank and validation (limit_val_batches; default: all). */
  limitBatches?: number;
  /** Samples per batch and rank. */
  batchSize: number;
}

/** Whether validation runs after the step ending at global_step `globalStep` (updates done) in `epoch`. */
export function validationDue(s: ValidationSchedule, at: { globalStep: number; epoch: number; endsEpoch: boolean }): boolean {
  if (s.everySteps !== undefined) return at.globalStep % s.everySteps === 0;
  return at.endsEpoch && (at.epoch + 1) % (s.everyNEpochs ?? 1) === 0;
}

/**
 * Evaluates this rank's shard of `src` (at most `limitBatches` batches of `batchSize`), adds the sums over the
 * ranks with `sum` (identity for one process) and returns the figures.
 */
export async function runValidation(
  src: ValidationSource,
  o: { rank: number; worldSize: number; batchSize: number; limitBatches?: number; sum(v: number[]): Promise<number[]> },
): Promise<Record<string, number>> {
  const mine: number[] = [];
  for (let i = o.rank; i < src.length; i += o.worldSize) mine.push(i);
  const bs = checkInt(o.batchSize, 'valBatchSize', 1);
  const sums = new Float64Array(src.width);
  let batches = 0;
  for (let i = 0; i < mine.length && (o.limitBatches === undefined || o.limitBatches < 0 || batches < o.limitBatches); i += bs, batches++) {
    const v = await src.batch(mine.slice(i, i + bs));
    for (let k = 0; k < sums.length; k++) sums[k] += v[k]!;
  }
  return src.finish(Float64Array.from(await o.sum(Array.from(sums))));
}

/** What tokenizerValidation needs of the tokenizer and its trainer. */
export interface ValidatedTokenizer {
  forward(x: Tensor): Promise<{ xrec: Tensor; indices: Tensor; quant_loss: Tensor }>;
  config: { n_embed: number };
}

/** Per-image mean |x - y| of two [B, ...] float32 arrays. */
function perImageL1(x: Float32Array, y: Float32Array, b: number): Float64Array {
  const per = x.length / b;
  const out = new Float64Array(b);
  for (let i = 0; i < b; i++) {
    let s = 0;
    for (let j = i * per; j < (i + 1) * per; j++) s += Math.abs(x[j]! - y[j]!);
    out[i] = s / per;
  }
  return out;
}

function total(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]!;
  return s;
}

/**
 * The tokenizer's validation over images `load(indices)` ([B, 3, H, W] in [-1, 1]); `lpips(a, b)` ([B,1,1,1])
 * when the trainer holds LPIPS weights (asked per batch). Sums: [images, rec, p, quant, psnr, ssim, LPIPS images,
 * histogram over n_embed].
 */
export function tokenizerValidation(
  tok: ValidatedTokenizer,
  data: { length: number; load(indices: number[]): Promise<Tensor>; dispose?(): void },
  lpips: () => ((a: Tensor, b: Tensor) => Promise<Tensor>) | undefined = () => undefined,
): ValidationSource {
  const nEmbed = tok.config.n_embed;
  const head = 7;
  return {
    length: data.length,
    width: head + nEmbed,
    async batch(indices) {
      const x = await data.load(indices);
      const out = new Float64Array(head + nEmbed);
      const r = await tok.forward(x);
      const b = x.shape[0]!;
      let xrec: Tensor | undefined;
      try {
        const [xs, ys, q] = await Promise.all([x.data(), r.xrec.data(), r.quant_loss.data()]);
        out[0] = b;
        out[1] = total(perImageL1(xs as Float32Array, ys as Float32Array, b));
        const lp = lpips();
        if (lp) {
          const d = await lp(x, r.xrec);
          out[2] = total((await d.data()) as Float32Array);
          out[6] = b;
          d.dispose();
        }
        out[3] = (q as Float32Array)[0]! * b;
        xrec = await clampAsync(r.xrec, -1, 1);
        const qual = await imageQuality(x, xrec, { range: 'symmetric' });
        out[4] = total(qual.psnr);
        out[5] = total(qual.ssim);
        out.set((await codebookUsage(r.indices, nEmbed)).histogram, head);
      } finally {
        xrec?.dispose();
        for (const t of Object.values(r)) (t as Tensor | undefined)?.dispose?.();
        x.dispose();
      }
      return out;
    },
    finish(s) {
      const n = s[0]!;
      let used = 0;
      for (let i = head; i < s.length; i++) if (s[i]! > 0) used++;
      return {
        'val/rec_loss': s[1]! / n,
        ...(s[6]! > 0 ? { 'val/p_loss': s[2]! / s[6]! } : {}),
        'val/quant_loss': s[3]! / n,
        'val/psnr': s[4]! / n,
        'val/ssim': s[5]! / n,
        'val/codebook_utilization': used / nEmbed,
        'val/used_codes': used,
        'val/images': n,
      };
    },
    dispose: () => data.dispose?.(),
  };
}

/** What transformerValidation needs of the model. */
export interface ValidatedTransformer {
  train(): unknown;
  eval(): unknown;
  lossAndGrads(tokens: Tensor, labels: Tensor, o: { wrt: string[]; labelDropout?: boolean }): Promise<{ loss: number }>;
}

/**
 * The AR model's held-out loss over token maps `tokens` int64 [N, L] with `labels` [N] (host copies are read once):
 * sums [sequences, loss x sequences]. The model is put in eval mode for the batches and back in training mode.
 */
export async function transformerValidation(model: ValidatedTransformer, data: { tokens: Tensor; labels: Tensor }): Promise<ValidationSource> {
  const [N, L] = data.tokens.shape as [number, number];
  const tok = (await data.tokens.data()) as BigInt64Array;
  const lab = (await data.labels.data()) as BigInt64Array;
  return {
    length: N,
    width: 2,
    async batch(indices) {
      const t = new BigInt64Array(indices.length * L), l = new BigInt64Array(indices.length);
      indices.forEach((i, k) => {
        t.set(tok.subarray(i * L, (i + 1) * L), k * L);
        l[k] = lab[i]!;
      });
      const tokens = tensor(t, [indices.length, L]), labels = tensor(l, [indices.length]);
      model.eval();
      try {
        const r = await model.lossAndGrads(tokens, labels, { wrt: [], labelDropout: false });
        return Float64Array.of(indices.length, r.loss * indices.length);
      } finally {
        model.train();
        tokens.dispose();
        labels.dispose();
      }
    },
    finish: (s) => ({ 'val/loss': s[1]! / s[0]!, 'val/sequences': s[0]! }),
  };
}
