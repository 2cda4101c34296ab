/**
 * A WebDataset (tar shards, lib/data/shards.ts) streamed to every rank of a run, with every sample seen once per
 * epoch:
 *
 * - epoch e orders the shards by a shuffle seeded with (seed + e) and joins their samples into one sequence G
 *   of N samples (N: the sum of the shards' counts);
 * - rank r of W streams the contiguous run G[r * P, (r + 1) * P), P = ceil(N / W) (`pad`, the last run wrapping to
 *   the start of G as DistributedSampler pads) or floor(N / W) (`trim`): a rank reads its own shards and at most
 *   parts of two shared with its neighbours; every rank takes the same number of steps;
 * - each run goes through a shuffle buffer of `bufferSize` samples seeded by (seed, epoch, rank) (WebDataset's
 *   shuffle(): a sample arriving at a full buffer swaps with a random slot, whose sample is emitted; the rest is
 *   drained at random at the end of the run).
 *
 * Positions: the loop asks for samples by their position in this rank's output of the epoch (0..P-1, in order).
 * Resume at position k of epoch e is exact (the same samples in the same order, with the same crops) for the
 * same shards, seed, buffer size and world size: the buffer is replayed on sample positions (no bytes read) to
 * find what it held after k samples, and only the members it still holds are read again (at most the buffer's
 * span of the run, never the shards before it). With another world size the runs are cut elsewhere, so the
 * resumed epoch continues at position k' = (samples of the epoch done by all ranks) / W' of the new runs: the
 * number of samples left in the epoch is exact, which samples they are is not (some of the epoch's samples are
 * seen twice or not at all in that epoch).
 */
import { mixSeed, mulberry32 } from '../core/random.js';
import { epochOrder, samplesPerRank, type Shard } from '../train/sampler.js';
import { expandShardSpec, indexedCount, readShard, shardKeys, type ShardSample } from './shards.js';

/** What a run of WebDataset samples needs to know: shards with their counts, seed, buffer, this rank. */
export interface StreamPlan {
  paths: string[];
  counts: number[];
  seed: number;
  bufferSize: number;
  shard: Shard;
}

/** A sample of the stream: its shard and key, its place in the epoch's sequence G, and the bytes. */
export interface StreamSample extends ShardSample {
  shardPath: string;
  /** Position of the sample in the unshuffled concatenation of all shards (stable across epochs). */
  id: number;
}

/**
 * The sample counts of `paths`: from the shards.json index when it matches, else read. With `sum` (a process group's
 * element-wise sum) the shards to read are divided among the ranks and the counts summed, so each is read once.
 */
export async function shardCounts(paths: string[], rank = 0, worldSize = 1, sum?: (v: number[]) => Promise<number[]>): Promise<number[]> {
  const counts = paths.map((p) => indexedCount(p));
  const missing = counts.map((c, i) => (c === undefined ? i : -1)).filter((i) => i >= 0);
  const local = new Array<number>(paths.length).fill(0);
  for (const [k, i] of missing.entries()) {
    if (sum && k % worldSize !== rank) continue;
    local[i] = (await shardKeys(paths[i]!)).length;
  }
  const read = sum && missing.length > 0 ? await sum(local) : local;
  return counts.map((c, i) => c ?? read[i]!);
}

/**
 * WebDataset's shuffle buffer on any items: `push` returns the item it emits (undefined while filling), `drain`
 * the rest in a random order. The choices depend only on the random stream, not on the items, so the buffer can be
 * replayed on positions.
 */
export class ShuffleBuffer<T> {
  readonly slots: T[] = [];
  constructor(readonly size: number, readonly rnd: () => number) {}
  push(item: T): T | undefined {
    if (this.size <= 1) return item;
    if (this.slots.length < this.size) {
      this.slots.push(item);
      return undefined;
    }
    const j = Math.floor(this.rnd() * this.size);
    const out = this.slots[j]!;
    this.slots[j] = item;
    return out;
  }
  /** One item of the rest (undefined when empty). */
  pop(): T | undefined {
    if (this.slots.length === 0) return undefined;
    const j = Math.floor(this.rnd() * this.slots.length);
    const out = this.slots[j]!;
    this.slots[j] = this.slots[this.slots.length - 1]!;
    this.slots.pop();
    return out;
  }
}

/** The first position of this rank's run in G, and its length P. */
export function runOf(n: number, shard: Shard): { start: number; length: number } {
  const length = samplesPerRank(n, shard);
  return { start: shard.rank * length, length };
}

/** An epoch's sequence G: the shard order and the first G position of each shard in it. */
function epochLayout(plan: StreamPlan, epoch: number) {
  const order = plan.paths.length > 1 ? epochOrder(plan.paths.length, plan.seed, epoch) : [0];
  const starts: number[] = [];
  let at = 0;
  for (const s of order) {
    starts.push(at);
    at += plan.counts[s]!;
  }
  // stable ids: the position of a sample in the unshuffled concatenation
  const base: number[] = [];
  plan.counts.reduce((a, c, i) => ((base[i] = a), a + c), 0);
  return { order, starts, total: at, base };
}

/**
 * This rank's samples of `epoch` from output position `from` on, in order (see the file's comment). Stops early
 * when `signal` fires.
 */
export async function* streamRun(plan: StreamPlan, epoch: number, from = 0, signal?: AbortSignal): AsyncGenerator<StreamSample> {
  const { order, starts, total, base } = epochLayout(plan, epoch);
  if (total === 0) return;
  const run = runOf(total, plan.shard);
  const buffer = new ShuffleBuffer<number>(plan.bufferSize, mulberry32(mixSeed(plan.seed, epoch, plan.shard.rank, 0x57d5)));
  // replay the buffer on run positions up to output `from`: what it holds then, and where reading goes on
  let emitted = 0;
  let next = 0; // next run position to push
  while (emitted < from && next < run.length) if (buffer.push(next++) !== undefined) emitted++;
  for (; emitted < from && buffer.pop() !== undefined; emitted++);
  if (emitted < from) return;
  // the positions the buffer still holds (all run positions < next not yet emitted): read again from the first
  const held = new Set(buffer.slots);
  const bytes = new Map<number, StreamSample>();
  const firstHeld = buffer.slots.reduce((m, p) => Math.min(m, p), next);
  const resolve = (p: number) => bytes.get(p)!;
  // read G positions run.start + [firstHeld, run.length), wrapping around G for the padding of the last run
  const samples = readRange(plan, order, starts, base, total, run.start + firstHeld, run.start + run.length, signal);
  let p = firstHeld;
  for await (const s of samples) {
    if (signal?.aborted) return;
    if (p < next) {
      if (held.has(p)) bytes.set(p, s);
      p++;
      continue;
    }
    p++;
    const out = buffer.push(p - 1);
    if (out !== undefined) {
      const sample = out === p - 1 ? s : resolve(out);
      bytes.delete(out);
      if (out !== p - 1) bytes.set(p - 1, s);
      yield sample;
    } else bytes.set(p - 1, s);
  }
  for (let out = buffer.pop(); out !== undefined; out = buffer.pop()) {
    if (signal?.aborted) return;
    const s = resolve(out);
    bytes.delete(out);
    yield s;
  }
}

/** The samples at G positions [a, b) (positions >= total wrap to the start of G). */
async function* readRange(
  plan: StreamPlan, order: number[], starts: number[], base: number[], total: number, a: number, b: number, signal?: AbortSignal,
): AsyncGenerator<StreamSample> {
  let g = a;
  while (g < b) {
    const gm = g % total;
    // the shard holding G position gm (the last start <= gm)
    let k = 0;
    for (let lo = 0, hi = order.length - 1; lo <= hi;) {
      const mid = (lo + hi) >> 1;
      if (starts[mid]! <= gm) (k = mid), (lo = mid + 1);
      else hi = mid - 1;
    }
    while (plan.counts[order[k]!] === 0) k++;
    const s = order[k]!;
    const path = plan.paths[s]!;
    const want = Math.min(plan.counts[s]! - (gm - starts[k]!), b - g);
    let got = 0;
    for await (const sample of readShard(path, gm - starts[k]!, { signal })) {
      yield { ...sample, shardPath: path, id: base[s]! + sample.index };
      if (++got >= want) break;
    }
    if (got < want) {
      if (signal?.aborted) return;
      throw new Error(`${path}: holds fewer samples than counted (${gm - starts[k]! + got} of ${plan.counts[s]}): the shard changed during the run`);
    }
    g += want;
  }
}

/** The shards of `spec` (lib/data/shards.ts expandShardSpec) and their counts; `sum` shares the counting among ranks. */
export async function openShards(spec: string, name: string, shard: Shard, sum?: (v: number[]) => Promise<number[]>): Promise<{ paths: string[]; counts: number[] }> {
  const paths = expandShardSpec(spec, name);
  const counts = await shardCounts(paths, shard.rank, shard.worldSize, sum);
  if (counts.every((c) => c === 0)) throw new Error(`${name}: the ${paths.length} shard(s) of ${JSON.stringify(spec)} hold no sample with a .jpg/.jpeg/.png/.webp member`);
  return { paths, counts };
}
