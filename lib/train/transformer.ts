/**
 * trainTransformer: class-conditional next-token training of the AR transformer (official
 * Net2NetTransformer: cross-entropy of model(z[:, :-1], c) against z; AdamW betas (0.9, 0.95), weight decay
 * on dim >= 2 parameters only; lr_wd_annealing; gradient clipping 1.0). One native call per step.
 * Token data: `tokens` directly; `data` (an image folder) encoded once by the frozen `tokenizer` and cached on
 * disk (lib/transformer_tokens.ts); or in-memory `images` encoded by the tokenizer.
 * Checkpoints: Lightning-shaped torch.save files (lib/transformer_store.ts).
 */
import { appendFileSync, copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { readConfig, type ARTrainingSettings } from '../config/read_config.js';
import { abortFlag, checkInt, checkNumber, describe } from '../core/errors.js';
import { tensor, Tensor } from '../core/tensor.js';
import { Transformer, type TransformerConfig, type TransformerPreset } from '../transformer/transformer.js';
import { lrWdAnnealing } from '../transformer/schedule.js';
import { loadTrainState, saveTrainState } from '../transformer/store.js';
import { tokensFromImages, tokensFromTensor, type TokenizerLike } from '../transformer/tokens.js';

/** The official AR model's init_args: transformer_config.params and the optimisation settings. */
export interface ARTrainConfig extends ARTrainingSettings {
  transformer_config: { params: TransformerConfig } | TransformerConfig;
}

export interface TokenData {
  /** int64 [N, block_size] token maps (flattened h x w). */
  tokens: Tensor;
  /** int64 [N] class ids. */
  labels: Tensor;
  /** Name of each class id (an image folder's class sub-folders); kept in the checkpoint as class_names. */
  classes?: string[];
}

export interface TrainStepLog {
  step: number;
  /** Steps this run trains to. */
  maxSteps: number;
  epoch: number;
  loss: number;
  lr: number;
  wd: number;
  gradNorm: number;
  seconds: number;
}

export interface TrainTransformerOptions {
  tokens?: TokenData;
  /** Frozen tokenizer that encodes `data` or `images`. */
  tokenizer?: TokenizerLike;
  /** Image folder (class sub-folders); its tokens are cached in outDir. */
  data?: string;
  /** In-memory images: float32 [N, 3, H, W] in [-1, 1] and their class ids (encoded, not cached). */
  images?: { images: Tensor; labels: Tensor | number[] };
  /** Side the folder images are resized/cropped to (default: the tokenizer's ddconfig.resolution, else 256). */
  imageSize?: number;
  outDir: string;
  maxSteps?: number;
  maxEpochs?: number;
  batchSize: number;
  seed?: number;
  signal?: AbortSignal;
  onStep?(log: TrainStepLog): void;
  /** Called once the token data is ready (cached: read from the token cache instead of encoding). */
  onData?(info: { sequences: number; cached?: boolean }): void;
  /** Continue from outDir/last.ckpt when it exists. */
  resume?: boolean;
  /** Steps between refreshes of outDir/last.ckpt (default 1000; always at the end and on abort). */
  checkpointEvery?: number;
  /** Also keep outDir/step-<N>.ckpt every this many steps (default 0: off). */
  keepEvery?: number;
  clip?: number;
  device?: string;
}

export interface TrainTransformerResult {
  model: Transformer;
  steps: number;
  aborted: boolean;
  lastLoss: number;
  /** outDir/last.ckpt */
  checkpoint: string;
}

type ConfigInput = ARTrainConfig | TransformerConfig | TransformerPreset | string;

function splitConfig(config: ConfigInput): { model: TransformerConfig | TransformerPreset | string; train: ARTrainingSettings } {
  if (typeof config === 'string' && /\.ya?ml$/i.test(config)) {
    const c = readConfig(config);
    if (!c.transformer) throw new RangeError(`config: ${config} has no model.init_args.transformer_config.params`);
    return { model: c.transformer, train: c.arTraining ?? {} };
  }
  if (typeof config === 'object' && config !== null && 'transformer_config' in config) {
    const { transformer_config: tc, ...train } = config;
    return { model: ((tc as { params?: TransformerConfig }).params ?? tc) as TransformerConfig, train };
  }
  return { model: config as TransformerConfig | TransformerPreset | string, train: {} };
}

/** Deterministic permutation (mulberry32 + Fisher-Yates). */
function permutation(n: number, seed: number): Uint32Array {
  let s = seed >>> 0;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const p = Uint32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

async function tokenData(opts: TrainTransformerOptions): Promise<TokenData & { cached?: boolean; key?: string }> {
  if (opts.tokens) return opts.tokens;
  const tok = opts.tokenizer;
  if (!tok || (typeof opts.data !== 'string' && !opts.images)) {
    throw new TypeError('tokens: expected { tokens, labels }, or a tokenizer with a data folder or in-memory images');
  }
  if (opts.images) return tokensFromTensor(tok, opts.images.images, opts.images.labels);
  const res = (tok as { config?: { ddconfig?: { resolution?: number } } }).config?.ddconfig?.resolution;
  const imageSize = checkInt(opts.imageSize ?? res ?? 256, 'imageSize', 1);
  return tokensFromImages(tok, opts.data!, { cacheDir: opts.outDir, imageSize });
}

/**
 * Trains (or resumes) and returns the model. Writes outDir/log.jsonl (one JSON object per step) and
 * outDir/last.ckpt every checkpointEvery steps, at the end, and when `signal` aborts (then resolves with
 * aborted: true). Resuming restores weights, AdamW moments, the data order and the generator state, so a
 * resumed run equals an uninterrupted one.
 * @throws RangeError when the token maps do not have block_size tokens, or the seed/batch size differ from
 *   the checkpoint being resumed; Error naming the step and the last good checkpoint when the loss is not
 *   finite (nothing is saved then)
 */
export async function trainTransformer(config: ConfigInput, opts: TrainTransformerOptions): Promise<TrainTransformerResult> {
  if (!opts || typeof opts !== 'object') throw new TypeError(`options: expected an object, got ${describe(opts)}`);
  const batchSize = checkInt(opts.batchSize, 'batchSize', 1);
  if (typeof opts.outDir !== 'string') throw new TypeError(`outDir: expected a string, got ${describe(opts.outDir)}`);
  const seed = checkInt(opts.seed ?? 0, 'seed', 0, 2 ** 32 - 1);
  const clip = checkNumber(opts.clip ?? 1.0, 'clip', 0);
  const every = checkInt(opts.checkpointEvery ?? 1000, 'checkpointEvery', 1);
  const keepEvery = checkInt(opts.keepEvery ?? 0, 'keepEvery', 0);
  const { model: modelCfg, train } = splitConfig(config);
  const peakLr = checkNumber(train.learning_rate ?? 1e-4, 'learning_rate', 0);
  const wd = checkNumber(train.weight_decay ?? 1e-2, 'weight_decay', 0);
  const model = Transformer.create(modelCfg, { seed, device: opts.device }).train();
  const L = model.config.block_size;

  mkdirSync(opts.outDir, { recursive: true });
  const data = await tokenData(opts);
  const [N, T] = data.tokens.shape as [number, number];
  if (data.tokens.shape.length !== 2 || data.tokens.dtype !== 'int64') throw new RangeError(`tokens.tokens: expected int64 [N, ${L}], got ${data.tokens.dtype} [${data.tokens.shape}]`);
  if (T !== L) throw new RangeError(`tokens: ${T} tokens per image (the tokenizer's h x w), but the transformer's block_size is ${L}`);
  if (data.labels.shape.join() !== String(N)) throw new RangeError(`tokens.labels: expected int64 [${N}], got [${data.labels.shape}]`);
  if (N < batchSize) throw new RangeError(`batchSize: ${batchSize} exceeds the ${N} training sequences`);
  opts.onData?.({ sequences: N, cached: data.cached });
  const allTokens = data.tokens.dataSync() as BigInt64Array;
  const allLabels = data.labels.dataSync() as BigInt64Array;

  const ckptPath = join(opts.outDir, 'last.ckpt');
  const itersPerEpoch = Math.floor(N / batchSize);
  const maxSteps = opts.maxSteps !== undefined ? checkInt(opts.maxSteps, 'maxSteps', 1) : itersPerEpoch * checkInt(opts.maxEpochs ?? 1, 'maxEpochs', 1);
  const sched = {
    peakLr, wd, wdEnd: train.twde ?? 0, warmupIters: (train.wp ?? 0) * itersPerEpoch, maxIters: maxSteps, wp0: train.wp0, wpe: train.wpe,
  };
  const bookkeeping = { seed, batch_size: batchSize, max_steps: maxSteps, sequences: N, data_key: data.key ?? null };

  let step = 0;
  let lastGood: string | undefined;
  if (opts.resume && existsSync(ckptPath)) {
    const r = await loadTrainState(ckptPath, model);
    for (const k of ['seed', 'batch_size'] as const) {
      if (r.train[k] !== bookkeeping[k]) throw new RangeError(`resume: ${ckptPath} was trained with ${k} ${r.train[k]}, this run has ${bookkeeping[k]}`);
    }
    step = r.globalStep;
    lastGood = ckptPath;
  }
  const flag = abortFlag(opts.signal);
  const logPath = join(opts.outDir, 'log.jsonl');
  let lastLoss = NaN;
  let lr = sched.peakLr;
  let wdNow = wd;
  const t0 = performance.now();
  const save = async () => {
    await saveTrainState(ckptPath, model, {
      globalStep: step, epoch: Math.floor(step / itersPerEpoch), lr, weightDecay: wdNow, hyperParameters: { ...train, ...(data.classes ? { class_names: data.classes } : {}) }, train: bookkeeping,
    });
    lastGood = ckptPath;
  };
  while (step < maxSteps) {
    if (flag && flag[0]) {
      await save();
      return { model, steps: step, aborted: true, lastLoss, checkpoint: ckptPath };
    }
    const epoch = Math.floor(step / itersPerEpoch);
    const perm = permutation(N, seed + epoch);
    const start = (step % itersPerEpoch) * batchSize;
    const tok = new BigInt64Array(batchSize * L);
    const lab = new BigInt64Array(batchSize);
    for (let b = 0; b < batchSize; b++) {
      const row = perm[start + b]!;
      tok.set(allTokens.subarray(row * L, (row + 1) * L), b * L);
      lab[b] = allLabels[row]!;
    }
    ({ lr, wd: wdNow } = lrWdAnnealing(step, sched));
    const r = await model.trainStep(tensor(tok, [batchSize, L]), tensor(lab, [batchSize]), { lr, weightDecay: wdNow, clip });
    if (!Number.isFinite(r.loss) || !Number.isFinite(r.gradNorm)) {
      throw new Error(`training diverged: the loss is ${r.loss} (gradient norm ${r.gradNorm}) at step ${step + 1}; ` +
        `nothing was saved for it; last good checkpoint: ${lastGood ?? 'none'}`);
    }
    step++;
    lastLoss = r.loss;
    const log: TrainStepLog = { step, maxSteps, epoch, loss: r.loss, lr, wd: wdNow, gradNorm: r.gradNorm, seconds: (performance.now() - t0) / 1000 };
    appendFileSync(logPath, JSON.stringify(log) + '\n');
    opts.onStep?.(log);
    const keep = keepEvery > 0 && step % keepEvery === 0;
    if (keep || step % every === 0 || step === maxSteps) await save();
    if (keep) copyFileSync(ckptPath, join(opts.outDir, `step-${String(step).padStart(7, '0')}.ckpt`));
  }
  return { model, steps: step, aborted: false, lastLoss, checkpoint: ckptPath };
}
