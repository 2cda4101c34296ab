/**
 * The sample order of a training run: one Fisher-Yates shuffle of 0..n-1 per epoch, seeded by (seed + epoch)
 * and therefore the same in every process, and the batches of an epoch cut from it. Shared by every trainer.
 * Data-parallel runs shard each epoch as torch.utils.data.DistributedSampler: the epoch's order is padded by
 * repeating its first positions (or trimmed, `trim`) to a multiple of the world size W, and rank r takes
 * positions r, r + W, r + 2W, ...; so every rank runs the same number of steps.
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
 * The updates of an epoch of `samples` samples (one rank's) in micro-batches of `microBatch`, `accumulate` of them
 * per update (Lightning's accumulate_grad_batches). The last update takes what is left, fewer micro-batches or a
 * smaller last one, as Lightning ends an epoch's accumulation at its last batch; with `dropLast` (the dataloader's
 * drop_last) an incomplete last micro-batch is left out. `used`: the samples the updates take.
 */
export function epochPlan(samples: number, microBatch: number, accumulate: number, dropLast: boolean): { used: number; steps: number } {
  const used = dropLast ? Math.floor(samples / microBatch) * microBatch : samples;
  return { used, steps: Math.ceil(used / (microBatch * accumulate)) };
}

/** A process's place in a data-parallel run (rank 0 of 1 for one process). */
export interface Shard {
  rank: number;
  worldSize: number;
  /** Trim each epoch to a multiple of worldSize instead of padding it (DistributedSampler's drop_last). */
  trim?: boolean;
}

/** Samples each rank sees per epoch of n samples. */
export function samplesPerRank(n: number, shard: Shard): number {
  return shard.trim ? Math.floor(n / shard.worldSize) : Math.ceil(n / shard.worldSize);
}

/** Rank `shard.rank`'s part of an epoch order (positions r, r + W, ...; padded by wrapping around, or trimmed). */
export function shardOrder(order: readonly number[], shard: Shard): number[] {
  if (shard.worldSize === 1) return order as number[];
  const per = samplesPerRank(order.length, shard);
  return Array.from({ length: per }, (_, i) => order[(shard.rank + i * shard.worldSize) % order.length]!);
}

/**
 * Where a run is in its data: epoch, and samples of that epoch consumed by all ranks together (so that a run
 * resumed with another world size, batch size or accumulation continues from the same place).
 */
export interface DataPosition {
  epoch: number;
  samples: number;
  /** Streamed data: how the stream was cut (shards, samples, shuffle buffer, world size; lib/data/shard_dataset.ts). */
  stream?: Record<string, number>;
}

/**
 * Sample indices of global step `step` (0-based), caching the current and previous epoch's order. A step takes
 * `batchSize` samples of this rank's shard (batchSize: the per-step rows, micro-batches included), the first
 * `used` of each epoch's shard at most (epochPlan: the epoch's last step takes what is left).
 */
export class BatchPlan {
  readonly #orders = new Map<number, number[]>();
  /** Global step at which `anchorBatch` of `anchorEpoch` runs (a resumed run's start; 0, 0, 0 otherwise). */
  #anchor = { step: 0, epoch: 0, batch: 0 };
  constructor(
    readonly n: number,
    readonly batchSize: number,
    readonly seed: number,
    readonly stepsPerEpoch: number,
    readonly shard: Shard = { rank: 0, worldSize: 1 },
    readonly used = Infinity,
    /** Streamed data (WebDataset shards): indices are positions 0, 1, ... in this rank's stream of the epoch, which orders and shards it. */
    readonly streamed = false,
  ) {}

  /** Continue at global step `step` from `pos` (as position() recorded it, possibly with another world size). */
  resumeAt(step: number, pos: DataPosition): void {
    const perStep = this.batchSize * this.shard.worldSize;
    const batch = Math.min(Math.floor(pos.samples / perStep), this.stepsPerEpoch);
    this.#anchor = { step, epoch: pos.epoch, batch };
  }

  #locate(step: number): { epoch: number; batch: number } {
    const a = this.#anchor;
    const k = a.batch + (step - a.step);
    if (step < a.step) return { epoch: Math.floor(step / this.stepsPerEpoch), batch: step % this.stepsPerEpoch };
    return { epoch: a.epoch + Math.floor(k / this.stepsPerEpoch), batch: k % this.stepsPerEpoch };
  }

  epochOf(step: number): number {
    return this.#locate(step).epoch;
  }

  /** True when `step` is the last of its epoch. */
  endsEpoch(step: number): boolean {
    return this.#locate(step).batch === this.stepsPerEpoch - 1;
  }

  /** The data position after `globalStep` steps. */
  position(globalStep: number): DataPosition {
    const { epoch, batch } = this.#locate(globalStep);
    return { epoch, samples: batch * this.batchSize * this.shard.worldSize };
  }

  indices(step: number): { epoch: number; indices: number[] } {
    const { epoch, batch } = this.#locate(step);
    if (this.streamed) {
      const end = Math.min((batch + 1) * this.batchSize, this.used, samplesPerRank(this.n, this.shard));
      return { epoch, indices: Array.from({ length: Math.max(0, end - batch * this.batchSize) }, (_, k) => batch * this.batchSize + k) };
    }
    let order = this.#orders.get(epoch);
    if (!order) {
      for (const e of this.#orders.keys()) if (e < epoch - 1) this.#orders.delete(e);
      order = shardOrder(epochOrder(this.n, this.seed, epoch), this.shard);
      this.#orders.set(epoch, order);
    }
    return { epoch, indices: order.slice(batch * this.batchSize, Math.min((batch + 1) * this.batchSize, this.used)) };
  }
}
