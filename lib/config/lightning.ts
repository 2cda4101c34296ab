/**
 * The Lightning sections of an official YAML as a training run honours them: the top-level `seed_everything` and
 * `ckpt_path`, `trainer.*` (steps, accumulation, validation cadence, strategy, the ModelCheckpoint and
 * LearningRateMonitor callbacks, the TensorBoardLogger) and `data.init_args.*` (batch size, workers, the
 * validation set). Each field is either parsed into LightningSettings here or given a note saying what happens
 * instead; lib/train/yaml_fields.ts puts the notes of one YAML into the run's single warning.
 */

/** One `lightning.pytorch.callbacks.ModelCheckpoint` entry of trainer.callbacks (Lightning's defaults filled in). */
export interface CheckpointCallbackSettings {
  /** Folder of its files (default: the run's outDir). */
  dirpath?: string;
  /** File name pattern without '.ckpt', e.g. '{epoch}-{step}' (Lightning's default) or 'best-{val/rec_loss:.4f}'. */
  filename: string;
  /** Logged value that ranks checkpoints (a log.jsonl key: 'train/perceptual_loss', 'val/rec_loss', ...). */
  monitor?: string;
  mode: 'min' | 'max';
  /** Checkpoints kept: -1 all, 0 none, k the k best by `monitor` (without monitor: the latest k). Default 1. */
  saveTopK: number;
  /** Refresh `<dirpath>/last.ckpt` whenever this callback saves. */
  saveLast: boolean;
  everyNTrainSteps?: number;
  /** Default 1 when neither everyNTrainSteps nor everyNEpochs is given (Lightning's rule). */
  everyNEpochs?: number;
  /** Write `name=value` into the file name for `{name}` (Lightning's auto_insert_metric_name; default true). */
  autoInsertMetricName: boolean;
}

/** `lightning.pytorch.loggers.TensorBoardLogger` of trainer.logger: files under saveDir/name/version_N (or /version). */
export interface TensorBoardSettings {
  saveDir: string;
  /** '' puts the versions directly under saveDir (Lightning's behaviour for an empty name). Default 'lightning_logs'. */
  name: string;
  /** A number gives version_N, a string names the folder; absent: the next free version_N. */
  version?: number | string;
}

/** What the Lightning sections ask for, in the run's terms (absent: not in the YAML). */
export interface LightningSettings {
  /** seed_everything as an integer. */
  seed?: number;
  /** ckpt_path: resume from it. */
  ckptPath?: string;
  maxSteps?: number;
  accumulateGradBatches?: number;
  checkValEveryNEpoch?: number;
  /** val_check_interval as an integer: validate every so many training steps. */
  valEverySteps?: number;
  /** -1: the whole validation set; 0: none; N: N batches per rank before training. */
  numSanityValSteps?: number;
  /** limit_val_batches as an integer: batches per rank and validation. */
  limitValBatches?: number;
  logEveryNSteps?: number;
  strategy?: string;
  checkpoints: CheckpointCallbackSettings[];
  /** LearningRateMonitor present: the learning rate of every parameter group goes into the log. */
  lrMonitor: boolean;
  tensorboard?: TensorBoardSettings;
  numWorkers?: number;
  /** data.init_args.validation is present (the validation split of the data is evaluated). */
  validation: boolean;
  valImageSize?: number;
}

/** How one YAML field is treated: honoured (note absent) or not applied, with what happens instead. */
export interface FieldNote {
  path: string;
  /** Absent when honoured; else what happens instead. */
  instead?: string;
}

/** The note of a field that is no setting of ibq-native (a YAML of the official configs has none: a test checks). */
export const UNKNOWN_FIELD = 'not a setting of ibq-native: ignored';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Strategies that are our data parallelism (DistributedDataParallel with find_unused_parameters behaviour). */
const DDP_STRATEGIES = new Set(['ddp', 'ddp_find_unused_parameters_true', 'ddp_find_unused_parameters_false', 'auto', 'ddp_spawn']);

const TRAINER_NOTES: Record<string, string | null> = {
  // null: honoured (parsed below, or by read_config's RunSettings)
  max_epochs: null, max_steps: null, precision: null, gradient_clip_val: null, devices: null, num_nodes: null,
  accumulate_grad_batches: null, check_val_every_n_epoch: null, num_sanity_val_steps: null, val_check_interval: null,
  limit_val_batches: null, log_every_n_steps: null, strategy: null, callbacks: null, logger: null,
  accelerator: 'the device is --device / the device option (cpu unless cuda is named)',
  gradient_clip_algorithm: "gradients are clipped by their global norm ('norm')",
  enable_progress_bar: 'the CLI shows progress on stderr (a plain line every 30 s when stderr is no terminal)',
  enable_model_summary: 'no model summary is printed (ibq info --preset gives parameter counts)',
  enable_checkpointing: 'last.ckpt is always written (resume needs it); ModelCheckpoint callbacks add their files',
  default_root_dir: 'files go to --out (outDir)',
  deterministic: 'runs are seeded and repeat on the same machine',
  benchmark: 'libtorch chooses its kernels',
  sync_batchnorm: 'BatchNorm statistics are rank 0\'s, re-sent to every rank after each step',
  profiler: 'no profiler runs',
  detect_anomaly: 'a non-finite loss stops the run (TrainingDivergedError)',
  limit_train_batches: 'every epoch trains on its whole shard (--max-steps caps the steps)',
  min_epochs: 'the run ends at max_epochs / max_steps',
  min_steps: 'the run ends at max_epochs / max_steps',
  fast_dev_run: 'use --max-steps 1',
  overfit_batches: 'every epoch trains on its whole shard',
  reload_dataloaders_every_n_epochs: 'the data list is read once',
  use_distributed_sampler: 'every rank reads its DistributedSampler share of one seeded shuffle per epoch',
  inference_mode: 'validation runs without gradients',
  barebones: 'logging and checkpoints stay on',
  max_time: 'no time limit (stop with SIGINT / SIGTERM: the state is saved)',
  plugins: 'no Lightning plugins',
  limit_test_batches: 'there is no test stage (ibq eval-tokenizer evaluates a checkpoint)',
  limit_predict_batches: 'there is no predict stage',
};

/** Fields of the ModelCheckpoint init_args honoured here; the others get the note below. */
const CHECKPOINT_FIELDS = new Set(['dirpath', 'filename', 'monitor', 'mode', 'save_top_k', 'save_last', 'every_n_train_steps', 'every_n_epochs', 'auto_insert_metric_name']);
const CHECKPOINT_NOTES: Record<string, string> = {
  verbose: 'each checkpoint written is named in the log',
  save_weights_only: 'checkpoints hold the whole training state',
  save_on_train_epoch_end: 'epoch checkpoints are written after the epoch (after its validation when it validates)',
  train_time_interval: 'use every_n_train_steps',
  enable_version_counter: 'a file of the same name is replaced',
};
const TB_NOTES: Record<string, string> = {
  log_graph: 'no graph is written',
  default_hp_metric: 'hparams are written without a hp_metric placeholder',
  prefix: 'tags are written without a prefix',
  sub_dir: 'event files go into the version folder',
};

/** The path of every leaf under `obj` (prefixed with `path`). */
function leaves(obj: unknown, path: string): string[] {
  if (!isObj(obj)) return [path];
  const keys = Object.keys(obj);
  return keys.length === 0 ? [path] : keys.flatMap((k) => leaves(obj[k], `${path}.${k}`));
}

function int(v: unknown, where: string, min: number): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new RangeError(`${where}: expected an integer >= ${min}, got ${JSON.stringify(v)}`);
  return v;
}

function className(v: unknown): string {
  return isObj(v) && typeof v.class_path === 'string' ? v.class_path.split('.').pop()! : typeof v === 'string' ? v.split('.').pop()! : '';
}

function checkpointCallback(args: Obj, where: string, notes: FieldNote[]): CheckpointCallbackSettings {
  for (const k of Object.keys(args)) {
    if (CHECKPOINT_FIELDS.has(k)) notes.push({ path: `${where}.${k}` });
    else notes.push({ path: `${where}.${k}`, instead: CHECKPOINT_NOTES[k] ?? UNKNOWN_FIELD });
  }
  const mode = args.mode ?? 'min';
  if (mode !== 'min' && mode !== 'max') throw new RangeError(`${where}.mode: expected 'min' or 'max', got ${JSON.stringify(mode)}`);
  const str = (k: string) => {
    const v = args[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') throw new RangeError(`${where}.${k}: expected a string, got ${JSON.stringify(v)}`);
    return v;
  };
  const everyNTrainSteps = int(args.every_n_train_steps, `${where}.every_n_train_steps`, 0) || undefined;
  const everyN = int(args.every_n_epochs, `${where}.every_n_epochs`, 0);
  return {
    dirpath: str('dirpath'),
    filename: str('filename') ?? '{epoch}-{step}',
    monitor: str('monitor'),
    mode,
    saveTopK: int(args.save_top_k, `${where}.save_top_k`, -1) ?? 1,
    saveLast: args.save_last === true || args.save_last === 'link',
    everyNTrainSteps,
    everyNEpochs: everyN === undefined ? (everyNTrainSteps === undefined ? 1 : undefined) : everyN || undefined,
    autoInsertMetricName: args.auto_insert_metric_name !== false,
  };
}

function tensorboard(args: Obj, where: string, notes: FieldNote[]): TensorBoardSettings {
  for (const k of Object.keys(args)) {
    notes.push(['save_dir', 'name', 'version'].includes(k) ? { path: `${where}.${k}` } : { path: `${where}.${k}`, instead: TB_NOTES[k] ?? UNKNOWN_FIELD });
  }
  const v = args.version;
  if (v !== undefined && v !== null && typeof v !== 'string' && !(typeof v === 'number' && Number.isInteger(v) && v >= 0)) {
    throw new RangeError(`${where}.version: expected an integer >= 0 or a string, got ${JSON.stringify(v)}`);
  }
  const name = args.name;
  return {
    saveDir: typeof args.save_dir === 'string' ? args.save_dir : '.',
    name: name === null || name === undefined ? (Object.hasOwn(args, 'name') ? '' : 'lightning_logs') : String(name),
    version: v === null ? undefined : (v as number | string | undefined),
  };
}

function callbacks(list: unknown, notes: FieldNote[], s: LightningSettings): void {
  const items = Array.isArray(list) ? list : list === undefined || list === null ? [] : [list];
  items.forEach((cb, i) => {
    const where = `trainer.callbacks[${i}]`;
    const name = className(cb);
    const args = isObj(cb) && isObj(cb.init_args) ? cb.init_args : {};
    if (name === 'ModelCheckpoint') {
      notes.push({ path: `${where}.class_path` });
      s.checkpoints.push(checkpointCallback(args, `${where}.init_args`, notes));
    } else if (name === 'LearningRateMonitor') {
      notes.push({ path: `${where}.class_path` });
      s.lrMonitor = true;
      for (const k of Object.keys(args)) {
        const v = args[k];
        notes.push(k === 'logging_interval' && (v === 'step' || v === null)
          ? { path: `${where}.init_args.${k}` }
          : { path: `${where}.init_args.${k}`, instead: 'learning rates are logged every step, per parameter group' });
      }
    } else {
      notes.push({ path: `${where}`, instead: `callback ${name || JSON.stringify(cb)} is not run` });
    }
  });
}

function logger(v: unknown, notes: FieldNote[], s: LightningSettings): void {
  if (v === undefined || v === null || v === false || v === true) {
    notes.push({ path: 'trainer.logger' });
    return;
  }
  const list = Array.isArray(v) ? v : [v];
  list.forEach((l, i) => {
    const where = Array.isArray(v) ? `trainer.logger[${i}]` : 'trainer.logger';
    const name = className(l);
    if (name === 'TensorBoardLogger' && s.tensorboard === undefined) {
      notes.push({ path: `${where}.class_path` });
      s.tensorboard = tensorboard(isObj(l) && isObj(l.init_args) ? l.init_args : {}, `${where}.init_args`, notes);
    } else {
      notes.push({ path: where, instead: `logger ${name || JSON.stringify(l)} is not written (log.jsonl holds every logged value)` });
    }
  });
}

function dataSection(data: unknown, notes: FieldNote[], s: LightningSettings): void {
  if (!isObj(data)) return;
  for (const k of Object.keys(data)) {
    if (k !== 'init_args') notes.push(k === 'class_path' ? { path: 'data.class_path' } : { path: `data.${k}`, instead: UNKNOWN_FIELD });
  }
  const a = isObj(data.init_args) ? data.init_args : {};
  for (const k of Object.keys(a)) {
    const where = `data.init_args.${k}`;
    if (k === 'batch_size') notes.push({ path: where });
    else if (k === 'num_workers') {
      s.numWorkers = int(a[k], where, 0);
      notes.push({ path: where }); // the tokenizer's decode workers (numWorkers / --num-workers override it)
    } else if (k === 'train' || k === 'validation') {
      const size = k === 'train' ? 'train' : 'validation';
      for (const p of leaves(a[k], where)) {
        if (p === `${where}.params.config.size`) notes.push({ path: p });
        else if (p === `${where}.target`) {
          notes.push({ path: p, instead: size === 'train'
            ? 'training images come from --data (the data option): its train/ split, class folders, a flat folder or a filelist'
            : 'validation images come from --val-data (the valData option), else the val/ split beside train/ of --data' });
        } else notes.push({ path: p, instead: UNKNOWN_FIELD });
      }
      if (k === 'validation') {
        s.validation = true;
        s.valImageSize = int((a[k] as { params?: { config?: { size?: unknown } } })?.params?.config?.size, `${where}.params.config.size`, 1);
      }
    } else if (k === 'test' || k === 'predict') {
      for (const p of leaves(a[k], where)) notes.push({ path: p, instead: 'there is no test stage here (ibq eval-tokenizer evaluates a checkpoint)' });
    } else notes.push({ path: where, instead: UNKNOWN_FIELD });
  }
}

/**
 * The Lightning settings of a parsed YAML (`raw`) and a note for every field of its top level, `trainer` and
 * `data` sections (the `model` section is the model's: see lib/train/yaml_fields.ts).
 * @throws RangeError naming the field (`<yamlPath>: trainer.accumulate_grad_batches: expected ...`) when a value
 *   is malformed
 */
export function lightningSettings(raw: unknown, yamlPath: string): { settings: LightningSettings; notes: FieldNote[] } {
  const notes: FieldNote[] = [];
  const s: LightningSettings = { checkpoints: [], lrMonitor: false, validation: false };
  if (!isObj(raw)) return { settings: s, notes };
  try {
    for (const k of Object.keys(raw)) {
      if (k === 'model' || k === 'trainer' || k === 'data') continue;
      if (k === 'seed_everything') {
        const v = raw[k];
        if (typeof v === 'number') s.seed = int(v, k, 0);
        notes.push(v === true ? { path: k, instead: 'Lightning would draw a random seed; the run is seeded with --seed (the seed option, default 0) so that it repeats' } : { path: k });
      } else if (k === 'ckpt_path') {
        const v = raw[k];
        if (v !== null && v !== undefined && typeof v !== 'string') throw new RangeError(`ckpt_path: expected a path, got ${JSON.stringify(v)}`);
        if (typeof v === 'string') s.ckptPath = v;
        notes.push({ path: k });
      } else notes.push({ path: k, instead: UNKNOWN_FIELD });
    }
    const t = isObj(raw.trainer) ? raw.trainer : {};
    for (const k of Object.keys(t)) {
      if (!(k in TRAINER_NOTES)) notes.push({ path: `trainer.${k}`, instead: UNKNOWN_FIELD });
      else if (TRAINER_NOTES[k] !== null) notes.push({ path: `trainer.${k}`, instead: TRAINER_NOTES[k]! });
      else if (!['callbacks', 'logger', 'strategy', 'val_check_interval', 'limit_val_batches'].includes(k)) notes.push({ path: `trainer.${k}` });
    }
    const ms = t.max_steps;
    s.maxSteps = ms === -1 ? undefined : int(ms, 'trainer.max_steps', 1);
    s.accumulateGradBatches = int(t.accumulate_grad_batches, 'trainer.accumulate_grad_batches', 1);
    s.checkValEveryNEpoch = int(t.check_val_every_n_epoch, 'trainer.check_val_every_n_epoch', 1);
    s.numSanityValSteps = int(t.num_sanity_val_steps, 'trainer.num_sanity_val_steps', -1);
    s.limitValBatches = Number.isInteger(t.limit_val_batches) ? int(t.limit_val_batches, 'trainer.limit_val_batches', 0) : undefined;
    s.logEveryNSteps = int(t.log_every_n_steps, 'trainer.log_every_n_steps', 1);
    const vci = t.val_check_interval;
    if (vci !== undefined && vci !== null) {
      if (Number.isInteger(vci) && (vci as number) > 1) {
        s.valEverySteps = vci as number;
        notes.push({ path: 'trainer.val_check_interval' });
      } else if (vci === 1 || vci === 1.0) notes.push({ path: 'trainer.val_check_interval' });
      else notes.push({ path: 'trainer.val_check_interval', instead: 'a fraction of an epoch is not applied: validation runs at epoch ends (or every --val-every N steps)' });
    }
    if ('limit_val_batches' in t) {
      const whole = typeof t.limit_val_batches === 'number' && !Number.isInteger(t.limit_val_batches) && t.limit_val_batches !== 1;
      notes.push(whole ? { path: 'trainer.limit_val_batches', instead: 'a fraction is not applied: the whole validation shard is evaluated' } : { path: 'trainer.limit_val_batches' });
    }
    const strategy = t.strategy;
    if (strategy !== undefined && strategy !== null) {
      s.strategy = typeof strategy === 'string' ? strategy : className(strategy);
      notes.push(DDP_STRATEGIES.has(s.strategy)
        ? { path: 'trainer.strategy' }
        : { path: 'trainer.strategy', instead: `${s.strategy} runs as ddp (each rank holds the whole model; gradients averaged in buckets)` });
    }
    callbacks(t.callbacks, notes, s);
    logger(t.logger, notes, s);
    dataSection(raw.data, notes, s);
  } catch (err) {
    if (err instanceof RangeError) throw new RangeError(`${yamlPath}: ${err.message}`);
    throw err;
  }
  return { settings: s, notes };
}
