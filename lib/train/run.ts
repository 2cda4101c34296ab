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

import type { RunSettings } from '../config/read_config.js';
import { IbqError } from '../core/errors.js';
import { distributedContext, type DistributedContext } from '../distributed/context.js';
import { ProcessGroup } from '../distributed/process_group.js';
import {
  LAST_CHECKPOINT, LOG_FILE, loopSettings, loopStepsPerEpoch, runTrainingLoop, STEP_FILE,
  type LoopSettings, type LoopTask, type TrainLoopOptions, type TrainLoopResult,
} from './loop.js';

/** TrainLoopOptions whose batchSize may come from the config, plus the device every trainer takes. */
export type TrainOptionsFromConfig = Omit<TrainLoopOptions, 'batchSize'> & { batchSize?: number; device?: string };

/** What a model's `setup` knows about the run. */
export interface RunContext {
  /** The checked options. */
  settings: LoopSettings;
  dist: DistributedContext;
  /** Optimizer updates per epoch of `n` samples for this rank (`dropLast`: leave out an incomplete last micro-batch). */
  stepsPerEpoch(n: number, dropLast?: boolean): number;
}

/** The model-specific part of a run: the loop's task, and what the run should change or release. */
export interface RunTask<B> extends LoopTask<B> {
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
  const maxEpochs = opts.maxEpochs ?? (opts.maxSteps === undefined ? run?.maxEpochs : undefined);
  return { ...opts, batchSize, maxEpochs };
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
): Promise<TrainLoopResult & { task: T }> {
  const opts = withRunDefaults(options, from.run, from.source);
  const settings = loopSettings(opts);
  const dist = await distributedContext(opts.distributed, opts.device);
  // a group the caller passed stays theirs; one joined here (options or the torchrun environment) ends with the run
  const owned = dist.group !== undefined && !(opts.distributed instanceof ProcessGroup);
  let task: T | undefined;
  let ok = false;
  try {
    prepareOutDir(settings, dist.isMain);
    task = await setup({ settings, dist, stepsPerEpoch: (n, dropLast = false) => loopStepsPerEpoch(n, settings, dist, dropLast) });
    const r = await runTrainingLoop(task, { ...settings, ...task.settings }, { signal: opts.signal, onStep: opts.onStep, dist });
    ok = true;
    return { ...r, task };
  } catch (err) {
    dist.fail(err);
    throw err;
  } finally {
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
