/** Numeric comparison helpers for parity tests: max abs difference and exact integer equality. */
import type { Tensor } from '../../dist/index.js';

/** Max |a - b| over all elements (same element count required; shapes may differ, e.g. flattened indices). */
export function maxAbsDiff(a: Tensor, b: Tensor): number {
  const x = a.dataSync(), y = b.dataSync();
  if (x.length !== y.length) throw new Error(`element counts differ: [${a.shape}] vs [${b.shape}]`);
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(Number(x[i]) - Number(y[i]));
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** The values of an integer tensor as numbers (for exact equality checks). */
export function ints(t: Tensor): number[] {
  return Array.from(t.dataSync() as ArrayLike<number | bigint>, Number);
}

/** The value of a 0-d (or single-element) tensor. */
export function scalar(t: Tensor): number {
  return Number(t.dataSync()[0]);
}
