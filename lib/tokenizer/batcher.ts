/**
 * Micro-batching for a tokenizer shared by concurrent callers (a server): encodeImages / decode / decodePixels
 * calls that arrive within `windowMs` of the first one (or until `maxBatch` images) run as one native call, and
 * each caller gets its own rows back. The images are decoded per call first (sharp, in parallel); calls of one
 * kind are batched when their shapes agree (same imageSize; same token map size). A batch that fails is retried
 * call by call, so one bad input fails only its own call. An aborted call leaves its batch at once.
 *
 * Results: the same indices as separate calls and pixels within float32 rounding of them (the convolutions
 * run over a larger batch; test/tokenizer/batcher.test.ts checks indices identical and pixels within 1e-5).
 */
import { abortError, checkInt, checkNumber, checkOptionKeys, checkSignal, describe, throwIfAborted } from '../core/errors.js';
import { selectRows, tensor, Tensor } from '../core/tensor.js';
import { loadImages, type ImageInput } from '../data/images.js';
import type { EncodeImagesOptions, Tokenizer } from './tokenizer.js';

export interface BatchingOptions {
  /** Milliseconds a batch waits for more calls after its first (default 1; at most 50). */
  windowMs?: number;
  /** Images per batch (default 16); a full batch runs at once. */
  maxBatch?: number;
}

type Kind = 'encode' | 'decode' | 'pixels';

interface Item {
  rows: number;
  input: Float32Array | BigInt64Array;
  resolve(t: Tensor): void;
  reject(e: unknown): void;
  signal?: AbortSignal;
  settled: boolean;
  onAbort?: () => void;
}

interface Batch {
  kind: Kind;
  shape: number[];  // per-row shape of the input
  items: Item[];
  rows: number;
  timer?: NodeJS.Timeout;
}

export class TokenizerBatcher {
  readonly windowMs: number;
  readonly maxBatch: number;
  private readonly open = new Map<string, Batch>();

  constructor(readonly tokenizer: Tokenizer, opts: BatchingOptions = {}) {
    if (opts === null || typeof opts !== 'object') throw new TypeError(`opts: expected an object, got ${describe(opts)}`);
    checkOptionKeys(opts, ['windowMs', 'maxBatch'], 'opts');
    this.windowMs = checkNumber(opts.windowMs ?? 1, 'opts.windowMs', 0, 50);
    this.maxBatch = checkInt(opts.maxBatch ?? 16, 'opts.maxBatch', 1, 4096);
  }

  /** The tokenizer's config (for generate(): its codebook size). */
  get config() {
    return this.tokenizer.config;
  }

  /** Tokenizer.encodeImages, batched with concurrent calls: indices int64 [B, S/f, S/f], images float32 [B, 3, S, S]. */
  async encodeImages(inputs: ImageInput[], opts: EncodeImagesOptions = {}): Promise<{ indices: Tensor; images: Tensor }> {
    const { size, maxPixels, signal } = this.tokenizer.checkEncodeImagesOptions(opts);
    const data = await loadImages(inputs, size, { maxPixels });
    throwIfAborted(signal);
    const indices = await this.enqueue('encode', [3, size, size], inputs.length, data, signal);
    return { indices, images: tensor(data, [inputs.length, 3, size, size]) };
  }

  /** Tokenizer.decode, batched: float32 [B, 3, H, W] from int64 indices [B, h, w]. */
  decode(indices: Tensor, opts: { signal?: AbortSignal } = {}): Promise<Tensor> {
    return this.tokens('decode', indices, opts);
  }

  /** Tokenizer.decodePixels, batched: uint8 [B, H, W, 3] from int64 indices [B, h, w]. */
  decodePixels(indices: Tensor, opts: { signal?: AbortSignal } = {}): Promise<Tensor> {
    return this.tokens('pixels', indices, opts);
  }

  private async tokens(kind: Kind, indices: Tensor, opts: { signal?: AbortSignal }): Promise<Tensor> {
    if (!(indices instanceof Tensor) || indices.dtype !== 'int64' || indices.shape.length !== 3) {
      throw new TypeError(`indices: expected an int64 Tensor [B, h, w], got ${indices instanceof Tensor ? `${indices.dtype} [${indices.shape}]` : describe(indices)}`);
    }
    if (opts === null || typeof opts !== 'object') throw new TypeError(`opts: expected an object, got ${describe(opts)}`);
    checkOptionKeys(opts, ['signal'], 'opts');
    const signal = checkSignal(opts.signal, 'opts.signal');
    throwIfAborted(signal);
    const [b, h, w] = indices.shape as [number, number, number];
    // a few KB (B x h x w int64): copied here, so calls made in one tick join one batch
    return this.enqueue(kind, [h, w], b, indices.dataSync() as BigInt64Array, signal);
  }

  private enqueue(kind: Kind, shape: number[], rows: number, input: Float32Array | BigInt64Array, signal?: AbortSignal): Promise<Tensor> {
    return new Promise<Tensor>((resolve, reject) => {
      const item: Item = { rows, input, resolve, reject, signal, settled: false };
      const key = `${kind}:${shape.join('x')}`;
      let batch = this.open.get(key);
      if (!batch) {
        batch = { kind, shape, items: [], rows: 0 };
        this.open.set(key, batch);
        const b = batch;
        b.timer = setTimeout(() => this.flush(key, b), this.windowMs);
      }
      batch.items.push(item);
      batch.rows += rows;
      if (signal) {
        item.onAbort = () => settle(item, undefined, abortError(signal));
        signal.addEventListener('abort', item.onAbort, { once: true });
      }
      if (batch.rows >= this.maxBatch) this.flush(key, batch);
    });
  }

  private flush(key: string, batch: Batch): void {
    if (this.open.get(key) === batch) this.open.delete(key);
    clearTimeout(batch.timer);
    const items = batch.items.filter((i) => !i.settled);
    if (items.length === 0) return;
    void this.run(batch, items).catch(async (err: unknown) => {
      if (items.length === 1) return settle(items[0]!, undefined, err);
      // one bad input fails only its own call: run them one by one
      await Promise.all(items.map((i) => this.run(batch, [i]).catch((e: unknown) => settle(i, undefined, e))));
    });
  }

  /** One native call for `items`; each gets its rows. */
  private async run(batch: Batch, items: Item[]): Promise<void> {
    const rows = items.reduce((s, i) => s + i.rows, 0);
    const per = batch.shape.reduce((a, b) => a * b, 1);
    const joined = batch.kind === 'encode' ? new Float32Array(rows * per) : new BigInt64Array(rows * per);
    let at = 0;
    for (const i of items) {
      (joined as Float32Array).set(i.input as Float32Array, at * per);
      at += i.rows;
    }
    const x = tensor(joined, [rows, ...batch.shape]);
    let out: Tensor;
    try {
      if (batch.kind === 'encode') {
        const { indices, z_q } = await this.tokenizer.encode(x);
        z_q.dispose();
        out = indices;
      } else {
        out = batch.kind === 'pixels' ? await this.tokenizer.decodePixels(x) : await this.tokenizer.decode(x);
      }
    } finally {
      x.dispose();
    }
    let handed = false;
    try {
      at = 0;
      for (const i of items) {
        const first = at;
        at += i.rows;
        if (i.settled) continue;
        if (items.length === 1) {
          handed = true;
          settle(i, out);
        } else {
          settle(i, await selectRows(out, Array.from({ length: i.rows }, (_, k) => first + k)));
        }
      }
    } finally {
      if (!handed) out.dispose();
    }
  }
}

function settle(item: Item, value: Tensor | undefined, err?: unknown): void {
  if (item.settled) {
    value?.dispose();
    return;
  }
  item.settled = true;
  if (item.onAbort) item.signal?.removeEventListener('abort', item.onAbort);
  if (value) item.resolve(value);
  else item.reject(err);
}
