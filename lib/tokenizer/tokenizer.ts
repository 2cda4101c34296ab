/**
 * Tokenizer: the IBQ visual tokenizer (official IBQ `VQModel`: VQGAN encoder -> quant_conv -> IBQ quantizer ->
 * post_quant_conv -> decoder; arXiv 2412.02692). Weights use the official names, so official checkpoints
 * (TencentARC/IBQ-Tokenizer-*) load 1:1; `loss.*` (training losses) and `model_ema.*` (EMA copies) keys are
 * skipped and listed, never an error. Each forward/encode/decode is one native job on the model's queue.
 */
import { presetOrYaml } from '../config/read_config.js';
import { checkInt, checkOptionKeys, checkString, describe } from '../core/errors.js';
import { EMA_PREFIX, emaStateDict, loadWeightsFile, plainConfig, stripWrapperPrefixes, type Checkpoint } from '../io/index.js';
import { checkLoadOptions, decodeToPng, loadImages, type ImageInput } from '../data/images.js';
import { Module, stateDictEntries, type LoadResult, type StateDict } from '../core/module.js';
import { native, type AutocastOptions, type TokenizerHandleNative } from '../native.js';
import { type CreateOptions } from './quantizer.js';
import { checkAutocast, type AutocastOptions as AutocastOption } from '../core/autocast.js';
import { runJob } from '../core/job.js';
import { checkSignal, throwIfAborted } from '../core/errors.js';
import { Tensor, tensor, tensorArg, wrap, wrapAll } from '../core/tensor.js';
import {
  configFromTokenizerMeta,
  inferTokenizerConfig,
  tokenizerPreset,
  TOKENIZER_PRESETS,
  resolveTokenizerConfig,
  tokenizerConfigFromYaml,
  type TokenizerPreset,
  type ResolvedTokenizerConfig,
  type TokenizerConfig,
} from './config.js';

/** Prefixes of checkpoint keys that are not the tokenizer's own (skipped when loading). */
export const SKIPPED_PREFIXES = ['loss.', EMA_PREFIX] as const;

/** forward(): float32 tensors unless noted; f = 2^(len(ch_mult)-1). */
export interface TokenizerForward {
  /** quant_conv output [B, embed_dim, H/f, W/f]. */
  h: Tensor;
  /** [B, embed_dim, H/f, W/f]. */
  z_q: Tensor;
  /** int64 [B, H/f, W/f]. */
  indices: Tensor;
  /** Reconstruction [B, out_ch, H, W] (not clamped; about [-1, 1]). */
  xrec: Tensor;
  /** 0-d terms of the IBQ quantizer (see IBQuantizer). */
  quant_loss: Tensor;
  sample_entropy: Tensor;
  avg_entropy: Tensor;
  entropy_loss: Tensor;
}

export interface TokenizerLoadResult extends LoadResult {
  /** Keys under loss.* and model_ema.* that were not loaded (not the tokenizer's own). */
  skipped: string[];
  /** Wrapper prefix removed from every key ('module.' of DDP, '_orig_mod.' of torch.compile), when there was one. */
  strippedPrefix?: string;
}

export interface FromCheckpointOptions {
  /** A config object, a YAML path (official layout) or a preset name; absent: inferred from the weights. */
  config?: TokenizerConfig | TokenizerPreset | string;
  /** Load the EMA weights (model_ema.*) instead of the raw ones. */
  ema?: boolean;
  /** Default true: every tokenizer key must be present with its shape. */
  strict?: boolean;
  device?: string;
}

function resolveConfig(cfg: TokenizerConfig | TokenizerPreset | string, arg: string): ResolvedTokenizerConfig {
  if (typeof cfg === 'string' && presetOrYaml(cfg, TOKENIZER_PRESETS, arg) === 'preset') return tokenizerPreset(cfg as TokenizerPreset);
  if (typeof cfg === 'string') return tokenizerConfigFromYaml(cfg, arg);
  if (cfg === null || typeof cfg !== 'object') {
    throw new TypeError(`${arg}: expected a config object, a YAML path or a preset name, got ${describe(cfg)}`);
  }
  return resolveTokenizerConfig(cfg, arg);
}

/** Options of encodeImages. */
export interface EncodeImagesOptions {
  /** Side the shorter side is resized to and the centre crop (default: ddconfig.resolution). */
  imageSize?: number;
  /** Largest accepted input (width x height), checked on the header. */
  maxPixels?: number;
  signal?: AbortSignal;
}

/** Options of forward / encode / decode: mixed precision and an AbortSignal (a queued call never starts). */
export interface InferenceOptions extends AutocastOption {
  signal?: AbortSignal;
}

/** Disposes the handles of a result that an aborted call made anyway. */
function disposeHandles(r: { dispose(): void } | Record<string, { dispose(): void }>): void {
  if (typeof (r as { dispose?: unknown }).dispose === 'function') (r as { dispose(): void }).dispose();
  else for (const h of Object.values(r)) h.dispose();
}

/** An image batch argument: a float32 Tensor (the weights' dtype; other float dtypes would fail deep in libtorch). */
function imagesArg(x: unknown, name: string) {
  if (x instanceof Tensor && x.dtype !== 'float32' && /^(float|bfloat)/.test(x.dtype)) {
    throw new TypeError(`${name}: expected a float32 tensor (the model's dtype), got ${x.dtype}; convert it to float32 first`);
  }
  return tensorArg(x, name);
}

export class Tokenizer extends Module<TokenizerHandleNative> {
  /** The official init_args this tokenizer was built from (defaults filled in). */
  readonly config: ResolvedTokenizerConfig;
  /** What fromCheckpoint loaded (missing/unexpected/mismatched and the skipped loss.* / model_ema.* keys). */
  loadReport?: TokenizerLoadResult;

  private constructor(handle: TokenizerHandleNative, config: ResolvedTokenizerConfig) {
    super(handle);
    this.config = config;
  }

  /**
   * A randomly initialised tokenizer.
   * @param cfg official init_args or a preset name ('IBQ-1024' | 'IBQ-8192' | 'IBQ-16384' | 'IBQ-262144')
   * @throws TypeError/RangeError naming the config field (e.g. channels not divisible by 32 for GroupNorm)
   */
  static create(cfg: TokenizerConfig | TokenizerPreset, opts: CreateOptions = {}): Tokenizer {
    const config = resolveConfig(cfg, 'config');
    if (opts.seed !== undefined) checkInt(opts.seed, 'opts.seed', 0);
    return new Tokenizer(new native.TokenizerHandle(config, opts.device, opts.seed), config);
  }

  /**
   * create() with the random initialisation done on a worker thread: the event loop stays free (a large
   * tokenizer takes seconds). Same arguments and errors (as a rejection).
   */
  static async createAsync(cfg: TokenizerConfig | TokenizerPreset, opts: CreateOptions = {}): Promise<Tokenizer> {
    const config = resolveConfig(cfg, 'config');
    if (opts.seed !== undefined) checkInt(opts.seed, 'opts.seed', 0);
    return new Tokenizer(await native.buildTokenizer(config, opts.device, opts.seed), config);
  }

  /**
   * A tokenizer with the weights of a checkpoint (a torch.save/Lightning or safetensors file path, told apart
   * by the file's bytes, or a loaded Checkpoint). Without `config`, the architecture is inferred from the
   * weight shapes, completed by the init_args found in the checkpoint's hyper_parameters (OmegaConf or plain)
   * when they describe the same architecture (e.g. ddconfig.resolution). Rejects with a RangeError listing
   * missing keys and shape mismatches (e.g. a checkpoint of another size) when strict.
   */
  static async fromCheckpoint(pathOrCkpt: string | Checkpoint, opts: FromCheckpointOptions = {}): Promise<Tokenizer> {
    const loaded = typeof pathOrCkpt === 'string' ? await loadWeightsFile(checkString(pathOrCkpt, 'path')) : pathOrCkpt;
    if (!loaded || !(loaded.stateDict instanceof Map)) {
      throw new TypeError(`pathOrCkpt: expected a checkpoint path or a Checkpoint, got ${describe(pathOrCkpt)}`);
    }
    const { stateDict: bare, stripped } = stripWrapperPrefixes(loaded.stateDict);
    const ckpt = { ...loaded, stateDict: bare };
    const config =
      opts.config !== undefined
        ? resolveConfig(opts.config, 'opts.config')
        : configFromTokenizerMeta(
            plainConfig(ckpt.meta?.hyper_parameters),
            inferTokenizerConfig(new Map([...ckpt.stateDict].map(([k, t]) => [k, t.shape]))),
          );
    const tok = await Tokenizer.createAsync(config, { device: opts.device });
    const sd = opts.ema ? emaStateDict(ckpt.stateDict, tok.parameterNames()) : ckpt.stateDict;
    try {
      tok.loadReport = await tok.loadStateDict(sd, { strict: opts.strict ?? true });
    } catch (err) {
      tok.dispose();
      const where = typeof pathOrCkpt === 'string' ? pathOrCkpt : 'checkpoint';
      const what = opts.config === undefined ? 'the inferred config' : 'the given config';
      throw new RangeError(`${where} does not fit ${what} (n_embed ${config.n_embed}, embed_dim ${config.embed_dim}, ` +
        `ch ${config.ddconfig.ch}, ch_mult [${config.ddconfig.ch_mult.join(', ')}]): ${(err as Error).message}`, { cause: err });
    }
    if (opts.ema) tok.loadReport.skipped.push(...[...ckpt.stateDict.keys()].filter((k) => k.startsWith(EMA_PREFIX)));
    if (stripped) tok.loadReport.strippedPrefix = stripped;
    return tok;
  }

  /** H and W must be multiples of this: 2^(len(ch_mult)-1); the token map is [H/f, W/f]. */
  get downsampleFactor(): number {
    return 2 ** (this.config.ddconfig.ch_mult.length - 1);
  }

  /** Loads weights; loss.* and model_ema.* keys are skipped and returned in `skipped`. */
  override async loadStateDict(sd: StateDict | Iterable<[string, Tensor]>, opts: { strict?: boolean } = {}): Promise<TokenizerLoadResult> {
    const entries = stateDictEntries(sd);
    const skipped = entries.map(([k]) => k).filter((k) => SKIPPED_PREFIXES.some((p) => k.startsWith(p)));
    const r = await this.native.loadStateDict(entries, opts.strict ?? true, SKIPPED_PREFIXES);
    return { ...r, skipped };
  }

  /**
   * The official forward: x float [B, in_channels, H, W] in [-1, 1], H and W multiples of downsampleFactor.
   * Rejects with a RangeError naming the factor and the nearest valid size, the expected channels, or
   * non-finite values; a TypeError for a dtype other than float32 (float64/float16 inputs are not converted). `autocast: 'bfloat16'` runs the convolutions in bfloat16 (the quantizer's softmax
   * and entropy stay float32).
   */
  async forward(x: Tensor, opts?: InferenceOptions): Promise<TokenizerForward> {
    return wrapAll(await this.inference(opts, (o) => this.native.forward(imagesArg(x, 'x'), o)));
  }

  /** Runs one native call with the checked autocast and the signal's abort flag (rejects with ERR_IBQ_ABORTED). */
  private inference<T extends { dispose(): void } | Record<string, { dispose(): void }>>(
    opts: InferenceOptions | undefined,
    call: (o: AutocastOptions & { abortFlag?: Int32Array; samplePixels?: boolean }) => Promise<T>,
    extra: { samplePixels?: boolean } = {},
  ): Promise<T> {
    const ac = checkAutocast(opts, 'opts', this.device);
    const signal = checkSignal(opts?.signal, 'opts.signal');
    return runJob({ signal }, (hooks) => call({ ...ac, ...extra, abortFlag: hooks.abortFlag }), disposeHandles);
  }

  /** Token indices (int64 [B, H/f, W/f], by a chunked argmax) and their codebook vectors z_q. */
  async encode(x: Tensor, opts?: InferenceOptions): Promise<{ indices: Tensor; z_q: Tensor }> {
    return wrapAll(await this.inference(opts, (o) => this.native.encode(imagesArg(x, 'x'), o)));
  }

  /** Images [B, out_ch, h*f, w*f] (float32, not clamped) from int64 indices [B, h, w] in [0, n_embed). */
  async decode(indices: Tensor, opts?: InferenceOptions): Promise<Tensor> {
    return wrap(await this.inference(opts, (o) => this.native.decode(tensorArg(indices, 'indices'), o)));
  }

  /**
   * Images as the official sample script saves them, uint8 [B, H, W, 3] ((x + 1) / 2 * 255 clipped and truncated
   * in float32), from int64 indices [B, h, w]: decode() and the conversion in one native job, so the float
   * images never reach JavaScript (generate() uses it).
   */
  async decodePixels(indices: Tensor, opts: { signal?: AbortSignal } = {}): Promise<Tensor> {
    return wrap(await this.inference({ signal: opts.signal }, (o) => this.native.decode(tensorArg(indices, 'indices'), o), { samplePixels: true }));
  }

  /**
   * Loads images (paths or encoded bytes: JPEG incl. CMYK, PNG, WebP, greyscale; type from the bytes), resizes
   * the shorter side to imageSize and centre-crops, scales to [-1, 1] and encodes them.
   * opts.maxPixels: largest accepted input (width x height, checked on the header before decoding; default
   * defaultMaxPixels(): 4096 x 4096, or IBQ_MAX_PIXELS).
   * opts.signal: an AbortSignal (checked before and after decoding; a queued encode never starts).
   * @returns indices int64 [B, S/f, S/f] and the images float32 [B, 3, S, S]
   * @throws TypeError for an unknown option key; IbqError ERR_IBQ_BAD_IMAGE (undecodable input) or
   *   ERR_IBQ_IMAGE_TOO_LARGE (more than maxPixels), naming the input; ERR_IBQ_ABORTED when the signal fires
   */
  async encodeImages(
    inputs: ImageInput[],
    opts: EncodeImagesOptions = {},
  ): Promise<{ indices: Tensor; images: Tensor }> {
    const { size, maxPixels, signal } = this.checkEncodeImagesOptions(opts);
    const data = await loadImages(inputs, size, { maxPixels });
    const images = tensor(data, [inputs.length, 3, size, size]);
    try {
      const { indices, z_q } = await this.encode(images, { signal });
      z_q.dispose();
      return { indices, images };
    } catch (err) {
      images.dispose();
      throw err;
    }
  }

  /** @internal encodeImages' options checked (also by TokenizerBatcher): the side, the pixel limit, the signal. */
  checkEncodeImagesOptions(opts: EncodeImagesOptions): { size: number; maxPixels: number; signal?: AbortSignal } {
    if (opts === null || typeof opts !== 'object') throw new TypeError(`opts: expected an object, got ${describe(opts)}`);
    checkOptionKeys(opts, ['imageSize', 'maxPixels', 'signal'], 'opts');
    const signal = checkSignal(opts.signal, 'opts.signal');
    throwIfAborted(signal);
    const size = checkInt(opts.imageSize ?? this.config.ddconfig.resolution, 'opts.imageSize', 1, 16384);
    const maxPixels = checkLoadOptions({ maxPixels: opts.maxPixels }, 'opts');
    const f = this.downsampleFactor;
    if (size % f !== 0) {
      throw new RangeError(`opts.imageSize: ${size} is not divisible by ${f} (2^(len(ch_mult)-1)); nearest valid size: ${Math.max(f, Math.round(size / f) * f)}`);
    }
    return { size, maxPixels, signal };
  }

  /**
   * PNG images (RGB, 8 bit) of the decoded indices int64 [B, h, w]. opts.signal: an AbortSignal (a queued decode
   * never starts; ERR_IBQ_ABORTED).
   */
  async decodeImages(indices: Tensor, opts: { signal?: AbortSignal } = {}): Promise<Buffer[]> {
    if (opts === null || typeof opts !== 'object') throw new TypeError(`opts: expected an object, got ${describe(opts)}`);
    checkOptionKeys(opts, ['signal'], 'opts');
    const x = await this.decode(indices, { signal: opts.signal });
    try {
      const pngs = await decodeToPng(x);
      throwIfAborted(opts.signal);
      return pngs;
    } finally {
      x.dispose();
    }
  }
}
