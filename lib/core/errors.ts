/** Argument checks shared by the public API: each error names the argument and the expected form. */

export function describe(v: unknown): string {
  if (v === undefined) return 'nothing (the value is missing)';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  if (typeof v === 'object') return `an object (${(v as object).constructor?.name ?? 'Object'})`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  return `${typeof v} ${String(v)}`;
}

export function checkInt(v: unknown, name: string, min = -Infinity, max = Infinity): number {
  if (typeof v !== 'number') throw new TypeError(`${name}: expected an integer, got ${describe(v)}`);
  if (!Number.isInteger(v) || v < min || v > max) {
    const range = `${min === -Infinity ? '' : `>= ${min}`}${min !== -Infinity && max !== Infinity ? ' and ' : ''}${
      max === Infinity ? '' : `<= ${max}`
    }`;
    throw new RangeError(`${name}: expected an integer${range ? ' ' + range : ''}, got ${v}`);
  }
  return v;
}

export function checkNumber(v: unknown, name: string, min = -Infinity, max = Infinity): number {
  if (typeof v !== 'number') throw new TypeError(`${name}: expected a number, got ${describe(v)}`);
  if (!Number.isFinite(v) || v < min || v > max) {
    throw new RangeError(`${name}: expected a finite number in [${min}, ${max}], got ${v}`);
  }
  return v;
}

export function checkShape(v: unknown, name = 'shape'): number[] {
  if (!Array.isArray(v)) throw new TypeError(`${name}: expected an array of non-negative integers, got ${describe(v)}`);
  v.forEach((d, i) => checkInt(d, `${name}[${i}]`, 0));
  return v as number[];
}

export function checkString(v: unknown, name: string): string {
  if (typeof v !== 'string') throw new TypeError(`${name}: expected a string, got ${describe(v)}`);
  return v;
}

/**
 * Rejects option keys outside `allowed` (a typo or the official snake_case name silently ignored would give
 * wrong results): TypeError `options.cfg_scale: unknown option (did you mean cfgScale?)`, else listing the
 * accepted keys.
 */
export function checkOptionKeys(o: object, allowed: readonly string[], name = 'options'): void {
  for (const k of Object.keys(o)) {
    if (allowed.includes(k)) continue;
    const camel = k.replace(/[_-]+([a-z0-9])/gi, (_, c: string) => c.toUpperCase());
    const near = allowed.find((a) => a.toLowerCase() === camel.toLowerCase());
    throw new TypeError(`${name}.${k}: unknown option (${near ? `did you mean ${near}?` : `expected one of ${allowed.join(', ')}`})`);
  }
}

/**
 * Stable codes of the errors a program may want to handle (`err.code`). Argument errors are TypeError /
 * RangeError naming the argument (code ERR_IBQ_INVALID_ARGUMENT when they come from native code).
 */
export const ERROR_CODES = {
  /** A long call stopped because its AbortSignal fired (err.name 'AbortError'). */
  ERR_IBQ_ABORTED: 'the operation was aborted by its AbortSignal',
  /** A file is not a readable checkpoint / safetensors / npy file (damaged, truncated, or another format). */
  ERR_IBQ_BAD_CHECKPOINT: 'unreadable checkpoint, safetensors or numpy file',
  /** A tensor argument has the wrong shape (native check). */
  ERR_IBQ_SHAPE: 'a tensor has the wrong shape',
  /** A native argument check failed (range, dtype, device). */
  ERR_IBQ_INVALID_ARGUMENT: 'a native argument check failed',
  /** libtorch raised an error (message: its first lines). */
  ERR_IBQ_NATIVE: 'libtorch raised an error',
  /** A call on a model or tensor after its dispose() (a TypeError). */
  ERR_IBQ_DISPOSED: 'the model or tensor has been disposed',
  /** A synchronous call on a model while one of its jobs runs (await the job first). */
  ERR_IBQ_BUSY: 'the model is busy with a running job',
  /** A NaN/inf loss or gradient norm: TrainingDivergedError (TokenizerTrainer.step, and the runs, which stop). */
  ERR_IBQ_NON_FINITE: 'training diverged (non-finite loss)',
  /** A training output folder already holds a run and neither resume nor overwrite was asked for. */
  ERR_IBQ_OUT_DIR_IN_USE: 'the output folder holds another training run',
  /** resume was asked for but there is no checkpoint to resume from. */
  ERR_IBQ_NO_CHECKPOINT: 'no checkpoint to resume from',
  /** Weights a computation needs (LPIPS for evaluation or training, FID Inception) were not found: MissingWeightsError. */
  ERR_IBQ_MISSING_WEIGHTS: 'required pretrained weights are missing',
  /** An image could not be decoded or is larger than allowed. */
  ERR_IBQ_BAD_IMAGE: 'an image could not be decoded or is too large',
  /** A distributed collective failed (peer gone, timeout, rendezvous). */
  ERR_IBQ_DISTRIBUTED: 'a distributed collective failed',
  /** An image larger than the `maxPixels` limit (width x height), refused from its header before decoding. */
  ERR_IBQ_IMAGE_TOO_LARGE: 'an image is larger than maxPixels',
  /** Two inputs would be written to the same output file. */
  ERR_IBQ_OUTPUT_CLASH: 'two inputs map to one output file',
  /** A native call made after its environment began shutting down (process exit, worker end); `ibq serve`: a request while it drains (503). */
  ERR_IBQ_SHUTTING_DOWN: 'the process or worker is shutting down',
  /** The native addon is not built, or was built against another libtorch than the one installed. */
  ERR_IBQ_ADDON: 'the native addon is missing or does not match libtorch',
  /** `ibq serve`: no such route, or a route whose model was not loaded (e.g. /v1/generate without --ar): 404. */
  ERR_IBQ_NOT_FOUND: 'no such route or model on this server',
  /** `ibq serve`: a request body over the server's limit: 413. */
  ERR_IBQ_BODY_TOO_LARGE: 'the request body is over the limit',
  /** `ibq serve`: the request queue is full: 429 with Retry-After. */
  ERR_IBQ_QUEUE_FULL: 'the server queue is full; retry later',
  /** `ibq serve`: a request ran past the request timeout: 504. */
  ERR_IBQ_TIMEOUT: 'the request timed out',
  /** require('ibq-native'): the package is ESM only (lib/core/esm_only.cjs). */
  ERR_IBQ_ESM_ONLY: 'the package is an ES module only',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An Error with a stable `code` (see ERROR_CODES); `cause` keeps the underlying error when there is one. */
export class IbqError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'IbqError';
  }
}

/**
 * A weight file a computation needs (LPIPS, FID Inception) is not there: code ERR_IBQ_MISSING_WEIGHTS. `file` is
 * the expected name, `url` where it is published.
 */
export class MissingWeightsError extends IbqError {
  constructor(
    message: string,
    readonly file: string,
    readonly url: string,
  ) {
    super('ERR_IBQ_MISSING_WEIGHTS', message);
    this.name = 'MissingWeightsError';
  }
}

/**
 * A loss or gradient norm became NaN/inf (code ERR_IBQ_NON_FINITE): thrown by TokenizerTrainer.step for that
 * step (the update is skipped) and by the training runs, which stop there (`lastCheckpoint` set: the last good
 * checkpoint, or null when none was written). `step` is the global step; `what` names the quantity (and the
 * ranks); `ranks` (data-parallel) are those whose value was not finite; `log` the step's logged values.
 */
export class TrainingDivergedError extends IbqError {
  readonly ranks: number[];
  readonly log: Record<string, number>;
  readonly lastCheckpoint: string | null | undefined;
  constructor(
    readonly step: number,
    readonly what: string,
    opts: { ranks?: number[]; log?: Record<string, number>; lastCheckpoint?: string | null } = {},
  ) {
    const ranks = opts.ranks ?? [];
    const where = ranks.length ? ` on rank ${ranks.join(', ')}` : '';
    super('ERR_IBQ_NON_FINITE', opts.lastCheckpoint === undefined
      ? `non-finite ${what} at global step ${step}${where}`
      : `training diverged: non-finite ${what}${where} at global step ${step}; stopped. Nothing was saved for that step. ` +
        `Last good checkpoint: ${opts.lastCheckpoint ?? 'none (no checkpoint was written)'}`);
    this.name = 'TrainingDivergedError';
    this.ranks = ranks;
    this.log = opts.log ?? {};
    this.lastCheckpoint = opts.lastCheckpoint;
  }
}

/** Sets `code` on an error (of any class) unless it has one; returns it. */
export function withCode<E extends Error>(err: E, code: ErrorCode): E & { code: string } {
  const e = err as E & { code?: string };
  if (e.code === undefined) Object.defineProperty(e, 'code', { value: code, enumerable: true, writable: true, configurable: true });
  return e as E & { code: string };
}

/**
 * The one error of an aborted call: every API call taking an AbortSignal rejects with it, whether the signal
 * fired before the call or while it ran (`code` ERR_IBQ_ABORTED, `name` 'AbortError'; `cause`: the signal's
 * reason when it has one). Native jobs that stop on their abort flag reject with it too (lib/native.ts).
 */
export function abortError(signal?: AbortSignal): IbqError {
  const reason = signal?.reason;
  const e = new IbqError('ERR_IBQ_ABORTED', 'the operation was aborted', reason === undefined ? undefined : { cause: reason });
  e.name = 'AbortError';
  return e;
}

/** Throws abortError(signal) when `signal` has fired (the DOMException of signal.throwIfAborted() is not ours). */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}

/** `signal` checked to be an AbortSignal (or undefined): TypeError naming `name` otherwise. */
export function checkSignal(signal: unknown, name = 'signal'): AbortSignal | undefined {
  if (signal === undefined) return undefined;
  if (signal === null || typeof signal !== 'object' || typeof (signal as AbortSignal).aborted !== 'boolean' ||
      typeof (signal as AbortSignal).addEventListener !== 'function') {
    throw new TypeError(`${name}: expected an AbortSignal, got ${describe(signal)}`);
  }
  return signal as AbortSignal;
}
