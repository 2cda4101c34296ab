/**
 * Decode workers (`numWorkers`, CLI `--num-workers`): worker threads that decode and augment images with
 * decodeImage, so the conversion to float32 and the batch assembly leave the main thread, which keeps the training
 * loop and its collectives. Each worker has at most 2 images in flight (so N workers keep about N cores busy, as
 * N DataLoader processes do); jobs wait in the pool's queue, in order; results come back transferred. The
 * prefetch queue that bounds the work ahead is the training loop's (`prefetch` batches). Starting a pool sets two
 * process-wide settings of sharp (lib/data/decode_worker.ts): one libvips thread per pipeline and no libvips
 * operation cache (measured: about 1.3x more images/s on 2 cores).
 */
import { Worker } from 'node:worker_threads';

import { checkInt, IbqError, type ErrorCode } from '../core/errors.js';
import { decodeImage, defaultMaxPixels, type Crop, type ImageInput } from './images.js';

/** Images in flight per worker: one decoding (on libuv's pool) while the previous one is converted to float32. */
const IN_FLIGHT = 2;

interface Pending {
  resolve(px: Float32Array): void;
  reject(err: Error): void;
  worker: number;
}

/** A pool of `size` decode worker threads. */
export class DecodePool {
  readonly #workers: Worker[] = [];
  readonly #load: number[] = [];
  readonly #pending = new Map<number, Pending>();
  readonly #queue: { resolve(px: Float32Array): void; reject(err: Error): void; job: { input: ImageInput; size: number; crop: Crop } }[] = [];
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
    if (m.px) return p.resolve(m.px);
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
    if (this.#closed) return Promise.reject(new Error('decode workers: the pool is closed (the dataset was disposed)'));
    return new Promise((resolve, reject) => {
      this.#queue.push({ resolve, reject, job: { input, size, crop } });
      this.#dispatch();
    });
  }

  /** Hands queued jobs to workers with fewer than IN_FLIGHT running (one decoding, one being converted). */
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

/** Decode workers of a dataset: `numWorkers` threads (lib/data/workers.ts), or none (sharp on libuv's pool). */
export interface DecodeOptions {
  /** Worker threads that decode and augment images (default 0: the main thread drives sharp on libuv's pool). */
  numWorkers?: number;
}

/** decodeImage on the workers of `opts.numWorkers`, or in this thread; and the pool to close. */
export function decoder(opts: DecodeOptions): { decode: typeof decodeImage; pool?: DecodePool } {
  const n = checkInt(opts.numWorkers ?? 0, 'numWorkers', 0, 64);
  if (n === 0) return { decode: decodeImage };
  const pool = new DecodePool(n);
  return { decode: (input, size, crop) => pool.decode(input, size, crop ?? 'centre'), pool };
}

