// AR transformer parity against the official GPT (fixtures `gpt`), sampling semantics and bad input.
import { beforeAll, describe, expect, it } from 'vitest';

import { loadSafetensors, tensor, Transformer, type Tensor } from '../../dist/index.js';
import { fixture, HAVE_FIXTURES } from '../support/fixtures';

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};
const ints = (t: Tensor) => Array.from(t.dataSync() as BigInt64Array, Number);

describe.skipIf(!HAVE_FIXTURES)('gpt fixture (official llama.py GPT)', () => {
  let tr: Transformer;
  let g: Map<string, Tensor>;
  let labels: number[];
  let cfgScale: number;

  beforeAll(async () => {
    const { readFileSync } = await import('node:fs');
    const kase = JSON.parse(readFileSync(fixture('gpt', 'case.json'), 'utf8'));
    cfgScale = kase.cfg_scale;
    tr = await Transformer.fromCheckpoint(fixture('gpt', 'model.ckpt'), { config: kase.config });
    g = await loadSafetensors(fixture('gpt', 'golden.safetensors'));
    labels = ints(g.get('labels')!);
  });

  it('loads the transformer.* keys 1:1 and reproduces the eval logits', async () => {
    expect(tr.training).toBe(false);
    const tokens = ints(g.get('tokens')!);
    const [B, T] = g.get('tokens')!.shape;
    const input = tensor(tokens.filter((_, i) => i % T < T - 1), [B, T - 1], { dtype: 'int64' });
    const logits = await tr.forward(input, g.get('labels')!);
    expect(logits.shape).toEqual([B, T, tr.config.vocab_size]);
    expect(maxAbsDiff(logits.dataSync() as Float32Array, g.get('logits')!.dataSync() as Float32Array)).toBeLessThanOrEqual(1e-5);
  });

  it('reproduces the train-mode loss and its gradient w.r.t. head.weight (label dropout off)', async () => {
    tr.train();
    try {
      const r = await tr.lossAndGrads(g.get('tokens')!, g.get('labels')!, { wrt: ['head.weight'], labelDropout: false });
      expect(Math.abs(r.loss - (g.get('train_loss')!.dataSync() as Float32Array)[0])).toBeLessThanOrEqual(1e-5);
      const grad = r.grads.get('head.weight')!;
      expect(maxAbsDiff(grad.dataSync() as Float32Array, g.get('grad_head')!.dataSync() as Float32Array)).toBeLessThanOrEqual(1e-4);
    } finally {
      tr.eval();
    }
  });

  it('greedy decoding with guidance, and without, equals the official KV-cache loop', async () => {
    const withCfg = await tr.sample({ labels, cfgScale, greedy: true });
    expect(withCfg.shape).toEqual([labels.length, tr.config.block_size]);
    expect(ints(withCfg)).toEqual(ints(g.get('greedy')!));
    const noCfg = await tr.sample({ labels, cfgScale: 1, greedy: true });
    expect(ints(noCfg)).toEqual(ints(g.get('greedy_nocfg')!));
  });

  it('cfgScale <= 1 means no guidance (the official loop fails there)', async () => {
    for (const s of [0, 0.5]) expect(ints(await tr.sample({ labels, cfgScale: s, greedy: true }))).toEqual(ints(g.get('greedy_nocfg')!));
  });

  it('temperature 0 is greedy argmax', async () => {
    expect(ints(await tr.sample({ labels, cfgScale, temperature: 0 }))).toEqual(ints(g.get('greedy')!));
  });

  it('seeded sampling draws what torch.multinomial drew after torch.manual_seed(seed)', async () => {
    const seed = Number((g.get('seed')!.dataSync() as BigInt64Array)[0]);
    const opts = { labels, cfgScale, temperature: 1.1, topK: 0, topP: 1.0, seed };
    expect(ints(await tr.sample(opts))).toEqual(ints(g.get('sampled')!));
    // topK beyond the vocabulary is clamped to it: no token is removed, the draws are the same
    expect(ints(await tr.sample({ ...opts, topK: 10_000 }))).toEqual(ints(g.get('sampled')!));
  });

  it('topK 1 and a tiny topP keep only the most likely token (greedy); together they never mask everything', async () => {
    const greedyT = ints(await tr.sample({ labels, cfgScale, greedy: true, temperature: 1.1 }));
    expect(ints(await tr.sample({ labels, cfgScale, temperature: 1.1, topK: 1, seed: 3 }))).toEqual(greedyT);
    expect(ints(await tr.sample({ labels, cfgScale, temperature: 1.1, topP: 1e-9, seed: 3 }))).toEqual(greedyT);
    expect(ints(await tr.sample({ labels, cfgScale, temperature: 1.1, topK: 1, topP: 1e-9, seed: 3 }))).toEqual(greedyT);
    const both = ints(await tr.sample({ labels, cfgScale, temperature: 1.1, topK: 5, topP: 0.5, seed: 3 }));
    expect(both.every((t) => t >= 0 && t < tr.config.vocab_size)).toBe(true);
  });

  it('reports progress once per token and aborts through an AbortSignal', async () => {
    const steps: number[] = [];
    await tr.sample({ labels: [1], greedy: true, onProgress: (s, n) => steps.push(s * 1000 + n) });
    expect(steps).toEqual(Array.from({ length: 16 }, (_, i) => (i + 1) * 1000 + 16));
    // deterministic: the aborted call waits behind another call on the model's queue, so the abort lands
    // before it starts (mid-run aborts of a job are covered by test/jobs.test.ts)
    const ac = new AbortController();
    const first = tr.sample({ labels: [1, 2, 3, 4], greedy: true });
    const p = tr.sample({ labels: [1, 2], signal: ac.signal });
    ac.abort();
    expect((await first).shape).toEqual([4, 16]);
    const err = await p.catch((e: Error) => e);
    expect((err as Error).name).toBe('AbortError');
  });

  it('rejects bad input with errors naming the value and the allowed range', async () => {
    const t = (rows: number[][]) => tensor(rows.flat(), [rows.length, rows[0].length], { dtype: 'int64' });
    await expect(tr.sample({ labels: [10] })).rejects.toThrow(/labels\[0\].*<= 9.*10/);
    await expect(tr.sample({ labels: [-1] })).rejects.toThrow(RangeError);
    await expect(tr.sample({ labels: [0], temperature: -1 })).rejects.toThrow(/temperature/);
    await expect(tr.sample({ labels: [0], cfgScale: -2 })).rejects.toThrow(/cfgScale/);
    await expect(tr.sample({ labels: [0], topP: 0 })).rejects.toThrow(/topP/);
    await expect(tr.sample({ labels: [0], topP: 1.5 })).rejects.toThrow(/topP/);
    await expect(tr.forward(t([[64]]), [0])).rejects.toThrow(/token ids must be in \[0, 63\].*64/);
    await expect(tr.forward(t([[0]]), [10])).rejects.toThrow(/class ids must be in/);
    await expect(tr.forward(t([Array(16).fill(0)]), [0])).rejects.toThrow(/sequence length 16 exceeds the allowed 15/);
    await expect(tr.forward(t([[0], [1]]), [0])).rejects.toThrow(/one per token row/);
    await expect(tr.lossAndGrads(t([[0, 1]]), [0], { wrt: ['nope.weight'] })).rejects.toThrow(/nope\.weight/);
  });
});
