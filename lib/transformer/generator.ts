/**
 * Continuous batching for serving: one engine per transformer (native/ibq/transformer/batch_engine.h). Concurrent
 * generate() calls join the running decode at its next token step and leave when they finish or are aborted,
 * freeing their slot; the KV cache and the other buffers are allocated once, for maxBatch requests. Each request
 * keeps its own class, cfgScale, temperature, topK, topP, seed and AbortSignal; a guided request's conditional
 * and unconditional rows stay paired.
 *
 * Guarantee: a request with a seed yields the same tokens whether it runs alone or joins others at any step
 * (bitwise: batch-invariant products, one random stream per request). They are drawn by the rule of
 * Transformer.sample (guidance, temperature, top-k/top-p, torch.multinomial from a generator seeded with `seed`),
 * but the logits are not bitwise sample()'s (its BLAS products round by batch size), so tokens can differ from
 * `sample({ labels: [label], seed })` where two tokens are nearly equally likely.
 */
import { randomInt } from 'node:crypto';

import { abortError, checkInt, checkOptionKeys, checkSignal, describe, IbqError, throwIfAborted } from '../core/errors.js';
import { tensor, type Tensor, wrap } from '../core/tensor.js';
import { native, type GeneratorNative } from '../native.js';
import { decodePixels, type TokenDecoder } from './generate.js';
import { checkSampleOptions, type SampleOptions, type Transformer } from './transformer.js';

/**
 * One image to generate: its class id in [0, class_num) and the options of Transformer.sample for it (cfgScale > 1
 * needs class_dropout_prob > 0). seed: of the request's own random stream; absent, a random one (returned).
 */
export interface GenerateRequest extends Omit<SampleOptions, 'labels' | 'onProgress' | 'signal'> {
  label: number;
}

export const GENERATE_REQUEST_KEYS = ['label', 'cfgScale', 'temperature', 'topK', 'topP', 'greedy', 'seed'] as const;

export interface Generated {
  /** int64 [1, block_size] (flattened h x w). */
  tokens: Tensor;
  /** uint8 [1, H, W, 3] (the official sample script's conversion) when the generator has a tokenizer. */
  image?: Tensor;
  /** The seed used (the request's, or the one drawn for it). */
  seed: number;
}

export interface GeneratorOptions {
  transformer: Transformer;
  /** Decodes the tokens to images (decodePixels when it has it); optional. */
  tokenizer?: TokenDecoder;
  /** Requests decoded at once (slots; default 16). More wait in a queue (first come, first served). */
  maxBatch?: number;
}

interface Pending {
  resolve(t: Tensor): void;
  reject(e: unknown): void;
  loop: Promise<void> | undefined;
}

/** The engine of one transformer (createGenerator). */
export class Generator {
  readonly maxBatch: number;
  private readonly handle: GeneratorNative;
  private readonly pending = new Map<number, Pending>();
  private loop: Promise<void> | undefined;
  private nextId = 0;
  private readonly side: number;

  /** @internal use createGenerator */
  constructor(
    private readonly transformer: Transformer,
    private readonly tokenizer: TokenDecoder | undefined,
    maxBatch: number,
  ) {
    this.maxBatch = maxBatch;
    this.side = Math.round(Math.sqrt(transformer.config.block_size));
    this.handle = new native.GeneratorHandle(transformer, maxBatch, (id) => this.finished(id));
  }

  /**
   * Generates one image's tokens (and its pixels with a tokenizer), batched with the other requests in flight.
   * @throws TypeError / RangeError naming the request field; IbqError ERR_IBQ_BUSY when the transformer is in
   *   training mode; ERR_IBQ_ABORTED when `signal` fires (the request's slot is freed at the next step);
   *   ERR_IBQ_DISPOSED when the transformer is disposed meanwhile
   */
  async generate(request: GenerateRequest, opts: { signal?: AbortSignal } = {}): Promise<Generated> {
    const r = checkRequest(request, this.transformer);
    if (opts === null || typeof opts !== 'object') throw new TypeError(`opts: expected an object, got ${describe(opts)}`);
    checkOptionKeys(opts, ['signal'], 'opts');
    const signal = checkSignal(opts.signal, 'opts.signal');
    throwIfAborted(signal);
    if (this.transformer.training) {
      throw new IbqError('ERR_IBQ_BUSY', 'transformer: the model is in training mode (being trained?); serve a model in eval() mode');
    }
    const id = this.nextId++;
    const done = new Promise<Tensor>((resolve, reject) => {
      const started = this.handle.submit(id, r.label, r);
      if (started) {
        this.loop = started;
        started.catch((err: unknown) => this.failed(started, err));
      }
      this.pending.set(id, { resolve, reject, loop: this.loop });
    });
    const onAbort = () => {
      const p = this.pending.get(id);
      if (!p) return;
      this.pending.delete(id);
      this.handle.cancel(id);
      p.reject(abortError(signal));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    let data: BigInt64Array;
    try {
      const raw = await done;
      data = raw.dataSync() as BigInt64Array; // block_size int64: a copy of a few KB
      raw.dispose();
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    const tokens = tensor(data, [1, data.length]);
    if (!this.tokenizer) return { tokens, seed: r.seed };
    try {
      const idx = tensor(data, [1, this.side, this.side]);
      try {
        const image = await decodePixels(this.tokenizer, idx, signal);
        return { tokens, image, seed: r.seed };
      } finally {
        idx.dispose();
      }
    } catch (err) {
      tokens.dispose();
      throw err;
    }
  }

  /** Requests waiting for a slot (queued) and decoding (running). */
  stats(): { queued: number; running: number; maxBatch: number } {
    return { ...this.handle.stats(), maxBatch: this.maxBatch };
  }

  private finished(id: number): void {
    const h = this.handle.take(id);
    const p = this.pending.get(id);
    this.pending.delete(id);
    if (!h) return;
    if (p) p.resolve(wrap(h));
    else h.dispose();
  }

  private failed(loop: Promise<void>, err: unknown): void {
    for (const [id, p] of this.pending) {
      if (p.loop !== loop) continue;
      this.pending.delete(id);
      p.reject(err);
    }
  }
}

/** The request checked once (types, ranges, unknown keys), with the defaults and a seed filled in. */
function checkRequest(request: GenerateRequest, transformer: Transformer) {
  if (request === null || typeof request !== 'object') throw new TypeError(`request: expected an object, got ${describe(request)}`);
  checkOptionKeys(request, GENERATE_REQUEST_KEYS, 'request');
  const cfg = transformer.config;
  const { label, ...rest } = request;
  checkInt(label, 'request.label', 0, cfg.class_num - 1);
  const o = checkSampleOptions({ ...rest, labels: [label] }, cfg.class_num);
  if (o.cfgScale > 1 && !(cfg.class_dropout_prob > 0)) {
    throw new RangeError('request.cfgScale: guidance (> 1) needs the null class, which this transformer lacks (class_dropout_prob 0)');
  }
  const seed = o.seed ?? randomInt(2 ** 47);
  return { label, cfgScale: o.cfgScale, temperature: o.temperature, topK: o.topK, topP: o.topP, greedy: o.greedy, seed };
}

/**
 * A continuous-batching engine for `transformer` (see Generator): static buffers for `maxBatch` requests
 * (default 16). The transformer's other calls (sample, forward, ...) wait while the engine decodes.
 * @throws TypeError / RangeError naming the option
 */
export function createGenerator(opts: GeneratorOptions): Generator {
  if (opts === null || typeof opts !== 'object') throw new TypeError(`options: expected an object, got ${describe(opts)}`);
  checkOptionKeys(opts, ['transformer', 'tokenizer', 'maxBatch']);
  const { transformer, tokenizer } = opts;
  if (!transformer || typeof transformer.sample !== 'function') throw new TypeError(`transformer: expected a Transformer, got ${describe(transformer)}`);
  if (tokenizer !== undefined && (tokenizer === null || typeof tokenizer.decode !== 'function')) {
    throw new TypeError(`tokenizer: expected a Tokenizer, got ${describe(tokenizer)}`);
  }
  const maxBatch = checkInt(opts.maxBatch ?? 16, 'maxBatch', 1, 4096);
  const nEmbed = tokenizer?.config?.n_embed;
  if (nEmbed !== undefined && nEmbed < transformer.config.vocab_size) {
    throw new RangeError(`tokenizer: its codebook has ${nEmbed} entries (n_embed) but the transformer's vocab_size is ${transformer.config.vocab_size}`);
  }
  return new Generator(transformer, tokenizer, maxBatch);
}
