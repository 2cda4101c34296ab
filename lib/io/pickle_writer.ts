/**
 * A pickle writer (protocol 2) producing the data.pkl that torch.save (torch 1.13) writes: tensors as
 * `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())` with storages as
 * persistent ids ('storage', torch.<Type>Storage, key, 'cpu', numel), the state_dict as an OrderedDict.
 * JS values map to Python ones: null -> None, boolean, number (integers -> int, others -> float), bigint
 * -> int, string -> str, Uint8Array -> bytes, arrays -> list, plain objects -> dict, Map -> dict (keys
 * kept), Set -> set, typed arrays -> numpy arrays, PyGlobal -> the same global reference (not called).
 * Opaque objects of the classes in RECREATED (OmegaConf containers and nodes, argparse/types namespaces,
 * pathlib paths) are written as the class they were: GLOBAL + NEWOBJ/REDUCE with the stored args, their
 * dict items, then BUILD with the stored state, as Python's pickler does; any other Opaque is written as
 * a plain dict of its fields (__class__, args, state, ...), so a converted file never calls a class or
 * function outside that list. Shared references and cycles are written through the memo.
 */
import { describe } from '../core/errors.js';
import { Tensor } from '../core/tensor.js';
import { NpDType } from './numpy_values.js';
import { Opaque, PyGlobal, PySlice, STORAGE_OF_DTYPE } from './pickle_globals.js';
import { MAX_DEPTH } from './py_values.js';
import { UnsupportedTensor } from './unsupported.js';

/** An OrderedDict to write (key order kept, as torch's state_dict). */
export class OrderedDictValue {
  constructor(readonly entries: [string, unknown][]) {}
}

class Bytes {
  buf = Buffer.alloc(1 << 16);
  n = 0;
  ensure(k: number): void {
    if (this.n + k <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.n + k));
    this.buf.copy(next, 0, 0, this.n);
    this.buf = next;
  }
  u8(...v: number[]): void {
    this.ensure(v.length);
    for (const x of v) this.buf[this.n++] = x;
  }
  raw(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.n);
    this.n += b.length;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v, this.n);
    this.n += 4;
  }
  i32(v: number): void {
    this.ensure(4);
    this.buf.writeInt32LE(v, this.n);
    this.n += 4;
  }
  /** A str: BINUNICODE (0x58), u32 length, the UTF-8 bytes. */
  utf8(s: string): void {
    if (s.length < 64 && this.ascii(s)) return;
    const len = Buffer.byteLength(s, 'utf8');
    this.ensure(5 + len);
    this.buf[this.n++] = 0x58;
    this.buf.writeUInt32LE(len, this.n);
    this.n += 4;
    this.n += this.buf.write(s, this.n, len, 'utf8');
  }
  /** utf8() of a short ASCII string byte by byte (most keys and names); false, writing nothing, for others. */
  private ascii(s: string): boolean {
    const n = s.length;
    this.ensure(5 + n);
    const b = this.buf, o = this.n + 5;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) return false;
      b[o + i] = c;
    }
    b[this.n] = 0x58;
    b.writeUInt32LE(n, this.n + 1);
    this.n = o + n;
    return true;
  }
  f64be(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleBE(v, this.n);
    this.n += 8;
  }
}

const NP_TYPED: [new (...a: never[]) => ArrayBufferView, string][] = [
  [Float32Array, 'f4'], [Float64Array, 'f8'], [BigInt64Array, 'i8'], [BigUint64Array, 'u8'], [Int32Array, 'i4'],
  [Uint32Array, 'u4'], [Int16Array, 'i2'], [Uint16Array, 'u2'], [Int8Array, 'i1'], [Uint8Array, 'u1'],
];

/**
 * Classes an Opaque is re-created as (how the unpickler met them: NEWOBJ, or REDUCE with string args).
 * Only classes whose construction runs no user code beyond setting attributes.
 */
const RECREATED: [RegExp, 'newobj' | 'reduce'][] = [
  [/^omegaconf\.(dictconfig\.DictConfig|listconfig\.ListConfig|nodes\.[A-Za-z]+Node|base\.(Container)?Metadata)$/, 'newobj'],
  [/^(argparse\.Namespace|types\.SimpleNamespace)$/, 'newobj'],
  [/^pathlib\.(Pure)?(Posix|Windows)?Path$/, 'reduce'],
];

function recreatable(o: Opaque): boolean {
  const how = o.reduced ? 'reduce' : 'newobj';
  if (!RECREATED.some(([re, h]) => h === how && re.test(o.__class__))) return false;
  if (how === 'reduce') return o.args.every((a) => typeof a === 'string') && o.state === undefined && !o.items;
  return o.kwargs === undefined;
}

export interface PickledTensors {
  /** data.pkl bytes. */
  pickle: Buffer;
  /** Storage key (index) -> the tensor whose contiguous bytes form data/<key>. */
  storages: Tensor[];
}

/** Longest stretch (ms) the pickler runs before it lets the event loop run. */
const SLICE_MS = 5;

/**
 * Pickles `root` (protocol 2); every Tensor gets its own storage record (the same Tensor object shares one).
 * The work is done in slices of a few milliseconds between which the event loop runs (a training checkpoint
 * holds thousands of values), so `root` must not change until the Promise settles.
 */
export async function pickleForTorch(root: unknown, where = 'value'): Promise<PickledTensors> {
  let deadline = performance.now() + SLICE_MS;
  const steps = pickleSteps(root, where, () => performance.now() > deadline);
  for (let r = steps.next(); ; r = steps.next()) {
    if (r.done) return r.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
    deadline = performance.now() + SLICE_MS;
  }
}

/** Runs a pickling generator to its end without pausing (small nested values). */
function drain(g: Generator<void, void, void>): void {
  for (let r = g.next(); !r.done; r = g.next());
}

/** The pickler: writes `root`, pausing (a bare yield) after an item of a container once `pause()` says so. */
function* pickleSteps(root: unknown, where: string, pause: () => boolean): Generator<void, PickledTensors, void> {
  const out = new Bytes();
  const memo = new Map<unknown, number>();
  const storages: Tensor[] = [];
  const storageOf = new Map<Tensor, number>();
  const put = (v: unknown) => {
    const i = memo.size;
    memo.set(v, i);
    if (i < 256) out.u8(0x71, i); // BINPUT
    else (out.u8(0x72), out.u32(i)); // LONG_BINPUT
  };
  const get = (i: number) => {
    if (i < 256) out.u8(0x68, i);
    else (out.u8(0x6a), out.u32(i));
  };
  const str = (s: string) => out.utf8(s);
  const globals = new Map<string, Buffer>();
  const globalRef = (module: string, name: string) => {
    const k = `${module}\n${name}\n`;
    let b = globals.get(k);
    if (!b) globals.set(k, (b = Buffer.from(`\x63${k}`, 'latin1')));
    out.raw(b);
  };
  const int = (v: number | bigint) => {
    if (typeof v === 'number' && v >= 0 && v < 256) return out.u8(0x4b, v);
    if (typeof v === 'number' && v >= 0 && v < 65536) return (out.u8(0x4d, v & 0xff, v >> 8));
    if (typeof v === 'number' && v >= -2147483648 && v <= 2147483647) return (out.u8(0x4a), out.i32(v));
    let b = BigInt(v);
    const bytes: number[] = [];
    for (;;) {
      bytes.push(Number(b & 0xffn));
      const rest = b >> 8n;
      const sign = bytes[bytes.length - 1] & 0x80;
      if ((rest === 0n && !sign) || (rest === -1n && sign)) break;
      b = rest;
    }
    out.u8(0x8a, bytes.length, ...bytes); // LONG1
  };
  const tupleOf = (items: (() => void)[]) => {
    if (items.length === 0) return out.u8(0x29);
    if (items.length <= 3) {
      items.forEach((f) => f());
      return out.u8([0x85, 0x86, 0x87][items.length - 1]);
    }
    out.u8(0x28);
    items.forEach((f) => f());
    out.u8(0x74);
  };
  /** tupleOf(v.map(int)) without the closures. */
  const intTuple = (v: readonly number[]) => {
    if (v.length === 0) return out.u8(0x29);
    if (v.length > 3) out.u8(0x28);
    for (const d of v) int(d);
    out.u8(v.length > 3 ? 0x74 : [0x85, 0x86, 0x87][v.length - 1]!);
  };
  const bytesValue = (b: Uint8Array) => {
    // protocol 2 has no bytes opcode: _codecs.encode(latin-1 text, 'latin1'), as Python writes it
    globalRef('_codecs', 'encode');
    tupleOf([() => str(Buffer.from(b).toString('latin1')), () => str('latin1')]);
    out.u8(0x52);
  };
  function* setItems(entries: [unknown, unknown][], depth: number, path: string): Generator<void, void, void> {
    for (let i = 0; i < entries.length; i += 1000) {
      out.u8(0x28);
      for (const [k, v] of entries.slice(i, i + 1000)) {
        yield* write(k, depth, path);
        yield* write(v, depth, `${path}.${String(k)}`);
        if (pause()) yield;
      }
      out.u8(0x75);
    }
  }
  const tensor = (t: Tensor, path: string) => {
    const dtype = t.dtype;
    const cls = STORAGE_OF_DTYPE[dtype];
    if (!cls) throw new TypeError(`${path}: tensor dtype ${dtype} cannot be saved`);
    let key = storageOf.get(t);
    if (key === undefined) {
      key = storages.length;
      storageOf.set(t, key);
      storages.push(t);
    }
    const shape = t.shape;
    const numel = shape.reduce((a, b) => a * b, 1);
    const stride: number[] = new Array(shape.length);
    let acc = 1;
    for (let i = shape.length - 1; i >= 0; --i) (stride[i] = acc), (acc *= Math.max(shape[i], 1));
    globalRef('torch._utils', '_rebuild_tensor_v2');
    out.u8(0x28);
    // the persistent id ('storage', torch.<Type>Storage, key, 'cpu', numel): tupleOf's bytes, written directly
    // (a checkpoint holds hundreds of tensors)
    out.u8(0x28);
    str('storage');
    globalRef('torch', cls);
    str(String(key));
    str('cpu');
    int(numel);
    out.u8(0x74);
    out.u8(0x51); // BINPERSID
    int(0);
    intTuple(shape);
    intTuple(stride);
    out.u8(0x89); // requires_grad False
    globalRef('collections', 'OrderedDict');
    out.u8(0x29, 0x52); // OrderedDict()
    out.u8(0x74, 0x52); // TUPLE, REDUCE
  };
  const ndarray = (a: ArrayBufferView, code: string) => {
    globalRef('numpy.core.multiarray', '_reconstruct');
    tupleOf([() => globalRef('numpy', 'ndarray'), () => tupleOf([() => int(0)]), () => bytesValue(Buffer.from('b'))]);
    out.u8(0x52);
    const shape = ((a as unknown as { shape?: number[] }).shape ?? [(a as unknown as { length: number }).length]) as number[];
    tupleOf([
      () => int(1),
      () => tupleOf(shape.map((d) => () => int(d))),
      () => {
        globalRef('numpy', 'dtype');
        tupleOf([() => str(code), () => out.u8(0x89), () => out.u8(0x88)]);
        out.u8(0x52);
        tupleOf([() => int(3), () => str(code.endsWith('1') ? '|' : '<'), () => out.u8(0x4e), () => out.u8(0x4e), () => out.u8(0x4e), () => int(-1), () => int(-1), () => int(0)]);
        out.u8(0x62);
      },
      () => out.u8(0x89),
      () => bytesValue(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)),
    ]);
    out.u8(0x62); // BUILD
  };
  function* write(v: unknown, depth: number, path: string): Generator<void, void, void> {
    if (depth > MAX_DEPTH) throw new RangeError(`${where}: ${path}: nesting deeper than ${MAX_DEPTH}`);
    if (v === null || v === undefined) return out.u8(0x4e);
    if (v === true) return out.u8(0x88);
    if (v === false) return out.u8(0x89);
    if (typeof v === 'number') {
      if (Number.isSafeInteger(v) && !Object.is(v, -0)) return int(v);
      out.u8(0x47);
      return out.f64be(v);
    }
    if (typeof v === 'bigint') return int(v);
    if (typeof v === 'string') return str(v);
    if (typeof v !== 'object') throw new TypeError(`${where}: ${path}: ${describe(v)} cannot be saved`);
    const seen = memo.get(v);
    if (seen !== undefined) return get(seen);
    const d = depth + 1;
    if (v instanceof Tensor) return (tensor(v, path), put(v));
    if (v instanceof UnsupportedTensor) throw new TypeError(`${where}: ${path}: ${v.toString()} cannot be saved`);
    if (v instanceof Uint8Array && !(v as { shape?: unknown }).shape) return (bytesValue(v), put(v));
    if (ArrayBuffer.isView(v)) {
      const code = NP_TYPED.find(([C]) => v instanceof C)?.[1];
      if (!code) throw new TypeError(`${where}: ${path}: ${describe(v)} cannot be saved`);
      return (ndarray(v, code), put(v));
    }
    if (v instanceof OrderedDictValue) {
      globalRef('collections', 'OrderedDict');
      out.u8(0x29, 0x52);
      put(v);
      return yield* setItems(v.entries, d, path);
    }
    if (Array.isArray(v)) {
      out.u8(0x5d);
      put(v);
      for (let i = 0; i < v.length; i += 1000) {
        out.u8(0x28);
        for (const [j, x] of v.slice(i, i + 1000).entries()) {
          yield* write(x, d, `${path}[${i + j}]`);
          if (pause()) yield;
        }
        out.u8(0x65);
      }
      return;
    }
    if (v instanceof Set) {
      globalRef('__builtin__', 'set');
      out.u8(0x5d);
      out.u8(0x28);
      for (const x of v) yield* write(x, d, `${path}{}`);
      out.u8(0x65, 0x85, 0x52);
      return put(v);
    }
    if (v instanceof Map) {
      out.u8(0x7d);
      put(v);
      return yield* setItems([...v], d, path);
    }
    if (v instanceof PyGlobal) return (globalRef(v.module, v.name), put(v)); // a reference, never a call
    if (v instanceof NpDType) return (str(v.name), put(v));
    if (v instanceof PySlice) {
      globalRef('__builtin__', 'slice');
      tupleOf([() => drain(write(v.start, d, path)), () => drain(write(v.stop, d, path)), () => drain(write(v.step, d, path))]);
      out.u8(0x52);
      return put(v);
    }
    if (v instanceof Opaque && recreatable(v)) {
      const dot = v.__class__.lastIndexOf('.');
      globalRef(v.__class__.slice(0, dot), v.__class__.slice(dot + 1));
      tupleOf(v.args.map((a, i) => () => drain(write(a, d, `${path}.args[${i}]`))));
      out.u8(v.reduced ? 0x52 : 0x81); // REDUCE | NEWOBJ
      put(v);
      if (v.items?.length) yield* setItems(v.items as [unknown, unknown][], d, `${path}.items`);
      if (v.state !== undefined) (yield* write(v.state, d, `${path}.state`), out.u8(0x62)); // BUILD
      return;
    }
    const proto = Object.getPrototypeOf(v);
    if (v instanceof Opaque || proto === Object.prototype || proto === null) {
      out.u8(0x7d);
      put(v);
      const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
      return yield* setItems(entries, d, path);
    }
    throw new TypeError(`${where}: ${path}: ${describe(v)} cannot be saved`);
  }
  out.u8(0x80, 2);
  yield* write(root, 0, 'root');
  out.u8(0x2e);
  return { pickle: out.buf.subarray(0, out.n), storages };
}
