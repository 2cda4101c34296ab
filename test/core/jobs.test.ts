import { describe, expect, it } from 'vitest';

import { setNumThreads } from '../../dist/index.js';
import { runJob } from '../../dist/core/job.js';
import { native } from '../../dist/native.js';

describe('native jobs', () => {
  it('a C++ exception reaches JS as a rejected promise with the c10 message, without the backtrace', async () => {
    const p = native.testOps.fail('custom failure 42 from c10');
    await expect(p).rejects.toThrow(/custom failure 42 from c10/);
    const err = await p.catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err.message).not.toMatch(/Exception raised from|frame #/);
  });

  it('a synchronous native failure throws the same message', () => {
    expect(() => native.testOps.fail('sync failure', false)).toThrow(/sync failure/);
  });

  it('argument errors from native code name the argument', () => {
    expect(() => native.testOps.matmulLoop(-1, 1)).toThrow(RangeError);
    expect(() => native.testOps.matmulLoop(-1, 1)).toThrow(/size/);
    expect(() => native.testOps.matmulLoop('big' as never, 1)).toThrow(TypeError);
  });

  it('keeps the event loop free while a long op runs on one libtorch thread', async () => {
    setNumThreads(1);
    // grow the work until one call takes at least 300 ms (robust to a busy machine)
    let iters = 50;
    let elapsed = 0;
    let ticks = 0;
    for (let attempt = 0; attempt < 12 && elapsed < 300; attempt++) {
      ticks = 0;
      const timer = setInterval(() => ticks++, 10);
      const start = performance.now();
      const sum = await native.testOps.matmulLoop(384, iters);
      elapsed = performance.now() - start;
      clearInterval(timer);
      expect(Number.isFinite(sum)).toBe(true);
      if (elapsed < 300) iters *= 2;
    }
    expect(elapsed).toBeGreaterThanOrEqual(300);
    expect(ticks).toBeGreaterThanOrEqual(Math.floor(elapsed / 10 / 2));
  });

  it('reports progress in order before settling, and aborts', async () => {
    const steps: number[] = [];
    const n = await native.testOps.matmulLoop(32, 5, { onProgress: (s) => steps.push(s) });
    expect(Number.isFinite(n)).toBe(true);
    expect(steps).toEqual([1, 2, 3, 4, 5]);

    const ac = new AbortController();
    const p = runJob({ signal: ac.signal }, (hooks) => native.testOps.matmulLoop(256, 1_000_000, hooks));
    setTimeout(() => ac.abort(), 50);
    const err = await p.catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).name).toBe('AbortError');
  });

  it('jobs on one queue run in submission order', async () => {
    const order: number[] = [];
    await Promise.all(
      [40, 1, 20, 2].map((iters, i) =>
        native.testOps.matmulLoop(128, iters, { queued: true }).then(() => order.push(i)),
      ),
    );
    expect(order).toEqual([0, 1, 2, 3]);
  });
});
