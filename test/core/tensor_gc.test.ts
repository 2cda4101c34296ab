// Tensor memory and V8's garbage collector (test/core/tensor_gc_child.mjs measures in a child process). V8 runs a
// full collection for every 64 MB of external memory reported beyond its level at the last one, and the pause grows
// with the JavaScript heap: tensors held by running calls (16 concurrent generate() calls hold hundreds of MB),
// which no collection can free, must not make V8 stall a service's event loop (with a 300 MB heap, 20 results of
// 20 MB held at once: no full collection, the loop never blocked for more than 50 ms). Tensors left to the garbage
// collector instead of disposed are still collected (RSS rises by far less than the 3 GB dropped), and their
// memory is freed on a worker thread.
import { describe, expect, it } from 'vitest';

import { run } from '../support/run.js';

const CHILD = new URL('./tensor_gc_child.mjs', import.meta.url).pathname;

async function child(mode: string): Promise<Record<string, number>> {
  // glibc returns freed large blocks to the system at once (its dynamic threshold would keep them and hide whether
  // the memory was freed; see test/support/rss_cycles.mjs)
  const env = { ...process.env, MALLOC_MMAP_THRESHOLD_: String(1 << 20) };
  const r = await run(process.execPath, ['--expose-gc', CHILD, mode], { timeout: 240_000, env });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number>;
}

describe('tensors and the garbage collector', () => {
  it('holding 400 MB of results runs no full collection in a 300 MB heap; the event loop stays under 50 ms', async () => {
    const m = await child('hold');
    console.log(`held 20 x 20 MB with a ${m.heapMB!.toFixed(0)} MB heap: ${m.majorGcs} full collections, largest event-loop delay ${m.maxDelayMs!.toFixed(1)} ms`);
    expect(m.heapMB).toBeGreaterThan(200);
    expect(m.majorGcs).toBe(0);
    expect(m.maxDelayMs).toBeLessThanOrEqual(50);
  }, 240_000);

  it('results dropped without dispose() are still collected: 3 GB dropped, RSS rises by less than 1.5 GB', async () => {
    const m = await child('drop');
    console.log(`dropped 150 x 20 MB: RSS rose by ${m.peakGrowthMB!.toFixed(0)} MB at most`);
    expect(m.peakGrowthMB).toBeLessThan(1500);
  }, 240_000);
});
