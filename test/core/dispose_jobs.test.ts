// Lifecycle for services (issue 21 item 6): dispose() rejects a model's queued jobs at once with ERR_IBQ_DISPOSED,
// stops the running one at its next step with the same code and runs nothing on the disposed model; every
// asynchronous call of the tokenizer takes an AbortSignal.
import { describe, expect, it } from 'vitest';

import { tensor, Tokenizer, Transformer } from '../../dist/index.js';
import { fixtureTokenizer } from '../support/ar_tiny.js';
import { HAVE_FIXTURES } from '../support/fixtures.js';

const AR = { vocab_size: 256, block_size: 256, n_layer: 2, n_head: 4, n_embd: 128, class_num: 4, multiple_of: 32 };

describe('dispose() with queued and running jobs', () => {
  it('rejects the 8 queued sample() calls at once and stops the running one, all with ERR_IBQ_DISPOSED', async () => {
    const tr = Transformer.create(AR, { seed: 1 });
    let steps = 0;
    const running = tr.sample({ labels: [0, 1, 2, 3], seed: 1, onProgress: (s) => (steps = s) });
    const queued = Array.from({ length: 8 }, (_, i) => tr.sample({ labels: [i % 4], seed: i }));
    const settled = queued.map((p) => p.then(() => 'resolved', (e: { code?: string; name?: string }) => `${e.name} ${e.code}`));
    while (steps < 2) await new Promise((r) => setTimeout(r, 5));
    tr.dispose();
    // the queued calls are rejected by dispose() itself: they settle before any timer can run
    const first = await Promise.race([Promise.all(settled), new Promise((r) => setTimeout(() => r('timer first'), 0))]);
    expect(first).toEqual(Array(8).fill('TypeError ERR_IBQ_DISPOSED'));
    await expect(running).rejects.toMatchObject({ name: 'TypeError', code: 'ERR_IBQ_DISPOSED' });
    expect(steps, 'the running call stopped at its next step').toBeLessThan(AR.block_size);
    // nothing more runs on it: a call made after dispose() throws with the same code
    await expect(tr.sample({ labels: [0] })).rejects.toMatchObject({ code: 'ERR_IBQ_DISPOSED' });
  });

  it('dispose() during loadStateDict rejects it and the sample() queued behind it', async () => {
    const tr = Transformer.create(AR, { seed: 2 });
    const sd = tr.stateDict();
    const calls = [tr.loadStateDict(sd), tr.sample({ labels: [0], greedy: true })];
    tr.dispose();
    const r = (await Promise.allSettled(calls)).map((s) => (s.status === 'rejected' ? (s.reason as { code?: string }).code : s.status));
    // the load may have finished on its worker before dispose() ran; the sampling queued behind it cannot have
    expect(['ERR_IBQ_DISPOSED', 'fulfilled']).toContain(r[0]);
    expect(r[1]).toBe('ERR_IBQ_DISPOSED');
    for (const t of sd.values()) t.dispose();
  });
});

describe.skipIf(!HAVE_FIXTURES)('tokenizer calls take a signal', () => {
  it('encode / decode / encodeImages / decodeImages: an aborted signal rejects with ERR_IBQ_ABORTED; queued calls never start', async () => {
    const tok = await fixtureTokenizer();
    try {
      const x = tensor(new Float32Array(2 * 3 * 32 * 32).fill(0.1), [2, 3, 32, 32]);
      const { indices } = await tok.encode(x);
      const done = new AbortController();
      done.abort('stop');
      await expect(tok.encode(x, { signal: done.signal })).rejects.toMatchObject({ code: 'ERR_IBQ_ABORTED', name: 'AbortError', cause: 'stop' });
      await expect(tok.decode(indices, { signal: done.signal })).rejects.toMatchObject({ code: 'ERR_IBQ_ABORTED' });
      await expect(tok.decodeImages(indices, { signal: done.signal })).rejects.toMatchObject({ code: 'ERR_IBQ_ABORTED' });
      const png = (await tok.decodeImages(indices))[0]!;
      await expect(tok.encodeImages([png], { imageSize: 32, signal: done.signal })).rejects.toMatchObject({ code: 'ERR_IBQ_ABORTED' });
      // an abort while the calls wait in the model's queue: they reject, the ones without the signal complete
      const ac = new AbortController();
      const calls = [tok.decode(indices), tok.decode(indices, { signal: ac.signal }), tok.encode(x, { signal: ac.signal }), tok.decode(indices)];
      ac.abort();
      const r = await Promise.allSettled(calls);
      expect(r.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled']);
      expect((r[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'ERR_IBQ_ABORTED' });
      const same = await tok.decode(indices);
      expect(Array.from(await (r[0] as PromiseFulfilledResult<typeof same>).value.data())).toEqual(Array.from(await same.data()));
      await expect(tok.encode(x, { signal: 'no' as never })).rejects.toThrow(/opts\.signal: expected an AbortSignal/);
    } finally {
      tok.dispose();
    }
  });

  it('encode / decode on a disposed tokenizer: queued ones reject with ERR_IBQ_DISPOSED', async () => {
    const tok = await fixtureTokenizer();
    const x = tensor(new Float32Array(3 * 32 * 32), [1, 3, 32, 32]);
    const calls = [tok.encode(x), tok.encode(x), tok.encode(x)];
    tok.dispose();
    const r = await Promise.allSettled(calls);
    expect(r.map((s) => (s.status === 'rejected' ? (s.reason as { code?: string }).code : s.status))).toEqual(Array(3).fill('ERR_IBQ_DISPOSED'));
    await expect(tok.encode(x)).rejects.toMatchObject({ code: 'ERR_IBQ_DISPOSED' });
    expect(Tokenizer).toBeDefined();
  });
});
