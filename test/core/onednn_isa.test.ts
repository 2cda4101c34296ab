// A oneDNN instruction-set limit below AVX-512 (how the suite emulates an AVX2-only CPU, README "Development")
// must leave bfloat16 work runnable: libtorch 1.13 on an AVX-512 CPU sends bfloat16 products to oneDNN by the
// CPU's flags, and oneDNN then fails ("could not create a primitive descriptor iterator").
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { run } from '../support/run.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const flags = readFileSync('/proc/cpuinfo', 'utf8');
const avx512 = ['avx512bw', 'avx512vl', 'avx512dq'].every((f) => new RegExp(`\\b${f}\\b`).test(flags));

// a bfloat16 autocast forward of the dense IBQ quantizer (einsum products in bfloat16): z_q against the codebook
// rows it selected
const CHILD = `
import { IBQuantizer, info, tensor } from './dist/index.js';
const q = new IBQuantizer({ n_embed: 64, embed_dim: 32, quantizer_chunk: 'dense' }, { seed: 1 });
const z = tensor(Array.from({ length: 2 * 32 * 4 * 4 }, (_, i) => Math.sin(i * 0.37)), [2, 32, 4, 4]);
const bf = await q.forward(z, { autocast: 'bfloat16' });
const E = q.stateDict().get('embedding.weight').dataSync(), zq = bf.z_q.dataSync(), idx = bf.indices.dataSync();
let d = 0;
for (let p = 0; p < 32; p++) {
  const b = Math.floor(p / 16), hw = p % 16, k = Number(idx[p]);
  for (let c = 0; c < 32; c++) {
    const want = E[k * 32 + c], got = zq[(b * 32 + c) * 16 + hw];
    d = Math.max(d, Math.abs(got - want) / Math.abs(want));
  }
}
console.log(JSON.stringify({ onednn: info().onednn, dtype: bf.z_q.dtype, maxRel: d }));
`;

async function child(env: Record<string, string>) {
  const e = { ...process.env };
  for (const k of ['DNNL_MAX_CPU_ISA', 'ONEDNN_MAX_CPU_ISA']) delete e[k];
  const r = await run(process.execPath, ['--input-type=module', '-e', CHILD], { cwd: root, env: { ...e, ...env }, timeout: 60_000 });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { onednn: boolean; dtype: string; maxRel: number };
}

describe('oneDNN limited below AVX-512', () => {
  it.each([['DNNL_MAX_CPU_ISA', 'AVX2'], ['ONEDNN_MAX_CPU_ISA', 'avx2']])('%s=%s: bfloat16 autocast runs', async (k, v) => {
    const r = await child({ [k]: v });
    // on an AVX-512 CPU libtorch's oneDNN use is turned off; on an AVX2-only CPU it never sends bfloat16 there
    if (avx512) expect(r.onednn).toBe(false);
    expect(r.dtype).toBe('bfloat16');
    // z_q is the selected codebook row through two bfloat16 roundings (E as operand, the product as output),
    // each within 2^-9 relative: within 2^-8 relative of the row
    expect(r.maxRel).toBeLessThanOrEqual(2 ** -8);
  });

  it('without a limit, or with one that allows bfloat16, libtorch keeps oneDNN', async () => {
    const plain = await child({});
    const allowed = await child({ DNNL_MAX_CPU_ISA: 'AVX512_CORE_BF16' });
    expect(allowed.onednn).toBe(plain.onednn);
    expect(plain.dtype).toBe('bfloat16');
  });
});
