/**
 * Tensor: a handle to a libtorch tensor (CPU or CUDA memory owned by native code, reported to V8 as
 * external memory). Data crosses into JS only through `data()` / `dataSync()`, as the typed arrays of the
 * dtype table of docs/architecture.md.
 */
import { inspect } from 'node:util';

import { checkShape, checkString, describe, withCode } from './errors.js';
import { native, withStack, type TensorHandle } from '../native.js';

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool';
export const DTYPES: readonly DType[] = [
  'float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int8', 'uint8', 'bool',
];

export type TypedArray =
  | Float32Array | Float64Array | BigInt64Array | Int32Array | Int8Array | Uint8Array | Uint16Array;

/** The typed array `data()` returns for each dtype (float16/bfloat16: Float32Array, or Uint16Array bits when raw). */
export interface DataOptions {
  /** float16 / bfloat16 only: return the raw 16-bit patterns as a Uint16Array instead of converting. */
  raw?: boolean;
}

export class Tensor {
  #h: TensorHandle;
  #shape?: number[];

  /** @internal Wraps a native handle; use `tensor()` to make tensors from data. */
  constructor(handle: TensorHandle) {
    if (!(handle instanceof native.TensorHandle)) {
      throw new TypeError('Tensor: construct tensors with tensor(data, shape, opts), not new Tensor()');
    }
    this.#h = handle;
  }

  /** @internal The native handle, for passing to native calls. Throws if disposed. */
  get handle(): TensorHandle {
    if (this.#h.disposed()) throw withCode(new TypeError('tensor: the tensor has been disposed'), 'ERR_IBQ_DISPOSED');
    return this.#h;
  }

  /** Sizes of each dimension (a copy). */
  get shape(): number[] {
    this.#shape ??= this.handle.shape();
    return [...this.#shape];
  }
  /** Element type, e.g. 'float32'. Tensors loaded from files may carry other torch dtypes (e.g. 'complexfloat'). */
  get dtype(): DType {
    return this.handle.dtype() as DType;
  }
  /** 'cpu', 'cuda:0', ... */
  get device(): string {
    return this.handle.device();
  }
  get disposed(): boolean {
    return this.#h.disposed();
  }
  /** Number of elements. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** Copies the values (row-major, contiguous) into a new typed array, off the JS thread. */
  data(opts: DataOptions = {}): Promise<TypedArray> {
    const site: { stack?: string } = {};
    Error.captureStackTrace(site, this.data);
    return (this.handle.data(!!opts.raw) as Promise<TypedArray>).catch((err: unknown) => {
      throw withStack(err, site.stack);
    });
  }
  /** Synchronous `data()`; blocks the event loop for the copy (and a device transfer). */
  dataSync(opts: DataOptions = {}): TypedArray {
    return this.handle.dataSync(!!opts.raw) as TypedArray;
  }
  /** A copy on `device` ('cpu', 'cuda', 'cuda:N'); this tensor itself when already there. */
  to(device: string): Tensor {
    checkString(device, 'device');
    return new Tensor(this.handle.to(device));
  }
  /** Frees the memory now (or when a running native call that uses it ends). Idempotent. */
  dispose(): void {
    this.#h.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
  toString(): string {
    return this.disposed ? 'Tensor(disposed)' : `Tensor(${this.dtype}, [${this.shape.join(', ')}], ${this.device})`;
  }
  [inspect.custom](): string {
    return this.toString();
  }
}

export interface TensorOptions {
  dtype?: DType;
  /** 'cpu' (default), 'cuda', 'cuda:N'. */
  device?: string;
  /** float16 / bfloat16 only: `data` is a Uint16Array of raw 16-bit patterns. */
  raw?: boolean;
}

function inferDType(data: unknown): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint8Array) return 'uint8';
  if (Array.isArray(data)) {
    if (data.length > 0 && typeof data[0] === 'bigint') return 'int64';
    if (data.length > 0 && typeof data[0] === 'boolean') return 'bool';
    return 'float32';
  }
  throw new TypeError(`data: expected a TypedArray or an array of numbers, bigints or booleans, got ${describe(data)}`);
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** Turns a plain array into the typed array the native side expects for `dtype`. */
function fromArray(data: unknown[], dtype: DType): ArrayBufferView {
  const at = (i: number) => `data[${i}]`;
  if (dtype === 'int64') {
    const out = new BigInt64Array(data.length);
    data.forEach((v, i) => {
      if (typeof v === 'bigint') {
        if (v < INT64_MIN || v > INT64_MAX) throw new RangeError(`${at(i)}: int64 takes integers in [-2^63, 2^63-1], got ${v}n`);
        out[i] = v;
      } else if (typeof v === 'number' && Number.isSafeInteger(v)) out[i] = BigInt(v);
      else throw new TypeError(`${at(i)}: int64 takes bigints or safe integers, got ${describe(v)}`);
    });
    return out;
  }
  if (dtype === 'bool') {
    return Uint8Array.from(data, (v, i) => {
      if (typeof v === 'boolean') return v ? 1 : 0;
      if (v === 0 || v === 1) return v;
      throw new TypeError(`${at(i)}: bool takes booleans (or 0/1), got ${describe(v)}`);
    });
  }
  const check = (v: unknown, i: number): number => {
    if (typeof v !== 'number') throw new TypeError(`${at(i)}: ${dtype} takes numbers, got ${describe(v)}`);
    return v;
  };
  const ints: Partial<Record<DType, [new (n: number) => Int32Array | Int8Array | Uint8Array, number, number]>> = {
    int32: [Int32Array, -2147483648, 2147483647],
    int8: [Int8Array, -128, 127],
    uint8: [Uint8Array, 0, 255],
  };
  const spec = ints[dtype];
  if (spec) {
    const [Ctor, lo, hi] = spec;
    const out = new Ctor(data.length);
    data.forEach((v, i) => {
      const n = check(v, i);
      if (!Number.isInteger(n) || n < lo || n > hi) throw new RangeError(`${at(i)}: ${dtype} takes integers in [${lo}, ${hi}], got ${n}`);
      out[i] = n;
    });
    return out;
  }
  const Ctor = dtype === 'float64' ? Float64Array : Float32Array;
  const out = new Ctor(data.length);
  data.forEach((v, i) => (out[i] = check(v, i)));
  return out;
}

/**
 * Makes a tensor from values in row-major order.
 * @param data a typed array of the dtype table, or number[] / bigint[] / boolean[]
 * @param shape sizes, non-negative integers; their product must equal the number of values
 * @throws TypeError for a wrong kind of argument, RangeError for a shape/length mismatch or unknown dtype
 */
export function tensor(data: TypedArray | number[] | bigint[] | boolean[], shape: number[], opts: TensorOptions = {}): Tensor {
  checkShape(shape);
  if (opts === null || typeof opts !== 'object') throw new TypeError(`opts: expected an object, got ${describe(opts)}`);
  const dtype = opts.dtype ?? inferDType(data);
  if (!DTYPES.includes(dtype)) {
    throw new RangeError(`dtype: unknown dtype ${JSON.stringify(dtype)} (expected one of ${DTYPES.join(', ')})`);
  }
  let view: ArrayBufferView;
  if (Array.isArray(data)) view = fromArray(data, dtype);
  else if (ArrayBuffer.isView(data)) view = data;
  else throw new TypeError(`data: expected a TypedArray or an array, got ${describe(data)}`);
  if (opts.device !== undefined) checkString(opts.device, 'device');
  return new Tensor(native.tensorFromData(view, shape, dtype, opts.device, !!opts.raw));
}

/**
 * @internal Rows `rows` of `t` along its first dimension (index_select, on t's device), converted to `dtype`
 * when given: a copy made on a worker thread. RangeError for a row outside [0, t.shape[0]).
 */
export async function selectRows(t: Tensor, rows: readonly number[], dtype?: DType): Promise<Tensor> {
  return wrap(await native.selectRows(t.handle, BigInt64Array.from(rows, (r) => BigInt(r)), dtype));
}

/** The tensors one after another along dim 0 (same dtype and trailing sizes), copied on a worker thread. */
export async function catRows(tensors: readonly Tensor[]): Promise<Tensor> {
  if (!Array.isArray(tensors)) throw new TypeError(`tensors: expected an array of Tensors, got ${describe(tensors)}`);
  return wrap(await native.catRows(tensors.map((t, i) => tensorArg(t, `tensors[${i}]`))));
}

/** @internal Wraps a native handle returned by a native call. */
export function wrap(h: TensorHandle): Tensor {
  return new Tensor(h);
}

/** Disposes every Tensor in `value` (nested arrays, Maps and plain objects), except those in `keep`. */
export function disposeTensors(value: unknown, keep: ReadonlySet<Tensor> = new Set()): void {
  const seen = new Set<unknown>();
  const visit = (v: unknown): void => {
    if (v === null || typeof v !== 'object' || seen.has(v)) return;
    seen.add(v);
    if (v instanceof Tensor) {
      if (!keep.has(v)) v.dispose();
    } else if (v instanceof Map) for (const x of v.values()) visit(x);
    else if (Array.isArray(v)) for (const x of v) visit(x);
    else if (Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) visit(x);
  };
  visit(value);
}

/** The native handle of a Tensor argument; TypeError naming `name` otherwise. */
export function tensorArg(v: unknown, name: string): TensorHandle {
  if (!(v instanceof Tensor)) throw new TypeError(`${name}: expected a Tensor, got ${describe(v)}`);
  return v.handle;
}

/** Wraps every handle of a native result object. */
export function wrapAll<K extends string>(o: Record<K, TensorHandle>): Record<K, Tensor> {
  return Object.fromEntries(Object.entries(o).map(([k, h]) => [k, wrap(h as TensorHandle)])) as Record<K, Tensor>;
}
