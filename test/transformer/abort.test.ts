// One AbortSignal reused across many sample() calls: no listener pile-up (MaxListenersExceededWarning), and an
// abort still stops the running call with ERR_IBQ_ABORTED and the caller's stack.
import { describe, expect, it } from 'vitest';

import { Transformer } from '../../dist/index.js';

const CFG = { vocab_size: 64, block_size: 64, n_layer: 1, n_head: 2, n_embd: 32, class_num: 4, multiple_of: 32 };

describe('AbortSignal reuse', () => {
  it('50 sample() calls with one signal print no warning; aborting stops the running call', async () => {
    const tr = Transformer.create(CFG, { seed: 3 }).eval();
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const ac = new AbortController();
      for (let i = 0; i < 50; i++) (await tr.sample({ labels: [i % 4], greedy: true, signal: ac.signal })).dispose();
      await new Promise((r) => setImmediate(r));
      expect(warnings.map((w) => w.name)).not.toContain('MaxListenersExceededWarning');
      const big = Transformer.create({ ...CFG, block_size: 1024, n_layer: 4, n_embd: 128 }, { seed: 3 }).eval();
      const running = big.sample({ labels: [0, 1, 2, 3], signal: ac.signal, seed: 1 });
      setTimeout(() => ac.abort(), 20);
      const err = await running.catch((e: unknown) => e as Error & { code?: string });
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).name).toBe('AbortError');
      expect((err as { code?: string }).code).toBe('ERR_IBQ_ABORTED');
      expect((err as Error).stack).toContain('abort.test.ts');
      big.dispose();
    } finally {
      process.removeListener('warning', onWarning);
      tr.dispose();
    }
  });
});
