/**
 * Turns the unpickler's Python-shaped values into the JS values users see: dicts with only string keys
 * become plain objects (others stay Maps, e.g. the int keys of optimizer states), tensor references
 * become Tensors, numpy arrays typed arrays. Shared references and cycles are kept (each Python object
 * maps to exactly one JS object); nesting deeper than MAX_DEPTH is an error.
 */
import { NdArrayRef, NpDType } from './numpy_values.js';
import { Opaque, TensorRef } from './pickle_globals.js';

export const MAX_DEPTH = 1000;

/** Sets o[k] = v, also for keys like '__proto__'. */
export function defineKey(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

/** `resolve(ref, path)`: the value of a tensor reference found at `path` (e.g. "meta.callbacks.x[0]"). */
export function finalize(
  root: unknown,
  resolve: (t: TensorRef, path: string) => unknown,
  where: string,
  rootPath = '',
  /** Objects to convert as another one (the checkpoint's root dict -> the meta dict without state_dict). */
  aliases?: Map<object, object>,
): unknown {
  const done = new Map<object, unknown>();
  const walk = (value: unknown, depth: number, path: string): unknown => {
    if (value === null || typeof value !== 'object') return value;
    const v: object = aliases?.get(value) ?? value;
    if (v instanceof Uint8Array) return v;
    const seen = done.get(v);
    if (seen !== undefined || done.has(v)) return seen;
    if (depth > MAX_DEPTH) throw new Error(`${where}: nesting deeper than ${MAX_DEPTH}`);
    const d = depth + 1;
    if (v instanceof TensorRef) {
      const t = resolve(v, path);
      done.set(v, t);
      return t;
    }
    if (Array.isArray(v)) {
      const out: unknown[] = [];
      done.set(v, out);
      v.forEach((x, i) => out.push(walk(x, d, `${path}[${i}]`)));
      return out;
    }
    if (v instanceof Map) {
      const allStrings = [...v.keys()].every((k) => typeof k === 'string');
      if (allStrings) {
        const out: Record<string, unknown> = {};
        done.set(v, out);
        for (const [k, x] of v) defineKey(out, k as string, walk(x, d, `${path}.${k}`));
        return out;
      }
      const out = new Map<unknown, unknown>();
      done.set(v, out);
      for (const [k, x] of v) out.set(walk(k, d, path), walk(x, d, `${path}[${String(k)}]`));
      return out;
    }
    if (v instanceof Set) {
      const out = new Set<unknown>();
      done.set(v, out);
      for (const x of v) out.add(walk(x, d, `${path}{}`));
      return out;
    }
    if (v instanceof Opaque) {
      const out = new Opaque(v.__class__, []);
      if (v.reduced) out.reduced = true;
      done.set(v, out);
      out.args = walk(v.args, d, `${path}.args`) as unknown[];
      out.state = walk(v.state, d, `${path}.state`);
      if (v.items) out.items = walk(v.items, d, `${path}.items`) as unknown[];
      if (v.kwargs !== undefined) out.kwargs = walk(v.kwargs, d, `${path}.kwargs`);
      return out;
    }
    if (v instanceof NdArrayRef) {
      const value = v.value;
      if (Array.isArray(value)) {
        const out: unknown[] = [];
        done.set(v, out);
        value.forEach((x, i) => out.push(walk(x, d, `${path}[${i}]`)));
        return out;
      }
      const out = v.toValue();
      done.set(v, out);
      return out;
    }
    if (v instanceof NpDType) {
      done.set(v, v.name);
      return v.name;
    }
    return v; // PyGlobal, PySlice, typed arrays
  };
  return walk(root, 0, rootPath);
}
