/**
 * trainTokenizer: the official IBQ tokenizer training run (configs/IBQ/gpu/imagenet_ibqgan_*.yaml: IBQ model,
 * VQLPIPSWithDiscriminator, Lightning manual optimisation) on the shared training loop (lib/train/loop.ts:
 * steps, epochs, checkpoints, resume, abort, log). Batches are decoded with sharp while the native step runs.
 */

import { presetOrYaml, readConfig, type IBQConfig, type RunSettings } from '../config/read_config.js';
import { makeDataset, openDataset, type TokenizerDataInput, type TrainDataset } from '../data/tokenizer_data.js';
import type { BadImageOptions } from '../data/bad_images.js';
import { checkInt, checkNumber, describe, TrainingDivergedError } from '../core/errors.js';
import { loadCheckpoint } from '../io/index.js';
import type { Tensor } from '../core/tensor.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { resolveTokenizerConfig, tokenizerPreset, TOKENIZER_PRESETS, type ResolvedTokenizerConfig, type TokenizerPreset } from '../tokenizer/config.js';
import {
  TokenizerTrainer, trainerOptionsFromConfig, type PerceptualSource, type TokenizerTrainerOptions,
} from '../tokenizer/trainer.js';
import { checkField } from '../config/fields.js';
import { TOKENIZER_TRAINER_FIELDS, type TokenizerTrainerFields } from '../tokenizer/training_fields.js';
import { resolveLossConfig, type ResolvedLossConfig } from '../tokenizer/trainer_state.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { plannedSteps, type LoopSettings, type TrainLoopResult } from './loop.js';
import { reconstructionGrid } from './previews.js';
import { runTraining, yamlAutocast, type RunTask, type TrainOptionsFromConfig } from './run.js';
import { tokenizerValidation, type ValidationSource } from './validation.js';

/** The official `model.init_args` of a tokenizer YAML (architecture, lossconfig and optimisation settings). */
export interface TokenizerTrainConfig {
  ddconfig: object;
  lossconfig: { params?: object } | object;
  n_embed: number;
  embed_dim: number;
  learning_rate?: TokenizerTrainerFields['learning_rate'];
  scheduler_type?: TokenizerTrainerFields['scheduler_type'];
  warmup_epochs?: number;
  min_learning_rate?: TokenizerTrainerFields['min_learning_rate'];
  gradient_clip_val?: TokenizerTrainerFields['gradient_clip_val'];
  use_ema?: TokenizerTrainerFields['use_ema'];
  lr_drop_epoch?: TokenizerTrainerFields['lr_drop_epoch'] | null;
  lr_drop_rate?: TokenizerTrainerFields['lr_drop_rate'];
  [k: string]: unknown;
}

/**
 * batchSize and maxEpochs default to the YAML's data.init_args.batch_size and trainer.max_epochs when the config
 * is a YAML path or a readConfig() result (a preset or an init_args object has none: then batchSize is required).
 */
export interface TrainTokenizerOptions extends TrainOptionsFromConfig, BadImageOptions {
  /**
   * Training images: a folder (ImageNet layout, class folders or flat), a filelist, WebDataset tar shards
   * ('shards/train-{000000..000127}.tar': brace ranges and lists, globs; streamed, lib/data/webdataset.ts), a Tensor
   * or { length, batch }.
   */
  data: TokenizerDataInput;
  /** WebDataset shards: samples in each rank's shuffle buffer (default 1000; 0: the shard order alone is shuffled). */
  shuffleBuffer?: number;
  /**
   * Decode worker threads per process (default 0: decoding on libuv's pool, driven from the main thread). The batches
   * they prepare ahead are bounded by `prefetch`; log.jsonl's `data_wait_ms` says whether input keeps up.
   */
  numWorkers?: number;
  /** LPIPS weights when perceptual_weight > 0 and no resume checkpoint provides them. */
  perceptual?: PerceptualSource;
  /** Image side (default ddconfig.resolution). */
  imageSize?: number;
  device?: string;
  autocast?: 'bfloat16' | 'float16';
  /** Base learning rate (overrides the config's learning_rate). */
  lr?: number;
  /** Start from these weights (tokenizer keys; loss.* and model_ema.* too when present). */
  init?: string;
  /**
   * Validation images (as `data`; centre crops at imageSize). Default: the val/ split beside train/ of a `data`
   * folder when the YAML has a data.init_args.validation section or valEvery / valEveryEpochs is given.
   */
  valData?: TokenizerDataInput;
}

export interface TrainTokenizerResult extends TrainLoopResult {
  /** The TensorBoard log folder (global rank 0, when a logger was on). */
  logDir?: string;
  /** The figures of every validation (lib/train/validation.ts), with the step after which it ran. */
  validations: { step: number; values: Record<string, number> }[];
  tokenizer: Tokenizer;
  trainer: TokenizerTrainer;
  /** Files skipped because they could not be decoded. */
  skipped: number;
}

type TokenizerConfigInput = string | IBQConfig | TokenizerTrainConfig;

/** The official init_args of `config` (a YAML path, a preset name, a readConfig() result or init_args) and the YAML's run settings. */
function initArgs(config: TokenizerConfigInput): { args: TokenizerTrainConfig; run?: RunSettings; raw?: unknown } {
  if (typeof config === 'string' && presetOrYaml(config, TOKENIZER_PRESETS, 'config') === 'preset') {
    return { args: tokenizerPreset(config as TokenizerPreset) as TokenizerTrainConfig };
  }
  const c = typeof config === 'string' ? readConfig(config) : config;
  if (c && typeof c === 'object' && 'raw' in c && 'path' in c) {
    const args = ((c as IBQConfig).raw as { model?: { init_args?: unknown } }).model?.init_args;
    if (!args || typeof args !== 'object' || !('lossconfig' in args)) {
      throw new RangeError(`${(c as IBQConfig).path}: model.init_args holds no tokenizer lossconfig`);
    }
    return { args: args as TokenizerTrainConfig, run: (c as IBQConfig).run, raw: (c as IBQConfig).raw };
  }
  if (!c || typeof c !== 'object' || !('ddconfig' in c)) {
    throw new TypeError(`config: expected a YAML path, a preset name, a readConfig() result or the official init_args, got ${describe(config)}`);
  }
  return { args: c as TokenizerTrainConfig };
}

/**
 * Trains a tokenizer from an official config. Resolves when maxSteps (or maxEpochs) are done or the signal
 * fired (then last.ckpt holds the state). Throws TypeError/RangeError naming a bad option,
 * TrainingDivergedError (ERR_IBQ_NON_FINITE) naming the step and the last good checkpoint on a non-finite loss,
 * ERR_IBQ_OUT_DIR_IN_USE / ERR_IBQ_NO_CHECKPOINT for the output folder (see TrainLoopOptions), and the LPIPS help
 * message when perceptual weights are missing.
 */
export async function trainTokenizer(config: TokenizerConfigInput, options: TrainTokenizerOptions): Promise<TrainTokenizerResult> {
  const { args, run, raw } = initArgs(config);
  const tokCfg: ResolvedTokenizerConfig = resolveTokenizerConfig(args, 'config');
  const loss: ResolvedLossConfig = resolveLossConfig(args.lossconfig, 'config.lossconfig');
  const source = typeof config === 'string' ? config : (config as IBQConfig)?.path ?? 'the config';
  const r = await runTraining(options, { run, source, raw }, async ({ settings: s, dist, stepsPerEpoch, wantsValidation, warn }) => {
    const size = checkInt(options.imageSize ?? tokCfg.ddconfig.resolution, 'imageSize', 1);
    // random crops are drawn from (seed, epoch, sample index): reproducible, and the same whichever rank reads a sample
    const group = dist.group;
    const data = await openDataset(options.data, {
      size, train: true, seed: s.seed, shuffleBuffer: options.shuffleBuffer, maxBadImages: options.maxBadImages, onBadImage: options.onBadImage,
      numWorkers: options.numWorkers ?? run?.lightning?.numWorkers,
      shard: { rank: dist.rank, worldSize: dist.worldSize, trim: s.shardPadding === 'trim' }, sum: group && ((v) => group.sum(v)),
    });
    const valInput = options.valData ?? (wantsValidation && typeof options.data === 'string' && existsSync(join(options.data, 'val')) ? options.data : undefined);
    if (wantsValidation && valInput === undefined && dist.isMain) {
      warn('validation: no validation images (give valData / --val-data, or a data folder with val/ beside train/); training without validation');
    }
    const valSize = checkInt(options.imageSize ?? run?.lightning?.valImageSize ?? size, 'imageSize', 1);
    const val = valInput === undefined ? undefined : makeDataset(valInput, { size: valSize, train: false, seed: s.seed, split: 'val' });
    try {
      return await tokenizerTask(args, tokCfg, loss, options, data, { s, device: dist.device, perEpoch: stepsPerEpoch(data.length), val, yaml: run });
    } catch (err) {
      data.dispose?.();
      val?.dispose?.();
      throw err;
    }
  });
  const { tokenizer, trainer, data } = r.task;
  return {
    globalStep: r.globalStep, epoch: r.epoch, stopped: r.stopped, lastCheckpoint: r.lastCheckpoint, logPath: r.logPath, tokenizer, trainer,
    skipped: data.skipped, logDir: r.logDir, validations: r.validations,
  };
}

type TokenizerTask = RunTask<Tensor> & { tokenizer: Tokenizer; trainer: TokenizerTrainer; data: TrainDataset };

/** The tokenizer, its trainer (from the config's settings) and the loop's task over `data`. */
async function tokenizerTask(
  args: TokenizerTrainConfig, tokCfg: ResolvedTokenizerConfig, loss: ResolvedLossConfig, opts: TrainTokenizerOptions, data: TrainDataset,
  run: { s: LoopSettings; device: string | undefined; perEpoch: number; val?: TrainDataset; yaml?: RunSettings },
): Promise<TokenizerTask> {
  const { s, perEpoch } = run;
  const tokenizer = await Tokenizer.createAsync(tokCfg, { seed: s.seed, device: run.device });
  // the config's settings (absent ones: the declared defaults), lr overriding learning_rate
  const fromConfig = trainerOptionsFromConfig(args, 'config');
  const topts: TokenizerTrainerOptions = {
    ...fromConfig,
    learningRate: opts.lr === undefined ? fromConfig.learningRate : (checkField(TOKENIZER_TRAINER_FIELDS.learning_rate, opts.lr, 'lr') as number),
    warmupSteps: Math.round(checkNumber(args.warmup_epochs ?? 0, 'config.warmup_epochs', 0) * perEpoch),
    // the official schedules run over max_epochs (maxEpochs when given, also with maxSteps, as Lightning's trainer)
    totalSteps: (s.maxEpochs ?? Math.ceil(plannedSteps(s, perEpoch) / perEpoch)) * perEpoch,
    autocast: yamlAutocast(opts.autocast, run.yaml, run.device),
    gradientClipVal: fromConfig.gradientClipVal ?? run.yaml?.gradientClipVal ?? undefined,
    seed: s.seed,
  };
  const trainer = await TokenizerTrainer.createAsync(tokenizer, loss, topts);
  if (opts.init) {
    const ck = await loadCheckpoint(opts.init);
    await trainer.loadStateDict(ck.stateDict, { strict: false });
  }
  if (s.resume === undefined && opts.perceptual !== undefined) await trainer.loadPerceptual(opts.perceptual);

  const hyper = { config: { model: { class_path: 'src.IBQ.models.ibqgan.IBQ', init_args: args } }, seed: s.seed, batch_size: s.batchSize };
  const val = run.val;
  const validation: ValidationSource | undefined = val && tokenizerValidation(
    tokenizer, { length: val.length, load: (i) => val.load(i, 0), dispose: () => val.dispose?.() },
    () => (trainer.perceptualLoaded ? (a, b) => trainer.lpips(a, b) : undefined),
  );
  // the fixed batch of the TensorBoard reconstructions: the first validation images
  const previewIndices = val ? Array.from({ length: Math.min(8, val.length) }, (_, i) => i) : [];
  return {
    tokenizer,
    trainer,
    data,
    validation,
    hparams: { ...hyper, accumulate_grad_batches: s.accumulate, max_epochs: s.maxEpochs ?? null, max_steps: s.maxSteps ?? null },
    previewImages: val ? async () => {
      const x = await val.load(previewIndices, 0);
      try {
        return {
          'val/reconstructions': await reconstructionGrid(x, async (im) => {
            const out = await tokenizer.forward(im);
            for (const [k, t] of Object.entries(out)) if (k !== 'xrec') (t as Tensor | undefined)?.dispose?.();
            return out.xrec;
          }),
        };
      } finally {
        x.dispose();
      }
    } : undefined,
    length: data.length,
    streamed: data.streamed,
    streamState: data.state && (() => ({ ...data.state!() })),
    load: (indices, epoch) => data.load(indices, epoch),
    release: (x) => x.dispose(),
    size: (x) => x.shape[0]!,
    async step(x, step, info) {
      const r = await trainer.step(x, { globalStep: step, accumulate: info.accumulate, microBatch: info.microBatch }).then(
        (log) => ({ log, nonFinite: undefined as { what: string; ranks: number[] } | undefined }),
        (err) => {
          if (err instanceof TrainingDivergedError) return { log: err.log, nonFinite: { what: err.what, ranks: err.ranks } };
          throw err;
        },
      );
      const [g, d] = trainer.learningRates();
      // LearningRateMonitor's names for two Adam optimizers of one parameter group each
      return { ...r, lr: g, lrGroups: { 'lr-Adam': g, 'lr-Adam-1': d } };
    },
    endEpoch: (epoch) => trainer.endEpoch(epoch),
    save: (path, at) => trainer.save(path, { ...at, extra: { hparams_name: 'kwargs', hyper_parameters: hyper, ...at.meta } }),
    async restore(path) {
      const ck = await loadCheckpoint(path);
      const { globalStep } = await trainer.restore(ck, path);
      if (opts.perceptual !== undefined && !trainer.perceptualLoaded) await trainer.loadPerceptual(opts.perceptual);
      return { globalStep, meta: ck.meta as Record<string, unknown> };
    },
    attach: (group) => trainer.setDataParallel(group),
    extraLog: () => ({ skipped: data.skipped }),
    dispose: () => data.dispose?.(),
  };
}
