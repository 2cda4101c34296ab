/**
 * DistributedSampler semantics (torch.utils.data.DistributedSampler): one seeded shuffle per epoch, the same on
 * every rank; the epoch is padded by repeating its first positions (or trimmed, dropLast) to a multiple of the
 * world size; rank r takes positions r, r + W, r + 2W, ... So every rank sees as many samples, and runs as
 * many steps, as every other.
 */
import { checkInt } from '../core/errors.js';

export interface ShardOptions {
  rank: number;
  worldSize: number;
  /** Trim the epoch to a multiple of worldSize instead of padding it (default false: pad). */
  dropLast?: boolean;
}

/** Samples per rank in an epoch of n samples. */
export function samplesPerRank(n: number, o: ShardOptions): number {
  checkInt(n, 'n', 0);
  const w = checkInt(o.worldSize, 'worldSize', 1);
  return o.dropLast ? Math.floor(n / w) : Math.ceil(n / w);
}

/**
 * This rank's share of an epoch order (`order`: the epoch's shuffled indices, identical on all ranks).
 * @throws RangeError when the order is empty, or rank is outside [0, worldSize)
 */
export function shardOrder(order: ArrayLike<number>, o: ShardOptions): Uint32Array {
  const w = checkInt(o.worldSize, 'worldSize', 1);
  const r = checkInt(o.rank, 'rank', 0, w - 1);
  const n = order.length;
  if (n === 0) throw new RangeError('order: an epoch needs at least one sample');
  const per = samplesPerRank(n, o);
  if (per === 0) throw new RangeError(`dropLast: ${n} samples leave none for each of ${w} ranks`);
  const out = new Uint32Array(per);
  for (let i = 0; i < per; i++) out[i] = order[(r + i * w) % n]!;
  return out;
}

/** Seed of rank r's random augmentations (crops, flips) in an epoch: reproducible, different per rank and epoch. */
export function augmentationSeed(seed: number, rank: number, epoch: number): number {
  let h = (seed >>> 0) ^ 0x9e3779b9;
  for (const v of [rank, epoch]) {
    h = Math.imul(h ^ (v >>> 0), 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h;
}
