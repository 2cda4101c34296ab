/**
 * A training dataset over WebDataset shards (lib/data/webdataset.ts): batches are this rank's next samples of the
 * epoch's stream, decoded by the package's one image pipeline (decodeImage: random crops drawn from (seed, epoch,
 * sample id), so a resumed run and another rank reading the same sample crop it alike).
 */
import { mixSeed, mulberry32 } from '../core/random.js';
import { tensor, type Tensor } from '../core/tensor.js';
import type { Shard } from '../train/sampler.js';
import { BadImages, type BadImageOptions } from './bad_images.js';
import { decoder, type DecodeOptions } from './workers.js';
import { openShards, streamRun, type StreamPlan, type StreamSample } from './webdataset.js';

/** Options of a shard dataset. */
export interface ShardDatasetOptions extends BadImageOptions, DecodeOptions {
  /** Image side of the batches. */
  size: number;
  /** Random crops (training) or centre crops. */
  train: boolean;
  seed: number;
  /** Samples the shuffle buffer holds (0 or 1: no shuffling within the rank's run; default 1000). */
  shuffleBuffer?: number;
  /** This process's rank and the world size (default rank 0 of 1). */
  shard?: Shard;
  /** A process group's element-wise sum, to divide the counting of unindexed shards among the ranks. */
  sum?(values: number[]): Promise<number[]>;
}

/** Where a shard dataset's stream stands (for the checkpoint, beside the data position). */
export interface StreamState {
  shards: number;
  samples: number;
  shuffleBuffer: number;
  worldSize: number;
}

/** The default shuffle buffer (samples). */
export const DEFAULT_SHUFFLE_BUFFER = 1000;

export class ShardDataset {
  /** Batches are positions in this rank's stream of the epoch, asked for in order (lib/train/loop.ts). */
  readonly streamed = true;
  readonly description: string;
  readonly bad: BadImages;
  #iter?: { epoch: number; next: number; it: AsyncGenerator<StreamSample> };
  #lock: Promise<unknown> = Promise.resolve();
  readonly #ctl = new AbortController();
  readonly #decode: ReturnType<typeof decoder>;

  private constructor(readonly plan: StreamPlan, readonly spec: string, readonly opts: ShardDatasetOptions) {
    const n = plan.counts.reduce((a, b) => a + b, 0);
    this.description = `${spec} (webdataset, ${plan.paths.length} shards, ${n} samples)`;
    this.bad = new BadImages(n, opts);
    this.#decode = decoder(opts);
  }

  /**
   * Opens the shards of `spec` and counts their samples.
   * @throws RangeError for a bad spec or option; Error naming the spec when it matches no file or holds no sample
   */
  static async open(spec: string, opts: ShardDatasetOptions): Promise<ShardDataset> {
    const shard = opts.shard ?? { rank: 0, worldSize: 1 };
    const buf = opts.shuffleBuffer ?? DEFAULT_SHUFFLE_BUFFER;
    if (!Number.isSafeInteger(buf) || buf < 0) throw new RangeError(`shuffleBuffer: expected an integer >= 0 (samples), got ${buf}`);
    const { paths, counts } = await openShards(spec, 'data', shard, opts.sum);
    return new ShardDataset({ paths, counts, seed: opts.seed, bufferSize: buf, shard }, spec, opts);
  }

  get length(): number {
    return this.plan.counts.reduce((a, b) => a + b, 0);
  }
  get skipped(): number {
    return this.bad.count;
  }
  /** What the checkpoint records of the stream (resume compares it to warn when the world size changed). */
  state(): StreamState {
    return { shards: this.plan.paths.length, samples: this.length, shuffleBuffer: this.plan.bufferSize, worldSize: this.plan.shard.worldSize };
  }

  /** The raw samples at `positions` (consecutive) of this rank's stream of `epoch`; one reader at a time. */
  async samples(positions: number[], epoch: number): Promise<StreamSample[]> {
    const run = this.#lock.then(async () => {
      const from = positions[0]!;
      if (!this.#iter || this.#iter.epoch !== epoch || this.#iter.next !== from) {
        await this.#iter?.it.return(undefined);
        this.#iter = { epoch, next: from, it: streamRun(this.plan, epoch, from, this.#ctl.signal) };
      }
      const out: StreamSample[] = [];
      for (let k = 0; k < positions.length; k++) {
        const r = await this.#iter.it.next();
        if (r.done) throw new Error(`${this.description}: the stream of epoch ${epoch} ended at position ${this.#iter.next} (expected ${positions.at(-1)! + 1} samples)`);
        out.push(r.value);
        this.#iter.next++;
      }
      return out;
    });
    this.#lock = run.catch(() => undefined);
    return run;
  }

  /** Images [positions.length, 3, size, size]; a bad image is replaced by another sample of the batch. */
  async load(positions: number[], epoch: number): Promise<Tensor> {
    const raw = await this.samples(positions, epoch);
    const { size, train, seed } = this.opts;
    const per = 3 * size * size;
    const out = this.#decode.batches.take(positions.length * per);
    try {
      const errs = await Promise.all(raw.map(async (s, k) => {
        const rnd = mulberry32(mixSeed(seed, epoch, s.id));
        try {
          await this.#decode.decodeInto(s.image, size, train ? { fx: rnd(), fy: rnd() } : 'centre', out.subarray(k * per, (k + 1) * per));
          return undefined;
        } catch (err) {
          return { err, name: `${s.shardPath}:${s.key}.${s.ext}` };
        }
      }));
      const good = errs.flatMap((e, k) => (e ? [] : [k]));
      for (const e of errs) if (e) this.bad.add(e.name, e.err);
      if (good.length === 0) throw new Error(`${this.description}: none of the ${raw.length} images of a batch could be decoded (epoch ${epoch}, positions ${positions[0]}..${positions.at(-1)})`);
      errs.forEach((e, k) => e && out.copyWithin(k * per, good[k % good.length]! * per, (good[k % good.length]! + 1) * per));
      return tensor(out, [positions.length, 3, size, size]);
    } finally {
      this.#decode.batches.give(out);
    }
  }

  dispose(): void {
    this.#decode.pool?.close();
    this.#ctl.abort();
    void this.#iter?.it.return(undefined);
  }
}
