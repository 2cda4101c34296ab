/**
 * Lightning's ModelCheckpoint for a training run: checkpoints every `everyNTrainSteps` updates and/or at the end
 * of every `everyNEpochs`-th epoch (after that epoch's validation), named by the `filename` pattern
 * ('{epoch}-{step}' gives 'epoch=0-step=100.ckpt'; '{val/psnr:.2f}' inserts a logged value, '/' written as '_'),
 * the `saveTopK` best kept by `monitor` / `mode` (without monitor: the latest), `last.ckpt` refreshed with
 * saveLast. Its state (best_k_models, best_model_path, ...) travels in the checkpoint under `callbacks`, keyed
 * as Lightning keys it, so a resumed run keeps ranking against the same files.
 */
import { copyFile, mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

import type { CheckpointCallbackSettings } from '../../config/lightning.js';

/** What a checkpoint callback sees after a step. */
export interface CheckpointMoment {
  /** global_step after the step (updates done). */
  globalStep: number;
  /** The step's (0-based) epoch. */
  epoch: number;
  endsEpoch: boolean;
  /** Latest logged values (training and validation). */
  metrics: Record<string, number>;
}

function pyRepr(v: unknown): string {
  if (v === undefined || v === null) return 'None';
  return typeof v === 'string' ? `'${v}'` : String(v);
}

/** Formats a number as Python's format spec does for the forms patterns use ('.4f', 'd', '03d', 'e'). */
function formatValue(v: number, spec: string | undefined): string {
  if (!spec) return String(v);
  const m = /^(0?)(\d*)(?:\.(\d+))?([dfeg]?)$/.exec(spec);
  if (!m) return String(v);
  const [, zero, width, prec, kind] = m;
  let s = kind === 'e' ? v.toExponential(prec === undefined ? 6 : Number(prec)) : kind === 'd' ? String(Math.round(v))
    : prec !== undefined ? v.toFixed(Number(prec)) : String(v);
  if (kind === 'e') s = s.replace(/e([+-])(\d)$/, 'e$10$2');
  if (width && s.length < Number(width)) s = (zero ? '0' : ' ').repeat(Number(width) - s.length) + s;
  return s;
}

/**
 * The file name (without '.ckpt') of a pattern: `{name}` / `{name:spec}` become `name=value` (or the value alone
 * without autoInsert); 'epoch' and 'step' are the moment's; '/' in names and values becomes '_'.
 * @throws RangeError naming the pattern when it refers to a value that was not logged
 */
export function checkpointName(pattern: string, values: Record<string, number>, autoInsert = true): string {
  return pattern.replace(/\{([^{}:]+)(?::([^{}]+))?\}/g, (_, name: string, spec: string | undefined) => {
    const v = values[name];
    if (v === undefined) throw new RangeError(`filename: '${pattern}' names ${name}, which is not logged`);
    const text = formatValue(v, spec);
    return (autoInsert ? `${name}=${text}` : text).replaceAll('/', '_');
  });
}

interface Kept {
  path: string;
  score: number;
}

export class ModelCheckpoint {
  readonly dir: string;
  #kept: Kept[] = [];
  #lastSaved: string | undefined;
  #currentScore: number | undefined;
  #missingWarned = false;

  /** `outDir`: the run's folder (dirpath's default). `warn`: told once when `monitor` was never logged. */
  constructor(readonly s: CheckpointCallbackSettings, outDir: string, private readonly warn: (m: string) => void = () => undefined) {
    this.dir = s.dirpath ?? outDir;
  }

  /** Lightning's state key: `ModelCheckpoint{'monitor': ..., 'mode': ..., ...}`. */
  get key(): string {
    const s = this.s;
    return `ModelCheckpoint{'monitor': ${pyRepr(s.monitor)}, 'mode': ${pyRepr(s.mode)}, 'every_n_train_steps': ${s.everyNTrainSteps ?? 0}, ` +
      `'every_n_epochs': ${s.everyNEpochs ?? 0}, 'train_time_interval': None}`;
  }

  /** Whether this moment is one of the callback's: every_n_train_steps, or the end of an every_n_epochs-th epoch. */
  due(m: CheckpointMoment): boolean {
    const { everyNTrainSteps: n, everyNEpochs: e } = this.s;
    return (n !== undefined && m.globalStep % n === 0) || (e !== undefined && m.endsEpoch && (m.epoch + 1) % e === 0);
  }

  /** The best file: the best-ranked one with monitor, else the latest. */
  get bestPath(): string | undefined {
    return this.s.monitor ? this.#ranked()[0]?.path : this.#lastSaved;
  }

  get kept(): string[] {
    return this.#kept.map((k) => k.path);
  }

  #ranked(): Kept[] {
    const sign = this.s.mode === 'min' ? 1 : -1;
    return [...this.#kept].sort((a, b) => sign * (a.score - b.score));
  }

  /**
   * Saves when due (`write(file)` writes the training state there; only global rank 0 calls this) and drops the
   * files that fall out of the top k.
   */
  async maybeSave(m: CheckpointMoment, write: (file: string) => Promise<void>): Promise<void> {
    if (!this.due(m) || this.s.saveTopK === 0 && !this.s.saveLast) return;
    const score = this.s.monitor === undefined ? m.globalStep : m.metrics[this.s.monitor];
    if (this.s.monitor !== undefined && (score === undefined || !Number.isFinite(score))) {
      if (!this.#missingWarned) this.warn(`ModelCheckpoint: monitor '${this.s.monitor}' has not been logged (yet); no top-k checkpoint at step ${m.globalStep}`);
      this.#missingWarned = true;
      if (this.s.saveLast) await this.#saveLast(write);
      return;
    }
    this.#currentScore = score;
    await mkdir(this.dir, { recursive: true });
    let file: string | undefined;
    if (this.s.saveTopK !== 0) {
      const k = this.s.saveTopK;
      const ranked = this.#ranked();
      const sign = this.s.mode === 'min' ? 1 : -1;
      const better = this.s.monitor === undefined || k < 0 || ranked.length < k || sign * (score! - ranked[ranked.length - 1]!.score) < 0;
      if (better) {
        const values = { ...m.metrics, epoch: m.epoch, step: m.globalStep };
        const path = join(this.dir, `${checkpointName(this.s.filename, values, this.s.autoInsertMetricName)}.ckpt`);
        file = path;
        // the state is updated before the file is written, so the file records itself among the best (as Lightning)
        this.#kept = this.#kept.filter((x) => x.path !== path);
        this.#kept.push({ path, score: score! });
        this.#lastSaved = path;
        let drops: Kept[] = [];
        if (k > 0) {
          const order = this.s.monitor === undefined ? [...this.#kept].sort((a, b) => b.score - a.score) : this.#ranked();
          drops = order.slice(k);
          this.#kept = order.slice(0, k);
        }
        await write(path);
        for (const drop of drops) await rm(drop.path, { force: true });
      }
    }
    if (this.s.saveLast) await this.#saveLast(write, file);
  }

  /** `<dir>/last.ckpt`: a copy of the file just written, else written afresh. */
  async #saveLast(write: (file: string) => Promise<void>, from?: string): Promise<void> {
    const last = join(this.dir, 'last.ckpt');
    if (from) {
      const tmp = `${last}.tmp-${process.pid}`;
      await copyFile(from, tmp);
      await rename(tmp, last);
    } else {
      await mkdir(this.dir, { recursive: true });
      await write(last);
    }
  }

  /** The callback's state as Lightning's ModelCheckpoint.state_dict() names it. */
  stateDict(): Record<string, unknown> {
    const best = this.s.monitor ? this.#ranked()[0] : undefined;
    const kth = this.s.monitor ? this.#ranked()[this.#kept.length - 1] : undefined;
    return {
      monitor: this.s.monitor ?? null,
      best_model_score: best?.score ?? null,
      best_model_path: this.bestPath ?? '',
      current_score: this.#currentScore ?? null,
      dirpath: this.dir,
      best_k_models: Object.fromEntries(this.#kept.map((k) => [k.path, k.score])),
      kth_best_model_path: kth?.path ?? '',
      kth_value: kth?.score ?? null,
      last_model_path: this.s.saveLast ? join(this.dir, 'last.ckpt') : '',
    };
  }

  /** Restores stateDict() (a resumed run): files that no longer exist are forgotten. */
  loadState(d: unknown, exists: (p: string) => boolean): void {
    const o = d as { best_k_models?: Record<string, unknown>; best_model_path?: unknown } | undefined;
    if (!o || typeof o !== 'object') return;
    this.#kept = Object.entries(o.best_k_models ?? {})
      .filter(([p, v]) => typeof v === 'number' && exists(p))
      .map(([p, v]) => ({ path: p, score: v as number }));
    if (typeof o.best_model_path === 'string' && o.best_model_path && !this.s.monitor) this.#lastSaved = o.best_model_path;
  }
}
