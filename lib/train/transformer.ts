/**
 * trainTransformer: class-conditional next-token training of the AR transformer (official
 * Net2NetTransformer: cross-entropy of model(z[:, :-1], c) against z; AdamW betas (0.9, 0.95), weight decay
 * on dim >= 2 parameters only; lr_wd_annealing; gradient clipping 1.0). One native call per step.
 * Token data: `tokens` directly; `data` (an image folder) encoded once by the frozen `tokenizer` and cached on
 * disk (lib/transformer/tokens.ts); or in-memory `images` encoded by the tokenizer.
 * Checkpoints: Lightning-shaped torch.save files (lib/transformer/store.ts); steps, epochs, checkpoint
 * cadence, resume, abort and the log are the shared training loop's (lib/train/loop.ts).
 */

import { readConfig, type ARTrainingSettings, type RunSettings } from '../config/read_config.js';
import { checkInt, checkNumber } from '../core/errors.js';
import { checkAutocastDType } from '../core/autocast.js';
import { selectRows, type Tensor } from '../core/tensor.js';
import { Transformer, type TransformerConfig, type TransformerPreset } from '../transformer/transformer.js';
import { lrWdAnnealing } from '../transformer/schedule.js';
import { loadTrainState, saveTrainState } from '../transformer/store.js';
import { tokensFromImages, tokensFromTensor, type TokenizerLike } from '../transformer/tokens.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import type { TokenDecoder } from '../transformer/generate.js';
import type { DistributedContext } from '../distributed/context.js';
import type { TrainLoopResult } from './loop.js';
import { sampleGrid } from './previews.js';
import { runTraining, yamlAutocast, type RunTask, type TrainOptionsFromConfig } from './run.js';
import { transformerValidation, type ValidationSource } from './validation.js';

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

/**
 * batchSize and maxEpochs default to the YAML's data.init_args.batch_size and trainer.max_epochs when the config
 * is a YAML path (a preset or a config object has none: then batchSize is required).
 */
export interface TrainTransformerOptions extends TrainOptionsFromConfig {
  tokens?: TokenData;
  /** Frozen tokenizer that encodes `data` or `images`. */
  tokenizer?: TokenizerLike;
  /**
   * Image folder (class sub-folders) or WebDataset shards (labels from .cls / .json); its tokens are cached in
   * outDir. Data-parallel: each rank encodes its share and every rank gets all token maps (tokensFromImages).
   */
  data?: string;
  /** In-memory images: float32 [N, 3, H, W] in [-1, 1] and their class ids (encoded, not cached). */
  images?: { images: Tensor; labels: Tensor | number[] };
  /** Side the folder images are resized/cropped to (default: the tokenizer's ddconfig.resolution, else 256). */
  imageSize?: number;
  /** Called once the token data is ready (cached: read from the token cache instead of encoding). */
  onData?(info: { sequences: number; cached?: boolean; encoded?: number }): void;
  /** Peak learning rate (overrides the config's learning_rate). */
  lr?: number;
  /** Global gradient-norm clipping (default 1.0, as the official trainer; 0: off). */
  clip?: number;
  device?: string;
  /** Mixed precision of the forward pass: 'bfloat16' (CPU or CUDA) or 'float16' (CUDA). */
  autocast?: 'bfloat16' | 'float16';
  /** Held-out token maps for validation (`val/loss`). */
  valTokens?: TokenData;
  /**
   * Held-out images (class sub-folders, or an ImageNet root's val/), encoded by `tokenizer` and cached like
   * `data`. Default: the val/ split of a `data` folder when the YAML has data.init_args.validation or valEvery /
   * valEveryEpochs is given.
   */
  valData?: string;
}

export interface TrainTransformerResult extends TrainLoopResult {
  model: Transformer;
  /** The TensorBoard log folder (global rank 0, when a logger was on). */
  logDir?: string;
  /** The figures of every validation (`val/loss`), with the step after which it ran. */
  validations: { step: number; values: Record<string, number> }[];
  /** Loss of the last step (NaN when no step ran). */
  lastLoss: number;
}

type ConfigInput = ARTrainConfig | TransformerConfig | TransformerPreset | string;

function splitConfig(config: ConfigInput): { model: TransformerConfig | TransformerPreset | string; train: ARTrainingSettings; run?: RunSettings; raw?: unknown } {
  if (typeof config === 'string' && /\.ya?ml$/i.test(config)) {
    const c = readConfig(config);
    if (!c.transformer) throw new RangeError(`config: ${config} has no model.init_args.transformer_config.params`);
    return { model: c.transformer, train: c.arTraining ?? {}, run: c.run, raw: c.raw };
  }
  if (typeof config === 'object' && config !== null && 'transformer_config' in config) {
    const { transformer_config: tc, ...train } = config;
    return { model: ((tc as { params?: TransformerConfig }).params ?? tc) as TransformerConfig, train };
  }
  return { model: config as TransformerConfig | TransformerPreset | string, train: {} };
}

async function tokenData(
  opts: TrainTransformerOptions, dist: DistributedContext, blockSize: number, split: 'train' | 'val' = 'train',
): Promise<TokenData & { cached?: boolean; key?: string; encoded?: number }> {
  if (opts.tokens) return opts.tokens;
  const tok = opts.tokenizer;
  if (!tok || (typeof opts.data !== 'string' && !opts.images)) {
    throw new TypeError('tokens: expected { tokens, labels }, or a tokenizer with a data folder or in-memory images');
  }
  if (opts.images) return tokensFromTensor(tok, opts.images.images, opts.images.labels);
  const res = (tok as { config?: { ddconfig?: { resolution?: number } } }).config?.ddconfig?.resolution;
  const imageSize = checkInt(opts.imageSize ?? res ?? 256, 'imageSize', 1);
  // each image encoded once across the ranks (each its share, summed through the group); rank 0 writes the cache
  const group = dist.group;
  return tokensFromImages(tok, opts.data!, {
    cacheDir: opts.outDir, imageSize, writeCache: dist.isMain, tokensPerImage: blockSize, split,
    dist: group && { rank: dist.rank, worldSize: dist.worldSize, group },
  });
}

/**
 * Trains (or resumes) and returns the model. Writes outDir/log.jsonl (one JSON object per step), last.ckpt and
 * step=N.ckpt as TrainLoopOptions say. Resuming restores weights, AdamW moments, the data order and the generator
 * state, so a resumed run equals an uninterrupted one.
 * @throws RangeError when the token maps do not have block_size tokens, or the seed/batch size differ from the
 *   checkpoint being resumed; TrainingDivergedError (ERR_IBQ_NON_FINITE) naming the step and the last good
 *   checkpoint when the loss is not finite (nothing is saved for that step); ERR_IBQ_OUT_DIR_IN_USE /
 *   ERR_IBQ_NO_CHECKPOINT for the output folder
 */
export async function trainTransformer(config: ConfigInput, options: TrainTransformerOptions): Promise<TrainTransformerResult> {
  const { model: modelCfg, train, run, raw } = splitConfig(config);
  const clip = checkNumber(options?.clip ?? run?.gradientClipVal ?? 1.0, 'clip', 0);
  const peakLr = checkNumber(options?.lr ?? train.learning_rate ?? 1e-4, options?.lr !== undefined ? 'lr' : 'learning_rate', 0);
  const wd = checkNumber(train.weight_decay ?? 1e-2, 'weight_decay', 0);
  const autocast = checkAutocastDType(yamlAutocast(options?.autocast, run, options?.device), 'autocast', options?.device ?? 'cpu');
  const source = typeof config === 'string' ? config : 'the config';
  const r = await runTraining(options, { run, source, raw }, async ({ settings: s, dist, stepsPerEpoch, wantsValidation, warn }) => {
    const model = (await Transformer.createAsync(modelCfg, { seed: s.seed, device: dist.device })).train();
    const data = await tokenData(options, dist, model.config.block_size);
    const N = checkTokenData(data, model.config.block_size);
    options.onData?.({ sequences: N, cached: data.cached, encoded: data.encoded });
    const valDir = options.valData ?? (wantsValidation && typeof options.data === 'string' && existsSync(join(options.data, 'val')) ? options.data : undefined);
    const valTokens = options.valTokens ?? (valDir === undefined ? undefined : await tokenData({ ...options, data: valDir, images: undefined }, dist, model.config.block_size, 'val'));
    if (valTokens) checkTokenData(valTokens, model.config.block_size);
    else if (wantsValidation && dist.isMain) warn('validation: no held-out data (give valTokens / valData, --val-data, or a data folder with val/ beside train/); training without validation');
    const validation = valTokens && (await transformerValidation(model, valTokens));
    const perEpoch = stepsPerEpoch(N, true);
    const maxSteps = s.maxSteps ?? perEpoch * (s.maxEpochs ?? 1);
    const sched = {
      peakLr, wd, wdEnd: train.twde ?? 0, warmupIters: (train.wp ?? 0) * perEpoch, maxIters: maxSteps, wp0: train.wp0, wpe: train.wpe,
    };
    const bookkeeping: Record<string, unknown> = {
      seed: s.seed, batch_size: s.batchSize, max_steps: maxSteps, sequences: N, data_key: data.key ?? null, world_size: dist.worldSize,
      accumulate_grad_batches: s.accumulate,
    };
    const task = transformerTask(model, data, { clip, autocast, sched, train, bookkeeping, settings: { maxSteps, prefetch: Math.min(s.prefetch, 1) } });
    const tok = options.tokenizer as TokenDecoder | undefined;
    const classes = Array.from({ length: Math.min(4, model.config.class_num) }, (_, i) => i);
    return Object.assign(task, {
      validation,
      hparams: { ...train, transformer_config: model.config, ...bookkeeping },
      previewImages: tok && typeof tok.decode === 'function' ? async () => ({ 'samples/per_class': await sampleGrid(model, tok, classes, 2) }) : undefined,
    } satisfies Partial<RunTask<Batch>> & { validation?: ValidationSource });
  });
  return {
    globalStep: r.globalStep, epoch: r.epoch, stopped: r.stopped, lastCheckpoint: r.lastCheckpoint, logPath: r.logPath, model: r.task.model,
    lastLoss: r.task.lastLoss, logDir: r.logDir, validations: r.validations,
  };
}

/** The number of sequences N of `data`, after checking the shapes: tokens int64 [N, blockSize], labels [N]. */
function checkTokenData(data: TokenData, blockSize: number): number {
  const [N, T] = data.tokens.shape as [number, number];
  if (data.tokens.shape.length !== 2 || data.tokens.dtype !== 'int64') throw new RangeError(`tokens.tokens: expected int64 [N, ${blockSize}], got ${data.tokens.dtype} [${data.tokens.shape}]`);
  if (T !== blockSize) throw new RangeError(`tokens: ${T} tokens per image (the tokenizer's h x w), but the transformer's block_size is ${blockSize}`);
  if (data.labels.shape.join() !== String(N)) throw new RangeError(`tokens.labels: expected int64 [${N}], got [${data.labels.shape}]`);
  return N;
}

type Batch = { tokens: Tensor; labels: Tensor };
type TransformerTask = RunTask<Batch> & { model: Transformer; readonly lastLoss: number };

/** The loop's task: batches gathered from the token data, one native step each, Lightning-shaped checkpoints. */
function transformerTask(
  model: Transformer,
  data: TokenData & { key?: string },
  o: {
    clip: number; autocast: ReturnType<typeof checkAutocastDType>; sched: Parameters<typeof lrWdAnnealing>[1];
    train: ARTrainingSettings; bookkeeping: Record<string, unknown>; settings: RunTask<Batch>['settings'];
  },
): TransformerTask {
  // the caller's tensors (the same memory, not copies): batches are gathered from them on a worker thread
  const allTokens = data.tokens.to(data.tokens.device);
  const allLabels = data.labels.to(data.labels.device);
  let lastLoss = NaN;
  let lr = o.sched.peakLr;
  let wdNow = o.sched.wd;
  return {
    model,
    get lastLoss() {
      return lastLoss;
    },
    settings: o.settings,
    length: allTokens.shape[0]!,
    dropLast: true,
    async load(indices) {
      const [tokens, labels] = await Promise.all([selectRows(allTokens, indices), selectRows(allLabels, indices)]);
      return { tokens, labels };
    },
    release: (b) => {
      b.tokens.dispose();
      b.labels.dispose();
    },
    size: (b) => b.labels.shape[0]!,
    async step(b, step, info) {
      ({ lr, wd: wdNow } = lrWdAnnealing(step, o.sched));
      const r = await model.trainStep(b.tokens, b.labels, { lr, weightDecay: wdNow, clip: o.clip, autocast: o.autocast, accumulate: info.accumulate, microBatch: info.microBatch });
      const log = { loss: r.loss, grad_norm: r.gradNorm, wd: wdNow };
      if (!Number.isFinite(r.loss) || !Number.isFinite(r.gradNorm)) {
        return { log, lr, nonFinite: { what: `loss (loss ${r.loss}, gradient norm ${r.gradNorm})`, ranks: r.nonfiniteRanks } };
      }
      lastLoss = r.loss;
      // LearningRateMonitor's names: one AdamW, two parameter groups (weight decay on, off)
      return { log, lr, lrGroups: { 'lr-AdamW/pg1': lr, 'lr-AdamW/pg2': lr } };
    },
    save: (path, at) =>
      saveTrainState(path, model, {
        ...at, lr, weightDecay: wdNow, hyperParameters: { ...o.train, ...(data.classes ? { class_names: data.classes } : {}) }, train: o.bookkeeping,
      }),
    async restore(path) {
      const r = await loadTrainState(path, model);
      for (const k of ['seed', 'batch_size'] as const) {
        if (r.train[k] !== o.bookkeeping[k]) throw new RangeError(`resume: ${path} was trained with ${k} ${r.train[k]}, this run has ${o.bookkeeping[k]}`);
      }
      return { globalStep: r.globalStep, meta: r.meta };
    },
    attach: (group) => model.setDataParallel(group),
    dispose: () => {
      allTokens.dispose();
      allLabels.dispose();
    },
  };
}
