/**
 * A JSON-safe summary of checkpoint contents for `ibq ckpt inspect`: tensors as their dtype/shape/bytes,
 * bigints as strings, typed arrays by type and length, opaque objects by class, and shared references
 * and cycles as `{ $ref: '<path of the first occurrence>' }`. Depth is bounded.
 */
import { Tensor } from '../core/tensor.js';
import { Opaque, PyGlobal, PySlice } from './pickle_globals.js';
import { UnsupportedTensor } from './unsupported.js';

export const ELEMENT_BYTES: Record<string, number> = {
  float32: 4, float64: 8, float16: 2, bfloat16: 2, int64: 8, int32: 4, int8: 1, uint8: 1, bool: 1,
};

export function tensorBytes(t: Tensor): number {
  return t.size * (ELEMENT_BYTES[t.dtype] ?? 0);
}

export function summarize(v: unknown, maxDepth = 12): unknown {
  const seen = new Map<object, string>();
  const walk = (x: unknown, path: string, depth: number): unknown => {
    if (x === null || x === undefined) return null;
    if (typeof x === 'bigint') return x.toString();
    if (typeof x === 'number') return Number.isFinite(x) ? x : String(x);
    if (typeof x !== 'object') return x;
    const first = seen.get(x);
    if (first !== undefined) return { $ref: first };
    seen.set(x, path);
    if (x instanceof Tensor) return { tensor: { dtype: x.dtype, shape: x.shape } };
    if (x instanceof UnsupportedTensor) return { tensor: { dtype: x.storageType, shape: x.shape, unsupported: true } };
    if (x instanceof PyGlobal) return { global: x.fullName };
    if (x instanceof PySlice) return { slice: [walk(x.start, path, depth), walk(x.stop, path, depth), walk(x.step, path, depth)] };
    if (ArrayBuffer.isView(x)) {
      const a = x as unknown as { length?: number; shape?: number[] };
      return { array: x.constructor.name, shape: a.shape ?? [a.length ?? x.byteLength] };
    }
    if (depth >= maxDepth) return '…';
    if (Array.isArray(x)) return x.map((y, i) => walk(y, `${path}[${i}]`, depth + 1));
    if (x instanceof Set) return { set: [...x].map((y, i) => walk(y, `${path}{${i}}`, depth + 1)) };
    if (x instanceof Map) {
      const o: Record<string, unknown> = {};
      for (const [k, y] of x) o[String(k)] = walk(y, `${path}[${String(k)}]`, depth + 1);
      return o;
    }
    if (x instanceof Opaque) {
      const o: Record<string, unknown> = { __class__: x.__class__ };
      if (x.args.length) o.args = walk(x.args, `${path}.args`, depth + 1);
      if (x.state !== undefined) o.state = walk(x.state, `${path}.state`, depth + 1);
      if (x.items) o.items = walk(x.items, `${path}.items`, depth + 1);
      return o;
    }
    const o: Record<string, unknown> = {};
    for (const [k, y] of Object.entries(x)) o[k] = walk(y, `${path}.${k}`, depth + 1);
    return o;
  };
  return walk(v, 'meta', 0);
}
