// parallel_bmm (native/ibq/core/parallel_bmm.h: batched products split among the intra-op threads, the attention of
// the VQGAN blocks) against torch.bmm and float64, forward and backward, on odd sizes, batches below and above the
// thread count, and transposed operands (whose gradients must come transposed too: the channels-last layout).
import { describe, expect, it } from 'vitest';

import { tensor } from '../../dist/index.js';
import { native } from '../../dist/native.js';

function seeded(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    a[i] = s / 1073741824 - 1;
  }
  return a;
}

describe('parallel_bmm', () => {
  const cases: [string, number, number, number, number, boolean, boolean][] = [
    ['batch 3, odd sizes', 3, 37, 19, 23, false, false],
    ['batch 1 (rows split among threads)', 1, 65, 33, 17, false, false],
    ['b transposed (q k^T of attention)', 2, 48, 16, 48, false, true],
    ['a transposed, odd sizes', 5, 7, 29, 11, true, false],
    ['both transposed', 2, 31, 9, 13, true, true],
  ];
  for (const [name, B, M, K, N, at, bt] of cases) {
    it(name, async () => {
      const a = tensor(seeded(B * M * K, 3), at ? [B, K, M] : [B, M, K]);
      const b = tensor(seeded(B * K * N, 7), bt ? [B, N, K] : [B, K, N]);
      try {
        const r = await native.testOps.bmm(a.handle, b.handle, at, bt);
        expect(r.layoutsKept).toBe(true);
        expect(r.outDiff).toBeLessThanOrEqual(Math.max(2 * r.atenOutDiff, 1e-6));
        expect(r.daDiff).toBeLessThanOrEqual(Math.max(2 * r.atenDaDiff, 1e-6));
        expect(r.dbDiff).toBeLessThanOrEqual(Math.max(2 * r.atenDbDiff, 1e-6));
      } finally {
        a.dispose();
        b.dispose();
      }
    });
  }
});
