/** Mixed precision (autocast) options, checked in one place for every call that takes them. */
import { describe } from './errors.js';

export type AutocastDType = 'bfloat16' | 'float16';

export interface AutocastOptions {
  /** Mixed precision: 'bfloat16' (CPU, CUDA) or 'float16' (CUDA; libtorch 1.13 autocasts the CPU to bfloat16 only). */
  autocast?: AutocastDType;
}

/**
 * The autocast dtype of `value` (undefined: none). RangeError naming `name` for another value, and for
 * 'float16' when `device` is the CPU.
 */
export function checkAutocastDType(value: unknown, name = 'autocast', device?: string): AutocastDType | undefined {
  if (value === undefined) return undefined;
  if (value !== 'bfloat16' && value !== 'float16') throw new RangeError(`${name}: expected 'bfloat16' or 'float16', got ${describe(value)}`);
  if (value === 'float16' && device !== undefined && !device.startsWith('cuda')) {
    throw new RangeError(`${name}: float16 autocast needs a CUDA device; on the CPU libtorch 1.13 autocasts to bfloat16 only (use 'bfloat16')`);
  }
  return value;
}

/** `{ autocast }` of a call's options object (TypeError when opts is not an object). */
export function checkAutocast(opts: AutocastOptions | undefined, name = 'opts'): AutocastOptions {
  if (opts === undefined) return {};
  if (opts === null || typeof opts !== 'object') throw new TypeError(`${name}: expected an object, got ${describe(opts)}`);
  return { autocast: checkAutocastDType(opts.autocast, `${name}.autocast`) };
}
