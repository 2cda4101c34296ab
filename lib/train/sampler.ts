/**
 * The sample order of a training run: one Fisher-Yates shuffle of 0..n-1 per epoch, seeded by (seed + epoch)
 * and therefore the same in every process, and the batches of an epoch cut from it. Shared by every trainer.
 */
import { mixSeed, mulberry32 } from '../core/random.js';

/** The order of `epoch`: a permutation of 0..n-1 seeded by seed + epoch. */
export function epochOrder(n: number, seed: number, epoch: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  const rnd = mulberry32(mixSeed(seed + epoch));
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/**
 * Steps (batches) per epoch for n samples in batches of `batchSize`: with `dropLast` the incomplete last batch
 * is left out (every batch is full), else it is a smaller last batch.
 */
export function stepsPerEpoch(n: number, batchSize: number, dropLast: boolean): number {
  return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

/** Sample indices of global step `step` (0-based), caching the current and previous epoch's order. */
export class BatchPlan {
  readonly #orders = new Map<number, number[]>();
  constructor(
    readonly n: number,
    readonly batchSize: number,
    readonly seed: number,
    readonly stepsPerEpoch: number,
  ) {}

  epochOf(step: number): number {
    return Math.floor(step / this.stepsPerEpoch);
  }

  indices(step: number): { epoch: number; indices: number[] } {
    const epoch = this.epochOf(step);
    let order = this.#orders.get(epoch);
    if (!order) {
      for (const e of this.#orders.keys()) if (e < epoch - 1) this.#orders.delete(e);
      order = epochOrder(this.n, this.seed, epoch);
      this.#orders.set(epoch, order);
    }
    const b = step % this.stepsPerEpoch;
    return { epoch, indices: order.slice(b * this.batchSize, (b + 1) * this.batchSize) };
  }
}
