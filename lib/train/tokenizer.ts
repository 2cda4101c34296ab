/**
 * trainTokenizer: the official IBQ tokenizer training run (configs/IBQ/gpu/imagenet_ibqgan_*.yaml: IBQ model,
 * VQLPIPSWithDiscriminator, Lightning manual optimisation) on one machine. Batches are decoded with prefetch while
 * the native step runs; shuffling is seeded by seed + epoch; checkpoints (`last.ckpt` and `step=N.ckpt` every
 * `checkpointEvery` steps) are Lightning-shaped and written atomically; a JSON line per step goes to
 * `<outDir>/log.jsonl`. An aborted run (signal, e.g. SIGINT in the CLI) saves last.ckpt and returns; a non-finite
 * loss stops the run with an error naming the step and the last good checkpoint.
 */
import { appendFileSync, copyFileSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';

import { readConfig, type IBQConfig } from '../config/read_config.js';
import { makeDataset, epochOrder, type TokenizerDataInput, type TrainDataset } from '../data/tokenizer_data.js';
import { checkInt, checkNumber, describe } from '../core/errors.js';
import { loadCheckpoint, saveCheckpoint } from '../io/index.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { resolveTokenizerConfig, type ResolvedTokenizerConfig } from '../tokenizer/config.js';
import {
  NonFiniteLossError, TokenizerTrainer, type PerceptualSource, type SchedulerType, type TokenizerTrainerOptions,
} from '../tokenizer/trainer.js';
import { resolveLossConfig, type ResolvedLossConfig } from '../tokenizer/trainer_state.js';

/** The official `model.init_args` of a tokenizer YAML (architecture, lossconfig and optimisation settings). */
export interface TokenizerTrainConfig {
  ddconfig: object;
  lossconfig: { params?: object } | object;
  n_embed: number;
  embed_dim: number;
  learning_rate?: number;
  scheduler_type?: SchedulerType;
  warmup_epochs?: number;
  min_learning_rate?: number;
  gradient_clip_val?: number;
  use_ema?: boolean;
  lr_drop_epoch?: number[] | null;
  lr_drop_rate?: number;
  [k: string]: unknown;
}

export interface TrainTokenizerStep {
  step: number;
  epoch: number;
  log: Record<string, number>;
  lr: number;
  seconds: number;
  imagesPerSecond: number;
  totalSteps: number;
}

export interface TrainTokenizerOptions {
  /** Training images: a folder (ImageNet layout, class folders or flat), a filelist, a Tensor or { length, batch }. */
  data: TokenizerDataInput;
  outDir: string;
  maxSteps?: number;
  maxEpochs?: number;
  batchSize: number;
  /** A checkpoint to continue from (e.g. <outDir>/last.ckpt). */
  resume?: string;
  /** Seeds the weights' initialisation, shuffling and crops (default 0). */
  seed?: number;
  signal?: AbortSignal;
  onStep?(s: TrainTokenizerStep): void;
  /** Also save step=N.ckpt every this many steps (default 0: only last.ckpt at the end / on abort). */
  checkpointEvery?: number;
  /** Batches decoded ahead of the running step (default 2). */
  prefetch?: number;
  /** LPIPS weights when perceptual_weight > 0 and no resume checkpoint provides them. */
  perceptual?: PerceptualSource;
  /** Image side (default ddconfig.resolution). */
  imageSize?: number;
  device?: string;
  autocast?: 'bfloat16' | 'float16';
  /** Start from these weights (tokenizer keys; loss.* and model_ema.* too when present). */
  init?: string;
}

export interface TrainTokenizerResult {
  tokenizer: Tokenizer;
  trainer: TokenizerTrainer;
  globalStep: number;
  epoch: number;
  lastCheckpoint?: string;
  logPath: string;
  stopped: 'done' | 'aborted';
  /** Files skipped because they could not be decoded. */
  skipped: number;
}

function initArgs(config: string | IBQConfig | TokenizerTrainConfig): TokenizerTrainConfig {
  const c = typeof config === 'string' ? readConfig(config) : config;
  if (c && typeof c === 'object' && 'raw' in c && 'path' in c) {
    const args = ((c as IBQConfig).raw as { model?: { init_args?: unknown } }).model?.init_args;
    if (!args || typeof args !== 'object' || !('lossconfig' in args)) {
      throw new RangeError(`${(c as IBQConfig).path}: model.init_args holds no tokenizer lossconfig`);
    }
    return args as TokenizerTrainConfig;
  }
  if (!c || typeof c !== 'object' || !('ddconfig' in c)) {
    throw new TypeError(`config: expected a YAML path, readConfig() result or the official init_args, got ${describe(config)}`);
  }
  return c as TokenizerTrainConfig;
}

function writeAtomicCopy(src: string, dst: string): void {
  const tmp = `${dst}.tmp-${process.pid}`;
  copyFileSync(src, tmp);
  renameSync(tmp, dst);
}

/**
 * Trains a tokenizer from an official config. Resolves when maxSteps (or maxEpochs) are done or the signal
 * fired (then last.ckpt holds the state). Throws a RangeError for bad options, an Error naming the step and the
 * last good checkpoint on a non-finite loss, and the LPIPS help message when perceptual weights are missing.
 */
export async function trainTokenizer(config: string | IBQConfig | TokenizerTrainConfig, opts: TrainTokenizerOptions): Promise<TrainTokenizerResult> {
  const args = initArgs(config);
  const tokCfg: ResolvedTokenizerConfig = resolveTokenizerConfig(args, 'config');
  const loss: ResolvedLossConfig = resolveLossConfig(args.lossconfig, 'config.lossconfig');
  if (!opts || typeof opts !== 'object') throw new TypeError(`opts: expected an options object, got ${describe(opts)}`);
  const batchSize = checkInt(opts.batchSize, 'opts.batchSize', 1);
  const seed = checkInt(opts.seed ?? 0, 'opts.seed', 0);
  const size = checkInt(opts.imageSize ?? tokCfg.ddconfig.resolution, 'opts.imageSize', 1);
  const prefetch = checkInt(opts.prefetch ?? 2, 'opts.prefetch', 0, 64);
  const every = checkInt(opts.checkpointEvery ?? 0, 'opts.checkpointEvery', 0);
  if (typeof opts.outDir !== 'string' || !opts.outDir) throw new TypeError('opts.outDir: expected a folder path');

  const data: TrainDataset = makeDataset(opts.data, { size, train: true, seed });
  const stepsPerEpoch = Math.ceil(data.length / batchSize);
  if (opts.maxSteps === undefined && opts.maxEpochs === undefined) throw new RangeError('opts: give maxSteps or maxEpochs');
  const maxEpochs = opts.maxEpochs !== undefined ? checkInt(opts.maxEpochs, 'opts.maxEpochs', 1) : undefined;
  const totalSteps = opts.maxSteps !== undefined ? checkInt(opts.maxSteps, 'opts.maxSteps', 1) : maxEpochs! * stepsPerEpoch;

  const tokenizer = Tokenizer.create(tokCfg, { seed, device: opts.device });
  const topts: TokenizerTrainerOptions = {
    learningRate: checkNumber(args.learning_rate ?? 1e-4, 'config.learning_rate', 0),
    schedulerType: args.scheduler_type ?? 'None',
    warmupSteps: Math.round((args.warmup_epochs ?? 0) * stepsPerEpoch),
    totalSteps: (maxEpochs ?? Math.ceil(totalSteps / stepsPerEpoch)) * stepsPerEpoch,
    minLearningRate: args.min_learning_rate ?? 0,
    lrDropEpoch: args.lr_drop_epoch ?? [],
    lrDropRate: args.lr_drop_rate ?? 0.1,
    gradientClipVal: args.gradient_clip_val ?? 0,
    useEma: args.use_ema ?? false,
    autocast: opts.autocast,
    seed,
  };
  const trainer = TokenizerTrainer.create(tokenizer, loss, topts);
  mkdirSync(opts.outDir, { recursive: true });
  const logPath = join(opts.outDir, 'log.jsonl');
  const lastPath = join(opts.outDir, 'last.ckpt');

  let start = 0;
  if (opts.init) {
    const ck = await loadCheckpoint(opts.init);
    await trainer.loadStateDict(ck.stateDict, { strict: false });
  }
  if (opts.resume) {
    const ck = await loadCheckpoint(opts.resume);
    start = (await trainer.restore(ck, opts.resume)).globalStep;
  } else if (opts.perceptual !== undefined) {
    await trainer.loadPerceptual(opts.perceptual);
  }
  if (opts.resume && opts.perceptual !== undefined && !trainer.perceptualLoaded) await trainer.loadPerceptual(opts.perceptual);

  const hyper = { config: { model: { class_path: 'src.IBQ.models.ibqgan.IBQ', init_args: args } }, seed, batch_size: batchSize };
  let lastGood: string | undefined = opts.resume;
  const save = async (completed: number, file: string) => {
    const { stateDict, meta } = await trainer.toCheckpoint({
      epoch: Math.floor(completed / stepsPerEpoch),
      globalStep: completed,
      extra: { hparams_name: 'kwargs', hyper_parameters: hyper },
    });
    await saveCheckpoint(file, { stateDict, meta });
    if (file !== lastPath) writeAtomicCopy(file, lastPath);
    lastGood = lastPath;
  };

  // batches: indices of step s come from the shuffled order of its epoch
  const orders = new Map<number, number[]>();
  const indicesOf = (s: number) => {
    const epoch = Math.floor(s / stepsPerEpoch), b = s % stepsPerEpoch;
    if (!orders.has(epoch)) {
      for (const e of orders.keys()) if (e < epoch - 1) orders.delete(e);
      orders.set(epoch, epochOrder(data.length, seed, epoch));
    }
    return { epoch, idx: orders.get(epoch)!.slice(b * batchSize, (b + 1) * batchSize) };
  };
  const pending = new Map<number, ReturnType<TrainDataset['load']>>();
  const request = (s: number) => {
    if (s < totalSteps && !pending.has(s)) {
      const { epoch, idx } = indicesOf(s);
      const p = data.load(idx, epoch);
      p.catch(() => undefined);
      pending.set(s, p);
    }
  };

  let stopped: TrainTokenizerResult['stopped'] = 'done';
  let s = start;
  for (; s < totalSteps; s++) {
    if (opts.signal?.aborted) {
      stopped = 'aborted';
      break;
    }
    for (let k = 0; k <= prefetch; k++) request(s + k);
    const x = await pending.get(s)!;
    pending.delete(s);
    const n = x.shape[0]!;
    const t0 = performance.now();
    let log: Record<string, number>;
    try {
      log = await trainer.step(x, { globalStep: s });
    } catch (err) {
      if (err instanceof NonFiniteLossError) {
        throw new Error(`trainTokenizer: non-finite ${err.which} loss at global step ${s}; stopped. Last good checkpoint: ${lastGood ?? 'none (no checkpoint was written)'}`, { cause: err });
      }
      throw err;
    } finally {
      x.dispose();
    }
    const seconds = (performance.now() - t0) / 1000;
    const epoch = Math.floor(s / stepsPerEpoch);
    const [lr] = await trainer.learningRates();
    const info: TrainTokenizerStep = { step: s, epoch, log, lr, seconds, imagesPerSecond: n / seconds, totalSteps };
    appendFileSync(logPath, JSON.stringify({ step: s, epoch, ...log, lr, step_time: seconds, images_per_s: n / seconds, skipped: data.skipped }) + '\n');
    if (s % stepsPerEpoch === stepsPerEpoch - 1) await trainer.endEpoch(epoch);
    if (every > 0 && (s + 1) % every === 0) await save(s + 1, join(opts.outDir, `step=${String(s + 1).padStart(8, '0')}.ckpt`));
    opts.onStep?.(info);
  }
  for (const p of pending.values()) p.then((t) => t.dispose(), () => undefined);
  if (s > start && !(every > 0 && s % every === 0)) await save(s, lastPath);
  return {
    tokenizer, trainer, globalStep: s, epoch: Math.floor(s / stepsPerEpoch), lastCheckpoint: lastGood, logPath, stopped, skipped: data.skipped,
  };
}
