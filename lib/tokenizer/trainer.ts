/**
 * TokenizerTrainer: training of an IBQ tokenizer as the official IBQ `VQModel.training_step` (arXiv 2412.02692,
 * src/IBQ/models/ibqgan.py): per step the discriminator update then the generator update (Adam, betas
 * (0.5, 0.9)), the official LR schedules, optional gradient clipping and the LitEma of the weights. The losses
 * are VQLPIPSWithDiscriminator's (L1 + LPIPS, PatchGAN non-saturating generator loss with a fixed or adaptive
 * weight, hinge/vanilla + LeCAM discriminator loss, IBQ quant and entropy losses). Each step is one native job
 * on the tokenizer's queue. The trainer's state dict has the official training-checkpoint keys
 * (`encoder.*`, `loss.perceptual_loss.*`, `loss.discriminator.*`, `quantize.*`, `model_ema.*`).
 */
import { basename } from 'node:path';
import { checkField, fieldValue } from '../config/fields.js';
import { checkInt, checkOptionKeys, describe, MissingWeightsError, TrainingDivergedError } from '../core/errors.js';
import { loadCheckpoint, saveCheckpoint, type Checkpoint } from '../io/index.js';
import { lightningEntries } from '../io/lightning.js';
import { Module, stateDictEntries, type LoadResult, type StateDict } from '../core/module.js';
import { native, type ProcessGroupNative, type TokenizerTrainerNative, type TokenizerTrainerStateNative } from '../native.js';
import { checkAutocastDType } from '../core/autocast.js';
import { tensorArg } from '../core/tensor.js';
import { disposeTensors, Tensor, wrap } from '../core/tensor.js';
import type { Tokenizer } from './tokenizer.js';
import { TOKENIZER_TRAINER_FIELDS, type ResolvedTokenizerTrainerFields, type TokenizerTrainerFields } from './training_fields.js';
import {
  adamStateDict,
  adamStateFromDict,
  lambdaLrStateDict,
  lpipsProvenance,
  resolveLossConfig,
  type LossConfig,
  type ResolvedLossConfig,
} from './trainer_state.js';

export type SchedulerType = NonNullable<TokenizerTrainerFields['scheduler_type']>;

/**
 * Options of TokenizerTrainer: the declared training settings (TokenizerTrainerFields, lib/tokenizer/training_fields.ts,
 * where their defaults are) under camelCase names, plus autocast and seed.
 */
export interface TokenizerTrainerOptions {
  /** learning_rate: base LR of both optimizers. */
  learningRate?: number;
  /** scheduler_type: the official LR schedule. */
  schedulerType?: SchedulerType;
  /** warmup_steps: warm-up steps (official warmup_epochs x steps per epoch). */
  warmupSteps?: number;
  /** max_steps: total steps (official max_epochs x steps per epoch), for the cosine decay. */
  totalSteps?: number;
  /** min_learning_rate: floor of the cosine decay. */
  minLearningRate?: number;
  /** lr_drop_epoch / lr_drop_rate: after epoch e with e + 1 listed, LRs are multiplied by the rate. */
  lrDropEpoch?: number[];
  lrDropRate?: number;
  /** gradient_clip_val: > 0 clips the generator gradients to this global norm. */
  gradientClipVal?: number;
  /** use_ema: keep the LitEma of the weights (model_ema.*; the official default is false). */
  useEma?: boolean;
  /** ema_decay: the LitEma decay. */
  emaDecay?: number;
  /** Mixed precision for the forward passes ('bfloat16' on CPU; 'float16' on CUDA). */
  autocast?: 'bfloat16' | 'float16';
  /** Seeds torch before the discriminator is initialised (official weights_init draws). */
  seed?: number;
}

/** The declared setting (TokenizerTrainerFields) behind each camelCase option. */
const SETTING_OF = {
  learningRate: 'learning_rate', schedulerType: 'scheduler_type', warmupSteps: 'warmup_steps', totalSteps: 'max_steps',
  minLearningRate: 'min_learning_rate', lrDropEpoch: 'lr_drop_epoch', lrDropRate: 'lr_drop_rate',
  gradientClipVal: 'gradient_clip_val', useEma: 'use_ema', emaDecay: 'ema_decay',
} as const satisfies { [K in keyof TokenizerTrainerOptions]?: keyof TokenizerTrainerFields };
type Mapped = (typeof SETTING_OF)[keyof typeof SETTING_OF];
/** Compile-time check: every declared setting has its option (adding a field without one fails to compile). */
const EVERY_SETTING_MAPPED: Exclude<keyof TokenizerTrainerFields, Mapped> extends never ? true : never = true;
void EVERY_SETTING_MAPPED;

/** The official init_args optimisation fields that trainTokenizer reads (warmup_epochs aside: epochs, not steps). */
const CONFIG_SETTINGS = ['learning_rate', 'scheduler_type', 'min_learning_rate', 'lr_drop_epoch', 'lr_drop_rate', 'gradient_clip_val', 'use_ema'] as const;

/**
 * The TokenizerTrainer options that the official init_args of a tokenizer YAML give (learning_rate,
 * scheduler_type, min_learning_rate, lr_drop_epoch, lr_drop_rate, gradient_clip_val, use_ema; null means absent,
 * as the official None), checked against their declaration; absent ones stay absent (the declared defaults apply).
 * @throws TypeError / RangeError naming `<arg>.<field>`
 */
export function trainerOptionsFromConfig(initArgs: Record<string, unknown>, arg = 'config'): TokenizerTrainerOptions {
  const out: Record<string, unknown> = {};
  for (const field of CONFIG_SETTINGS) {
    const v = initArgs[field];
    if (v === undefined || v === null) continue;
    const option = (Object.keys(SETTING_OF) as (keyof typeof SETTING_OF)[]).find((k) => SETTING_OF[k] === field)!;
    out[option] = checkField(TOKENIZER_TRAINER_FIELDS[field], v, `${arg}.${field}`);
  }
  return out as TokenizerTrainerOptions;
}

/**
 * The declared settings of TokenizerTrainerOptions (defaults filled in), with a cosine decay longer than its warm-up.
 * @throws TypeError / RangeError naming `<arg>.<option>`
 */
function trainerSettings(o: TokenizerTrainerOptions, arg: string): ResolvedTokenizerTrainerFields {
  const given = o as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [option, field] of Object.entries(SETTING_OF)) {
    out[field] = fieldValue(TOKENIZER_TRAINER_FIELDS[field], given[option], `${arg}.${option}`);
  }
  const s = out as unknown as ResolvedTokenizerTrainerFields;
  if (s.scheduler_type === 'linear-warmup_cosine-decay' && s.max_steps <= s.warmup_steps) {
    throw new RangeError(`${arg}.totalSteps: linear-warmup_cosine-decay: the total training steps (${s.max_steps}) must exceed ` +
      `the warm-up steps (${s.warmup_steps})`);
  }
  return s;
}

/** LPIPS weights: a tokenizer checkpoint holding loss.perceptual_loss.*, or torchvision vgg16 + LPIPS lin files. */
export type PerceptualSource = string | Checkpoint | { vgg16: string; lin: string };

/** The error TokenizerTrainer.step rejects with on a NaN/inf loss: TrainingDivergedError (one class per event). */
export { TrainingDivergedError as NonFiniteLossError };

const PERCEPTUAL = 'loss.perceptual_loss.';
const LPIPS_HELP =
  'LPIPS weights are needed (lossconfig perceptual_weight > 0). Either train without LPIPS (set perceptual_weight: 0 ' +
  'in lossconfig.params), or load a tokenizer training checkpoint holding loss.perceptual_loss.* ' +
  "(loadPerceptual('<ckpt>'); CLI --lpips-ckpt FILE), or give the torchvision VGG16 weights 'vgg16-397923af.pth' " +
  "(https://download.pytorch.org/models/vgg16-397923af.pth) and the LPIPS v0.1 lin layers 'vgg.pth', which ship " +
  'with the upstream LPIPS repository (https://github.com/richzhang/PerceptualSimilarity, lpips/weights/v0.1/vgg.pth): ' +
  'loadPerceptual({ vgg16, lin }) (CLI: --lpips-weights DIR or $IBQ_LPIPS_WEIGHTS, a folder holding both files; or ' +
  '--lpips-vgg16 FILE --lpips-lin FILE; the training scripts: LPIPS_VGG16 and LPIPS_LIN)';

export interface TrainerCheckpointInfo {
  epoch: number;
  globalStep: number;
  /** Extra top-level entries (e.g. data position, config). */
  extra?: Record<string, unknown>;
}

export class TokenizerTrainer extends Module<TokenizerTrainerNative> {
  readonly tokenizer: Tokenizer;
  readonly lossconfig: ResolvedLossConfig;
  readonly options: Readonly<TokenizerTrainerOptions>;
  /** The options as the declared settings, defaults filled in. */
  readonly #settings: ResolvedTokenizerTrainerFields;
  /** The global step the next step() uses when none is given. */
  globalStep = 0;
  #perceptualLoaded = false;
  #lr: [number, number];
  /** Where the loaded LPIPS weights came from (recorded in checkpoints as meta.lpips_weights). */
  #perceptualSource: string | undefined;

  private constructor(
    handle: TokenizerTrainerNative, tokenizer: Tokenizer, loss: ResolvedLossConfig, opts: TokenizerTrainerOptions,
    settings: ResolvedTokenizerTrainerFields,
  ) {
    super(handle);
    this.tokenizer = tokenizer;
    this.lossconfig = loss;
    this.options = opts;
    this.#settings = settings;
    this.#lr = [settings.learning_rate, settings.learning_rate];
  }

  /**
   * A trainer for `tokenizer` (its weights are trained in place; calls on both share one queue).
   * @param lossconfig official lossconfig.params (or `{ target, params }`)
   * @throws TypeError/RangeError naming a bad field (e.g. disc_loss other than 'hinge' / 'vanilla')
   */
  static create(tokenizer: Tokenizer, lossconfig: LossConfig | { params: LossConfig }, opts: TokenizerTrainerOptions = {}): TokenizerTrainer {
    const a = TokenizerTrainer.#args(tokenizer, lossconfig, opts);
    return TokenizerTrainer.#made(new native.TokenizerTrainerHandle(tokenizer, a.loss, a.nativeOpts, a.o.seed), tokenizer, a);
  }

  /**
   * create() with the networks (discriminator, LPIPS, EMA copies) built on a worker thread, after the
   * tokenizer's queued jobs: the event loop stays free. Same arguments and errors (as a rejection).
   */
  static async createAsync(tokenizer: Tokenizer, lossconfig: LossConfig | { params: LossConfig }, opts: TokenizerTrainerOptions = {}): Promise<TokenizerTrainer> {
    const a = TokenizerTrainer.#args(tokenizer, lossconfig, opts);
    return TokenizerTrainer.#made(await native.buildTokenizerTrainer(tokenizer, a.loss, a.nativeOpts, a.o.seed), tokenizer, a);
  }

  static #args(tokenizer: Tokenizer, lossconfig: LossConfig | { params: LossConfig }, opts: TokenizerTrainerOptions) {
    if (!tokenizer || typeof (tokenizer as { moduleRef?: unknown }).moduleRef !== 'function') {
      throw new TypeError(`tokenizer: expected a Tokenizer, got ${describe(tokenizer)}`);
    }
    const loss = resolveLossConfig(lossconfig);
    const o = opts ?? {};
    if (typeof o !== 'object') throw new TypeError(`opts: expected an object, got ${describe(o)}`);
    checkOptionKeys(o, [...Object.keys(SETTING_OF), 'autocast', 'seed'], 'opts');
    if (o.seed !== undefined) checkInt(o.seed, 'opts.seed', 0);
    const settings = trainerSettings(o, 'opts');
    const nativeOpts = { ...settings, autocast: checkAutocastDType(o.autocast, 'opts.autocast', tokenizer.device) };
    return { loss, o, settings, nativeOpts };
  }

  static #made(
    handle: TokenizerTrainerNative, tokenizer: Tokenizer,
    a: { loss: ResolvedLossConfig; o: TokenizerTrainerOptions; settings: ResolvedTokenizerTrainerFields },
  ): TokenizerTrainer {
    const t = new TokenizerTrainer(handle, tokenizer, a.loss, { ...a.o }, a.settings);
    t.train();
    return t;
  }

  /** Whether LPIPS weights were loaded (required when perceptual_weight > 0). */
  get perceptualLoaded(): boolean {
    return this.#perceptualLoaded;
  }

  /**
   * Loads weights by training-module names (tokenizer keys, loss.*, model_ema.*). Marks LPIPS as loaded when
   * every loss.perceptual_loss.* weight was present.
   */
  override async loadStateDict(sd: StateDict | Iterable<[string, Tensor]>, opts: { strict?: boolean } = {}): Promise<LoadResult> {
    const entries = stateDictEntries(sd);
    const r = await this.native.loadStateDict(entries, opts.strict ?? true);
    const given = new Set(entries.map(([k]) => k));
    const lpipsKeys = this.parameterNames().filter((k) => k.startsWith(PERCEPTUAL));
    if (lpipsKeys.length > 0 && lpipsKeys.every((k) => given.has(k)) && !r.mismatched.some((m) => m.key.startsWith(PERCEPTUAL))) {
      this.#perceptualLoaded = true;
      this.#perceptualSource ??= 'a state dict';
    }
    return r;
  }

  /** Loads the LPIPS weights from a checkpoint (its loss.perceptual_loss.*) or from torchvision + lin files. */
  async loadPerceptual(source: PerceptualSource): Promise<void> {
    if (source && typeof source === 'object' && 'vgg16' in source) {
      const [vgg, lin] = await Promise.all([loadCheckpoint(source.vgg16), loadCheckpoint(source.lin)]);
      await this.native.loadLpipsTorchvision(stateDictEntries(vgg.stateDict, source.vgg16), stateDictEntries(lin.stateDict, source.lin));
      this.#perceptualLoaded = true;
      this.#perceptualSource = `torchvision ${basename(source.vgg16)} + LPIPS ${basename(source.lin)}`;
      return;
    }
    const ckpt = typeof source === 'string' ? await loadCheckpoint(source) : source;
    const where = typeof source === 'string' ? source : 'checkpoint';
    const sub = [...ckpt.stateDict].filter(([k]) => k.startsWith(PERCEPTUAL));
    if (sub.length === 0) throw new RangeError(`${where}: holds no ${PERCEPTUAL}* weights. ${LPIPS_HELP}`);
    const prov = lpipsProvenance(ckpt.meta as Record<string, unknown>);
    if (!prov.trained) throw new RangeError(`${where}: its ${PERCEPTUAL}* weights are not usable: ${prov.why}. ${LPIPS_HELP}`);
    this.#perceptualSource = prov.source === 'official checkpoint' ? `official checkpoint ${basename(where)}` : prov.source;
    const r = await this.loadStateDict(sub, { strict: false });
    if (!this.#perceptualLoaded) {
      const missing = r.missing.filter((k) => k.startsWith(PERCEPTUAL));
      throw new RangeError(`${where}: incomplete LPIPS weights (missing ${missing.join(', ')})`);
    }
  }

  #checkReady(): void {
    if (this.lossconfig.perceptual_weight > 0 && !this.#perceptualLoaded) throw new MissingWeightsError(LPIPS_HELP, 'vgg16-397923af.pth, vgg.pth', 'https://download.pytorch.org/models/vgg16-397923af.pth');
  }

  /**
   * One official training step on a batch [B, C, H, W] in [-1, 1] (float32): discriminator update, then
   * generator update, schedulers, EMA. Resolves to the log dictionary (official names, e.g. 'train/total_loss',
   * 'train/disc_loss'). Rejects with TrainingDivergedError (ERR_IBQ_NON_FINITE, naming the step) when a loss is NaN/inf; that update
   * is then skipped. Gradient accumulation (Lightning's accumulate_grad_batches): the batch holds micro-batches of
   * `microBatch` images (the last one may be smaller; at most `accumulate` of them, fewer at an epoch's end), or
   * without `microBatch` `accumulate` near-equal ones; each optimizer's gradients are accumulated over them (each
   * its own forward, its mean loss / accumulate whatever the number of micro-batches, as Lightning weighs an
   * epoch's last update) before its one update, and the log is their mean. After setDataParallel, gradients and
   * the log are also averaged over the ranks and a non-finite loss on any rank stops every rank
   * (TrainingDivergedError.ranks names them).
   */
  async step(batch: Tensor, opts: { globalStep?: number; accumulate?: number; microBatch?: number } = {}): Promise<Record<string, number>> {
    this.#checkReady();
    const gs = checkInt(opts.globalStep ?? this.globalStep, 'opts.globalStep', 0);
    const acc = checkInt(opts.accumulate ?? 1, 'opts.accumulate', 1);
    const micro = opts.microBatch === undefined ? undefined : checkInt(opts.microBatch, 'opts.microBatch', 1);
    const rows = batch?.shape?.[0];
    if (rows !== undefined && micro === undefined && rows < acc) {
      throw new RangeError(`opts.accumulate: ${acc} near-equal micro-batches need at least as many images, the batch has ${rows}` +
        ' (give opts.microBatch for an epoch\'s last, smaller update)');
    }
    if (rows !== undefined && micro !== undefined && Math.ceil(rows / micro) > acc) {
      throw new RangeError(`opts.microBatch: ${rows} images make ${Math.ceil(rows / micro)} micro-batches of ${micro}, more than opts.accumulate ${acc}`);
    }
    const r = await this.native.step(tensorArg(batch, 'batch'), gs, acc, micro);
    this.#lr = r.lr;
    if (r.nonfinite) throw new TrainingDivergedError(gs, `${r.nonfinite} loss`, { ranks: r.nonfiniteRanks, log: r.log });
    this.globalStep = gs + 1;
    return r.log;
  }

  /**
   * Data-parallel training over `group` (DDP semantics, c10d::Reducer): a collective that every rank calls
   * after loading the same weights; broadcasts parameters and buffers from rank 0. null turns it off.
   */
  async setDataParallel(group: { native: ProcessGroupNative } | null, opts: { bucketCapMb?: number } = {}): Promise<void> {
    this.#checkReady();
    await this.native.setDataParallel(group ? group.native : null, opts);
  }

  /**
   * The loss of optimizer 0 (generator) or 1 (discriminator) at globalStep and its gradients w.r.t. the named
   * parameters (training-module names), with no update. The discriminator loss updates the LeCAM EMA (and
   * BatchNorm statistics) as the official forward does.
   */
  async lossAndGrads(
    x: Tensor,
    opts: { optimizerIdx: 0 | 1; globalStep: number; wrt?: string[] },
  ): Promise<{ loss: number; log: Record<string, number>; grads: Map<string, Tensor> }> {
    this.#checkReady();
    const idx = checkInt(opts?.optimizerIdx, 'opts.optimizerIdx', 0, 1);
    const gs = checkInt(opts.globalStep, 'opts.globalStep', 0);
    const wrt = opts.wrt ?? [];
    if (!Array.isArray(wrt) || wrt.some((w) => typeof w !== 'string')) throw new TypeError('opts.wrt: expected an array of parameter names');
    const r = await this.native.lossAndGrads(tensorArg(x, 'x'), idx, gs, wrt);
    return { loss: r.loss, log: r.log, grads: new Map(r.grads.map(([k, h]) => [k, wrap(h)])) };
  }

  /** LPIPS distance [B, 1, 1, 1] of two [B, 3, H, W] images in [-1, 1] with the trainer's perceptual network. */
  async lpips(a: Tensor, b: Tensor): Promise<Tensor> {
    return wrap(await this.native.lpips(tensorArg(a, 'a'), tensorArg(b, 'b')));
  }

  /** End of (0-based) epoch: the official LR drop (lr_drop_epoch). */
  endEpoch(epoch: number): Promise<void> {
    return this.native.endEpoch(checkInt(epoch, 'epoch', 0));
  }

  /** Learning rates [generator, discriminator] of the latest step (before any step: the base rate). */
  learningRates(): [number, number] {
    return [...this.#lr];
  }

  /**
   * Writes toCheckpoint() to `path` with saveCheckpoint (atomic) and releases the copies it made (weights,
   * optimizer moments, RNG state) at once instead of leaving them to the garbage collector.
   */
  async save(path: string, info: TrainerCheckpointInfo): Promise<void> {
    const ck = await this.toCheckpoint(info);
    try {
      await saveCheckpoint(path, ck);
    } finally {
      disposeTensors(ck);
    }
  }

  /**
   * A Lightning-shaped checkpoint: state_dict (official keys incl. model_ema.* and loss.discriminator.*),
   * epoch, global_step, loops, optimizer_states [generator, discriminator], lr_schedulers, plus `lecam_ema` and
   * `rng_state` (for an exact resume). Write it with saveCheckpoint.
   */
  async toCheckpoint(info: TrainerCheckpointInfo): Promise<{ stateDict: StateDict; meta: Record<string, unknown> }> {
    const s: TokenizerTrainerStateNative = await this.native.getState();
    // randomly initialised LPIPS weights (perceptual_weight 0 without weights) are not stored: they would pass
    // for LPIPS weights later (--lpips-ckpt, eval) and make up most of a small tokenizer's checkpoint
    const stateDict = await this.snapshot({ skip: this.#perceptualLoaded ? [] : [PERCEPTUAL] });
    const sched = this.#settings.scheduler_type !== 'None';
    const base = this.#settings.learning_rate;
    const meta: Record<string, unknown> = {
      epoch: info.epoch,
      global_step: info.globalStep,
      ...lightningEntries(info.globalStep, sched ? s.optimizers.map((o) => lambdaLrStateDict(base, s.schedulerSteps, o.lr)) : []),
      optimizer_states: s.optimizers.map((o) => adamStateDict(o, sched ? base : undefined)),
      lecam_ema: { logits_real_ema: s.lecam[0], logits_fake_ema: s.lecam[1], decay: 0.999 },
      rng_state: wrap(s.rng),
      lpips_weights: this.#perceptualLoaded ? { source: this.#perceptualSource ?? 'unknown' } : null,
      ...(info.extra ?? {}),
    };
    return { stateDict, meta };
  }

  /**
   * Restores a checkpoint written by toCheckpoint (or an official Lightning one): weights (strict), optimizer
   * states, scheduler position, LeCAM EMA and RNG state where present. Returns { epoch, globalStep }.
   */
  async restore(ckpt: Checkpoint, where = 'checkpoint'): Promise<{ epoch: number; globalStep: number }> {
    const m = ckpt.meta as Record<string, unknown>;
    const noLpips = ![...ckpt.stateDict.keys()].some((k) => k.startsWith(PERCEPTUAL));
    if (noLpips) {
      // a checkpoint without LPIPS weights (none were trained): everything else must be there
      const r = await this.loadStateDict(ckpt.stateDict, { strict: false });
      const missing = r.missing.filter((k) => !k.startsWith(PERCEPTUAL));
      if (missing.length || r.unexpected.length || r.mismatched.length) {
        throw new RangeError(`${where}: state_dict does not match the trainer (missing ${missing.slice(0, 5).join(', ') || '-'}; ` +
          `unexpected ${r.unexpected.slice(0, 5).join(', ') || '-'}; mismatched ${r.mismatched.slice(0, 5).map((x) => x.key).join(', ') || '-'})`);
      }
    } else {
      if (!lpipsProvenance(m).trained) {
        // keep the weights loaded for an exact resume, but never count them as trained LPIPS weights
        await this.loadStateDict([...ckpt.stateDict].filter(([k]) => !k.startsWith(PERCEPTUAL)), { strict: false });
      } else {
        await this.loadStateDict(ckpt.stateDict, { strict: true });
        const prov = lpipsProvenance(m);
        if (prov.source && prov.source !== 'official checkpoint') this.#perceptualSource = prov.source;
      }
    }
    const state: Parameters<TokenizerTrainerNative['setState']>[0] = {};
    const opts = m.optimizer_states;
    if (Array.isArray(opts) && opts.length === 2) {
      const names = this.parameterNames();
      const nDisc = names.filter((k) => k.startsWith('loss.discriminator.')).length;
      const nGen = names.filter((k) => !k.startsWith('loss.')).length;
      state.optimizers = [adamStateFromDict(opts[0], nGen, `${where}: optimizer_states[0]`), adamStateFromDict(opts[1], nDisc, `${where}: optimizer_states[1]`)];
    }
    const scheds = m.lr_schedulers;
    if (Array.isArray(scheds) && scheds.length > 0) {
      const last = Number((scheds[0] as { last_epoch?: unknown }).last_epoch);
      if (Number.isInteger(last) && last >= 0) state.schedulerSteps = last;
    }
    const lecam = m.lecam_ema as { logits_real_ema?: unknown; logits_fake_ema?: unknown } | undefined;
    if (lecam && typeof lecam.logits_real_ema === 'number' && typeof lecam.logits_fake_ema === 'number') {
      state.lecam = [lecam.logits_real_ema, lecam.logits_fake_ema];
    }
    if (m.rng_state instanceof Tensor) state.rng = m.rng_state.handle;
    await this.native.setState(state);
    const globalStep = Number(m.global_step ?? 0);
    this.globalStep = globalStep;
    return { epoch: Number(m.epoch ?? 0), globalStep };
  }
}
