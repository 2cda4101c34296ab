// Our channels-last GroupNorm(+SiLU) kernel (native/ibq/core/cpu_kernels.h; the encoder and decoder run it in inference
// and training) against libtorch's float64 result: at least as exact as libtorch's own float32 group_norm, forward and
// backward (d/dx, d/dweight, d/dbias of sum(out * grad_out)), on shapes with remainders and on inputs far from zero mean
// (the statistics are shifted sums). The kernel the run uses: info().kernel (IBQ_KERNEL).
import { describe, expect, it } from 'vitest';

import { info, tensor } from '../../dist/index.js';
import { native } from '../../dist/native.js';

function seeded(n: number, scale: number, offset: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    a[i] = (s / 1073741824 - 1) * scale + offset;
  }
  return a;
}

async function check(shape: [number, number, number, number], opts: { offset?: number; silu?: boolean; groups?: number } = {}) {
  const [, c] = shape;
  const x = tensor(seeded(shape.reduce((a, b) => a * b), 3, opts.offset ?? 0, 11), shape);
  const w = tensor(seeded(c, 0.5, 1, 5), [c]), b = tensor(seeded(c, 0.5, 0, 9), [c]);
  try {
    return await native.testOps.groupNorm(x.handle, opts.groups ?? 32, w.handle, b.handle, 1e-6, opts.silu ?? true, 0);
  } finally {
    for (const t of [x, w, b]) t.dispose();
  }
}

describe('channels-last GroupNorm + SiLU kernel', () => {
  const kernel = info().kernel;
  const cases: [string, [number, number, number, number], { offset?: number; silu?: boolean; groups?: number }][] = [
    ['GroupNorm + SiLU, 4 channels per group', [2, 128, 16, 16], {}],
    ['GroupNorm alone (attention blocks)', [2, 128, 16, 16], { silu: false }],
    ['odd sides, one sample', [1, 64, 7, 5], {}],
    ['mean 100, std 1.7: no cancellation in the variance', [2, 256, 12, 12], { offset: 100 }],
    ['mean -1000, GroupNorm alone', [3, 32, 9, 9], { offset: -1000, silu: false }],
    ['512 channels at 33 x 33 (rows split among threads unevenly)', [1, 512, 33, 33], {}],
  ];
  for (const [name, shape, opts] of cases) {
    it(`${name} (${kernel})`, async () => {
      const r = await check(shape, opts);
      expect(r.used).toBe(kernel !== 'aten');
      if (r.used) expect(r.maxDiff).toBeLessThanOrEqual(Math.max(2 * r.atenMaxDiff, 1e-6));
    });
    it(`${name}: backward (${kernel})`, async () => {
      const r = await check(shape, opts);
      expect(r.used).toBe(kernel !== 'aten');
      expect(r.dxDiff).toBeLessThanOrEqual(Math.max(2 * r.atenDxDiff, 1e-5));
      expect(r.dweightDiff).toBeLessThanOrEqual(Math.max(2 * r.atenDweightDiff, 1e-5));
      expect(r.dbiasDiff).toBeLessThanOrEqual(Math.max(2 * r.atenDbiasDiff, 1e-5));
    });
  }

  it('takes only what it can: 24 channels (8 groups) are no multiple of the 16 floats of AVX-512', async () => {
    const r = await check([1, 24, 4, 4], { groups: 8 });
    expect(r.used).toBe(kernel === 'avx2');
    if (r.used) expect(r.maxDiff).toBeLessThanOrEqual(Math.max(2 * r.atenMaxDiff, 1e-6));
  });
});
