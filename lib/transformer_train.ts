/**
 * trainTransformer: class-conditional next-token training of the AR transformer (official
 * Net2NetTransformer: cross-entropy of model(z[:, :-1], c) against z; AdamW betas (0.9, 0.95), weight decay
 * on dim >= 2 parameters only; lr_wd_annealing; gradient clipping 1.0). One native call per step.
 * Token data: `tokens` directly, or `data` (an image folder) encoded once by the frozen `tokenizer` and
 * cached on disk (lib/transformer_tokens.ts).
 */
import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { abortFlag, checkInt, checkNumber, describe } from './errors.js';
import { tensor, Tensor } from './tensor.js';
import { Transformer, type TransformerConfig, type TransformerPreset } from './transformer.js';
import { lrWdAnnealing } from './transformer_schedule.js';
import { loadTrainState, saveTrainState } from './transformer_store.js';
import { tokensFromImages, type TokenizerLike } from './transformer_tokens.js';

/** The official AR model's init_args: transformer_config.params and the optimisation settings. */
export interface ARTrainConfig {
  transformer_config: { params: TransformerConfig } | TransformerConfig;
  learning_rate?: number;
  weight_decay?: number;
  /** Warmup epochs (official wp). */
  wp?: number;
  wp0?: number;
  wpe?: number;
  twde?: number;
}

export interface TokenData {
  /** int64 [N, block_size] token maps (flattened h x w). */
  tokens: Tensor;
  /** int64 [N] class ids. */
  labels: Tensor;
}

export interface TrainStepLog {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  wd: number;
  gradNorm: number;
  seconds: number;
}

export interface TrainTransformerOptions {
  tokens?: TokenData;
  tokenizer?: TokenizerLike;
  /** Image folder (class sub-folders) encoded with `tokenizer`. */
  data?: string;
  imageSize?: number;
  outDir: string;
  maxSteps?: number;
  maxEpochs?: number;
  batchSize: number;
  seed?: number;
  signal?: AbortSignal;
  onStep?(log: TrainStepLog): void;
  /** Continue from outDir/last.safetensors when it exists. */
  resume?: boolean;
  /** Steps between checkpoints (default: 1000; always at the end). */
  checkpointEvery?: number;
  clip?: number;
  device?: string;
}

function splitConfig(config: ARTrainConfig | TransformerConfig | TransformerPreset | string) {
  if (typeof config === 'object' && config !== null && 'transformer_config' in config) {
    const tc = config.transformer_config as { params?: TransformerConfig };
    return { model: (tc.params ?? tc) as TransformerConfig, train: config };
  }
  return { model: config as TransformerConfig | TransformerPreset | string, train: {} as Partial<ARTrainConfig> };
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
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

/**
 * Trains (or resumes) and returns the model. Writes outDir/log.jsonl (one JSON object per step),
 * outDir/last.safetensors (weights under `transformer.`, global step, optimizer state) every checkpointEvery
 * steps, at the end, and when `signal` aborts (then resolves with aborted: true).
 */
export async function trainTransformer(
  config: ARTrainConfig | TransformerConfig | TransformerPreset | string,
  opts: TrainTransformerOptions,
): Promise<{ model: Transformer; steps: number; aborted: boolean; lastLoss: number }> {
  if (!opts || typeof opts !== 'object') throw new TypeError(`options: expected an object, got ${describe(opts)}`);
  const batchSize = checkInt(opts.batchSize, 'batchSize', 1);
  if (typeof opts.outDir !== 'string') throw new TypeError(`outDir: expected a string, got ${describe(opts.outDir)}`);
  const seed = checkInt(opts.seed ?? 0, 'seed', 0, 2 ** 32 - 1);
  const clip = checkNumber(opts.clip ?? 1.0, 'clip', 0);
  const every = checkInt(opts.checkpointEvery ?? 1000, 'checkpointEvery', 1);
  const { model: modelCfg, train } = splitConfig(config);
  const peakLr = checkNumber(train.learning_rate ?? 1e-4, 'learning_rate', 0);
  const wd = checkNumber(train.weight_decay ?? 1e-2, 'weight_decay', 0);

  let data = opts.tokens;
  if (!data) {
    if (!opts.tokenizer || typeof opts.data !== 'string') {
      throw new TypeError('tokens: expected { tokens, labels }, or a tokenizer and a data folder to encode');
    }
    data = await tokensFromImages(opts.tokenizer, opts.data, { cacheDir: opts.outDir, imageSize: opts.imageSize ?? 256 });
  }
  const [N, L] = data.tokens.shape;
  if (data.tokens.shape.length !== 2 || data.tokens.dtype !== 'int64') throw new RangeError('tokens.tokens: expected int64 [N, block_size]');
  if (data.labels.shape.join() !== String(N)) throw new RangeError(`tokens.labels: expected int64 [${N}], got [${data.labels.shape}]`);
  if (N < batchSize) throw new RangeError(`batchSize: ${batchSize} exceeds the ${N} training sequences`);
  const allTokens = data.tokens.dataSync() as BigInt64Array;
  const allLabels = data.labels.dataSync() as BigInt64Array;

  mkdirSync(opts.outDir, { recursive: true });
  const ckptPath = join(opts.outDir, 'last.safetensors');
  const itersPerEpoch = Math.floor(N / batchSize);
  const maxSteps = opts.maxSteps !== undefined ? checkInt(opts.maxSteps, 'maxSteps', 1) : itersPerEpoch * checkInt(opts.maxEpochs ?? 1, 'maxEpochs', 1);
  const sched = {
    peakLr, wd, wdEnd: train.twde ?? 0, warmupIters: (train.wp ?? 0) * itersPerEpoch, maxIters: maxSteps,
    wp0: train.wp0, wpe: train.wpe,
  };

  const model = Transformer.create(modelCfg, { seed, device: opts.device }).train();
  let step = 0;
  if (opts.resume && existsSync(ckptPath)) step = await loadTrainState(ckptPath, model);
  const flag = abortFlag(opts.signal);
  const logPath = join(opts.outDir, 'log.jsonl');
  let lastLoss = NaN;
  const t0 = performance.now();
  const meta = () => ({ global_step: step, epoch: Math.floor(step / itersPerEpoch), ar_config: model.config, train_config: train });
  while (step < maxSteps) {
    if (flag && flag[0]) {
      await saveTrainState(ckptPath, model, meta());
      return { model, steps: step, aborted: true, lastLoss };
    }
    const epoch = Math.floor(step / itersPerEpoch);
    const perm = permutation(N, seed + epoch);
    const start = (step % itersPerEpoch) * batchSize;
    const tok = new BigInt64Array(batchSize * L);
    const lab = new BigInt64Array(batchSize);
    for (let b = 0; b < batchSize; b++) {
      const row = perm[start + b];
      tok.set(allTokens.subarray(row * L, (row + 1) * L), b * L);
      lab[b] = allLabels[row];
    }
    const { lr, wd: wdNow } = lrWdAnnealing(step, sched);
    const r = await model.trainStep(tensor(tok, [batchSize, L]), tensor(lab, [batchSize]), { lr, weightDecay: wdNow, clip });
    step++;
    lastLoss = r.loss;
    const log: TrainStepLog = { step, epoch, loss: r.loss, lr, wd: wdNow, gradNorm: r.gradNorm, seconds: (performance.now() - t0) / 1000 };
    appendFileSync(logPath, JSON.stringify(log) + '\n');
    opts.onStep?.(log);
    if (step % every === 0 || step === maxSteps) await saveTrainState(ckptPath, model, meta());
  }
  return { model, steps: step, aborted: false, lastLoss };
}
