// The continuous-batching engine (createGenerator, issue 21 items 1-2): seeded requests give the same tokens alone
// and when they join a running batch at any step; an aborted request frees its slot; options are checked once;
// a model in training or disposed is not served.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { createGenerator, info, setNumThreads, tensor, Transformer, type GenerateRequest, type Generator } from '../../dist/index.js';
import { pseudoRandom } from '../support/ar_tiny.js';
import { run } from '../support/run.js';

// head size 16 and widths that are not multiples of the kernels' panels, so tiles and tails are both exercised
const CFG = { vocab_size: 200, block_size: 64, n_layer: 2, n_head: 4, n_embd: 64, class_num: 5, multiple_of: 48 };

// LONG: requests that run long enough (4096 tokens) for a test to act while they are in their slots
const LONG = { ...CFG, block_size: 4096 };

async function model(seed = 3, cfg: typeof CFG = CFG): Promise<Transformer> {
  const tr = Transformer.create(cfg, { seed });
  const head = tr.stateDict().get('head.weight')!;
  await tr.loadStateDict(new Map([['head.weight', tensor(pseudoRandom(head.shape[0]! * head.shape[1]!, seed, 3), head.shape)]]), { strict: false });
  return tr.eval();
}

const tokens = async (g: Generator, r: GenerateRequest, signal?: AbortSignal) =>
  Array.from((await g.generate(r, { signal })).tokens.dataSync() as BigInt64Array, Number);

const OTHERS: GenerateRequest[] = [
  { label: 0, seed: 11, cfgScale: 3 },
  { label: 4, seed: 12, temperature: 0.7, topK: 20 },
  { label: 2, seed: 13, cfgScale: 1.5, topP: 0.8 },
  { label: 3, seed: 14, temperature: 0 },
  { label: 1, seed: 15, greedy: true, cfgScale: 2 },
];
const TARGETS: GenerateRequest[] = [
  { label: 1, seed: 7, cfgScale: 2 },
  { label: 3, seed: 99, temperature: 1.3, topK: 50, topP: 0.9 },
];

describe('createGenerator: continuous batching', () => {
  it('a seeded request gives identical tokens alone and joined with others at staggered steps', async () => {
    const tr = await model();
    const g = createGenerator({ transformer: tr, maxBatch: 4 });
    for (const target of TARGETS) {
      const alone = await tokens(g, target);
      expect(alone).toHaveLength(CFG.block_size);
      // joins a running batch: the others start first, the target enters a few steps later
      for (const delay of [1, 4, 15]) {
        const others = OTHERS.map((r) => tokens(g, r));
        await new Promise((r) => setTimeout(r, delay));
        const joined = await tokens(g, target);
        await Promise.all(others);
        expect(joined, `joined after ${delay} ms`).toEqual(alone);
      }
      // the target first, the others join while it runs (and some queue: maxBatch 4 < 6 requests)
      const first = tokens(g, target);
      await new Promise((r) => setTimeout(r, 3));
      const late = OTHERS.map((r) => tokens(g, r));
      expect(await first).toEqual(alone);
      await Promise.all(late);
    }
    // the other requests are invariant too: each alone equals its batched result
    const batched = await Promise.all(OTHERS.map((r) => tokens(g, r)));
    for (const [i, r] of OTHERS.entries()) expect(await tokens(g, r)).toEqual(batched[i]);
    // different seeds give different tokens (the seed is the request's own stream)
    expect(await tokens(g, { ...TARGETS[0]!, seed: 8 })).not.toEqual(await tokens(g, TARGETS[0]!));
    tr.dispose();
  });

  it('a full engine (rows split among the threads) gives each request its tokens alone', async () => {
    // 12 guided requests = 24 rows: from 8 rows per thread a step runs as one group of rows per thread (batch_engine)
    const before = info().threads;
    setNumThreads(2);
    try {
      const tr = await model(4);
      const g = createGenerator({ transformer: tr, maxBatch: 16 });
      const many: GenerateRequest[] = Array.from({ length: 12 }, (_, i) => ({ label: i % CFG.class_num, seed: 100 + i, cfgScale: 1.5 + (i % 3), topK: i % 2 ? 0 : 30 }));
      const alone = [];
      for (const r of many) alone.push(await tokens(g, r));
      const together = await Promise.all(many.map((r) => tokens(g, r)));
      expect(together).toEqual(alone);
      // a request that joins the full batch a few steps late
      const rest = many.slice(3).map((r) => tokens(g, r));
      await new Promise((r) => setTimeout(r, 2));
      expect(await tokens(g, many[0]!)).toEqual(alone[0]);
      await Promise.all(rest);
      tr.dispose();
    } finally {
      setNumThreads(before);
    }
  });

  it('a request equals Transformer.sample of its one label (greedy, and seeded draws with the same seed)', async () => {
    const tr = await model(5);
    const g = createGenerator({ transformer: tr, maxBatch: 2 });
    for (const label of [0, 2]) {
      const ref = Array.from((await tr.sample({ labels: [label], temperature: 0, cfgScale: 2 })).dataSync() as BigInt64Array, Number);
      expect(await tokens(g, { label, temperature: 0, cfgScale: 2 })).toEqual(ref);
    }
    // sample() runs the same decode step; with one label its generator draws exactly as the request's own does
    for (const o of [{ cfgScale: 2 }, { temperature: 0.8, topK: 20 }, { cfgScale: 1.5, topP: 0.9 }]) {
      const ref = Array.from((await tr.sample({ labels: [3], seed: 21, ...o })).dataSync() as BigInt64Array, Number);
      const others = OTHERS.slice(0, 1).map((r) => tokens(g, r));
      expect(await tokens(g, { label: 3, seed: 21, ...o }), JSON.stringify(o)).toEqual(ref);
      await Promise.all(others);
    }
    tr.dispose();
  });

  it('an aborted request frees its slot: the queued one runs and completes', async () => {
    const tr = await model(3, LONG);
    const g = createGenerator({ transformer: tr, maxBatch: 1 });
    const ac = new AbortController();
    const a = g.generate({ label: 0, seed: 1 }, { signal: ac.signal });
    const b = tokens(g, { label: 2, seed: 2 });
    expect(g.stats()).toMatchObject({ maxBatch: 1 });
    while (g.stats().running === 0) await new Promise((r) => setTimeout(r, 1));
    expect(g.stats().queued).toBe(1);
    ac.abort('client gone');
    await expect(a).rejects.toMatchObject({ code: 'ERR_IBQ_ABORTED', name: 'AbortError', cause: 'client gone' });
    const bt = await b;
    expect(bt).toEqual(await tokens(g, { label: 2, seed: 2 }));
    expect(g.stats()).toEqual({ queued: 0, running: 0, maxBatch: 1 });
    // an already aborted signal: rejected before anything is queued
    await expect(g.generate({ label: 0 }, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ERR_IBQ_ABORTED' });
    tr.dispose();
  });

  it('checks its options once, naming them', async () => {
    const tr = await model();
    expect(() => createGenerator({ transformer: tr, maxBatch: 0 })).toThrow(/maxBatch: expected an integer >= 1/);
    expect(() => createGenerator({ transformer: {} as never })).toThrow(/transformer: expected a Transformer/);
    expect(() => createGenerator({ transformer: tr, max_batch: 2 } as never)).toThrow(/options.max_batch: unknown option \(did you mean maxBatch\?\)/);
    const g = createGenerator({ transformer: tr });
    expect(g.maxBatch).toBe(16);
    await expect(g.generate({ label: 5 })).rejects.toThrow(/request.label: expected an integer >= 0 and <= 4, got 5/);
    await expect(g.generate({ label: 1, cfg_scale: 2 } as never)).rejects.toThrow(/request.cfg_scale: unknown option \(did you mean cfgScale\?\)/);
    await expect(g.generate({ label: 1, topP: 0 })).rejects.toThrow(RangeError);
    await expect(g.generate({ label: 1, seed: -1 })).rejects.toThrow(/seed/);
    await expect(g.generate({ label: 1 }, { signal: 'x' } as never)).rejects.toThrow(/opts.signal: expected an AbortSignal/);
    const plain = Transformer.create({ ...CFG, class_dropout_prob: 0 }, { seed: 1 }).eval();
    await expect(createGenerator({ transformer: plain }).generate({ label: 1, cfgScale: 2 })).rejects.toThrow(/null class/);
    const r = await createGenerator({ transformer: plain }).generate({ label: 1 });
    expect(Number.isInteger(r.seed)).toBe(true);
    plain.dispose();
    tr.dispose();
  });

  it('a model in training mode is not served (ERR_IBQ_BUSY); a disposed one rejects its requests (ERR_IBQ_DISPOSED)', async () => {
    const tr = await model(3, LONG);
    const g = createGenerator({ transformer: tr, maxBatch: 2 });
    tr.train();
    await expect(g.generate({ label: 1, seed: 1 })).rejects.toMatchObject({ code: 'ERR_IBQ_BUSY' });
    tr.eval();
    const running = [g.generate({ label: 1, seed: 1 }), g.generate({ label: 2, seed: 2 }), g.generate({ label: 3, seed: 3 })];
    while (g.stats().running === 0) await new Promise((r) => setTimeout(r, 1));
    tr.dispose();
    const r = await Promise.allSettled(running);
    expect(r.map((s) => (s.status === 'rejected' ? (s.reason as { code?: string }).code : 'resolved'))).toEqual(Array(3).fill('ERR_IBQ_DISPOSED'));
    await expect(g.generate({ label: 1, seed: 1 })).rejects.toMatchObject({ code: 'ERR_IBQ_DISPOSED' });
  });

  it('the AVX-512, AVX2 and scalar kernels give the same tokens (one fma chain per element)', async () => {
    const script = join(__dirname, '..', 'support', 'generator_tokens.mjs');
    const outs: string[] = [];
    for (const kernel of ['', 'avx2', 'scalar']) {
      const r = await run(process.execPath, [script], { env: { ...process.env, IBQ_ROWS_KERNEL: kernel }, timeout: 120_000 });
      expect(r.status, r.stderr).toBe(0);
      outs.push(r.stdout.trim());
    }
    expect(outs[0]!.length).toBeGreaterThan(10);
    expect(outs[1]).toBe(outs[0]);
    expect(outs[2]).toBe(outs[0]);
  });
});
