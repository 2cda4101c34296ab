/**
 * The one training loop of ibq-native, shared by trainTokenizer and trainTransformer: steps and epochs over a
 * seeded per-epoch shuffle (lib/train/sampler.ts), batches prepared ahead of the running native step,
 * checkpoints (`last.ckpt`, and `step=<8 digits>.ckpt` every `checkpointEvery` steps, all written atomically),
 * resume, abort (AbortSignal: the state is saved to last.ckpt and the run returns), a stop on a non-finite loss
 * (nothing is saved for that step; the error names the step and the last good checkpoint), one JSON line per
 * step in `<outDir>/log.jsonl`, and the same result for every model.
 *
 * Steps are numbered as the official Lightning `global_step`: step s (0-based) is the s-th optimizer update,
 * and a checkpoint taken after it records global_step s + 1.
 *
 * Data parallelism (`distributed`, or the torchrun environment): every rank runs this loop on its shard of each
 * epoch (lib/train/sampler.ts) with `batchSize` samples per micro-batch; the trainers average gradients and
 * logged values over the ranks; global rank 0 alone writes checkpoints, the log and progress; all ranks agree
 * on stopping (abort) at the same step; a rank that fails tells the others why. Checkpoints record the data
 * position in samples, so a run resumes with any world size, batch size or accumulation.
 */
import { existsSync } from 'node:fs';
import { appendFile, copyFile, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { checkInt, checkSignal, describe, TrainingDivergedError } from '../core/errors.js';
import type { DistributedContext, DistributedOption } from '../distributed/context.js';
import type { ProcessGroup } from '../distributed/process_group.js';
import { BatchPlan, epochPlan, samplesPerRank, type DataPosition } from './sampler.js';

/** Options every training run takes (trainTokenizer and trainTransformer add their own). */
export interface TrainLoopOptions {
  /** Output folder: log.jsonl, last.ckpt, step=N.ckpt (created when missing). */
  outDir: string;
  /** Stop after this many steps in all (global_step), counting the steps of a resumed run. */
  maxSteps?: number;
  /** Stop after this many epochs (without maxSteps; default 1). */
  maxEpochs?: number;
  /** Samples per step (per process). */
  batchSize: number;
  /** Seeds the initialisation, the data order and the augmentation (default 0). */
  seed?: number;
  /**
   * Continue a run: `true` reads `<outDir>/last.ckpt`, a string names the checkpoint. Weights, optimizer and
   * scheduler state, data position and random state are restored, so a resumed run equals an uninterrupted one.
   * An error with code ERR_IBQ_NO_CHECKPOINT when the file does not exist.
   */
  resume?: boolean | string;
  /**
   * Start afresh in an `outDir` that holds another run (its last.ckpt, step=*.ckpt and log.jsonl are removed
   * first). Without it (and without `resume`) such a folder is an error with code ERR_IBQ_OUT_DIR_IN_USE.
   */
  overwrite?: boolean;
  /** Write step=N.ckpt and refresh last.ckpt every this many steps (default 1000; 0: only at the end / on abort). */
  checkpointEvery?: number;
  /** Batches prepared ahead of the running step (default 2). */
  prefetch?: number;
  /** Aborting saves last.ckpt after the running step and resolves with stopped 'aborted'. */
  signal?: AbortSignal;
  /** Called after every step (on the JS thread, between native steps; on global rank 0 only). */
  onStep?(s: TrainStepInfo): void;
  /**
   * Micro-batches of batchSize per optimizer update, their gradients summed (Lightning's accumulate_grad_batches;
   * default 1). The update sees batchSize x accumulateGradBatches (x world size) samples. An epoch's last update
   * takes the samples left (fewer micro-batches or a smaller last one), each micro-batch's mean loss divided by
   * accumulateGradBatches as in every update, as Lightning weighs it.
   */
  accumulateGradBatches?: number;
  /**
   * Data-parallel training. Default (undefined or true): join the process group of the torchrun environment
   * when WORLD_SIZE > 1 (`ibq launch` sets it), else one process; false: one process; a ProcessGroup, or its
   * options: that group. batchSize is per rank (Lightning's per-device batch size).
   */
  distributed?: DistributedOption;
  /** Data-parallel epochs: 'pad' (default) repeats the first samples so every rank gets as many; 'trim' drops the rest. */
  shardPadding?: 'pad' | 'trim';
}

/** What onStep receives and log.jsonl records (plus every entry of `log`). */
export interface TrainStepInfo {
  /** The step's global_step (0-based). */
  step: number;
  /** Steps this run trains to (global_step at the end). */
  totalSteps: number;
  epoch: number;
  /** Losses and metrics of the step (official log names for the tokenizer: 'train/total_loss', ...). */
  log: Record<string, number>;
  /** Learning rate of the step. */
  lr: number;
  /** Seconds the native step took. */
  seconds: number;
  /** Samples per second of the step. */
  samplesPerSecond: number;
  /**
   * Milliseconds the loop waited for this step's batch after the previous step ended (0 when the batch was ready:
   * input keeps up; a steady wait means the data pipeline is the bottleneck: raise numWorkers).
   */
  dataWaitMs: number;
}

/** How a run ended; trainTokenizer and trainTransformer add their models. */
export interface TrainLoopResult {
  /** global_step at the end: the number of updates done, including those of a resumed run. */
  globalStep: number;
  epoch: number;
  stopped: 'done' | 'aborted';
  /** The checkpoint holding the final state (`<outDir>/last.ckpt`), when one was written or resumed from. */
  lastCheckpoint?: string;
  /** `<outDir>/log.jsonl`; absent on the ranks that write no log (all but global rank 0). */
  logPath?: string;
}

/** One step's outcome as the model's trainer reports it. */
export interface StepOutcome {
  log: Record<string, number>;
  lr: number;
  /** The learning rate of every optimizer parameter group, by LearningRateMonitor's name ('lr-Adam', 'lr-AdamW/pg1', ...). */
  lrGroups?: Record<string, number>;
  /** What was not finite ('generator loss', 'loss (loss NaN, gradient norm NaN)', ...) and on which ranks; the step was not applied. */
  nonFinite?: { what: string; ranks: number[] };
}

/** What the loop needs from a model's trainer. */
export interface LoopTask<B> {
  /** Training samples. */
  readonly length: number;
  /**
   * Streamed data (WebDataset shards): load() receives positions 0, 1, ... of this rank's stream of the epoch, in
   * order, instead of sample indices of a shuffle (the data orders and shards itself; lib/data/webdataset.ts).
   */
  readonly streamed?: boolean;
  /** Leave out an incomplete last micro-batch of each epoch (default false: a smaller last micro-batch). */
  readonly dropLast?: boolean;
  /** The batch of these sample indices; `epoch` seeds augmentation. */
  load(indices: number[], epoch: number): Promise<B>;
  /** Releases a batch (after its step, or when prepared but not used). */
  release(batch: B): void;
  /** Samples in a batch. */
  size(batch: B): number;
  /**
   * One optimizer update at global step `step`; the batch holds micro-batches of `microBatch` samples, `accumulate`
   * of them except at an epoch's end (fewer, or a smaller last one); each one's loss / accumulate.
   */
  step(batch: B, step: number, info: { epoch: number; stepsPerEpoch: number; totalSteps: number; accumulate: number; microBatch: number }): Promise<StepOutcome>;
  /**
   * Data-parallel: attach the trainer to the group (a collective; after restore, before the first step); null
   * detaches it (local; the run does it before it destroys a group it created).
   */
  attach?(group: ProcessGroup | null): Promise<void>;
  /** After the last step of (0-based) `epoch`. */
  endEpoch?(epoch: number): Promise<void>;
  /**
   * Writes the complete training state to `path` (atomically) as it is after `globalStep` updates, with the
   * entries of `meta` (the data position under DATA_POSITION_KEY) at the checkpoint's top level.
   */
  save(path: string, at: { globalStep: number; epoch: number; meta: { [DATA_POSITION_KEY]: DataPosition } }): Promise<void>;
  /** Restores the state written by save(); returns the global step it was taken at and the checkpoint's top-level entries. */
  restore(path: string): Promise<{ globalStep: number; meta: Record<string, unknown> }>;
  /** Streamed data: what the checkpoint records of the stream, under the data position's `stream`. */
  streamState?(): Record<string, number>;
  /** Also in a log line (e.g. files skipped so far). */
  extraLog?(): Record<string, number>;
}

/**
 * What runs around the steps (lib/train/callbacks/run_hooks.ts: validation, ModelCheckpoint, TensorBoard):
 * called on every rank, in step order, between native steps.
 */
export interface LoopHooks {
  /** Before the first step of this run (after restore and attach); `meta`: the resumed checkpoint's entries. */
  start?(at: { step: number; meta?: Record<string, unknown> }): Promise<void>;
  /** Entries added to the step's log line (and to onStep's log). */
  lineExtras?(out: StepOutcome): Record<string, number>;
  /**
   * After step `step` and its log line; `save(file)` writes a checkpoint of the state after it (global rank 0;
   * a no-op elsewhere) and `logLine(values)` appends a log.jsonl line for this step (rank 0).
   */
  afterStep?(at: {
    step: number; epoch: number; endsEpoch: boolean; log: Record<string, number>;
    save(file: string): Promise<void>; logLine(values: Record<string, number>): Promise<void>;
  }): Promise<void>;
  /** Entries of every checkpoint's top level (e.g. the callbacks' state). */
  checkpointMeta?(): Record<string, unknown>;
}

export { TrainingDivergedError };

export const LAST_CHECKPOINT = 'last.ckpt';
/** The checkpoint entry (top level) holding the data position { epoch, samples } of every trainer's checkpoints. */
export const DATA_POSITION_KEY = 'ibq_data_position';

/** The data position a checkpoint's top-level entries hold (undefined when absent or malformed: resume then starts the epoch of its step). */
export function dataPositionOf(meta: Record<string, unknown>): DataPosition | undefined {
  const p = meta[DATA_POSITION_KEY] as { epoch?: unknown; samples?: unknown } | undefined;
  if (!p || typeof p.epoch !== 'number' || typeof p.samples !== 'number') return undefined;
  const stream = (p as { stream?: unknown }).stream;
  return { epoch: p.epoch, samples: p.samples, ...(stream && typeof stream === 'object' ? { stream: stream as Record<string, number> } : {}) };
}
export const LOG_FILE = 'log.jsonl';
/** step=00001000.ckpt: the global step after which the checkpoint was taken, 8 digits. */
export const stepCheckpointName = (globalStep: number) => `step=${String(globalStep).padStart(8, '0')}.ckpt`;
/** Names of step checkpoints (stepCheckpointName). */
export const STEP_FILE = /^step=\d{8}\.ckpt$/;

/** Validated common options (names as the JS options; the CLI maps its flags onto them). */
export interface LoopSettings {
  outDir: string;
  batchSize: number;
  seed: number;
  resume?: string;
  overwrite: boolean;
  checkpointEvery: number;
  prefetch: number;
  maxSteps?: number;
  maxEpochs?: number;
  accumulate: number;
  shardPadding: 'pad' | 'trim';
}

/** Checks the options of TrainLoopOptions (TypeError/RangeError naming the option). */
export function loopSettings(opts: TrainLoopOptions): LoopSettings {
  if (!opts || typeof opts !== 'object') throw new TypeError(`options: expected an object, got ${describe(opts)}`);
  if (typeof opts.outDir !== 'string' || opts.outDir === '') throw new TypeError(`outDir: expected a folder path, got ${describe(opts.outDir)}`);
  const r = opts.resume;
  if (r !== undefined && typeof r !== 'boolean' && (typeof r !== 'string' || r === '')) {
    throw new TypeError(`resume: expected true (outDir/last.ckpt) or a checkpoint path, got ${describe(r)}`);
  }
  if (opts.overwrite !== undefined && typeof opts.overwrite !== 'boolean') throw new TypeError(`overwrite: expected a boolean, got ${describe(opts.overwrite)}`);
  if (r && opts.overwrite) throw new RangeError('resume and overwrite: give one of them, not both');
  if (opts.onStep !== undefined && typeof opts.onStep !== 'function') throw new TypeError(`onStep: expected a function, got ${describe(opts.onStep)}`);
  checkSignal(opts.signal);
  return {
    outDir: opts.outDir,
    batchSize: checkInt(opts.batchSize, 'batchSize', 1),
    seed: checkInt(opts.seed ?? 0, 'seed', 0, 2 ** 32 - 1),
    resume: r === true ? join(opts.outDir, LAST_CHECKPOINT) : r || undefined,
    overwrite: opts.overwrite ?? false,
    checkpointEvery: checkInt(opts.checkpointEvery ?? 1000, 'checkpointEvery', 0),
    prefetch: checkInt(opts.prefetch ?? 2, 'prefetch', 0, 64),
    maxSteps: opts.maxSteps === undefined ? undefined : checkInt(opts.maxSteps, 'maxSteps', 1),
    maxEpochs: opts.maxEpochs === undefined ? undefined : checkInt(opts.maxEpochs, 'maxEpochs', 1),
    accumulate: checkInt(opts.accumulateGradBatches ?? 1, 'accumulateGradBatches', 1),
    shardPadding: shardPadding(opts.shardPadding),
  };
}

function shardPadding(v: unknown): 'pad' | 'trim' {
  if (v === undefined || v === 'pad' || v === 'trim') return v ?? 'pad';
  throw new RangeError(`shardPadding: expected 'pad' or 'trim', got ${describe(v)}`);
}

/**
 * Each rank's epoch: its shard of n samples in updates of batchSize x accumulateGradBatches samples, the last one
 * taking what is left (Lightning's per-rank ceil(len(dataloader) / accumulate_grad_batches) updates; epochPlan).
 */
export function loopEpochPlan(n: number, s: LoopSettings, dist: Pick<DistributedContext, 'rank' | 'worldSize'>, dropLast = false) {
  const samples = samplesPerRank(n, { ...dist, trim: s.shardPadding === 'trim' });
  return { samples, ...epochPlan(samples, s.batchSize, s.accumulate, dropLast) };
}

/** Optimizer updates per epoch for each rank (loopEpochPlan). */
export function loopStepsPerEpoch(n: number, s: LoopSettings, dist: Pick<DistributedContext, 'rank' | 'worldSize'>, dropLast = false): number {
  return loopEpochPlan(n, s, dist, dropLast).steps;
}

/** Keeps the log lines of steps before `globalStep` (a resumed run rewrites the steps after its checkpoint). */
async function trimLog(logPath: string, globalStep: number): Promise<void> {
  if (!existsSync(logPath)) return;
  const keep = (await readFile(logPath, 'utf8')).split('\n').filter((l) => {
    if (!l.trim()) return false;
    try {
      return (JSON.parse(l) as { step?: number }).step! < globalStep;
    } catch {
      return false;
    }
  });
  const tmp = `${logPath}.tmp-${process.pid}`;
  await writeFile(tmp, keep.map((l) => l + '\n').join(''));
  await rename(tmp, logPath);
}

async function copyAtomic(src: string, dst: string): Promise<void> {
  const tmp = `${dst}.tmp-${process.pid}`;
  await copyFile(src, tmp);
  await rename(tmp, dst);
}

/** Total steps of the run: maxSteps, else maxEpochs (default 1) x steps per epoch. */
export function plannedSteps(s: LoopSettings, perEpoch: number): number {
  return s.maxSteps ?? (s.maxEpochs ?? 1) * perEpoch;
}

/**
 * Runs `task` from its resumed step (or 0) to the planned total. Throws TrainingDivergedError on a non-finite
 * loss; any other error of a step propagates after the prepared batches are released (the last checkpoint
 * written stays valid).
 */
export async function runTrainingLoop<B>(
  task: LoopTask<B>,
  s: LoopSettings,
  opts: Pick<TrainLoopOptions, 'signal' | 'onStep'> & { dist?: DistributedContext; hooks?: LoopHooks },
): Promise<TrainLoopResult> {
  const dist = opts.dist;
  const shard = { rank: dist?.rank ?? 0, worldSize: dist?.worldSize ?? 1, trim: s.shardPadding === 'trim' };
  const main = dist?.isMain ?? true;
  const rows = s.batchSize * s.accumulate;
  const epoch = loopEpochPlan(task.length, s, shard, task.dropLast ?? false);
  if (epoch.steps < 1) {
    throw new RangeError(`batchSize: ${s.batchSize} exceeds the ${epoch.samples} training samples` +
      `${shard.worldSize > 1 ? ` of each of ${shard.worldSize} ranks` : ''} (incomplete batches are left out)`);
  }
  return loop(task, s, opts, { dist, shard, main, rows, perEpoch: epoch.steps, used: epoch.used });
}

async function loop<B>(
  task: LoopTask<B>,
  s: LoopSettings,
  opts: Pick<TrainLoopOptions, 'signal' | 'onStep'> & { hooks?: LoopHooks },
  c: { dist?: DistributedContext; shard: { rank: number; worldSize: number; trim: boolean }; main: boolean; rows: number; perEpoch: number; used: number },
): Promise<TrainLoopResult> {
  const { dist, main, rows, perEpoch } = c;
  const totalSteps = plannedSteps(s, perEpoch);
  const logPath = join(s.outDir, LOG_FILE);
  const lastPath = join(s.outDir, LAST_CHECKPOINT);
  let lastGood: string | undefined;
  let start = 0;
  let resumedMeta: Record<string, unknown> | undefined;
  const hooks = opts.hooks ?? {};
  const plan = new BatchPlan(task.length, rows, s.seed, perEpoch, c.shard, c.used, task.streamed ?? false);
  if (s.resume !== undefined) {
    const r = await task.restore(s.resume);
    start = r.globalStep;
    resumedMeta = r.meta;
    const position = dataPositionOf(r.meta);
    if (position) plan.resumeAt(start, position);
    const was = position?.stream?.worldSize;
    if (main && task.streamed && was !== undefined && was !== c.shard.worldSize) {
      console.error(`ibq: resuming a streamed epoch written by ${was} ranks on ${c.shard.worldSize}: the number of samples left in epoch ` +
        `${position!.epoch} is exact, which samples they are is not (the runs of the shards are cut anew)`);
    }
    lastGood = s.resume;
    if (main) await trimLog(logPath, start);
  }
  if (dist?.group) await task.attach?.(dist.group);
  const write = async (globalStep: number, file: string) => {
    if (!main) return;
    await task.save(file, { globalStep, epoch: plan.epochOf(globalStep), meta: { ...hooks.checkpointMeta?.(), [DATA_POSITION_KEY]: { ...plan.position(globalStep), ...(task.streamState ? { stream: task.streamState() } : {}) } } });
  };
  const save = async (globalStep: number, file = lastPath) => {
    if (!main) return;
    await write(globalStep, file);
    if (file !== lastPath) await copyAtomic(file, lastPath);
    lastGood = lastPath;
  };
  await hooks.start?.({ step: start, meta: resumedMeta });
  const pending = new Map<number, Promise<B>>();
  const request = (step: number) => {
    if (step >= totalSteps || pending.has(step)) return;
    const { epoch, indices } = plan.indices(step);
    const p = task.load(indices, epoch);
    p.catch(() => undefined);
    pending.set(step, p);
  };

  let stopped: TrainLoopResult['stopped'] = 'done';
  let step = start;
  let saved = start;
  try {
    for (; step < totalSteps; step++) {
      if (dist ? await dist.anyStops(!!opts.signal?.aborted) : opts.signal?.aborted) {
        stopped = 'aborted';
        break;
      }
      for (let k = 0; k <= s.prefetch; k++) request(step + k);
      const w0 = performance.now();
      const batch = await pending.get(step)!;
      const dataWaitMs = performance.now() - w0;
      pending.delete(step);
      const epoch = plan.epochOf(step);
      const t0 = performance.now();
      const n = task.size(batch); // before release() disposes the batch
      let out: StepOutcome;
      try {
        out = await task.step(batch, step, { epoch, stepsPerEpoch: perEpoch, totalSteps, accumulate: s.accumulate, microBatch: s.batchSize });
      } finally {
        task.release(batch);
      }
      if (out.nonFinite !== undefined) {
        throw new TrainingDivergedError(step, out.nonFinite.what, { ranks: out.nonFinite.ranks, log: out.log, lastCheckpoint: lastGood ?? null });
      }
      const seconds = (performance.now() - t0) / 1000;
      const log = { ...out.log, ...hooks.lineExtras?.(out) };
      const sps = (n * (dist?.worldSize ?? 1)) / seconds;
      const info: TrainStepInfo = { step, totalSteps, epoch, log, lr: out.lr, seconds, samplesPerSecond: sps, dataWaitMs };
      const dataWait = Math.round(dataWaitMs * 100) / 100;
      if (main) {
        const line = { step, epoch, ...log, lr: out.lr, step_time: seconds, samples_per_s: sps, data_wait_ms: dataWait, ...task.extraLog?.() };
        await appendFile(logPath, JSON.stringify(line) + '\n');
      }
      const endsEpoch = plan.endsEpoch(step);
      if (endsEpoch) await task.endEpoch?.(epoch);
      const at = step + 1;
      await hooks.afterStep?.({
        step, epoch, endsEpoch, log: { ...log, lr: out.lr, step_time: seconds, samples_per_s: sps, data_wait_ms: dataWait },
        save: (file) => write(at, file),
        logLine: async (values) => {
          if (main) await appendFile(logPath, JSON.stringify({ step, epoch, ...values }) + '\n');
        },
      });
      if (s.checkpointEvery > 0 && (step + 1) % s.checkpointEvery === 0) {
        await save(step + 1, join(s.outDir, stepCheckpointName(step + 1)));
        saved = step + 1;
      }
      if (main) opts.onStep?.(info);
    }
    if (step > saved) await save(step);
  } finally {
    for (const p of pending.values()) p.then((b) => task.release(b), () => undefined);
  }
  return { globalStep: step, epoch: plan.epochOf(step), stopped, lastCheckpoint: lastGood, logPath: main ? logPath : undefined };
}
