// The decode step shared by Transformer.sample() and the serving engine (issue 22): its logits against the official
// ones (fixture `gpt`), its single-query attention against a float64 reference and alone against grouped, and the
// multinomial draw (native/ibq/transformer/draw.h) against torch.multinomial for the same generator states.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

import { loadSafetensors, tensor, Transformer } from '../../dist/index.js';
import { wrap } from '../../dist/core/tensor.js';
import { native } from '../../dist/native.js';
import { pseudoRandom } from '../support/ar_tiny.js';
import { fixture, HAVE_FIXTURES } from '../support/fixtures';

const ints = (h: Parameters<typeof wrap>[0]) => Array.from(wrap(h).dataSync() as BigInt64Array, Number);

function softmaxRows(logits: Float32Array, V: number): Float32Array {
  const out = new Float32Array(logits.length);
  for (let r = 0; r < logits.length / V; r++) {
    let m = -Infinity;
    for (let i = 0; i < V; i++) m = Math.max(m, logits[r * V + i]!);
    let s = 0;
    for (let i = 0; i < V; i++) s += Math.exp(logits[r * V + i]! - m);
    for (let i = 0; i < V; i++) out[r * V + i] = Math.exp(logits[r * V + i]! - m) / s;
  }
  return out;
}

describe('multinomial draw (one token per row)', () => {
  const V = 16384;
  const cases: [string, Float32Array, number[]][] = [
    ['softmax of N(0, 1) logits', softmaxRows(pseudoRandom(3 * V, 1, 1.7), V), [3, V]],
    ['peaked (logits x 12)', softmaxRows(pseudoRandom(2 * V, 2, 20), V), [2, V]],
    ['uniform', new Float32Array(2 * V).fill(1 / V), [2, V]],
    ['top-k filtered (zeros), subnormal entries', (() => {
      const p = softmaxRows(pseudoRandom(V, 3, 3), V);
      for (let i = 0; i < V; i++) if (i % 3) p[i] = 0;
      p[7] = 1e-40;
      p[8] = 3e-39;
      return p;
    })(), [1, V]],
    ['one entry', new Float32Array([0.25]), [1, 1]],
    ['two entries, unnormalised', new Float32Array([3, 1, 0, 2]), [2, 2]],
  ];
  for (const [name, p, shape] of cases) {
    it(`equals torch.multinomial and leaves the generator in its state: ${name}`, async () => {
      for (const seed of [0, 7, 123456789]) {
        const r = await native.testOps.multinomial(tensor(p, shape).handle, seed, 20);
        expect(r.fast).toBe(true);
        expect(ints(r.ours)).toEqual(ints(r.ref));
        expect(r.sameState).toBe(true);
      }
    });
  }
  it('bad probabilities give torch.multinomial\'s error', async () => {
    await expect(native.testOps.multinomial(tensor(new Float32Array([0.5, -0.1]), [1, 2]).handle, 0, 1)).rejects.toThrow(/probability/);
    await expect(native.testOps.multinomial(tensor(new Float32Array([0, 0]), [1, 2]).handle, 0, 1)).rejects.toThrow(/sum of probabilities/);
  });
});

describe('rows::attend (single-query attention over a KV cache)', () => {
  it('each pair alone equals the pair in a group (bits), and a float64 reference within 1e-5', async () => {
    const hd = 24, T = 37, slots = 3, P = 11;  // 11 pairs: groups of four with equal and unequal lengths, and a tail
    const kt = pseudoRandom(slots * hd * T, 5, 1), v = pseudoRandom(slots * T * hd, 6, 1), q = pseudoRandom(P * hd, 7, 1);
    const lengths = [5, 5, 5, 5, 37, 36, 37, 37, 1, 20, 20];
    const offsets = lengths.map((_, i) => (i % slots) * hd * T);
    const scale = 1 / Math.sqrt(hd);
    const ktT = tensor(kt, [slots * hd * T]), vT = tensor(v, [slots * T * hd]);
    const all = wrap(await native.testOps.attend(tensor(q, [P, hd]).handle, ktT.handle, vT.handle, offsets, lengths, T, scale));
    const got = all.dataSync() as Float32Array;
    for (let i = 0; i < P; i++) {
      const one = wrap(await native.testOps.attend(tensor(q.slice(i * hd, (i + 1) * hd), [1, hd]).handle, ktT.handle, vT.handle,
        [offsets[i]!], [lengths[i]!], T, scale));
      expect(Array.from(one.dataSync() as Float32Array)).toEqual(Array.from(got.slice(i * hd, (i + 1) * hd)));
      // float64 reference
      const s = Array.from({ length: lengths[i]! }, (_, t) => {
        let d = 0;
        for (let k = 0; k < hd; k++) d += q[i * hd + k]! * kt[offsets[i]! + k * T + t]!;
        return d * scale;
      });
      const m = Math.max(...s);
      const e = s.map((x) => Math.exp(x - m));
      const z = e.reduce((a, b) => a + b, 0);
      for (let k = 0; k < hd; k++) {
        let o = 0;
        for (let t = 0; t < lengths[i]!; t++) o += (e[t]! / z) * v[offsets[i]! + t * hd + k]!;
        expect(Math.abs(o - got[i * hd + k]!)).toBeLessThanOrEqual(1e-5);
      }
    }
  });
});

describe.skipIf(!HAVE_FIXTURES)('decode step logits (fixture gpt)', () => {
  it('teacher-forced decode logits equal the official eval logits within 1e-5', async () => {
    const kase = JSON.parse(readFileSync(fixture('gpt', 'case.json'), 'utf8'));
    const tr = await Transformer.fromCheckpoint(fixture('gpt', 'model.ckpt'), { config: kase.config });
    const g = await loadSafetensors(fixture('gpt', 'golden.safetensors'));
    const [B, T] = g.get('tokens')!.shape as [number, number];
    const tokens = Array.from(g.get('tokens')!.dataSync() as BigInt64Array, Number);
    const input = tensor(tokens.filter((_, i) => i % T < T - 1), [B, T - 1], { dtype: 'int64' });
    const labels = tensor(Array.from(g.get('labels')!.dataSync() as BigInt64Array, Number), [B], { dtype: 'int64' });
    const logits = wrap(await native.testOps.decodeLogits(tr, labels.handle, input.handle));
    expect(logits.shape).toEqual([B, T, kase.config.vocab_size]);
    const a = logits.dataSync() as Float32Array, b = g.get('logits')!.dataSync() as Float32Array;
    let m = 0;
    for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
    expect(m).toBeLessThanOrEqual(1e-5);
    tr.dispose();
  });
});
