/**
 * What `ibq train-tokenizer` and `ibq train-ar` share: the flags of the training loop (the same flag for the same
 * thing in both), their conversion into TrainLoopOptions, and running a training with progress, SIGINT/SIGTERM
 * handling (checkpoint, then exit 130/143) and a one-line JSON summary on stdout.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';

import { checkAutocastDType, type AutocastDType } from '../core/autocast.js';
import { LAST_CHECKPOINT, STEP_FILE, type TrainLoopOptions, type TrainLoopResult, type TrainStepInfo } from '../train/loop.js';
import type { RunExtrasOptions } from '../train/run.js';
import { intArg, intFlag, numberFlag } from './parse.js';
import { progressBar, stopSignals, type Bar } from './progress.js';

export interface TrainFlags {
  out: string;
  resume?: string | true;
  overwrite?: boolean;
  maxSteps?: string;
  maxEpochs?: string;
  batchSize?: string;
  seed?: number;
  checkpointEvery: number;
  accumulateGradBatches?: number;
  valEvery?: number;
  numSanityValSteps?: number;
  logger?: string;
  lr?: string;
  autocast?: string;
  device?: string;
  valData?: string;
}

/** Adds the training-loop flags; `out` is the default output folder. */
export function addTrainFlags(cmd: Command, out: string): Command {
  return cmd
    .option('--out <dir>', 'output folder (log.jsonl, last.ckpt, step=N.ckpt)', out)
    .option('--resume [file]', 'continue a run: from <out>/last.ckpt, or from the checkpoint given')
    .option('--overwrite', 'start afresh in an --out folder that holds another run (its checkpoints and log are removed)')
    .option('--max-steps <n>', 'stop after n steps in all (counting the steps of a resumed run)')
    .option('--max-epochs <n>', 'epochs (without --max-steps; default: trainer.max_epochs of the YAML, else 1)')
    .option('--batch-size <n>', 'samples per step (default: data.init_args.batch_size of the YAML)')
    .option('--seed <n>', 'seed of the initialisation, data order and augmentation (default: seed_everything of the YAML when an integer, else 0)', intArg('--seed', 0, 2 ** 32 - 1))
    .option('--checkpoint-every <n>', 'write step=N.ckpt and refresh last.ckpt every n steps (0: only at the end)', intArg('--checkpoint-every', 0), 1000)
    .option('--accumulate-grad-batches <n>', 'micro-batches of --batch-size per optimizer update, gradients summed (default: trainer.accumulate_grad_batches of the YAML, else 1)', intArg('--accumulate-grad-batches'))
    .option('--val-data <dir>', 'validation images (default: the val/ split beside train/ of --data when the YAML has data.init_args.validation)')
    .option('--val-every <n>', 'validate every n steps (default: at the end of every trainer.check_val_every_n_epoch-th epoch)', intArg('--val-every'))
    .option('--num-sanity-val-steps <n>', 'validation batches per process before training (-1: all; default: trainer.num_sanity_val_steps, else 2)', intArg('--num-sanity-val-steps', -1))
    .option('--logger <name>', "'tensorboard': TensorBoard event files in <out>/lightning_logs/version_N (default: the YAML's TensorBoardLogger); 'none': no event files")
    .option('--lr <x>', 'base learning rate (default: learning_rate of the YAML)')
    .option('--autocast <dtype>', 'mixed precision: bfloat16 (CPU, CUDA) or float16 (CUDA)')
    .option('--device <device>', 'cpu or cuda[:i]');
}

export interface TrainFlagValues extends Omit<TrainLoopOptions, 'batchSize'>, RunExtrasOptions {
  batchSize?: number;
  lr?: number;
  autocast?: AutocastDType;
  device?: string;
}

/**
 * A rank restarted by `ibq launch --max-restarts` (TORCHELASTIC_RESTART_COUNT > 0, as torchrun sets it) without
 * --resume: resume from <out>/last.ckpt when the failed attempt wrote one, else start afresh over that attempt's
 * log (a folder holding any checkpoint is left to the flags as given).
 */
let noted = false;
function elasticResume(o: TrainFlags): Pick<TrainFlags, 'resume' | 'overwrite'> {
  const note = (m: string) => (noted ? undefined : ((noted = true), console.error(m)));
  const restart = Number(process.env.TORCHELASTIC_RESTART_COUNT ?? 0);
  if (!(restart > 0) || o.resume !== undefined) return o;
  if (existsSync(join(o.out, LAST_CHECKPOINT))) {
    note(`ibq: restart ${restart}: resuming from ${join(o.out, LAST_CHECKPOINT)}`);
    return { resume: true, overwrite: false };
  }
  const ckpts = existsSync(o.out) && readdirSync(o.out).some((f) => STEP_FILE.test(f));
  if (ckpts) return o;
  note(`ibq: restart ${restart}: no checkpoint in ${o.out} yet; starting afresh`);
  return { resume: undefined, overwrite: true };
}

/** The loop options of the flags (errors name the flags); YAML defaults are filled in by the command. */
export function trainFlagValues(o: TrainFlags): TrainFlagValues {
  o = { ...o, ...elasticResume(o) };
  const maxSteps = intFlag(o.maxSteps, '--max-steps');
  let autocast: AutocastDType | undefined;
  try {
    autocast = checkAutocastDType(o.autocast, '--autocast', o.device ?? 'cpu');
  } catch (err) {
    throw new RangeError((err as Error).message.replace(/\(use 'bfloat16'\)$/, '(use --autocast bfloat16, or --device cuda)'));
  }
  return {
    outDir: o.out,
    resume: o.resume,
    overwrite: o.overwrite,
    maxSteps,
    maxEpochs: intFlag(o.maxEpochs, '--max-epochs'),
    batchSize: intFlag(o.batchSize, '--batch-size'),
    seed: o.seed,
    checkpointEvery: o.checkpointEvery,
    accumulateGradBatches: o.accumulateGradBatches,
    lr: numberFlag(o.lr, '--lr', 0),
    autocast,
    device: o.device,
    valEvery: o.valEvery,
    numSanityValSteps: o.numSanityValSteps,
    logger: loggerFlag(o.logger),
    onWarning: (m) => console.error(`ibq: ${m}`),
  };
}

function loggerFlag(v: string | undefined): RunExtrasOptions['logger'] {
  if (v === undefined) return undefined;
  if (v === 'tensorboard') return 'tensorboard';
  if (v === 'none') return false;
  throw new RangeError(`--logger: expected tensorboard or none, got '${v}'`);
}

/**
 * Runs a training with progress on stderr (`fields`: log entries shown beside the rate) and stop signals;
 * prints `{ globalStep, epoch, stopped, checkpoint, ... summary }` as JSON on stdout; sets the exit code 130/143
 * when a signal stopped it.
 */
export async function runTraining<R extends TrainLoopResult>(
  fields: Record<string, string>,
  run: (hooks: { signal: AbortSignal; onStep(s: TrainStepInfo): void }) => Promise<R>,
  summary: (r: R) => Record<string, unknown> = () => ({}),
): Promise<R> {
  const stop = stopSignals('saving last.ckpt after the current step');
  let bar: Bar | undefined;
  let wait: number | undefined; // data wait per step, ms, averaged over about the last 10 steps
  try {
    const r = await run({
      signal: stop.signal,
      onStep(s) {
        bar ??= progressBar(s.totalSteps, 'steps', [...Object.keys(fields), 'data wait']);
        const payload = Object.fromEntries(Object.entries(fields).map(([name, key]) => {
          const v = key === 'lr' ? s.lr : s.log[key];
          return [name, v === undefined ? '-' : Math.abs(v) < 1e-3 && v !== 0 ? v.toExponential(2) : v.toFixed(4)];
        }));
        wait = wait === undefined ? s.dataWaitMs : 0.9 * wait + 0.1 * s.dataWaitMs;
        bar.update(s.step + 1, { ...payload, 'data wait': `${wait.toFixed(0)} ms` });
      },
    });
    bar?.stop();
    bar = undefined;
    if (r.stopped === 'aborted') {
      console.error(`ibq: stopped at step ${r.globalStep}; checkpoint ${r.lastCheckpoint ?? '-'} (continue with --resume)`);
      process.exitCode = stop.exitCode ?? 130;
    }
    // every rank reports where it stopped; only global rank 0 writes the log and checkpoints, the others name none
    console.log(JSON.stringify({ globalStep: r.globalStep, epoch: r.epoch, stopped: r.stopped, checkpoint: r.lastCheckpoint ?? null, log: r.logPath ?? null, ...summary(r) }));
    return r;
  } finally {
    bar?.stop();
    stop.dispose();
  }
}
