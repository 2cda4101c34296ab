/**
 * Training data for the tokenizer: image files (see image_files.ts) decoded with sharp, or in-memory images (a
 * Tensor [N, 3, H, W] in [-1, 1], or any object with `length` and `batch(indices)` returning such a Tensor, e.g.
 * Fashion-MNIST read with readIdx). Random crops are drawn from (seed, epoch, index), so a resumed run sees the
 * same images (the order of each epoch is lib/train/sampler.ts's).
 */
import { describe } from '../core/errors.js';
import { selectRows, Tensor, tensor } from '../core/tensor.js';
import { listImages, type ImageList } from './image_files.js';
import { decoder, type DecodeOptions } from './workers.js';
import { mixSeed, mulberry32 } from '../core/random.js';
import { BadImages, type BadImageOptions } from './bad_images.js';
import { ShardDataset, type ShardDatasetOptions, type StreamState } from './shard_dataset.js';
import { isShardSpec } from './shards.js';

/** In-memory images: `batch(indices)` returns float32 [indices.length, 3, H, W] in [-1, 1]. */
export interface ImageBatchSource {
  readonly length: number;
  batch(indices: number[]): Tensor | Promise<Tensor>;
}

/** A path (folder, ImageNet root or filelist), a Tensor of images, or an ImageBatchSource. */
export type TokenizerDataInput = string | Tensor | ImageBatchSource;

export interface TrainDataset {
  readonly length: number;
  /** Files that could not be decoded so far (each replaced by the next readable one). */
  readonly skipped: number;
  readonly description: string;
  /** Images [indices.length, 3, size, size]; `epoch` seeds the random crops of a training set. */
  load(indices: number[], epoch: number): Promise<Tensor>;
  /** Releases what the dataset holds (a Tensor data set: its reference to the images). */
  dispose?(): void;
  /** Streamed (WebDataset shards): load() takes positions in this rank's stream of the epoch (ShardDataset). */
  readonly streamed?: boolean;
  /** Streamed: what the checkpoint records of the stream. */
  state?(): StreamState;
}

class FileDataset implements TrainDataset {
  readonly #bad = new Set<number>();
  readonly bad: BadImages;
  readonly #decode: ReturnType<typeof decoder>;
  constructor(
    readonly list: ImageList,
    readonly size: number,
    readonly train: boolean,
    readonly seed: number,
    readonly description: string,
    opts: BadImageOptions & DecodeOptions = {},
  ) {
    this.bad = new BadImages(list.paths.length, opts);
    this.#decode = decoder(opts);
  }
  dispose(): void {
    this.#decode.pool?.close();
  }
  get skipped(): number {
    return this.bad.count;
  }
  get length(): number {
    return this.list.paths.length;
  }
  /** Image `index` (or the next readable one) into `out`. */
  async #one(index: number, epoch: number, out: Float32Array): Promise<void> {
    const n = this.length;
    for (let k = 0; k < n; k++) {
      const i = (index + k) % n;
      if (this.#bad.has(i)) continue;
      const rnd = mulberry32(mixSeed(this.seed, epoch, i));
      try {
        return await this.#decode.decodeInto(this.list.paths[i]!, this.size, this.train ? { fx: rnd(), fy: rnd() } : 'centre', out);
      } catch (err) {
        if (this.#bad.has(i)) continue; // another batch of the same step met it first
        this.#bad.add(i);
        this.bad.add(this.list.paths[i]!, err);
      }
    }
    throw new Error(`${this.description}: none of the ${n} images could be decoded`);
  }
  async load(indices: number[], epoch: number): Promise<Tensor> {
    const per = 3 * this.size * this.size;
    const out = this.#decode.batches.take(indices.length * per);
    try {
      await Promise.all(indices.map((i, k) => this.#one(i, epoch, out.subarray(k * per, (k + 1) * per))));
      return tensor(out, [indices.length, 3, this.size, this.size]);
    } finally {
      this.#decode.batches.give(out);
    }
  }
}

class TensorDataset implements TrainDataset {
  readonly skipped = 0;
  /** The caller's images (the same memory, not a copy): their dispose() does not end a run that uses them. */
  readonly #data: Tensor;
  constructor(t: Tensor, readonly description: string) {
    if (t.shape.length !== 4 || t.shape[1] !== 3) throw new RangeError(`data: expected images [N, 3, H, W], got [${t.shape.join(', ')}]`);
    this.#data = t.to(t.device);
  }
  get length(): number {
    return this.#data.shape[0]!;
  }
  /** The batch, gathered (and converted to float32) on a worker thread. */
  load(indices: number[]): Promise<Tensor> {
    return selectRows(this.#data, indices, 'float32');
  }
  dispose(): void {
    this.#data.dispose();
  }
}

class SourceDataset implements TrainDataset {
  readonly skipped = 0;
  constructor(readonly src: ImageBatchSource, readonly description: string) {}
  get length(): number {
    return this.src.length;
  }
  async load(indices: number[]): Promise<Tensor> {
    const t = await this.src.batch(indices);
    if (!(t instanceof Tensor) || t.shape.length !== 4 || t.shape[0] !== indices.length) {
      throw new TypeError(`data.batch(indices): expected a Tensor [${indices.length}, 3, H, W], got ${t instanceof Tensor ? `[${t.shape.join(', ')}]` : describe(t)}`);
    }
    return t;
  }
}

/**
 * A dataset for `input`. Paths are listed with listImages(input, split) and decoded at `size` (random crops when
 * `train`); Tensors and ImageBatchSources are used as they are (already preprocessed).
 * @throws TypeError for another kind of input; Error naming a path with no images
 */
export function makeDataset(input: TokenizerDataInput, opts: { size: number; train: boolean; seed: number; split?: 'train' | 'val' } & BadImageOptions & DecodeOptions): TrainDataset {
  if (typeof input === 'string') {
    if (isShardSpec(input)) throw new TypeError(`data: ${JSON.stringify(input)} names tar shards: open them with openDataset (async)`);
    const list = listImages(input, opts.split ?? (opts.train ? 'train' : 'val'));
    return new FileDataset(list, opts.size, opts.train, opts.seed, `${input} (${list.layout}, ${list.paths.length} images)`, opts);
  }
  if (input instanceof Tensor) return new TensorDataset(input, `tensor [${input.shape.join(', ')}]`);
  if (input && typeof input === 'object' && typeof (input as ImageBatchSource).batch === 'function' && Number.isInteger((input as ImageBatchSource).length)) {
    return new SourceDataset(input as ImageBatchSource, `in-memory source (${(input as ImageBatchSource).length} images)`);
  }
  throw new TypeError(`data: expected an image folder / filelist path, a Tensor [N, 3, H, W] or { length, batch(indices) }, got ${describe(input)}`);
}

/**
 * makeDataset, and WebDataset shards too: a string naming tar shards (`dir/train-{000000..000127}.tar`, lists,
 * globs; lib/data/shards.ts) opens a ShardDataset streamed to this rank (`shard`, `sum`: lib/data/webdataset.ts).
 * @throws as makeDataset and ShardDataset.open
 */
export async function openDataset(input: TokenizerDataInput, opts: Omit<ShardDatasetOptions, 'size'> & { size: number; split?: 'train' | 'val' }): Promise<TrainDataset> {
  if (typeof input === 'string' && isShardSpec(input)) return ShardDataset.open(input, opts);
  return makeDataset(input, opts);
}
