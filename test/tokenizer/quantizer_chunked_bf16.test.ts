// The chunked IBQ quantizer path under bfloat16 autocast at n_embed 262144, embed_dim 256, measured against
// the float64 truth (the official formulas in float64 on the same float32 inputs), as the float32 chunked
// tests are: same indices and outputs as the dense path (the official module's computation), and gradients at
// least as accurate as the dense path's, up to one bfloat16 rounding, and within bfloat16's precision.
//
// Why a bfloat16 gradient is judged against the truth, not against the dense path: under autocast the dense
// path's gradients are bfloat16 matrix products over all positions (codebook) or all n_embed codes (z), and
// what libtorch 1.13 does with them depends on the CPU. With AVX-512 (BW/VL/DQ) they go to oneDNN, which
// accumulates in float32 and rounds once. Without it (AVX2-only CPUs, e.g. AMD EPYC family 25) they go to
// libtorch's own gemm, whose kernel for a non-transposed right operand adds each term into the bfloat16 output,
// rounding the running sum to bfloat16 after every term: the dense codebook gradient then differs from the
// chunked one by 1 bfloat16 unit (0.031 and 0.062 at magnitudes 4-16, the failures seen on AVX2), and the dense
// z gradient (a sum over 262144 codes) is about 15 times further from the truth (2-norm) than with oneDNN. The chunked
// path accumulates its products in float32 on every CPU. Elementwise, two results whose errors are of that
// size are not ordered (either may be closer at a given element), so the criteria are norms, per gradient x
// (chunked) and d (dense) with truth t and u = 2^(floor(log2 max|t|) - 7), one bfloat16 unit at its scale:
//   max |x - t|  <= max |d - t| + u + 1e-4         (no worse than the official computation, in the max norm)
//   rms(x - t)   <= rms(d - t) * (1 + 2^-8) + 1e-4  (nor in the 2-norm)
//   rms(x - t)   <= u                              (within bfloat16's precision, whatever the CPU)
// Run the suite with ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2 on an AVX-512 CPU to see the AVX2 case
// (README, "Development").
import { describe, expect, it } from 'vitest';

import type { IBQuantizer, Tensor } from '../../dist/index.js';
import { againstTruth, densePair, ints, latentCase, maxAbsDiff, reference64 } from '../support/ibq_random.js';

const OUT_TOL = 1e-5;
const GRAD_TOL = 1e-4;
const OUTPUTS = ['z_q', 'quant_loss', 'sample_entropy', 'avg_entropy', 'entropy_loss', 'total'] as const;

/** One bfloat16 unit in the last place at magnitude m: 2^(floor(log2 m) - 7). */
const bf16Unit = (m: number) => (m > 0 ? 2 ** (Math.floor(Math.log2(m)) - 7) : 0);

function rms(x: ArrayLike<number>, t: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < t.length; i++) s += (Number(x[i]) - t[i]!) ** 2;
  return Math.sqrt(s / t.length);
}

describe('chunked IBQuantizer under bfloat16 autocast at n_embed 262144, embed_dim 256, 128 positions', () => {
  const K = 262144, D = 256;
  const compare = async (a: IBQuantizer, b: IBQuantizer, z: Tensor, gradOut: Tensor, entropy: boolean) => {
    const opts = { quant_loss_weight: 1.0, entropy_loss_weight: 0.05, autocast: 'bfloat16' as const };
    const ra = await a.lossAndGrads(z, gradOut, opts);
    const rb = await b.lossAndGrads(z, gradOut, opts);
    expect(ints(rb.outputs.indices)).toEqual(ints(ra.outputs.indices));
    expect(ra.outputs.z_q.dtype).toBe('bfloat16');
    expect(rb.outputs.z_q.dtype).toBe('bfloat16');
    // (bfloat16 z_q compared through its float32 values)
    for (const k of OUTPUTS) expect(maxAbsDiff(rb.outputs[k], ra.outputs[k]), k).toBeLessThanOrEqual(OUT_TOL);
    const truth = await reference64(a, z, gradOut, entropy);
    for (const [key, t] of [['embedding.weight', truth.grad_E], ['z', truth.grad_z]] as const) {
      const x = rb.grads.get(key)!, d = ra.grads.get(key)!;
      expect(x.dtype, key).toBe('float32');
      let scale = 0;
      for (const v of t) scale = Math.max(scale, Math.abs(v));
      const u = bf16Unit(scale);
      const { errA, errDense } = againstTruth(x, d, t);
      expect(errA, `${key}: max error (dense ${errDense})`).toBeLessThanOrEqual(errDense + u + GRAD_TOL);
      const [ex, ed] = [rms(x.dataSync() as Float32Array, t), rms(d.dataSync() as Float32Array, t)];
      expect(ex, `${key}: rms error (dense ${ed})`).toBeLessThanOrEqual(ed * (1 + 2 ** -8) + GRAD_TOL);
      expect(ex, `${key}: rms error within one bfloat16 unit at scale ${scale}`).toBeLessThanOrEqual(u);
    }
  };

  it('with the entropy loss (auto: 3 blocks of at most 48 positions)', async () => {
    const [dense, chunked] = await densePair({ n_embed: K, embed_dim: D, use_entropy_loss: true }, 3);
    const { z, gradOut } = latentCase([2, D, 8, 8], 11);
    await compare(dense, chunked, z, gradOut, true);
  }, 600_000);

  it('without the entropy loss (blocks of 48 positions)', async () => {
    const [dense, chunked] = await densePair({ n_embed: K, embed_dim: D, use_entropy_loss: false, quantizer_chunk: 48 }, 4);
    const { z, gradOut } = latentCase([2, D, 8, 8], 17);
    await compare(dense, chunked, z, gradOut, false);
  }, 600_000);
});
