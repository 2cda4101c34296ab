/**
 * Declared config fields: the form in which a config's one declaration (the C++ `for_each_field` of
 * native/ibq/core/config_field.h, exported by the addon as `configFields()` and generated into lib/<model>/config_fields.ts
 * by scripts/gen-config-fields.mjs) reaches TypeScript, and the validation against it. This is the one check of a
 * config's values: types, unknown keys and ranges, with the TypeError / RangeError that names the field; the
 * bindings only convert, the core only asserts.
 */
import { describe } from '../core/errors.js';

/** How a field's value is checked and typed. */
export type FieldKind = 'bool' | 'int' | 'number' | 'string' | 'int[]';

/** One declared field (the keys that say nothing are left out). */
export interface FieldSpec {
  readonly type: FieldKind;
  readonly doc: string;
  /** Absent when required. */
  readonly default?: unknown;
  /** No default: the caller gives it. */
  readonly required?: boolean;
  /** Not the official module's: may stay absent (meaning its default) and is not filled in. */
  readonly optional?: boolean;
  /** null is a value. */
  readonly nullable?: boolean;
  /** Only the default is supported. */
  readonly onlyDefault?: boolean;
  /** Bounds of numbers and list elements: min <= v, v > gt, v <= max, v < lt. */
  readonly min?: number;
  readonly gt?: number;
  readonly max?: number;
  readonly lt?: number;
  readonly minItems?: number;
  readonly maxItems?: number;
  /** Strings: the accepted values. */
  readonly choices?: readonly string[];
  /** Integers: names that stand for values. */
  readonly aliases?: Readonly<Record<string, number>>;
}

export type FieldTable = Readonly<Record<string, FieldSpec>>;

/** 'an integer >= 1', 'a finite number in [0, 1)', ... */
function expected(spec: FieldSpec, integer: boolean): string {
  const lo = spec.min ?? spec.gt, hi = spec.max ?? spec.lt;
  const what = integer ? 'an integer' : 'a finite number';
  if (lo !== undefined && hi !== undefined) {
    return `${what} in ${spec.gt !== undefined ? '(' : '['}${lo}, ${hi}${spec.lt !== undefined ? ')' : ']'}`;
  }
  if (lo !== undefined) return `${what} ${spec.gt !== undefined ? '>' : '>='} ${lo}`;
  if (hi !== undefined) return `${what} ${spec.lt !== undefined ? '<' : '<='} ${hi}`;
  return what;
}

function inRange(spec: FieldSpec, v: number): boolean {
  return (spec.min === undefined || v >= spec.min) && (spec.gt === undefined || v > spec.gt) &&
    (spec.max === undefined || v <= spec.max) && (spec.lt === undefined || v < spec.lt);
}

function checkNumberField(spec: FieldSpec, v: unknown, name: string, integer: boolean): number {
  const want = expected(spec, integer);
  if (typeof v !== 'number') throw new TypeError(`${name}: expected ${want}, got ${describe(v)}`);
  if (!Number.isFinite(v) || (integer && !Number.isInteger(v)) || !inRange(spec, v)) {
    throw new RangeError(`${name}: expected ${want}, got ${v}`);
  }
  return v;
}

/**
 * `v` checked against `spec` (a given value: not undefined). Returns it (lists copied).
 * @throws TypeError (wrong kind) / RangeError (out of range, not a choice) naming `name`
 */
export function checkField(spec: FieldSpec, v: unknown, name: string): unknown {
  if (v === null && spec.nullable) return null;
  if (spec.onlyDefault && v !== spec.default) {
    const why = typeof v === typeof spec.default ? RangeError : TypeError;
    throw new why(`${name}: only ${JSON.stringify(spec.default)} is supported (${spec.doc}), got ${describe(v)}`);
  }
  switch (spec.type) {
    case 'bool':
      if (typeof v !== 'boolean') throw new TypeError(`${name}: expected a boolean, got ${describe(v)}`);
      return v;
    case 'number':
      return checkNumberField(spec, v, name, false);
    case 'int': {
      const names = Object.keys(spec.aliases ?? {});
      if (names.length === 0) return checkNumberField(spec, v, name, true);
      const want = `${names.map((n) => `'${n}'`).join(', ')} or ${expected(spec, true)}`;
      if (typeof v === 'string') {
        if (names.includes(v)) return v;
        throw new RangeError(`${name}: expected ${want}, got ${JSON.stringify(v)}`);
      }
      if (typeof v !== 'number') throw new TypeError(`${name}: expected ${want}, got ${describe(v)}`);
      if (!Number.isInteger(v) || !inRange(spec, v)) throw new RangeError(`${name}: expected ${want}, got ${v}`);
      return v;
    }
    case 'string':
      if (typeof v !== 'string') throw new TypeError(`${name}: expected a string, got ${describe(v)}`);
      if (spec.choices && !spec.choices.includes(v)) {
        throw new RangeError(`${name}: expected one of ${spec.choices.map((c) => `'${c}'`).join(', ')}, got ${JSON.stringify(v)}`);
      }
      return v;
    case 'int[]': {
      if (!Array.isArray(v)) throw new TypeError(`${name}: expected an array of integers, got ${describe(v)}`);
      const lo = spec.minItems ?? 0, hi = spec.maxItems ?? Infinity;
      if (v.length < lo || v.length > hi) {
        throw new RangeError(`${name}: expected ${hi === Infinity ? `at least ${lo}` : `${lo} to ${hi}`} integers, got ${v.length}`);
      }
      return v.map((x, i) => checkNumberField(spec, x, `${name}[${i}]`, true));
    }
  }
}

/** The default of a field (a fresh copy of a list). */
export function fieldDefault(spec: FieldSpec): unknown {
  return Array.isArray(spec.default) ? [...spec.default] : spec.default;
}

/**
 * `v` checked against `spec`, or the default when undefined.
 * @throws TypeError naming `name` when a required field is absent; see checkField
 */
export function fieldValue(spec: FieldSpec, v: unknown, name: string): unknown {
  if (v !== undefined) return checkField(spec, v, name);
  if (spec.required) throw new TypeError(`${name}: required, expected ${spec.type === 'int[]' ? 'an array of integers' : spec.type === 'bool' ? 'a boolean' : expected(spec, spec.type === 'int')}`);
  return fieldDefault(spec);
}

export interface ResolveFieldsOptions {
  /** What the table describes, for the unknown-key message ('ddconfig (the Encoder / Decoder arguments)'). */
  what: string;
  /** Keys outside the table: 'error' (RangeError naming the key) or 'keep' (copied as given). */
  unknown: 'error' | 'keep';
}

/**
 * The object `value` checked field by field against `table`, with the defaults filled in (not those of
 * `optional` fields). Errors name the field as `<arg>.<field>`.
 * @throws TypeError when `value` is not an object or a field has the wrong kind; RangeError when a value is out
 *   of range or (unknown: 'error') a key is not a field
 */
export function resolveFields<R>(table: FieldTable, value: unknown, arg: string, opts: ResolveFieldsOptions): R {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError(`${arg}: expected an object (${opts.what}), got ${describe(value)}`);
  }
  const given = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, spec] of Object.entries(table)) {
    if (spec.optional && given[k] === undefined) continue;
    out[k] = fieldValue(spec, given[k], `${arg}.${k}`);
  }
  for (const k of Object.keys(given)) {
    if (k in table) continue;
    if (opts.unknown === 'error') {
      throw new RangeError(`${arg}.${k}: not a field of ${opts.what} (expected one of ${Object.keys(table).join(', ')})`);
    }
    out[k] = given[k];
  }
  return out as R;
}
