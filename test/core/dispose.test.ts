// dispose() releases a model's native memory at once (not when the garbage collector runs), for every model
// class, and a running job keeps what it uses until it ends. Measured as RSS over five create/dispose cycles in
// a child process (test/support/rss_cycles.mjs): without the release every cycle adds a model's size.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { tensor, Transformer } from '../../dist/index.js';
import { run } from '../support/run.js';

const MB = 2 ** 20;

async function cycles(kind: string): Promise<{ bytes: number; growth: number }> {
  const r = await run(process.execPath, [join(__dirname, '..', 'support', 'rss_cycles.mjs'), kind], {
    env: { ...process.env, MALLOC_MMAP_THRESHOLD_: '131072' }, timeout: 480_000,
  });
  if (r.status !== 0) throw new Error(`rss_cycles ${kind} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

describe('dispose() frees native memory at once', () => {
  for (const [kind, min] of [['transformer', 200], ['transformer-trained', 200], ['tokenizer-trainer', 50], ['fid-inception', 80], ['lpips', 50]] as const) {
    it(`${kind}: five create/dispose cycles raise RSS by less than one model's size`, async () => {
      const { bytes, growth } = await cycles(kind);
      expect(bytes, 'the model is large enough for the measurement').toBeGreaterThan(min * MB);
      expect(growth, `RSS grew ${(growth / MB).toFixed(0)} MB over 5 cycles; one model is ${(bytes / MB).toFixed(0)} MB`).toBeLessThan(bytes);
    }, 480_000); // the trained transformer case: ~130 s on 2 quiet cores
  }

  it('a job running when dispose() is called stops with ERR_IBQ_DISPOSED; the handle then refuses calls', async () => {
    // 256 steps: the call is still running when dispose() comes right after it
    const tr = Transformer.create({ vocab_size: 64, block_size: 256, n_layer: 2, n_head: 2, n_embd: 64, class_num: 2, multiple_of: 32 }, { seed: 1 });
    const p = tr.sample({ labels: [0, 1], greedy: true });
    tr.dispose();
    await expect(p).rejects.toMatchObject({ name: 'TypeError', code: 'ERR_IBQ_DISPOSED' });
    expect(() => tr.stateDict()).toThrow(/disposed/);
    await expect(tr.sample({ labels: [0] })).rejects.toMatchObject({ code: 'ERR_IBQ_DISPOSED' });
  });

  it('calls after dispose() are TypeErrors with code ERR_IBQ_DISPOSED (models, their async calls, tensors)', async () => {
    const tr = Transformer.create({ vocab_size: 64, block_size: 16, n_layer: 1, n_head: 2, n_embd: 32, class_num: 2, multiple_of: 32 }, { seed: 1 });
    tr.dispose();
    const sync = (() => { try { tr.stateDict(); } catch (e) { return e; } })() as Error & { code?: string };
    expect(sync).toBeInstanceOf(TypeError);
    expect(sync.code).toBe('ERR_IBQ_DISPOSED');
    await expect(tr.sample({ labels: [0], greedy: true })).rejects.toMatchObject({ name: 'TypeError', code: 'ERR_IBQ_DISPOSED' });
    const t = tensor([1, 2], [2]);
    t.dispose();
    expect(() => t.dataSync()).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_IBQ_DISPOSED' }));
  });
});
