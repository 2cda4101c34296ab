/**
 * The allow-list of the safe unpickler: the only globals whose REDUCE/NEWOBJ/BUILD are interpreted
 * (tensor rebuilds, OrderedDict/defaultdict and Lightning's AttributeDict as dicts, set/frozenset/slice, torch.Size/device, _codecs.encode, numpy
 * scalars, dtypes and arrays). Nothing is ever executed: interpreting means building plain JS values. Any
 * other global becomes an `Opaque` object `{ __class__: 'module.Name', args, state }`.
 */
import { decodeNumpy, NdArrayRef, NpDType, parseNpDType } from './numpy_values.js';

/** A global (class or function) named by a pickle, not called: e.g. `typing.Any`, `torch.FloatStorage`. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get fullName(): string {
    return `${this.module}.${this.name}`;
  }
  toString(): string {
    return this.fullName;
  }
}

/** An object of a class outside the allow-list (never constructed; what the pickle said, kept). */
export class Opaque {
  /** Items added by SETITEMS/APPENDS when the class is a dict/list subclass. */
  items?: unknown[];
  kwargs?: unknown;
  /** True when the pickle called the class (REDUCE: `cls(*args)`), false/absent for NEWOBJ (`cls.__new__(cls, *args)`). */
  reduced?: boolean;
  constructor(
    readonly __class__: string,
    public args: unknown[],
    public state: unknown = undefined,
  ) {}
}

/** Python `slice(start, stop, step)`. */
export class PySlice {
  constructor(
    readonly start: unknown,
    readonly stop: unknown,
    readonly step: unknown,
  ) {}
}

/** A storage named by a persistent id: the record key, its dtype (torch name) and size in elements. */
export interface StorageRef {
  readonly key: string;
  /** Our dtype name ('float32', ...) or the torch storage class when outside the table ('ShortStorage'). */
  readonly dtype: string;
  readonly supported: boolean;
  readonly elementSize: number;
  readonly numel: number;
  /** Legacy files: a view into another storage (offset in elements). */
  readonly viewOf?: { root: StorageRef; offset: number };
}

/** A tensor the pickle rebuilds (torch._utils._rebuild_tensor_v2 and friends), resolved after loading. */
export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly size: number[],
    readonly stride: number[],
    readonly quantized = false,
  ) {}
}

export interface PickleContext {
  where: string;
  /** Every tensor rebuilt, in pickle order. */
  tensors: TensorRef[];
}

/** torch storage class -> [our dtype name, element size]; null dtype: outside the dtype table of docs/architecture.md. */
export const STORAGE_TYPES: Record<string, [string | null, number]> = {
  FloatStorage: ['float32', 4], DoubleStorage: ['float64', 8], HalfStorage: ['float16', 2],
  BFloat16Storage: ['bfloat16', 2], LongStorage: ['int64', 8], IntStorage: ['int32', 4],
  CharStorage: ['int8', 1], ByteStorage: ['uint8', 1], BoolStorage: ['bool', 1], UntypedStorage: ['uint8', 1],
  ShortStorage: [null, 2], ComplexFloatStorage: [null, 8], ComplexDoubleStorage: [null, 16],
  QInt8Storage: [null, 1], QUInt8Storage: [null, 1], QInt32Storage: [null, 4], QUInt4x2Storage: [null, 1],
  QUInt2x4Storage: [null, 1],
};

/** Our dtype name -> torch storage class (for writing). */
export const STORAGE_OF_DTYPE: Record<string, string> = Object.fromEntries(
  Object.entries(STORAGE_TYPES)
    .filter(([k, [d]]) => d !== null && k !== 'UntypedStorage')
    .map(([k, [d]]) => [d!, k]),
);

/** Python 2 module names that Python 3's unpickler maps (fix_imports), as pickle protocol 2 writes them. */
const PY2_MODULES: Record<string, string> = { __builtin__: 'builtins', copy_reg: 'copyreg' };

/** Python 2 builtin names Python 3 renamed (pickle's _compat_pickle NAME_MAPPING, the common ones). */
const PY2_BUILTINS: Record<string, string> = { long: 'int', unicode: 'str', basestring: 'str', xrange: 'range' };

export function makeGlobal(module: string, name: string): PyGlobal {
  if (module === '__builtin__') return new PyGlobal('builtins', PY2_BUILTINS[name] ?? name);
  return new PyGlobal(PY2_MODULES[module] ?? module, name);
}

function fail(ctx: PickleContext, msg: string): never {
  throw new Error(`${ctx.where}: malformed pickle: ${msg}`);
}

function checkInts(v: unknown, what: string, ctx: PickleContext): number[] {
  if (!Array.isArray(v) || v.length > 64) fail(ctx, `${what} is not a tuple of at most 64 integers`);
  for (const x of v as unknown[]) if (typeof x !== 'number' || !Number.isInteger(x) || x < 0) fail(ctx, `${what} holds ${String(x)}`);
  return v as number[];
}

function rebuildTensor(args: unknown[], ctx: PickleContext, quantized = false): TensorRef {
  const [storage, offset, size, stride] = args;
  if (!storage || typeof storage !== 'object' || !('key' in storage) || !('numel' in storage)) {
    fail(ctx, 'a tensor whose storage is not a persistent storage');
  }
  if (typeof offset !== 'number' || !Number.isInteger(offset) || offset < 0) fail(ctx, `tensor storage offset ${String(offset)}`);
  const sz = checkInts(size, 'tensor size', ctx);
  let st: number[];
  if (quantized && !Array.isArray(stride)) st = contiguousStrides(sz);
  else st = checkInts(stride, 'tensor stride', ctx);
  if (st.length !== sz.length) fail(ctx, `tensor size [${sz}] and stride [${st}] differ in length`);
  const t = new TensorRef(storage as StorageRef, offset as number, sz, st, quantized);
  ctx.tensors.push(t);
  return t;
}

export function contiguousStrides(size: number[]): number[] {
  const st = new Array<number>(size.length);
  let acc = 1;
  for (let i = size.length - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= Math.max(size[i], 1);
  }
  return st;
}

function encodeString(args: unknown[], ctx: PickleContext): Uint8Array {
  const [s, enc = 'utf-8'] = args;
  if (typeof s !== 'string' || typeof enc !== 'string') fail(ctx, '_codecs.encode needs (str, encoding)');
  const e = (enc as string).toLowerCase().replace(/[-_]/g, '');
  if (e === 'latin1' || e === 'iso88591') {
    const out = new Uint8Array((s as string).length);
    for (let i = 0; i < out.length; ++i) {
      const c = (s as string).charCodeAt(i);
      if (c > 255) fail(ctx, '_codecs.encode: character outside latin-1');
      out[i] = c;
    }
    return out;
  }
  if (e === 'utf8' || e === 'ascii') return new TextEncoder().encode(s as string);
  fail(ctx, `_codecs.encode: unsupported encoding ${JSON.stringify(enc)}`);
}

/** Calls of allow-listed globals: name -> (args) => value. */
const CALLS: Record<string, (args: unknown[], ctx: PickleContext) => unknown> = {
  'torch._utils._rebuild_tensor_v2': (a, ctx) => rebuildTensor(a, ctx),
  'torch._utils._rebuild_tensor': (a, ctx) => rebuildTensor(a, ctx),
  'torch._utils._rebuild_qtensor': (a, ctx) => rebuildTensor(a, ctx, true),
  'torch._utils._rebuild_parameter': (a) => a[0],
  'torch._utils._rebuild_parameter_with_state': (a) => a[0],
  'torch._tensor._rebuild_from_type_v2': (a, ctx) => callGlobal(a[0], Array.isArray(a[2]) ? a[2] : [], ctx),
  'collections.OrderedDict': (a, ctx) => dictFrom(a, ctx),
  'collections.defaultdict': () => new Map(),
  'builtins.set': (a) => new Set(Array.isArray(a[0]) ? a[0] : []),
  'builtins.frozenset': (a) => new Set(Array.isArray(a[0]) ? a[0] : []),
  'builtins.slice': (a) => (a.length === 1 ? new PySlice(null, a[0], null) : new PySlice(a[0], a[1], a[2] ?? null)),
  'torch.Size': (a, ctx) => [...checkInts(a[0] ?? [], 'torch.Size', ctx)],
  'torch.device': (a, ctx) => {
    if (typeof a[0] !== 'string') fail(ctx, 'torch.device needs a string');
    return typeof a[1] === 'number' ? `${a[0]}:${a[1]}` : a[0];
  },
  '_codecs.encode': (a, ctx) => encodeString(a, ctx),
  'numpy.core.multiarray.scalar': (a, ctx) => {
    if (!(a[0] instanceof NpDType)) fail(ctx, 'numpy scalar without a dtype');
    if (!(a[1] instanceof Uint8Array)) return new Opaque('numpy.core.multiarray.scalar', a); // object scalars
    const v = decodeNumpy(a[0] as NpDType, a[1], [], ctx.where);
    return v.length === 1 ? v[0] : fail(ctx, 'numpy scalar bytes do not match the dtype');
  },
  'numpy.dtype': (a, ctx) => {
    if (typeof a[0] !== 'string') fail(ctx, 'numpy.dtype needs a type string');
    return parseNpDType(a[0] as string);
  },
  'numpy.core.multiarray._reconstruct': () => new NdArrayRef(),
};
for (const k of Object.keys(CALLS)) {
  if (k.startsWith('numpy.core.')) CALLS['numpy._core.' + k.slice(11)] = CALLS[k];
}

function dictFrom(args: unknown[], ctx: PickleContext): Map<unknown, unknown> {
  const m = new Map<unknown, unknown>();
  const items = args[0];
  if (items === undefined || items === null) return m;
  if (items instanceof Map) return new Map(items);
  if (!Array.isArray(items)) fail(ctx, 'OrderedDict argument is not a list of pairs');
  for (const kv of items as unknown[]) {
    if (!Array.isArray(kv) || kv.length !== 2) fail(ctx, 'OrderedDict item is not a pair');
    m.set((kv as unknown[])[0], (kv as unknown[])[1]);
  }
  return m;
}

/**
 * dict subclasses read as the dicts they are (attribute access aside): Lightning pickles `hyper_parameters` as
 * an AttributeDict, whose module moved between versions.
 */
const DICT_CLASSES = new Set([
  'collections.OrderedDict', 'collections.defaultdict', 'builtins.dict',
  'pytorch_lightning.utilities.parsing.AttributeDict', 'lightning.fabric.utilities.data.AttributeDict',
  'lightning.pytorch.utilities.parsing.AttributeDict', 'lightning_fabric.utilities.data.AttributeDict',
]);

/** REDUCE: an allow-listed call, or an opaque object recording the call. */
export function callGlobal(fn: unknown, args: unknown[], ctx: PickleContext): unknown {
  if (fn instanceof PyGlobal) {
    const name = fn.fullName;
    if (name === 'copyreg.__newobj__') return newObject(args[0], args.slice(1), undefined, ctx);
    if (name === 'copyreg._reconstructor') {
      // protocols 0 and 1: (cls, base, state of the base), for a dict subclass its items
      const o = newObject(args[0], [], undefined, ctx);
      if (o instanceof Map && args[2] instanceof Map) for (const [k, v] of args[2]) o.set(k, v);
      return o;
    }
    const call = CALLS[name];
    if (call) return call(args, ctx);
    if (DICT_CLASSES.has(name)) return dictFrom(args, ctx);
    const o = new Opaque(name, args);
    o.reduced = true;
    return o;
  }
  return new Opaque(fn instanceof Opaque ? `${fn.__class__}()` : 'unknown', args);
}

/** NEWOBJ: an allow-listed class, or an opaque object. */
export function newObject(cls: unknown, args: unknown[], kwargs: unknown, ctx: PickleContext): unknown {
  if (cls instanceof PyGlobal) {
    const name = cls.fullName;
    if (DICT_CLASSES.has(name)) return new Map();
    if (name === 'builtins.set' || name === 'builtins.frozenset') return new Set();
    if (name === 'torch.Size') return CALLS[name](args, ctx);
    const o = new Opaque(name, args);
    if (kwargs !== undefined) o.kwargs = kwargs;
    return o;
  }
  return new Opaque('unknown', args);
}

/** BUILD: sets an object's state (opaque objects keep it; numpy values decode it; dict attributes are dropped). */
export function setState(obj: unknown, state: unknown, ctx: PickleContext): void {
  if (obj instanceof Opaque) obj.state = state;
  else if (obj instanceof NpDType) obj.setState(state, ctx.where);
  else if (obj instanceof NdArrayRef) obj.setState(state, ctx.where);
  else if (obj instanceof Map || obj instanceof Set || obj instanceof TensorRef || Array.isArray(obj)) {
    // attributes of dict subclasses (OrderedDict._metadata of a state_dict) and tensors: not kept
  } else fail(ctx, `BUILD on ${obj === null ? 'None' : typeof obj}`);
}
