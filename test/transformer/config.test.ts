// Presets and exact parameter counts of the AR transformer; `ibq info --preset`.
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { resolveTransformerConfig, Transformer, transformerParameterCount } from '../../dist/index.js';
import { presetFromShapes } from '../../dist/transformer/config.js';
import { run } from '../support/run.js';

const ROOT = join(__dirname, '..', '..');

// The official GPT's module tree for the B preset, built on the meta device with torch.nn layers (shapes
// as in src/IBQ/modules/transformer/llama.py), counted the way the official tables count: sum of numel.
const PY_COUNT_B = `
import torch, torch.nn as nn
V, C, L, H, K = 16384, 1024, 16, 16, 1000
hid = int(2 * (4 * C) / 3); hid = hid if hid % 256 == 0 else hid + 256 - hid % 256
d = 'meta'
m = nn.ModuleList([nn.Embedding(V, C, device=d), nn.Embedding(K + 1, C, device=d)])
for _ in range(L):
    m.extend([nn.Linear(C, 3 * C, bias=False, device=d), nn.Linear(C, C, bias=False, device=d),
              nn.Linear(C, hid, bias=False, device=d), nn.Linear(C, hid, bias=False, device=d),
              nn.Linear(hid, C, bias=False, device=d), nn.Linear(C, 6 * C, device=d)])
    m.append(nn.ParameterList([nn.Parameter(torch.ones(C, device=d)), nn.Parameter(torch.ones(C, device=d))]))
m.extend([nn.Linear(C, 2 * C, device=d), nn.Linear(C, V, bias=False, device=d)])
m.append(nn.ParameterList([nn.Parameter(torch.ones(C, device=d))]))
print(sum(p.numel() for p in m.parameters()))
`;

describe('transformer presets', () => {
  it('B count equals a PyTorch module-tree count; L/XL/XXL round to the official 649M, 1.1B, 2.1B', async () => {
    const r = await run('/usr/bin/python3', ['-c', PY_COUNT_B]);
    expect(r.status, r.stderr).toBe(0);
    expect(transformerParameterCount('B')).toBe(Number(r.stdout.trim()));
    expect(Math.round(transformerParameterCount('B') / 1e6)).toBe(343);
    expect(Math.round(transformerParameterCount('L') / 1e6)).toBe(650);
    expect(Math.round(transformerParameterCount('XL') / 1e8) / 10).toBe(1.1);
    expect(Math.round(transformerParameterCount('XXL') / 1e8) / 10).toBe(2.1);
  });

  it('the analytic count equals the numel of a built model (GQA, ffn multiplier, shared AdaLN variants)', () => {
    const base = { vocab_size: 40, block_size: 16, n_layer: 2, n_head: 4, n_embd: 32, class_num: 5 };
    for (const extra of [{}, { n_kv_head: 2 }, { ffn_dim_multiplier: 1.3, multiple_of: 32 }, { shared_aln: true }, { class_dropout_prob: 0 }]) {
      const cfg = { ...base, ...extra };
      const m = Transformer.create(cfg, { seed: 1 });
      let n = 0;
      for (const t of m.stateDict().values()) n += t.size;
      expect(transformerParameterCount(cfg)).toBe(n);
      expect(m.parameterCount).toBe(n);
      m.dispose();
    }
  });

  it('recognises presets from weight shapes only', () => {
    const shapes = (p: 'B' | 'XL') => {
      const c = resolveTransformerConfig(p);
      const s = new Map<string, number[]>([
        ['tok_emb.weight', [c.vocab_size, c.n_embd]],
        ['class_emb.embedding_table.weight', [c.class_num + 1, c.n_embd]],
      ]);
      for (let i = 0; i < c.n_layer; i++) s.set(`blocks.${i}.attention.wqkv.weight`, [3 * c.n_embd, c.n_embd]);
      return s;
    };
    expect(presetFromShapes(shapes('B'))).toBe('B');
    expect(presetFromShapes(shapes('XL'))).toBe('XL');
    const odd = shapes('B');
    odd.delete('blocks.15.attention.wqkv.weight');
    expect(presetFromShapes(odd)).toBeUndefined();
  });

  it('fromCheckpoint without a config and with non-preset shapes asks for one', async () => {
    const m = Transformer.create({ vocab_size: 40, block_size: 16, n_layer: 1, n_head: 2, n_embd: 16, class_num: 3 });
    await expect(Transformer.fromCheckpoint(m.stateDict())).rejects.toThrow(/match no preset.*config/);
  });

  it('rejects invalid configs naming the field', () => {
    const base = { vocab_size: 40, block_size: 16, n_layer: 1, n_head: 2, n_embd: 16, class_num: 3 };
    expect(() => Transformer.create({ ...base, block_size: 15 })).toThrow(/block_size.*square/);
    expect(() => Transformer.create({ ...base, n_embd: 15 })).toThrow(/n_embd/);
    expect(() => Transformer.create({ ...base, cond_dim: 8 })).toThrow(/cond_dim/);
    expect(() => Transformer.create({ ...base, bogus: 1 } as never)).toThrow(/config\.bogus/);
    expect(() => Transformer.create('XS' as never)).toThrow(/preset|config/);
  });

  it('`ibq info --preset XL` prints the exact count', async () => {
    const r = await run(process.execPath, [join(ROOT, 'bin', 'ibq.js'), 'info', '--preset', 'XL']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${transformerParameterCount('XL')} parameters`);
    const bad = await run(process.execPath, [join(ROOT, 'bin', 'ibq.js'), 'info', '--preset', 'M']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--preset.*B, L, XL, XXL/);
  });
});
