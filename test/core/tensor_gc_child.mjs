// Child process of tensor_gc.test.ts (run with --expose-gc). argv[2]:
//   hold: with a service-sized JavaScript heap (2M objects, about 300 MB) collected beforehand, 20 calls' results of
//         20 MB each are held, then disposed; prints { majorGcs, maxDelayMs, heapMB }: the full collections V8 ran
//         meanwhile and the event loop's largest delay.
//   drop: 150 results of 20 MB are dropped without dispose(); prints { peakGrowthMB }: how far RSS rose before
//         the garbage collector freed them.
import { constants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';

import { selectRows, tensor } from '../../dist/core/tensor.js';

const MB = 1e6;
const base = tensor(new Float32Array(5 * 1_000_000).fill(0.5), [5, 1_000_000]); // 20 MB
const result = () => selectRows(base, [0, 1, 2, 3, 4]); // a 20 MB tensor made on a worker, as a call's output
const tick = () => new Promise((r) => setImmediate(r));
(await result()).dispose(); // warm up: the addon's workers exist

if (process.argv[2] === 'hold') {
  const heap = [];
  for (let i = 0; i < 2_000_000; i++) heap.push({ i, s: `x${i}`, a: [i, i + 1] });
  globalThis.gc();
  let majorGcs = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majorGcs++;
  });
  obs.observe({ entryTypes: ['gc'] });
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  await new Promise((r) => setTimeout(r, 20));
  const held = [];
  for (let k = 0; k < 20; k++) {
    held.push(await result());
    await tick();
  }
  for (const t of held) t.dispose();
  await new Promise((r) => setTimeout(r, 50));
  h.disable();
  obs.disconnect();
  console.log(JSON.stringify({ majorGcs, maxDelayMs: h.max / 1e6, heapMB: process.memoryUsage().heapUsed / MB, objects: heap.length }));
} else {
  globalThis.gc();
  const before = process.memoryUsage().rss;
  let peak = before;
  for (let k = 0; k < 150; k++) {
    await result(); // dropped: only the garbage collector frees it
    await tick();
    peak = Math.max(peak, process.memoryUsage().rss);
  }
  console.log(JSON.stringify({ peakGrowthMB: (peak - before) / MB }));
}
base.dispose();
