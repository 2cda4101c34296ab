/** Mixed precision (autocast) options, checked in one place for every call that takes them. */
import { describe } from './errors.js';
import { native } from '../native.js';

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
  if (value === 'bfloat16' && !device?.startsWith('cuda')) warnEmulatedBf16();
  return value;
}

let warned = false;
/**
 * One warning per process when bfloat16 autocast is chosen on the CPU of a machine without native bfloat16 (no
 * AVX-512 BF16 or AMX: `info().nativeBf16`): libtorch then emulates it, exactly but far slower than float32 (a small
 * tokenizer's training step took 7x as long on an AVX2-only CPU). Returns whether it warned now.
 */
export function warnEmulatedBf16(nativeBf16 = native.info().nativeBf16): boolean {
  if (warned || nativeBf16) return false;
  warned = true;
  process.emitWarning(
    "autocast 'bfloat16' on a CPU without native bfloat16 (no AVX-512 BF16 or AMX; info().nativeBf16 is false): " +
      'libtorch emulates it, with the same results, but several times slower than float32 (7x for a small tokenizer ' +
      'training step on an AVX2-only CPU); leave autocast off on this CPU',
    { code: 'IBQ_BF16_EMULATED' },
  );
  return true;
}

/** `{ autocast }` of a call's options object (TypeError when opts is not an object). */
export function checkAutocast(opts: AutocastOptions | undefined, name = 'opts', device?: string): AutocastOptions {
  if (opts === undefined) return {};
  if (opts === null || typeof opts !== 'object') throw new TypeError(`${name}: expected an object, got ${describe(opts)}`);
  return { autocast: checkAutocastDType(opts.autocast, `${name}.autocast`, device) };
}
