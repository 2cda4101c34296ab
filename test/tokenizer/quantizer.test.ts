import { beforeAll, describe, expect, it } from 'vitest';

import { IBQuantizer, VectorQuantizer, loadSafetensors, tensor, type Tensor } from '../../dist/index.js';
import { ints, maxAbsDiff, scalar } from '../support/compare.js';
import { fixture, HAVE_FIXTURES } from '../support/fixtures.js';

const OUT_TOL = 1e-5;
const GRAD_TOL = 1e-4;

describe.skipIf(!HAVE_FIXTURES)('IBQuantizer (fixture ibq_quantizer: official IndexPropagationQuantize)', () => {
  let g: Map<string, Tensor>;
  let q: IBQuantizer;
  beforeAll(async () => {
    g = await loadSafetensors(fixture('ibq_quantizer', 'golden.safetensors'));
    q = new IBQuantizer({
      n_embed: 64, embed_dim: 8, beta: 0.25, use_entropy_loss: true, entropy_temperature: 0.01,
      sample_minimization_weight: 1.0, batch_maximization_weight: 1.0,
    });
    const r = await q.loadStateDict(new Map([['embedding.weight', g.get('embedding')!]]));
    expect(r.missing).toEqual([]);
  });

  it('forward reproduces z_q, quant_loss, the entropy terms and the indices', async () => {
    const o = await q.forward(g.get('z')!);
    expect(o.z_q.shape).toEqual([2, 8, 4, 4]);
    expect(o.indices.shape).toEqual([2, 4, 4]);
    expect(o.indices.dtype).toBe('int64');
    expect(ints(o.indices)).toEqual(ints(g.get('indices')!));
    for (const k of ['z_q', 'quant_loss', 'sample_entropy', 'avg_entropy', 'entropy_loss'] as const) {
      expect(maxAbsDiff(o[k], g.get(k)!), k).toBeLessThanOrEqual(OUT_TOL);
    }
  });

  it('lossAndGrads with the case objective gives both gradients', async () => {
    // total = sum(z_q * grad_out) + 1.0 * quant_loss + 0.05 * entropy_loss (case.json)
    const r = await q.lossAndGrads(g.get('z')!, g.get('grad_out')!, { quant_loss_weight: 1.0, entropy_loss_weight: 0.05 });
    expect([...r.grads.keys()].sort()).toEqual(['embedding.weight', 'z']);
    expect(maxAbsDiff(r.grads.get('z')!, g.get('grad_z')!)).toBeLessThanOrEqual(GRAD_TOL);
    expect(maxAbsDiff(r.grads.get('embedding.weight')!, g.get('grad_embedding')!)).toBeLessThanOrEqual(GRAD_TOL);
    expect(maxAbsDiff(r.outputs.z_q, g.get('z_q')!)).toBeLessThanOrEqual(OUT_TOL);
    // the codebook itself is untouched (no update)
    expect(maxAbsDiff(q.stateDict().get('embedding.weight')!, g.get('embedding')!)).toBe(0);
  });

  it('getCodebookEntry returns the rows of the indices; out-of-range indices are rejected', async () => {
    const o = await q.forward(g.get('z')!);
    const zq = await q.getCodebookEntry(o.indices);
    expect(zq.shape).toEqual([2, 8, 4, 4]);
    expect(maxAbsDiff(zq, g.get('z_q')!)).toBeLessThanOrEqual(OUT_TOL);
    await expect(q.getCodebookEntry(tensor([0n, 64n], [1, 1, 2]))).rejects.toThrow(/\[0, 63\].*64/);
    await expect(q.getCodebookEntry(tensor([-1n], [1, 1, 1]))).rejects.toThrow(RangeError);
  });

  it('rejects latents of the wrong shape with the expected form', async () => {
    await expect(q.forward(tensor(new Float32Array(2 * 7 * 4 * 4), [2, 7, 4, 4]))).rejects.toThrow(/\[B, 8, H, W\].*\[2, 7, 4, 4\]/);
    expect(() => new IBQuantizer({ n_embed: 0, embed_dim: 8 })).toThrow(/n_embed/);
    await expect(q.forward('z' as never)).rejects.toThrow(TypeError);
  });
});

describe.skipIf(!HAVE_FIXTURES)('VectorQuantizer (fixture vq_quantizer: official VectorQuantizer2, legacy)', () => {
  it('forward and lossAndGrads reproduce the fixture', async () => {
    const g = await loadSafetensors(fixture('vq_quantizer', 'golden.safetensors'));
    const q = new VectorQuantizer({ n_embed: 64, embed_dim: 8, beta: 0.25, legacy: true });
    await q.loadStateDict(new Map([['embedding.weight', g.get('embedding')!]]));
    expect([...q.stateDict().keys()]).toEqual(['embedding.weight']);
    const o = await q.forward(g.get('z')!);
    expect(ints(o.indices)).toEqual(ints(g.get('indices')!));
    expect(maxAbsDiff(o.z_q, g.get('z_q')!)).toBeLessThanOrEqual(OUT_TOL);
    expect(maxAbsDiff(o.loss, g.get('loss')!)).toBeLessThanOrEqual(OUT_TOL);
    // total = sum(z_q * grad_out) + loss
    const r = await q.lossAndGrads(g.get('z')!, g.get('grad_out')!);
    expect(maxAbsDiff(r.grads.get('z')!, g.get('grad_z')!)).toBeLessThanOrEqual(GRAD_TOL);
    expect(maxAbsDiff(r.grads.get('embedding.weight')!, g.get('grad_embedding')!)).toBeLessThanOrEqual(GRAD_TOL);
  });
});

describe('IBQuantizer entropy under bfloat16 autocast (CPU)', () => {
  // Codebook [[1,0],[1,0],[0,1],[0,1],[0,1],[1,1]] and z = (a, b) per position give logits (a, a, b, b, b, a+b):
  // with a, b about -1000 (bfloat16-exact) and temperature 0.01, the maxima tie 2, 3 or 5 ways, so the
  // entropies are log 2, log 3, log 5 mixtures that a bfloat16 softmax would get wrong by about 3e-3.
  const E = tensor([1, 0, 1, 0, 0, 1, 0, 1, 0, 1, 1, 1], [6, 2]);
  const pairs = [[-1000, -996], [-996, -1000], [-1000, -1000], [-992, -1000], [-1000, -988], [-1004, -1004], [-996, -996], [-1000, -992]];
  const z = tensor(
    Float32Array.from([...pairs.map((p) => p[0]!), ...pairs.map((p) => p[1]!)]),
    [1, 2, 2, 4],
  );
  it('keeps the entropy terms finite and within 1e-3 relative of float32', async () => {
    const q = new IBQuantizer({ n_embed: 6, embed_dim: 2, use_entropy_loss: true, entropy_temperature: 0.01 });
    await q.loadStateDict(new Map([['embedding.weight', E]]));
    const f32 = await q.forward(z);
    const bf16 = await q.forward(z, { autocast: 'bfloat16' });
    expect(bf16.z_q.dtype).toBe('bfloat16'); // autocast was on for the codebook products
    expect(f32.z_q.dtype).toBe('float32');
    for (const k of ['sample_entropy', 'avg_entropy', 'entropy_loss'] as const) {
      const a = scalar(f32[k]), b = scalar(bf16[k]);
      expect(bf16[k].dtype, k).toBe('float32');
      expect(Number.isFinite(b), k).toBe(true);
      expect(Math.abs(b - a) / Math.abs(a), k).toBeLessThanOrEqual(1e-3);
    }
    // the float32 values are the tie entropies: mean of log(ties) over the 8 positions
    const ties = [3, 2, 5, 2, 3, 5, 5, 3];
    const expected = ties.reduce((s, t) => s + Math.log(t), 0) / ties.length;
    expect(Math.abs(scalar(f32.sample_entropy) - expected)).toBeLessThan(1e-4);
    expect(ints(bf16.indices)).toEqual(ints(f32.indices));
  });
});
