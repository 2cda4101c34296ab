/**
 * numpy values inside pickles (Lightning hyper-parameters often hold numpy scalars and arrays): dtypes,
 * scalars (`numpy.core.multiarray.scalar`) and arrays (`_reconstruct` + BUILD) become JS numbers and
 * typed arrays. Also the dtype-string helpers shared with the .npy reader.
 */
export type NumpyArray =
  | Float32Array | Float64Array | BigInt64Array | BigUint64Array | Int32Array | Uint32Array
  | Int16Array | Uint16Array | Int8Array | Uint8Array;

type Ctor = new (n: number) => NumpyArray;
const KINDS: Record<string, Record<number, Ctor>> = {
  f: { 2: Float32Array, 4: Float32Array, 8: Float64Array },
  i: { 1: Int8Array, 2: Int16Array, 4: Int32Array, 8: BigInt64Array },
  u: { 1: Uint8Array, 2: Uint16Array, 4: Uint32Array, 8: BigUint64Array },
  b: { 1: Uint8Array },
};

/** Half-precision bits -> number. */
export function halfToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** A numpy dtype: kind letter ('f', 'i', 'u', 'b', ...), item size in bytes, byte order ('<', '>', '|'). */
export class NpDType {
  constructor(
    public kind: string,
    public itemsize: number,
    public byteorder: string = '<',
  ) {}
  /** numpy's BUILD state of a dtype: (version, byteorder, subarray, names, fields, elsize, alignment, flags). */
  setState(state: unknown, where: string): void {
    if (!Array.isArray(state) || typeof state[1] !== 'string') throw new Error(`${where}: malformed pickle: numpy dtype state`);
    if (state[3] !== null && state[3] !== undefined) this.kind = 'V'; // structured: not decodable
    this.byteorder = state[1] === '=' ? '<' : state[1];
  }
  get name(): string {
    const names: Record<string, string> = { f: 'float', i: 'int', u: 'uint' };
    if (this.kind === 'b') return 'bool';
    return names[this.kind] ? `${names[this.kind]}${this.itemsize * 8}` : `${this.kind}${this.itemsize}`;
  }
  get decodable(): boolean {
    return !!KINDS[this.kind]?.[this.itemsize];
  }
}

/** 'f8', '<f4', '|u1', 'b1', '?', 'int64', 'float32' ... -> NpDType (kind 'O' etc. kept, not decodable). */
export function parseNpDType(s: string): NpDType {
  let m = /^([<>|=]?)([a-zA-Z?])(\d*)$/.exec(s);
  if (m) {
    let kind = m[2] === '?' ? 'b' : m[2];
    let size = m[3] ? Number(m[3]) : kind === 'b' ? 1 : 0;
    if (kind === 'd') [kind, size] = ['f', 8];
    if (kind === 'e') [kind, size] = ['f', 2];
    const order = m[1] === '>' ? '>' : m[1] === '|' ? '|' : '<';
    return new NpDType(kind, size, order);
  }
  m = /^(float|int|uint)(\d+)$/.exec(s);
  if (m) return new NpDType({ float: 'f', int: 'i', uint: 'u' }[m[1]]!, Number(m[2]) / 8);
  if (s === 'bool') return new NpDType('b', 1, '|');
  return new NpDType('?' + s, 0);
}

/**
 * Decodes `count` values of `dtype` from raw bytes (little- or big-endian) into a typed array in the
 * platform's (little-endian) order; float16 is widened to Float32Array.
 */
export function decodeArray(dtype: NpDType, raw: Uint8Array, count: number, where: string): NumpyArray {
  const C = KINDS[dtype.kind]?.[dtype.itemsize];
  if (!C) throw new Error(`${where}: numpy dtype ${dtype.name} is not supported`);
  const size = dtype.itemsize;
  if (raw.length !== count * size) {
    throw new Error(`${where}: numpy data holds ${raw.length} bytes, the dtype and shape need ${count * size}`);
  }
  const bytes = new Uint8Array(raw); // a copy, aligned at offset 0
  if (dtype.byteorder === '>' && size > 1) {
    for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse();
  }
  if (dtype.kind === 'f' && size === 2) {
    const bits = new Uint16Array(bytes.buffer, 0, count);
    return Float32Array.from(bits, halfToNumber);
  }
  return new (C as unknown as new (b: ArrayBuffer, o: number, n: number) => NumpyArray)(bytes.buffer, 0, count);
}

/** One numpy scalar: number (floats, ints within 2^53), bigint (larger int64), boolean. */
export function decodeNumpy(dtype: NpDType, raw: Uint8Array, _shape: number[], where: string): unknown[] {
  if (raw.length !== dtype.itemsize) return [];
  const a = decodeArray(dtype, raw, 1, where);
  const v = a[0];
  if (dtype.kind === 'b') return [v !== 0];
  if (typeof v === 'bigint') {
    return [v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v];
  }
  return [v];
}

/** Number of elements of a shape, or -1 when it exceeds `limit`. */
export function shapeNumel(shape: number[], limit: number): number {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (n > limit) return -1;
  }
  return n;
}

/** C-order copy of a Fortran-order array. */
export function fortranToC<T extends NumpyArray>(a: T, shape: number[]): T {
  const n = a.length;
  const out = new (a.constructor as new (n: number) => T)(n);
  const nd = shape.length;
  const idx = new Array<number>(nd).fill(0);
  const fStride = new Array<number>(nd);
  let acc = 1;
  for (let d = 0; d < nd; ++d) (fStride[d] = acc), (acc *= shape[d]);
  for (let i = 0; i < n; ++i) {
    let src = 0;
    for (let d = 0; d < nd; ++d) src += idx[d] * fStride[d];
    out[i] = a[src];
    for (let d = nd - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

/** An ndarray being unpickled (`_reconstruct` then BUILD with (version, shape, dtype, fortran, data)). */
export class NdArrayRef {
  value: NumpyArray | unknown[] = [];
  shape: number[] = [0];
  setState(state: unknown, where: string): void {
    const bad = (m: string): never => {
      throw new Error(`${where}: malformed pickle: numpy array state: ${m}`);
    };
    if (!Array.isArray(state) || state.length < 5) bad('not a 5-tuple');
    const [, shape, dtype, fortran, raw] = state as unknown[];
    if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= 0)) bad('shape');
    if (!(dtype instanceof NpDType)) bad('dtype');
    this.shape = shape as number[];
    if (Array.isArray(raw)) {
      this.value = raw; // object arrays: the items themselves
      return;
    }
    if (!(raw instanceof Uint8Array)) bad('data is neither bytes nor a list');
    const count = shapeNumel(this.shape, (raw as Uint8Array).length);
    if (count < 0) bad(`shape [${this.shape}] exceeds the data`);
    let a = decodeArray(dtype as NpDType, raw as Uint8Array, count, where);
    if (fortran && this.shape.length > 1) a = fortranToC(a, this.shape);
    this.value = a;
  }
  /** The JS value: a typed array (N-d arrays carry a non-enumerable `shape`), or a list for object arrays. */
  toValue(): NumpyArray | unknown[] {
    if (this.shape.length !== 1) Object.defineProperty(this.value, 'shape', { value: this.shape, enumerable: false });
    return this.value;
  }
}
