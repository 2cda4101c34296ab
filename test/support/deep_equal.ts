/**
 * Structural comparison of loaded checkpoint values: Tensors by dtype, shape and bytes; Maps, Sets,
 * arrays, typed arrays, plain and opaque objects (by their enumerable fields, class ignored) by content;
 * cycles and shared references must line up (the same pairing of objects on both sides).
 */
import { Tensor } from '../../dist/index.js';
import { sameBytes, tensorBytes } from './torch_ref.js';

export function deepDiff(a: unknown, b: unknown): string | undefined {
  const pairs = new Map<object, object>();
  const walk = (x: unknown, y: unknown, path: string): string | undefined => {
    if (x === null || y === null || typeof x !== 'object' || typeof y !== 'object') {
      return Object.is(x, y) ? undefined : `${path}: ${String(x)} !== ${String(y)}`;
    }
    const seen = pairs.get(x);
    if (seen !== undefined) return seen === y ? undefined : `${path}: shared reference differs`;
    pairs.set(x, y);
    if (x instanceof Tensor || y instanceof Tensor) {
      if (!(x instanceof Tensor && y instanceof Tensor)) return `${path}: tensor vs non-tensor`;
      if (x.dtype !== y.dtype || x.shape.join() !== y.shape.join()) return `${path}: ${x} vs ${y}`;
      return sameBytes(tensorBytes(x), tensorBytes(y)) ? undefined : `${path}: tensor bytes differ`;
    }
    if (ArrayBuffer.isView(x) || ArrayBuffer.isView(y)) {
      if (!ArrayBuffer.isView(x) || !ArrayBuffer.isView(y) || x.constructor !== y.constructor) return `${path}: typed array kinds differ`;
      const u = new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
      const v = new Uint8Array(y.buffer, y.byteOffset, y.byteLength);
      return sameBytes(u, v) ? undefined : `${path}: typed array contents differ`;
    }
    if (x instanceof Map || y instanceof Map) {
      if (!(x instanceof Map && y instanceof Map) || x.size !== y.size) return `${path}: Map vs other or sizes differ`;
      for (const [k, v] of x) {
        if (!y.has(k)) return `${path}: key ${String(k)} missing`;
        const d = walk(v, y.get(k), `${path}[${String(k)}]`);
        if (d) return d;
      }
      return undefined;
    }
    if (x instanceof Set || y instanceof Set) {
      if (!(x instanceof Set && y instanceof Set) || x.size !== y.size) return `${path}: Set vs other or sizes differ`;
      const xs = [...x], ys = [...y];
      for (let i = 0; i < xs.length; ++i) {
        const d = walk(xs[i], ys[i], `${path}{${i}}`);
        if (d) return d;
      }
      return undefined;
    }
    if (Array.isArray(x) !== Array.isArray(y)) return `${path}: array vs object`;
    const kx = Object.keys(x).filter((k) => (x as any)[k] !== undefined);
    const ky = Object.keys(y).filter((k) => (y as any)[k] !== undefined);
    if (kx.join('\u0000') !== ky.join('\u0000')) return `${path}: keys [${kx}] vs [${ky}]`;
    for (const k of kx) {
      const d = walk((x as any)[k], (y as any)[k], `${path}.${k}`);
      if (d) return d;
    }
    return undefined;
  };
  return walk(a, b, 'value');
}
