/**
 * Transformer: the class-conditional Llama-AdaLN AR model of IBQ stage II (official
 * src/IBQ/modules/transformer/llama.py `GPT`, after LlamaGen). Weights are named as the official module
 * names them (`tok_emb.weight`, `blocks.0.attention.wqkv.weight`, `head.weight`, ...); official AR
 * checkpoints keep them under `transformer.`, which fromCheckpoint strips.
 */
import { checkInt, checkNumber, checkOptionKeys, describe } from '../core/errors.js';
import { runJob } from '../core/job.js';
import { native, type LoadResult, type ProcessGroupNative, type TransformerNative } from '../native.js';
import { Module, type StateDict, stateDictEntries, entriesToStateDict } from '../core/module.js';
import { Tensor, tensor, wrap } from '../core/tensor.js';
import { presetFromShapes, resolveTransformerConfig, type TransformerConfig, type TransformerPreset } from './config.js';

export type { TransformerConfig, TransformerPreset } from './config.js';

/** Options of Transformer.sample (official sample_IBQ; cfg_scale / temperature / top_k / top_p). */
export interface SampleOptions {
  /** Class ids in [0, class_num), one image per entry. */
  labels: number[];
  /** > 1: classifier-free guidance logits = uncond + (cond - uncond) * cfgScale; <= 1: none. Default 1. */
  cfgScale?: number;
  /** > 0 divides the logits; 0 means greedy argmax. Default 1. */
  temperature?: number;
  /** Keep the topK most likely tokens; 0 (default) = off; larger than vocab_size is clamped. */
  topK?: number;
  /** Nucleus sampling in (0, 1]; 1 (default) = off; the most likely token is always kept. */
  topP?: number;
  /** Argmax of the filtered probabilities instead of sampling. */
  greedy?: boolean;
  /** What torch.manual_seed receives right before sampling: the draws then equal PyTorch's. */
  seed?: number;
  onProgress?(step: number, total: number): void;
  signal?: AbortSignal;
}

export const SAMPLE_OPTION_KEYS = ['labels', 'cfgScale', 'temperature', 'topK', 'topP', 'greedy', 'seed', 'onProgress', 'signal'] as const;

/** Sample options as checkSampleOptions returns them: valid, with the defaults filled in. */
export interface CheckedSampleOptions {
  labels: number[];
  cfgScale: number;
  temperature: number;
  topK: number;
  topP: number;
  greedy: boolean;
  seed?: number;
  onProgress?(step: number, total: number): void;
  signal?: AbortSignal;
}

/**
 * The one check of sample options (the bindings only convert them, the core asserts): unknown keys, types and
 * ranges, with messages naming the option; returns them with the defaults filled in.
 */
export function checkSampleOptions(o: SampleOptions, classNum: number): CheckedSampleOptions {
  if (o === null || typeof o !== 'object') throw new TypeError(`options: expected an object, got ${describe(o)}`);
  checkOptionKeys(o, SAMPLE_OPTION_KEYS);
  if (!Array.isArray(o.labels) || o.labels.length === 0) {
    throw new TypeError(`labels: expected a non-empty array of class ids, got ${describe(o.labels)}`);
  }
  o.labels.forEach((l, i) => checkInt(l, `labels[${i}]`, 0, classNum - 1));
  const cfgScale = checkNumber(o.cfgScale ?? 1, 'cfgScale', 0);
  const temperature = checkNumber(o.temperature ?? 1, 'temperature', 0);
  const topK = checkInt(o.topK ?? 0, 'topK', 0);
  const topP = checkNumber(o.topP ?? 1, 'topP', Number.MIN_VALUE, 1);
  const greedy = o.greedy ?? false;
  if (typeof greedy !== 'boolean') throw new TypeError(`greedy: expected a boolean, got ${describe(greedy)}`);
  const seed = o.seed === undefined ? undefined : checkInt(o.seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') {
    throw new TypeError(`onProgress: expected a function, got ${describe(o.onProgress)}`);
  }
  return { labels: o.labels, cfgScale, temperature, topK, topP, greedy, seed, onProgress: o.onProgress, signal: o.signal };
}

/** Class ids as an int64 [B] tensor (accepts a Tensor, number[] or bigint[]). */
function labelTensor(labels: Tensor | number[], name = 'labels'): Tensor {
  if (labels instanceof Tensor) return labels;
  if (!Array.isArray(labels)) throw new TypeError(`${name}: expected a Tensor or an array of class ids, got ${describe(labels)}`);
  return tensor(labels as number[], [labels.length], { dtype: 'int64' });
}

/** What Transformer.fromCheckpoint loaded (`loadReport`). */
export interface TransformerLoadResult extends LoadResult {
  /** Keys of other modules that were not loaded (an official AR checkpoint's first_stage_model.*, ...). */
  skipped: string[];
  /** Wrapper prefix removed from every key ('module.' of DDP, '_orig_mod.' of torch.compile), when there was one. */
  strippedPrefix?: string;
}

/** What fromCheckpoint accepts: a path (needs the checkpoint loader), a loaded checkpoint, or a state dict. */
export type { CheckpointLike } from './checkpoint.js';
import { loadCheckpointLike, type CheckpointLike } from './checkpoint.js';

export class Transformer extends Module<TransformerNative> {
  private constructor(handle: TransformerNative) {
    super(handle);
  }

  /**
   * A new model with the official initialisation (normal(0.02) weights, damped AdaLN, zero head).
   * @param cfg TransformerConfig (official field names) or preset 'B' | 'L' | 'XL' | 'XXL'
   * @param opts.seed seeds libtorch's default generator before initialising; opts.device 'cpu' | 'cuda[:N]'
   * @throws TypeError / RangeError naming the config field that is wrong
   */
  static create(cfg: TransformerConfig | TransformerPreset | string, opts: { seed?: number; device?: string } = {}): Transformer {
    const full = resolveTransformerConfig(cfg);
    if (opts.seed !== undefined) checkInt(opts.seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
    return new Transformer(new native.TransformerHandle(full, opts.seed, opts.device));
  }

  /**
   * create() with the random initialisation done on a worker thread: the event loop stays free (a large
   * model takes seconds). Same arguments and errors (as a rejection).
   */
  static async createAsync(cfg: TransformerConfig | TransformerPreset | string, opts: { seed?: number; device?: string } = {}): Promise<Transformer> {
    const full = resolveTransformerConfig(cfg);
    if (opts.seed !== undefined) checkInt(opts.seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
    return new Transformer(await native.buildTransformer(full, opts.seed, opts.device));
  }

  /**
   * Loads weights from an official AR checkpoint (keys under `transformer.`; other modules' keys such as
   * first_stage_model.* are skipped) or a bare state dict. Config: opts.config (object, YAML path or
   * preset), else the checkpoint's hyper_parameters transformer_config, else a preset recognised from the
   * weight shapes (B, L, XL, XXL); otherwise a RangeError asks for a config.
   */
  static async fromCheckpoint(
    pathOrCkpt: CheckpointLike,
    opts: { config?: TransformerConfig | TransformerPreset | string; strict?: boolean; device?: string } = {},
  ): Promise<Transformer> {
    const { stateDict, config, classNames, skipped, stripped } = await loadCheckpointLike(pathOrCkpt, opts.config);
    let cfg = config;
    if (!cfg) {
      const preset = presetFromShapes(stateDict);
      if (!preset) {
        throw new RangeError(
          'config: the checkpoint carries no transformer_config and its weight shapes match no preset ' +
            '(B, L, XL, XXL); pass { config } (a TransformerConfig, YAML path or preset name)',
        );
      }
      cfg = preset;
    }
    const model = await Transformer.createAsync(cfg, { device: opts.device });
    try {
      const r = await model.loadStateDict(stateDict, { strict: opts.strict ?? true });
      model.loadReport = { ...r, skipped, ...(stripped ? { strippedPrefix: stripped } : {}) };
    } catch (err) {
      model.dispose();
      throw err;
    }
    if (classNames && classNames.length === model.config.class_num) model.classNames = classNames;
    return model.eval();
  }

  /** What fromCheckpoint loaded: missing / unexpected / mismatched keys, the keys of other modules, the wrapper prefix removed. */
  loadReport?: TransformerLoadResult;

  /**
   * Names of the class ids, index = id (from the checkpoint's hyper_parameters.class_names: the class
   * sub-folders of the data it was trained on); undefined when the checkpoint has none.
   */
  classNames?: string[];

  /** The preset ('B' | 'L' | 'XL' | 'XXL') this model's config equals, or '' (fromCheckpoint recognises them). */
  get preset(): TransformerPreset | '' {
    return resolveTransformerConfig(this.config).preset;
  }

  /** Exact number of parameters (sum of numel, as the official module counts them). */
  get parameterCount(): number {
    return resolveTransformerConfig(this.config).parameterCount;
  }

  /** The full config (official field names, defaults filled in). */
  get config(): Required<TransformerConfig> {
    return this.native.config() as unknown as Required<TransformerConfig>;
  }

  /**
   * Teacher-forced logits (official GPT.forward): tokens int64 [B, T], T <= block_size - 1, ids in
   * [0, vocab_size); labels int64 [B] or [B, 1] (or number[]) in [0, class_num). Returns float32
   * [B, T + 1, vocab_size]; position 0 is the class token. Training mode applies the dropouts.
   */
  async forward(tokens: Tensor, labels: Tensor | number[]): Promise<Tensor> {
    if (!(tokens instanceof Tensor)) throw new TypeError(`tokens: expected a Tensor, got ${describe(tokens)}`);
    return wrap(await this.native.forward(tokens.handle, labelTensor(labels).handle));
  }

  /**
   * Generates int64 [B, block_size] token maps (flattened h x w) for `labels` with a static KV cache: the
   * class token is prefilled, then one token per step, all in one native call off the event loop.
   * @throws RangeError for labels outside [0, class_num), negative temperature/cfgScale, topP outside (0, 1];
   *   an IbqError ERR_IBQ_ABORTED (name 'AbortError') when `signal` has fired or fires; what `onProgress` threw
   *   when it throws (the sampling stops there)
   */
  async sample(opts: SampleOptions): Promise<Tensor> {
    return this.sampleChecked(checkSampleOptions(opts, this.config.class_num));
  }

  /** @internal sample() with options checkSampleOptions returned (generate() checks all its labels once). */
  async sampleChecked(o: CheckedSampleOptions): Promise<Tensor> {
    const { labels, signal, onProgress, ...rest } = o;
    const t = labelTensor(labels);
    try {
      const h = await runJob({ signal, onProgress }, (hooks) => this.native.sample(t.handle, { ...rest, ...hooks }), (h) => h.dispose());
      return wrap(h);
    } finally {
      t.dispose();
    }
  }

  /**
   * The training loss (next-token cross-entropy of model(tokens[:, :-1], labels) against tokens, official
   * Net2NetTransformer.shared_step) and its gradients w.r.t. the named parameters, without an update.
   * tokens int64 [B, T], 1 <= T <= block_size. Uses the model's current mode; labelDropout (default true)
   * turns the LabelEmbedder dropout off when false (it only acts in training mode).
   */
  async lossAndGrads(
    tokens: Tensor,
    labels: Tensor | number[],
    opts: { wrt: string[]; labelDropout?: boolean },
  ): Promise<{ loss: number; grads: Map<string, Tensor> }> {
    if (!(tokens instanceof Tensor)) throw new TypeError(`tokens: expected a Tensor, got ${describe(tokens)}`);
    if (!opts || !Array.isArray(opts.wrt) || opts.wrt.some((w) => typeof w !== 'string')) {
      throw new TypeError('wrt: expected an array of parameter names');
    }
    const r = await this.native.lossAndGrads(tokens.handle, labelTensor(labels).handle, opts.wrt, opts.labelDropout ?? true);
    return { loss: r.loss, grads: entriesToStateDict(r.grads) };
  }

  /**
   * @internal One AdamW step (lib/train/transformer.ts); accumulation as TokenizerTrainer.step: micro-batches of
   * `microBatch` rows (at most `accumulate`), each mean loss / accumulate.
   */
  trainStep(tokens: Tensor, labels: Tensor, o: { lr: number; weightDecay: number; clip: number; autocast?: 'bfloat16' | 'float16'; accumulate?: number; microBatch?: number }) {
    return this.native.trainStep(tokens.handle, labels.handle, o);
  }
  /** @internal Data-parallel training over a process group (a collective: broadcasts weights from rank 0). */
  setDataParallel(group: { native: ProcessGroupNative } | null, opts: { bucketCapMb?: number } = {}): Promise<void> {
    return this.native.setDataParallel(group ? group.native : null, opts);
  }
  /** @internal Optimizer moments and steps by parameter name (for checkpoints). */
  optimizerState(): StateDict {
    return entriesToStateDict(this.native.optimizerState());
  }
  /** @internal */
  loadOptimizerState(sd: StateDict): void {
    this.native.loadOptimizerState(stateDictEntries(sd, 'optimizerState'));
  }
  /** @internal State (uint8 [n]) of the default generator of the model's device, which training draws from. */
  rngState(): Tensor {
    return wrap(this.native.rngState());
  }
  /** @internal */
  setRngState(state: Tensor): void {
    this.native.setRngState(state.handle);
  }
}
