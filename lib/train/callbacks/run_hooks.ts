/**
 * What a training run does around its steps, as Lightning's trainer does it for the official YAMLs: validation
 * (lib/train/validation.ts) with its schedule and sanity check, the ModelCheckpoint callbacks
 * (./checkpoint.ts), LearningRateMonitor's learning rate per parameter group in every log line, and the
 * TensorBoardLogger (lib/log/tensorboard.ts: every scalar of log.jsonl, validation scalars, images, hparams).
 * All ranks validate (each its shard); global rank 0 alone writes files.
 */
import { existsSync } from 'node:fs';

import type { CheckpointCallbackSettings, TensorBoardSettings } from '../../config/lightning.js';
import type { DistributedContext } from '../../distributed/context.js';
import { TensorBoardWriter, tensorboardLogDir } from '../../log/tensorboard.js';
import type { LoopHooks, StepOutcome } from '../loop.js';
import { runValidation, validationDue, type ValidationSchedule, type ValidationSource } from '../validation.js';
import { ModelCheckpoint } from './checkpoint.js';

/** The run's settings for what happens around the steps (from the options, else the YAML). */
export interface RunExtras {
  /** Validation schedule (absent: no validation). */
  validation?: ValidationSchedule;
  checkpoints: CheckpointCallbackSettings[];
  lrMonitor: boolean;
  tensorboard?: TensorBoardSettings;
  /** TensorBoard scalars of every n-th step (Lightning's log_every_n_steps; default 1: every step). */
  logEveryNSteps: number;
}

/** What the model's task offers the hooks. */
export interface HookedTask {
  /** The validation set as additive sums (absent: nothing to validate on). */
  readonly validation?: ValidationSource;
  /** Images for TensorBoard after a validation: tag -> PNG (reconstructions of a fixed batch, sample grids). */
  previewImages?(): Promise<Record<string, Buffer>>;
  /** Hyper-parameters for TensorBoard's hparams and hparams.yaml. */
  readonly hparams?: Record<string, unknown>;
}

export interface RunHooks extends LoopHooks {
  /** The TensorBoard log folder (rank 0, when a logger is on). */
  readonly logDir?: string;
  /** Validation figures of every validation run: [{ step, values }]. */
  readonly validations: { step: number; values: Record<string, number> }[];
  /** Flushes the event file. */
  close(): Promise<void>;
}

/** Where the callbacks' state travels in a checkpoint (Lightning's `callbacks` entry). */
const CALLBACKS_KEY = 'callbacks';

export function runHooks(o: {
  outDir: string;
  dist: Pick<DistributedContext, 'rank' | 'worldSize' | 'isMain' | 'group'>;
  extras: RunExtras;
  task: HookedTask;
  warn(m: string): void;
}): RunHooks {
  const { extras, task, dist } = o;
  const callbacks = extras.checkpoints.map((c) => new ModelCheckpoint(c, o.outDir, o.warn));
  const tb = dist.isMain && extras.tensorboard ? new TensorBoardWriter(tensorboardLogDir(extras.tensorboard)) : undefined;
  const latest: Record<string, number> = {};
  const validations: { step: number; values: Record<string, number> }[] = [];
  const sched = task.validation ? extras.validation : undefined;
  const sum = async (v: number[]) => (dist.group ? dist.group.sum(v) : v);
  const validate = (limit?: number) =>
    runValidation(task.validation!, { rank: dist.rank, worldSize: dist.worldSize, batchSize: sched!.batchSize, limitBatches: limit, sum });

  return {
    logDir: tb?.logDir,
    validations,
    async start({ meta }) {
      const saved = (meta?.[CALLBACKS_KEY] ?? {}) as Record<string, unknown>;
      for (const c of callbacks) c.loadState(saved[c.key], existsSync);
      if (tb && task.hparams) await tb.hparams(task.hparams);
      if (sched && sched.sanityBatches !== 0) await validate(sched.sanityBatches < 0 ? undefined : sched.sanityBatches);
    },
    lineExtras(out: StepOutcome) {
      return extras.lrMonitor && out.lrGroups ? out.lrGroups : {};
    },
    async afterStep(at) {
      const globalStep = at.step + 1;
      Object.assign(latest, at.log);
      if (tb && (at.step % extras.logEveryNSteps === 0 || at.endsEpoch)) await tb.scalars(at.step, { ...at.log, epoch: at.epoch });
      if (sched && validationDue(sched, { globalStep, epoch: at.epoch, endsEpoch: at.endsEpoch })) {
        const values = await validate(sched.limitBatches);
        validations.push({ step: at.step, values });
        Object.assign(latest, values);
        await at.logLine(values);
        if (tb) {
          await tb.scalars(at.step, values);
          for (const [tag, png] of Object.entries((await task.previewImages?.()) ?? {})) await tb.image(at.step, tag, png);
        }
      }
      if (dist.isMain) {
        for (const c of callbacks) await c.maybeSave({ globalStep, epoch: at.epoch, endsEpoch: at.endsEpoch, metrics: latest }, at.save);
      }
    },
    checkpointMeta() {
      return callbacks.length > 0 ? { [CALLBACKS_KEY]: Object.fromEntries(callbacks.map((c) => [c.key, c.stateDict()])) } : {};
    },
    close: async () => {
      await tb?.flush();
    },
  };
}
