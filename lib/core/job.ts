/**
 * The hooks a caller gives one long native call (an AbortSignal, an onProgress callback), made into what the
 * native job reads (an Int32Array(1) abort flag it polls, a progress function it calls on the JS thread):
 * - an abort, before the call or while it runs, rejects with abortError(signal) (ERR_IBQ_ABORTED), also when the
 *   job could not stop in time and finished anyway (its result goes to `discard`);
 * - a callback that throws stops the job (through the same flag), is not called again, and the call rejects
 *   with what it threw; a result the job made before it noticed is handed to `discard`.
 * The signal's listener is removed when the call settles, so one signal can serve any number of calls.
 */
import { abortError, checkSignal, describe, throwIfAborted } from './errors.js';

export interface JobHooks {
  signal?: AbortSignal;
  onProgress?: (step: number, total: number) => void;
}

/** What the native call receives (lib/native.ts JobOptions). */
export interface NativeJobHooks {
  abortFlag?: Int32Array;
  onProgress?: (step: number, total: number) => void;
}

export async function runJob<T>(hooks: JobHooks, job: (native: NativeJobHooks) => Promise<T>, discard?: (result: T) => void): Promise<T> {
  const signal = checkSignal(hooks.signal);
  const { onProgress } = hooks;
  if (onProgress !== undefined && typeof onProgress !== 'function') {
    throw new TypeError(`onProgress: expected a function, got ${describe(onProgress)}`);
  }
  throwIfAborted(signal);
  const flag = signal || onProgress ? new Int32Array(1) : undefined;
  let thrown: { error: unknown } | undefined;
  const progress = onProgress && ((step: number, total: number) => {
    if (thrown) return;
    try {
      onProgress(step, total);
    } catch (error) {
      thrown = { error };
      flag![0] = 1;
    }
  });
  const onAbort = () => (flag![0] = 1);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    let result: T;
    try {
      result = await job({ abortFlag: flag, onProgress: progress });
    } catch (err) {
      if (thrown) throw thrown.error;
      const e = err as { code?: unknown; cause?: unknown };
      if (e?.code === 'ERR_IBQ_ABORTED' && e.cause === undefined && signal?.reason !== undefined) {
        Object.defineProperty(e, 'cause', { value: signal.reason, writable: true, configurable: true });
      }
      throw err;
    }
    if (thrown || signal?.aborted) {
      discard?.(result);
      throw thrown ? thrown.error : abortError(signal);
    }
    return result;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
