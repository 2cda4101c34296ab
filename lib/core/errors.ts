/** Argument checks shared by the public API: each error names the argument and the expected form. */

export function describe(v: unknown): string {
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

/** Int32Array(1) flag that native code polls; set when `signal` aborts. Throws if already aborted. */
export function abortFlag(signal: AbortSignal | undefined): Int32Array | undefined {
  if (!signal) return undefined;
  if (typeof signal !== 'object' || typeof signal.aborted !== 'boolean') {
    throw new TypeError(`signal: expected an AbortSignal, got ${describe(signal)}`);
  }
  signal.throwIfAborted();
  const flag = new Int32Array(1);
  signal.addEventListener('abort', () => (flag[0] = 1), { once: true });
  return flag;
}

/**
 * Stable `code`s of the errors the package throws (besides TypeError/RangeError for bad arguments): match on
 * `err.code`, never on the message.
 */
export const ERROR_CODES = {
  /** require('ibq-native'): the package is ESM only (lib/core/esm_only.cjs). */
  ERR_IBQ_ESM_ONLY: 'ERR_IBQ_ESM_ONLY',
  /** An image input sharp cannot decode (not an image, truncated, unsupported format). */
  ERR_IBQ_BAD_IMAGE: 'ERR_IBQ_BAD_IMAGE',
  /** An image input larger than the `maxPixels` limit (width x height), refused before decoding. */
  ERR_IBQ_IMAGE_TOO_LARGE: 'ERR_IBQ_IMAGE_TOO_LARGE',
  /** A native call made after its environment began shutting down (process exit, worker end). */
  ERR_IBQ_SHUTTING_DOWN: 'ERR_IBQ_SHUTTING_DOWN',
  /** The native addon is not built, or was built against another libtorch than the one installed. */
  ERR_IBQ_ADDON: 'ERR_IBQ_ADDON',
  /** Two inputs would be written to the same output file. */
  ERR_IBQ_OUTPUT_CLASH: 'ERR_IBQ_OUTPUT_CLASH',
} as const;
export type ErrorCode = keyof typeof ERROR_CODES;

/** An Error with a stable `code` (one of ERROR_CODES) and an optional `cause`. */
export class IbqError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IbqError';
    this.code = code;
  }
}
