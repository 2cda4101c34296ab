/**
 * Decode workers (`numWorkers`, CLI `--num-workers`): worker threads that decode and augment images with
 * decodeImage, so the conversion to float32 and the batch assembly leave the main thread, which keeps the training
 * loop and its collectives. Each worker has at most 2 images in flight (so N workers keep about N cores busy, as
 * N DataLoader processes do); jobs wait in the pool's queue, in order. A worker reads its file synchronously and
 * decodes a JPEG on its own thread (no hop to libuv's pool); it writes the pixels straight into the batch when the batch
 * is a SharedArrayBuffer (decodeInto, BatchBuffers: no copy, no allocation per image), else sends them back
 * transferred. The prefetch queue that bounds the work ahead is the training loop's (`prefetch` batches). Starting a pool sets two
 * process-wide settings of sharp (lib/data/decode_worker.ts): one libvips thread per pipeline and no libvips
 * operation cache (measured: about 1.3x more images/s on 2 cores).
 */
import { Worker } from 'node:worker_threads';

import { checkInt, IbqError, type ErrorCode } from '../core/errors.js';
import { decodeImage, defaultMaxPixels, type Crop, type ImageInput } from './images.js';

/** Jobs per worker: the one it decodes, and the next, already in its message queue when that one ends. */
const IN_FLIGHT = 2;

interface Pending {
  resolve(px: Float32Array): void;
  reject(err: Error): void;
  worker: number;
}

interface Job {
  input: ImageInput;
  size: number;
  crop: Crop;
  /** Where the worker writes the pixels (a view of a SharedArrayBuffer), or none: they come back transferred. */
  out?: Float32Array;
}

/** A pool of `size` decode worker threads. */
export class DecodePool {
  readonly #workers: Worker[] = [];
  readonly #load: number[] = [];
  readonly #pending = new Map<number, Pending>();
  readonly #queue: { resolve(px: Float32Array): void; reject(err: Error): void; job: Job }[] = [];
  #next = 0;
  #closed = false;

  /** @throws RangeError naming numWorkers unless an integer in [1, 64] */
  constructor(readonly size: number) {
    checkInt(size, 'numWorkers', 1, 64);
    const maxPixels = defaultMaxPixels(); // the main thread's IBQ_MAX_PIXELS, checked once here
    for (let k = 0; k < size; k++) {
      const w = new Worker(new URL('./decode_worker.js', import.meta.url), { env: { ...process.env, IBQ_MAX_PIXELS: String(maxPixels) } });
      w.unref();
      w.on('message', (m: { id: number; px?: Float32Array; error?: { message: string; code?: string; name?: string } }) => this.#settle(m));
      w.on('error', (err) => this.#fail(k, err));
      this.#workers.push(w);
      this.#load.push(0);
    }
  }

  #settle(m: { id: number; px?: Float32Array; error?: { message: string; code?: string; name?: string } }): void {
    const p = this.#pending.get(m.id);
    if (!p) return;
    this.#pending.delete(m.id);
    if (--this.#load[p.worker]! === 0) this.#workers[p.worker]!.unref(); // an idle pool does not hold the process
    this.#dispatch();
    if (!m.error) return p.resolve(m.px!);
    const e = m.error!;
    const err = e.code?.startsWith('ERR_IBQ_') ? new IbqError(e.code as ErrorCode, e.message) : new (e.name === 'RangeError' ? RangeError : e.name === 'TypeError' ? TypeError : Error)(e.message);
    p.reject(err);
  }

  #fail(worker: number, err: Error): void {
    for (const [id, p] of this.#pending) {
      if (p.worker !== worker) continue;
      this.#pending.delete(id);
      p.reject(new Error(`decode worker ${worker} failed: ${err.message}`, { cause: err }));
    }
  }

  /**
   * decodeImage(input, size, crop) on the least busy worker (see decodeImage for the errors).
   * @throws Error when the pool is closed
   */
  decode(input: ImageInput, size: number, crop: Crop): Promise<Float32Array> {
    return this.#run({ input, size, crop });
  }

  /**
   * decode() into `out` (3 x size x size floats): written by the worker in place when `out` is a view of a
   * SharedArrayBuffer (BatchBuffers), else copied there.
   */
  async decodeInto(input: ImageInput, size: number, crop: Crop, out: Float32Array): Promise<void> {
    if (out.buffer instanceof SharedArrayBuffer) await this.#run({ input, size, crop, out });
    else out.set(await this.#run({ input, size, crop }));
  }

  #run(job: Job): Promise<Float32Array> {
    if (this.#closed) return Promise.reject(new Error('decode workers: the pool is closed (the dataset was disposed)'));
    return new Promise((resolve, reject) => {
      this.#queue.push({ resolve, reject, job });
      this.#dispatch();
    });
  }

  /** Hands queued jobs to workers with fewer than IN_FLIGHT. */
  #dispatch(): void {
    while (this.#queue.length > 0) {
      let k = 0;
      for (let i = 1; i < this.#load.length; i++) if (this.#load[i]! < this.#load[k]!) k = i;
      if (this.#load[k]! >= IN_FLIGHT) return;
      const { resolve, reject, job } = this.#queue.shift()!;
      const id = this.#next++;
      if (this.#load[k]!++ === 0) this.#workers[k]!.ref(); // a worker with jobs keeps the process alive
      this.#pending.set(id, { resolve, reject, worker: k });
      this.#workers[k]!.postMessage({ id, ...job });
    }
  }

  /** Ends the workers; decodes still running reject. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const [id, p] of this.#pending) (this.#pending.delete(id), p.reject(new Error('decode workers: closed')));
    for (const q of this.#queue.splice(0)) q.reject(new Error('decode workers: closed'));
    for (const w of this.#workers) void w.terminate();
  }
}

/** Decode workers of a dataset: `numWorkers` threads (lib/data/workers.ts), or none (decoding on libuv's pool). */
export interface DecodeOptions {
  /** Worker threads that decode and augment images (default 0: the main thread drives the decoding on libuv's pool). */
  numWorkers?: number;
}

/** How a dataset decodes: on the workers of `opts.numWorkers`, or in this thread; batches in reused buffers. */
export interface Decoder {
  decode(input: ImageInput, size: number, crop?: Crop): Promise<Float32Array>;
  /** decode() into `out` (3 x size x size floats of a buffer from `batches`). */
  decodeInto(input: ImageInput, size: number, crop: Crop, out: Float32Array): Promise<void>;
  /** The buffers batches are decoded into (SharedArrayBuffers when there are workers). */
  batches: BatchBuffers;
  pool?: DecodePool;
}

/** The Decoder of `opts.numWorkers` (a pool, to close, when > 0). */
export function decoder(opts: DecodeOptions): Decoder {
  const n = checkInt(opts.numWorkers ?? 0, 'numWorkers', 0, 64);
  if (n === 0) {
    return { decode: decodeImage, decodeInto: async (input, size, crop, out) => void out.set(await decodeImage(input, size, crop)), batches: new BatchBuffers(false) };
  }
  const pool = new DecodePool(n);
  return { decode: (input, size, crop) => pool.decode(input, size, crop ?? 'centre'), decodeInto: (...a) => pool.decodeInto(...a), batches: new BatchBuffers(true), pool };
}

/**
 * Reused batch buffers: a batch's images are decoded into one (by the workers in place when it is a
 * SharedArrayBuffer), tensor() copies it, and the next batch reuses it, so no batch allocates its 25 MB (256 px x 32
 * images) for V8 to collect; measured on 2 cores, the collections of a new buffer per batch and per image took as much
 * CPU as the decoding. At most MAX_FREE buffers wait for reuse (the batches in flight: the training loop's prefetch).
 */
export class BatchBuffers {
  static readonly MAX_FREE = 4;
  readonly #free: Float32Array[] = [];
  constructor(readonly shared: boolean) {}

  /** A buffer of `n` floats (its contents left from an earlier batch). */
  take(n: number): Float32Array {
    const k = this.#free.findIndex((b) => b.length === n);
    if (k >= 0) return this.#free.splice(k, 1)[0]!;
    return new Float32Array(this.shared ? new SharedArrayBuffer(4 * n) : new ArrayBuffer(4 * n));
  }

  /** Gives back a buffer of take() once nothing reads it any more (tensor() copied it). */
  give(b: Float32Array): void {
    this.#free.push(b);
    if (this.#free.length > BatchBuffers.MAX_FREE) this.#free.shift();
  }
}
