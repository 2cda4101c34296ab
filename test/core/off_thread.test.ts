// Work moved off the JS thread (for event_loop_delay.test.ts) gives what the synchronous path gives: models
// created on a worker thread (createAsync) equal create() with the same seed, and in-memory training data
// gathers its batches natively from the caller's tensor.
import { describe, expect, it } from 'vitest';

import { makeDataset, tensor, Tokenizer, TokenizerTrainer, Transformer, type Tensor } from '../../dist/index.js';

const TOK = {
  ddconfig: { double_z: false, z_channels: 32, resolution: 16, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2],
    num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 },
  n_embed: 32, embed_dim: 8,
};
const AR = { vocab_size: 32, block_size: 16, n_layer: 1, n_head: 2, n_embd: 32, class_num: 3, multiple_of: 32 };

async function same(a: Map<string, Tensor>, b: Map<string, Tensor>): Promise<void> {
  expect([...a.keys()]).toEqual([...b.keys()]);
  for (const [k, t] of a) expect(Buffer.from(((await t.data()) as Float32Array).buffer).equals(Buffer.from(((await b.get(k)!.data()) as Float32Array).buffer)), k).toBe(true);
}

describe('createAsync', () => {
  it('Tokenizer, TokenizerTrainer and Transformer equal create() with the same seed', async () => {
    const t1 = Tokenizer.create(TOK, { seed: 7 }), t2 = await Tokenizer.createAsync(TOK, { seed: 7 });
    await same(t1.stateDict(), t2.stateDict());
    const loss = { disc_num_layers: 1, disc_ndf: 16, perceptual_weight: 0 };
    const s1 = TokenizerTrainer.create(t1, loss, { seed: 3 }), s2 = await TokenizerTrainer.createAsync(t2, loss, { seed: 3 });
    const disc = (m: Map<string, Tensor>) => new Map([...m].filter(([k]) => k.startsWith('loss.discriminator.')));
    expect(disc(s1.stateDict()).size).toBeGreaterThan(0);
    await same(disc(s1.stateDict()), disc(s2.stateDict()));
    const a1 = Transformer.create(AR, { seed: 5 }), a2 = await Transformer.createAsync(AR, { seed: 5 });
    await same(a1.stateDict(), a2.stateDict());
    // a different seed gives different weights (the comparison can fail)
    const a3 = await Transformer.createAsync(AR, { seed: 6 });
    expect(Array.from(a3.stateDict().get('tok_emb.weight')!.dataSync())).not.toEqual(Array.from(a1.stateDict().get('tok_emb.weight')!.dataSync()));
    for (const m of [s1, s2, t1, t2, a1, a2, a3]) m.dispose();
  });

  it('a bad config rejects with the same error as create() throws', async () => {
    const bad = { ...TOK, ddconfig: { ...TOK.ddconfig, ch: 16 } };
    expect(() => Tokenizer.create(bad)).toThrow(/GroupNorm/);
    await expect(Tokenizer.createAsync(bad)).rejects.toThrow(/GroupNorm/);
  });
});

describe('makeDataset over a Tensor', () => {
  it('batches are the rows asked for, as float32, also after the caller disposed its tensor', async () => {
    const N = 5, per = 3 * 2 * 2;
    const x = Float64Array.from({ length: N * per }, (_, i) => i / 7);
    const t = tensor(x, [N, 3, 2, 2]);
    const ds = makeDataset(t, { size: 2, train: true, seed: 0 });
    expect(ds.length).toBe(N);
    t.dispose();
    const b = await ds.load([4, 0, 4], 0);
    expect(b.dtype).toBe('float32');
    expect(b.shape).toEqual([3, 3, 2, 2]);
    const want = [4, 0, 4].flatMap((r) => Array.from(x.subarray(r * per, (r + 1) * per), (v) => Math.fround(v)));
    expect(Array.from((await b.data()) as Float32Array)).toEqual(want);
    await expect(ds.load([5], 0)).rejects.toThrow(/rows\[0\]: 5 is outside \[0, 5\)/);
    b.dispose();
    ds.dispose?.();
  });
});
