/**
 * The one entry to a training run, for trainTokenizer and trainTransformer alike. runTraining owns everything
 * around the steps, in this order: the options (the YAML's batch size and epochs filled in, then checked once),
 * the distributed context (joined here; a process group joined here is also destroyed here), the output folder,
 * the model-specific task (built by the caller's `setup` once the run knows its rank, device and settings), the
 * shared loop (lib/train/loop.ts), and the teardown (the task's resources released, the trainer detached from a
 * group the run created, that group destroyed), whether the run ends, is aborted or fails. A rank that fails,
 * also while setting up, tells the others why (DistributedContext.fail).
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import type { CheckpointCallbackSettings, TensorBoardSettings } from '../config/lightning.js';
import type { RunSettings } from '../config/read_config.js';
import { checkInt, describe, IbqError } from '../core/errors.js';
import { distributedContext, type DistributedContext } from '../distributed/context.js';
import { ProcessGroup } from '../distributed/process_group.js';
import {
  LAST_CHECKPOINT, LOG_FILE, loopSettings, loopStepsPerEpoch, runTrainingLoop, STEP_FILE,
  type LoopSettings, type LoopTask, type TrainLoopOptions, type TrainLoopResult,
} from './loop.js';
import { runHooks, type HookedTask, type RunExtras } from './callbacks/run_hooks.js';
import { notAppliedWarning } from './yaml_fields.js';

/**
 * What a run does around its steps; each option defaults to the YAML's Lightning setting (lib/config/lightning.ts).
 */
export interface RunExtrasOptions {
  /** Validate every n updates (CLI --val-every; YAML trainer.val_check_interval as an integer). */
  valEvery?: number;
  /** Validate at the end of every n-th epoch (YAML trainer.check_val_every_n_epoch; default 1). */
  valEveryEpochs?: number;
  /** Validation batches per rank before training (-1: all, 0: none; YAML trainer.num_sanity_val_steps; default 2, Lightning's). */
  numSanityValSteps?: number;
  /** Validation batches per rank (YAML trainer.limit_val_batches as an integer; default: all). */
  limitValBatches?: number;
  /** Validation samples per batch and rank (default batchSize). */
  valBatchSize?: number;
  /**
   * TensorBoard event files (global rank 0): 'tensorboard' (CLI --logger tensorboard) writes them to
   * `<outDir>/lightning_logs/version_N`; an object names the folder as Lightning's TensorBoardLogger; false: none.
   * Default: the YAML's trainer.logger when it is a TensorBoardLogger.
   */
  logger?: 'tensorboard' | false | TensorBoardSettings;
  /** Lightning ModelCheckpoint callbacks (default: those of the YAML's trainer.callbacks). */
  checkpointCallbacks?: CheckpointCallbackSettings[];
  /** Log the learning rate of every parameter group (default: a LearningRateMonitor in the YAML). */
  lrMonitor?: boolean;
  /** TensorBoard scalars every n steps (default: trainer.log_every_n_steps, else 1). */
  logEveryNSteps?: number;
  /** Receives the run's warnings (global rank 0; default: process.emitWarning). */
  onWarning?(message: string): void;
}

/** TrainLoopOptions whose batchSize may come from the config, plus the device every trainer takes. */
export type TrainOptionsFromConfig = Omit<TrainLoopOptions, 'batchSize'> & RunExtrasOptions & { batchSize?: number; device?: string; autocast?: 'bfloat16' | 'float16' };

/** What a model's `setup` knows about the run. */
export interface RunContext {
  /** The checked options. */
  settings: LoopSettings;
  dist: DistributedContext;
  /** Optimizer updates per epoch of `n` samples for this rank (`dropLast`: leave out an incomplete last micro-batch). */
  stepsPerEpoch(n: number, dropLast?: boolean): number;
  /** The YAML asks for validation (data.init_args.validation) or the options do (valEvery / valEveryEpochs). */
  wantsValidation: boolean;
  /** The run's warnings (onWarning, else process.emitWarning). */
  warn(message: string): void;
}

/** The model-specific part of a run: the loop's task, and what the run should change or release. */
export interface RunTask<B> extends LoopTask<B>, HookedTask {
  /** Settings this model decides (e.g. maxSteps from its epochs, a smaller prefetch). */
  readonly settings?: Partial<LoopSettings>;
  /** Releases what the task holds (datasets, token tensors); called once, after the loop or a failed setup. */
  dispose?(): void;
}

/** Where the YAML's run settings come from, for withRunDefaults' message. */
export interface RunSource {
  run?: RunSettings;
  /** Names the config in errors (a YAML path, or 'the config'). */
  source: string;
  /** The parsed YAML (readConfig's raw), for the warning naming the fields not applied. */
  raw?: unknown;
}

/**
 * `opts` with batchSize and maxEpochs filled in from `run` (the YAML's data.init_args.batch_size and
 * trainer.max_epochs; undefined for a preset or a config object): maxEpochs only when neither maxSteps nor
 * maxEpochs is given. `source` names the config in the error.
 * @throws TypeError naming batchSize when neither the options nor the YAML give one
 */
export function withRunDefaults<T extends TrainOptionsFromConfig>(opts: T, run: RunSettings | undefined, source: string): T & { batchSize: number } {
  if (!opts || typeof opts !== 'object') return opts as T & { batchSize: number }; // loopSettings names the problem
  const batchSize = opts.batchSize ?? run?.batchSize;
  if (batchSize === undefined) {
    throw new TypeError(`batchSize: expected an integer >= 1 (${source} has no data.init_args.batch_size to default to)`);
  }
  const l = run?.lightning;
  const noLength = opts.maxSteps === undefined && opts.maxEpochs === undefined;
  const maxSteps = opts.maxSteps ?? (noLength ? l?.maxSteps : undefined);
  const maxEpochs = opts.maxEpochs ?? (opts.maxSteps === undefined ? run?.maxEpochs : undefined);
  return {
    ...opts, batchSize, maxEpochs, maxSteps,
    seed: opts.seed ?? l?.seed,
    resume: opts.resume ?? l?.ckptPath,
    accumulateGradBatches: opts.accumulateGradBatches ?? l?.accumulateGradBatches,
  };
}

/** The run's extras: the options, else the YAML's Lightning settings. */
export function runExtras(opts: RunExtrasOptions & { batchSize: number; outDir: string }, run: RunSettings | undefined): RunExtras & { wantsValidation: boolean } {
  const l = run?.lightning;
  const int = (v: number | undefined, name: string, min: number) => (v === undefined ? undefined : checkInt(v, name, min));
  const valEvery = int(opts.valEvery, 'valEvery', 1) ?? l?.valEverySteps;
  const valEveryEpochs = int(opts.valEveryEpochs, 'valEveryEpochs', 1) ?? l?.checkValEveryNEpoch;
  const logger = opts.logger;
  if (logger !== undefined && logger !== false && logger !== 'tensorboard' && (typeof logger !== 'object' || logger === null || typeof logger.saveDir !== 'string')) {
    throw new TypeError(`logger: expected 'tensorboard', false or { saveDir, name, version }, got ${describe(logger)}`);
  }
  const tensorboard = logger === 'tensorboard' ? (l?.tensorboard ?? { saveDir: opts.outDir, name: 'lightning_logs' }) : logger === false ? undefined : (logger ?? l?.tensorboard);
  return {
    wantsValidation: (l?.validation ?? false) || opts.valEvery !== undefined || opts.valEveryEpochs !== undefined,
    validation: {
      everySteps: valEvery,
      everyNEpochs: valEveryEpochs ?? 1,
      sanityBatches: int(opts.numSanityValSteps, 'numSanityValSteps', -1) ?? l?.numSanityValSteps ?? 2,
      limitBatches: int(opts.limitValBatches, 'limitValBatches', 0) ?? l?.limitValBatches,
      batchSize: int(opts.valBatchSize, 'valBatchSize', 1) ?? opts.batchSize,
    },
    checkpoints: opts.checkpointCallbacks ?? l?.checkpoints ?? [],
    lrMonitor: opts.lrMonitor ?? l?.lrMonitor ?? false,
    tensorboard,
    logEveryNSteps: int(opts.logEveryNSteps, 'logEveryNSteps', 1) ?? l?.logEveryNSteps ?? 1,
  };
}

/**
 * The autocast of a run: the option, else the YAML's trainer.precision where the device has it (float16 needs
 * CUDA: on the CPU the run trains in float32).
 */
export function yamlAutocast(option: 'bfloat16' | 'float16' | undefined, run: RunSettings | undefined, device: string | undefined): 'bfloat16' | 'float16' | undefined {
  if (option !== undefined) return option;
  if (run?.autocast === 'float16') return (device ?? 'cpu').startsWith('cuda') ? 'float16' : undefined;
  return run?.autocast;
}

/** The launched world: processes in all and on this node (LOCAL_WORLD_SIZE of the torchrun environment). */
function launchedWorld(worldSize: number): { worldSize: number; localWorldSize: number } {
  const local = Number(process.env.LOCAL_WORLD_SIZE);
  return { worldSize, localWorldSize: Number.isInteger(local) && local >= 1 ? local : worldSize };
}

/**
 * Makes `outDir` ready before anything is trained: refuses a folder holding another run unless resuming or
 * overwriting (then the old run's files are removed), and checks that the resume checkpoint exists. Ranks other
 * than 0 (`isMain` false) only check the checkpoint.
 * @throws IbqError ERR_IBQ_NO_CHECKPOINT (resume file missing), ERR_IBQ_OUT_DIR_IN_USE (another run's files)
 */
export function prepareOutDir(s: LoopSettings, isMain = true): void {
  if (s.resume !== undefined && !existsSync(s.resume)) {
    throw new IbqError('ERR_IBQ_NO_CHECKPOINT', `resume: there is no checkpoint to resume from at ${s.resume}`);
  }
  if (!isMain) return;
  const files = existsSync(s.outDir) ? readdirSync(s.outDir).filter((f) => f === LAST_CHECKPOINT || f === LOG_FILE || STEP_FILE.test(f)) : [];
  if (files.length > 0 && s.resume === undefined) {
    if (!s.overwrite) {
      throw new IbqError('ERR_IBQ_OUT_DIR_IN_USE',
        `outDir: ${s.outDir} already holds a training run (${files.slice(0, 3).join(', ')}${files.length > 3 ? ', ...' : ''}); ` +
        'continue it with resume (CLI --resume), or start afresh in a new outDir (--out) or with overwrite: true (--overwrite)');
    }
    for (const f of files) rmSync(join(s.outDir, f), { force: true });
  }
  mkdirSync(s.outDir, { recursive: true });
}

/**
 * Runs one training run: settings -> distributed context -> output folder -> setup(context) -> loop -> teardown.
 * Resolves with the loop's result and the task (so the caller can return its models).
 * @throws what loopSettings, withRunDefaults, prepareOutDir, setup and the loop throw (the loop's errors are
 *   listed in TrainLoopOptions / runTrainingLoop); the teardown runs first
 */
export async function runTraining<B, T extends RunTask<B>>(
  options: TrainOptionsFromConfig,
  from: RunSource,
  setup: (ctx: RunContext) => Promise<T>,
): Promise<TrainLoopResult & { task: T; logDir?: string; validations: { step: number; values: Record<string, number> }[] }> {
  const opts = withRunDefaults(options, from.run, from.source);
  const settings = loopSettings(opts);
  const extras = runExtras(opts, from.run);
  const warn = opts.onWarning ?? ((m: string) => process.emitWarning(m, { code: 'IBQ_RUN' }));
  const dist = await distributedContext(opts.distributed, opts.device);
  // a group the caller passed stays theirs; one joined here (options or the torchrun environment) ends with the run
  const owned = dist.group !== undefined && !(opts.distributed instanceof ProcessGroup);
  let task: T | undefined;
  let hooks: ReturnType<typeof runHooks> | undefined;
  let ok = false;
  try {
    prepareOutDir(settings, dist.isMain);
    if (dist.isMain && from.raw !== undefined) {
      const fp16 = from.run?.autocast === 'float16' && opts.autocast === undefined && !(opts.device ?? 'cpu').startsWith('cuda');
      const extra = fp16 ? [{ path: 'trainer.precision', instead: `${from.run!.precision}: float16 autocast needs CUDA; float32 on the CPU (autocast 'bfloat16', --autocast bfloat16)` }] : [];
      const w = notAppliedWarning(from.raw, from.run, launchedWorld(dist.worldSize), extra);
      if (w) warn(w);
    }
    task = await setup({
      settings, dist, warn, wantsValidation: extras.wantsValidation, stepsPerEpoch: (n, dropLast = false) => loopStepsPerEpoch(n, settings, dist, dropLast),
    });
    hooks = runHooks({ outDir: settings.outDir, dist, extras, task, warn });
    const r = await runTrainingLoop(task, { ...settings, ...task.settings }, { signal: opts.signal, onStep: opts.onStep, dist, hooks });
    ok = true;
    return { ...r, task, logDir: hooks.logDir, validations: hooks.validations };
  } catch (err) {
    dist.fail(err);
    throw err;
  } finally {
    await hooks?.close();
    task?.validation?.dispose?.();
    task?.dispose?.();
    if (owned) {
      // after a success every rank waits for the others (rank 0's last checkpoint written) before the group goes;
      // detaching is local. After a failure a peer may be gone: no barrier, and the trainer keeps its reference
      // until it is disposed.
      try {
        if (ok) {
          await dist.group!.barrier();
          await task?.attach?.(null);
        }
      } finally {
        dist.group!.destroy();
      }
    }
  }
}
