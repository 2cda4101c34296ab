/**
 * A safe unpickler (pickle protocols 0-5) for torch.save files. It never executes anything: globals are
 * looked up in a fixed allow-list (./pickle_globals.ts) and every other global becomes an opaque
 * `{ __class__: 'module.Name', args, state }` object. Memo back-references stay shared references, so
 * the result may contain cycles (OmegaConf configs point back at their parents).
 *
 * Every length and index is checked against the data size; a malformed pickle throws an Error naming the
 * source (`where`) and the problem, never allocates more than the data holds.
 */
import { callGlobal, makeGlobal, newObject, Opaque, setState, type PickleContext } from './pickle_globals.js';

/** The persistent id hook: torch.save stores storages out of band as ('storage', type, key, ...). */
export type PersistentLoad = (pid: unknown) => unknown;

export interface UnpickleOptions {
  /** Names the file (and record) in error messages. */
  where: string;
  /** Collects the tensors the pickle rebuilds (see pickle_globals.ts). */
  ctx?: PickleContext;
  persistentLoad?: PersistentLoad;
  /** Byte position to start at (legacy files hold several pickles back to back). */
  start?: number;
}

export interface UnpickleResult {
  value: unknown;
  /** Position just after the STOP opcode. */
  end: number;
}

/** Raised when the data ends before STOP (legacy loading reads more of the file and retries). */
export class PickleTruncatedError extends Error {}

/** At most this many nested MARKs (tuples/lists/dicts being built at once). */
export const MAX_MARK_DEPTH = 1000;
const MARK = Symbol('mark');

const decoder = new TextDecoder('utf-8');
const latin1 = new TextDecoder('latin1');

function intOrBig(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** Little-endian two's complement bytes -> integer (Python LONG1/LONG4). */
function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; --i) v = (v << 8n) | BigInt(b[i]);
  if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
  return intOrBig(v);
}

/** Adds an item to a dict being built (a Map) or to an opaque object's `items` (dict subclasses). */
function dictSet(d: unknown, k: unknown, v: unknown, where: string): void {
  if (d instanceof Map) d.set(k, v);
  else if (d instanceof Opaque) (d.items ??= []).push([k, v]);
  else throw new Error(`${where}: malformed pickle: SETITEM on ${describeValue(d)}`);
}

function describeValue(v: unknown): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return 'a list/tuple';
  if (v instanceof Opaque) return `a ${v.__class__} object`;
  if (typeof v === 'object') return `a ${v.constructor?.name ?? 'object'}`;
  return `a ${typeof v}`;
}

export function unpickle(data: Uint8Array, opts: UnpickleOptions): UnpickleResult {
  const where = opts.where;
  const n = data.length;
  let pos = opts.start ?? 0;
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const fail = (msg: string): never => {
    throw new Error(`${where}: malformed pickle at byte ${pos}: ${msg}`);
  };
  const need = (k: number): number => {
    if (k < 0 || pos + k > n) throw new PickleTruncatedError(`${where}: truncated pickle (needs ${k} more bytes at byte ${pos}, has ${n - pos})`);
    const p = pos;
    pos += k;
    return p;
  };
  const u8 = () => data[need(1)];
  const u16 = () => dv.getUint16(need(2), true);
  const u32 = () => dv.getUint32(need(4), true);
  const u64 = (): number => {
    const v = dv.getBigUint64(need(8), true);
    if (v > BigInt(n)) fail(`length ${v} exceeds the data size`);
    return Number(v);
  };
  const bytes = (len: number): Uint8Array => data.subarray(need(len), pos);
  /** A copy (never a view of `data`, which may be a pooled Buffer). */
  const copyBytes = (len: number): Uint8Array => new Uint8Array(bytes(len));
  const line = (): string => {
    const e = data.indexOf(0x0a, pos);
    if (e < 0) throw new PickleTruncatedError(`${where}: truncated pickle (no newline after byte ${pos})`);
    const s = latin1.decode(data.subarray(pos, e));
    pos = e + 1;
    return s;
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1])) fail('stack underflow');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1])) fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fail('no MARK on the stack');
    return stack.splice(m!);
  };
  const memoGet = (i: number): unknown => {
    if (!memo.has(i)) fail(`memo key ${i} is not defined`);
    return memo.get(i);
  };
  const memoPut = (i: number): void => {
    memo.set(i, top());
  };
  const persistent = (pid: unknown): unknown => {
    if (!opts.persistentLoad) fail('a persistent id outside a torch.save archive');
    return opts.persistentLoad!(pid);
  };
  const ctx: PickleContext = opts.ctx ?? { where, tensors: [] };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: { // PROTO
        const p = u8();
        if (p > 5) fail(`unsupported pickle protocol ${p}`);
        break;
      }
      case 0x95: // FRAME
        u64();
        break;
      case 0x2e: // STOP '.'
        if (stack.length !== 1 || marks.length) fail(`STOP with ${stack.length} values on the stack`);
        return { value: stack[0], end: pos };
      case 0x28: // MARK '('
        if (marks.length >= MAX_MARK_DEPTH) fail(`nesting deeper than ${MAX_MARK_DEPTH}`);
        marks.push(stack.length);
        break;
      case 0x30: // POP '0'
        if (stack.length === 0) fail('stack underflow');
        if (marks.length && stack.length === marks[marks.length - 1]) marks.pop();
        else stack.pop();
        break;
      case 0x31: // POP_MARK '1'
        popMark();
        break;
      case 0x32: // DUP '2'
        stack.push(top());
        break;
      // ---- constants and numbers
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(dv.getInt32(need(4), true)); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: stack.push(decodeLong(bytes(u8()))); break; // LONG1
      case 0x8b: { // LONG4
        const len = dv.getInt32(need(4), true);
        if (len < 0) fail('negative LONG4 length');
        stack.push(decodeLong(bytes(len)));
        break;
      }
      case 0x47: stack.push(dv.getFloat64(need(8), false)); break; // BINFLOAT (big-endian)
      case 0x49: { // INT 'I'
        const s = line().trim();
        if (s === '00') stack.push(false);
        else if (s === '01') stack.push(true);
        else if (/^[-+]?\d+$/.test(s)) stack.push(intOrBig(BigInt(s)));
        else fail(`bad INT ${JSON.stringify(s.slice(0, 40))}`);
        break;
      }
      case 0x4c: { // LONG 'L'
        const s = line().trim().replace(/L$/, '');
        if (!/^[-+]?\d+$/.test(s)) fail(`bad LONG ${JSON.stringify(s.slice(0, 40))}`);
        stack.push(intOrBig(BigInt(s)));
        break;
      }
      case 0x46: { // FLOAT 'F'
        const s = line().trim();
        const v = Number(s);
        if (Number.isNaN(v) && !/^[-+]?nan$/i.test(s)) fail(`bad FLOAT ${JSON.stringify(s.slice(0, 40))}`);
        stack.push(v);
        break;
      }
      // ---- strings and bytes
      case 0x58: stack.push(decoder.decode(bytes(u32()))); break; // BINUNICODE
      case 0x8c: stack.push(decoder.decode(bytes(u8()))); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(decoder.decode(bytes(u64()))); break; // BINUNICODE8
      case 0x56: stack.push(line()); break; // UNICODE (raw-unicode-escape; ASCII in practice)
      case 0x55: stack.push(decoder.decode(bytes(u8()))); break; // SHORT_BINSTRING (py2 str)
      case 0x54: { // BINSTRING
        const len = dv.getInt32(need(4), true);
        if (len < 0) fail('negative BINSTRING length');
        stack.push(decoder.decode(bytes(len)));
        break;
      }
      case 0x53: { // STRING 'S' (repr-quoted)
        const s = line().trim();
        if (s.length < 2 || (s[0] !== "'" && s[0] !== '"') || s[s.length - 1] !== s[0]) fail('bad STRING');
        stack.push(s.slice(1, -1));
        break;
      }
      case 0x43: stack.push(copyBytes(u8())); break; // SHORT_BINBYTES
      case 0x42: stack.push(copyBytes(u32())); break; // BINBYTES
      case 0x8e: stack.push(copyBytes(u64())); break; // BINBYTES8
      case 0x96: stack.push(copyBytes(u64())); break; // BYTEARRAY8
      case 0x97: fail('out-of-band buffers (NEXT_BUFFER) are not supported'); break;
      case 0x98: break; // READONLY_BUFFER: no-op on an in-band value
      // ---- containers
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x8f: stack.push(new Set()); break; // EMPTY_SET
      case 0x85: stack.push([pop()]); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push([a, b]); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push([a, b, c]); break; } // TUPLE3
      case 0x74: stack.push(popMark()); break; // TUPLE 't'
      case 0x6c: stack.push(popMark()); break; // LIST 'l'
      case 0x64: { // DICT 'd'
        const items = popMark();
        if (items.length % 2) fail('DICT with an odd number of items');
        const d = new Map<unknown, unknown>();
        for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
        stack.push(d);
        break;
      }
      case 0x91: stack.push(new Set(popMark())); break; // FROZENSET
      case 0x61: { // APPEND 'a'
        const v = pop();
        const l = top();
        if (!Array.isArray(l)) fail(`APPEND to ${describeValue(l)}`);
        (l as unknown[]).push(v);
        break;
      }
      case 0x65: { // APPENDS 'e'
        const items = popMark();
        const l = top();
        if (!Array.isArray(l)) fail(`APPENDS to ${describeValue(l)}`);
        for (const v of items) (l as unknown[]).push(v);
        break;
      }
      case 0x90: { // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) fail(`ADDITEMS to ${describeValue(s)}`);
        for (const v of items) (s as Set<unknown>).add(v);
        break;
      }
      case 0x73: { // SETITEM 's'
        const v = pop();
        const k = pop();
        dictSet(top(), k, v, where);
        break;
      }
      case 0x75: { // SETITEMS 'u'
        const items = popMark();
        if (items.length % 2) fail('SETITEMS with an odd number of items');
        const d = top();
        for (let i = 0; i < items.length; i += 2) dictSet(d, items[i], items[i + 1], where);
        break;
      }
      // ---- memo
      case 0x67: stack.push(memoGet(parseMemoIndex(line(), fail))); break; // GET
      case 0x68: stack.push(memoGet(u8())); break; // BINGET
      case 0x6a: stack.push(memoGet(u32())); break; // LONG_BINGET
      case 0x70: memoPut(parseMemoIndex(line(), fail)); break; // PUT
      case 0x71: memoPut(u8()); break; // BINPUT
      case 0x72: memoPut(u32()); break; // LONG_BINPUT
      case 0x94: memoPut(memo.size); break; // MEMOIZE
      // ---- objects
      case 0x63: { // GLOBAL 'c'
        const module = line();
        const name = line();
        stack.push(makeGlobal(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(makeGlobal(module as string, name as string));
        break;
      }
      case 0x82: case 0x83: case 0x84: fail('extension registry opcodes (EXT1/2/4) are not supported'); break;
      case 0x52: { // REDUCE 'R'
        const args = pop();
        const fn = pop();
        if (!Array.isArray(args)) fail(`REDUCE arguments are ${describeValue(args)}, not a tuple`);
        stack.push(callGlobal(fn, args as unknown[], ctx));
        break;
      }
      case 0x81: { // NEWOBJ
        const args = pop();
        const cls = pop();
        if (!Array.isArray(args)) fail(`NEWOBJ arguments are ${describeValue(args)}, not a tuple`);
        stack.push(newObject(cls, args as unknown[], undefined, ctx));
        break;
      }
      case 0x92: { // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!Array.isArray(args)) fail(`NEWOBJ_EX arguments are ${describeValue(args)}, not a tuple`);
        stack.push(newObject(cls, args as unknown[], kwargs, ctx));
        break;
      }
      case 0x69: { // INST 'i'
        const module = line();
        const name = line();
        const args = popMark();
        stack.push(newObject(makeGlobal(module, name), args, undefined, ctx));
        break;
      }
      case 0x6f: { // OBJ 'o'
        const items = popMark();
        if (items.length === 0) fail('OBJ without a class');
        stack.push(newObject(items[0], items.slice(1), undefined, ctx));
        break;
      }
      case 0x62: { // BUILD 'b'
        const state = pop();
        const obj = pop();
        setState(obj, state, ctx);
        stack.push(obj);
        break;
      }
      case 0x51: stack.push(persistent(pop())); break; // BINPERSID 'Q'
      case 0x50: stack.push(persistent(line())); break; // PERSID 'P'
      default:
        pos -= 1;
        fail(`unknown opcode 0x${op.toString(16).padStart(2, '0')}`);
    }
  }
}

function parseMemoIndex(s: string, fail: (m: string) => never): number {
  const t = s.trim();
  if (!/^\d{1,10}$/.test(t)) fail(`bad memo index ${JSON.stringify(t.slice(0, 20))}`);
  return Number(t);
}

