/** Random IBQ quantizer cases for the dense-vs-chunked tests (deterministic, no fixtures needed). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { IBQuantizer, saveNpy, tensor, type IBQuantizerOptions, type Tensor } from '../../dist/index.js';
import { ints, maxAbsDiff } from './compare.js';
import { PY_DUMP, readDump, runPython } from './torch_ref.js';

/** Deterministic standard normal samples (mulberry32 + Box-Muller). */
export function normals(n: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

/**
 * Latents z [B, D, H, W] whose positions have scales from 1e-3 to 1 (geometric), and a gradOut of the same
 * shape. With a N(0, 1) codebook of embed_dim 256 the logits have std 0.016 .. 16, so softmax(logits) and
 * softmax(logits / 0.01) range from nearly uniform to nearly one-hot over the positions.
 */
export function latentCase(shape: [number, number, number, number], seed: number): { z: Tensor; gradOut: Tensor } {
  const [B, D, H, W] = shape;
  const n = B * H * W, zs = normals(B * D * H * W, seed);
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < H * W; p++) {
      const scale = 10 ** (-3 + (3 * (b * H * W + p)) / Math.max(1, n - 1));
      for (let d = 0; d < D; d++) zs[(b * D + d) * H * W + p]! *= scale;
    }
  }
  return { z: tensor(zs, shape), gradOut: tensor(normals(B * D * H * W, seed + 1), shape) };
}

/** A dense-path quantizer (seeded codebook) and a chunked one with the same codebook. */
export async function densePair(opts: IBQuantizerOptions, seed: number): Promise<[IBQuantizer, IBQuantizer]> {
  const dense = new IBQuantizer({ ...opts, quantizer_chunk: 'dense' }, { seed });
  const chunked = new IBQuantizer(opts);
  await chunked.loadStateDict(dense.stateDict());
  return [dense, chunked];
}

/** max_i |t_i|. */
export function maxAbs(t: Tensor): number {
  let m = 0;
  for (const v of t.dataSync() as ArrayLike<number>) m = Math.max(m, Math.abs(Number(v)));
  return m;
}

export { ints, maxAbsDiff };

/** Exact (float64) values of the IBQ quantizer for one case, from the official formulas in /usr/bin/python3 torch. */
export interface Reference64 {
  indices: number[];
  quant_loss: number;
  sample_entropy: number;
  avg_entropy: number;
  /** d/dz and d/dE of sum(z_q * gradOut) + quant_loss + 0.05 * entropy_loss (lossAndGrads' default weights). */
  grad_z: Float64Array;
  grad_E: Float64Array;
}

const REFERENCE64 = PY_DUMP + `
import numpy as np
d, entropy = sys.argv[1], sys.argv[2] == '1'
z = torch.tensor(np.load(d + '/z.npy')).double().requires_grad_()
E = torch.tensor(np.load(d + '/E.npy')).double().requires_grad_()
g = torch.tensor(np.load(d + '/g.npy')).double()
# official IndexPropagationQuantize (beta 0.25) and compute_entropy_loss (temperature 0.01), in float64
logits = torch.einsum('bdhw,nd->bnhw', z, E)
soft = torch.softmax(logits, 1)
ind = soft.max(1, keepdim=True)[1]
hard = torch.zeros_like(logits).scatter_(1, ind, 1.0)
z_q = torch.einsum('bnhw,nd->bdhw', hard - soft.detach() + soft, E)
z_q2 = torch.einsum('bnhw,nd->bdhw', hard, E)
ql = torch.mean((z_q - z) ** 2) + torch.mean((z_q2.detach() - z) ** 2) + 0.25 * torch.mean((z_q2 - z.detach()) ** 2)
loss = (z_q * g).sum() + ql
se = ae = torch.zeros((), dtype=torch.float64)
if entropy:
    s = logits.permute(0, 2, 3, 1).reshape(-1, logits.shape[1]) / 0.01
    p = torch.softmax(s, -1)
    ap = p.mean(0)
    se = (-(p * torch.log_softmax(s + 1e-5, -1)).sum(-1)).mean()
    ae = -(ap * torch.log(ap + 1e-5)).sum()
    loss = loss + 0.05 * (se - ae)
loss.backward()
dump(named([('indices', ind.reshape(-1)), ('quant_loss', ql), ('sample_entropy', se), ('avg_entropy', ae),
            ('grad_z', z.grad), ('grad_E', E.grad)]), d)
`;

/**
 * The float64 reference of one case (z [B, D, H, W], the quantizer's codebook, gradOut) with or without the
 * entropy loss: the yardstick for float32 paths whose sums over n_embed run in different orders.
 */
export async function reference64(q: IBQuantizer, z: Tensor, gradOut: Tensor, entropy: boolean): Promise<Reference64> {
  const dir = mkdtempSync(join(tmpdir(), 'ibq-ref64-'));
  try {
    await saveNpy(join(dir, 'z.npy'), z);
    await saveNpy(join(dir, 'E.npy'), q.stateDict().get('embedding.weight')!);
    await saveNpy(join(dir, 'g.npy'), gradOut);
    await runPython(REFERENCE64, [dir, entropy ? '1' : '0'], 600_000);
    const got = new Map(readDump(dir).map((e) => [e.key, e.bytes]));
    const f64 = (k: string) => new Float64Array(got.get(k)!.slice().buffer);
    return {
      indices: Array.from(new BigInt64Array(got.get('indices')!.slice().buffer), Number),
      quant_loss: f64('quant_loss')[0]!, sample_entropy: f64('sample_entropy')[0]!, avg_entropy: f64('avg_entropy')[0]!,
      grad_z: f64('grad_z'), grad_E: f64('grad_E'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * How a float32 result `a` compares with the float32 dense path `dense`, both measured against the float64
 * truth: `excess` = max_i (|a_i - t_i| - |dense_i - t_i|), the most by which `a` is further from the truth than
 * the dense path anywhere (<= tol: equal to the dense path within tol, up to the dense path's own rounding).
 */
export function againstTruth(a: Tensor | number, dense: Tensor | number, truth: ArrayLike<number>):
  { excess: number; errA: number; errDense: number } {
  const x = typeof a === 'number' ? [a] : a.dataSync(), y = typeof dense === 'number' ? [dense] : dense.dataSync();
  if (x.length !== truth.length || y.length !== truth.length) throw new Error('againstTruth: element counts differ');
  let excess = -Infinity, errA = 0, errDense = 0;
  for (let i = 0; i < truth.length; i++) {
    const ea = Math.abs(Number(x[i]) - truth[i]!), ed = Math.abs(Number(y[i]) - truth[i]!);
    if (!(ea <= Infinity)) return { excess: Infinity, errA: Infinity, errDense: ed };
    excess = Math.max(excess, ea - ed);
    errA = Math.max(errA, ea);
    errDense = Math.max(errDense, ed);
  }
  return { excess, errA, errDense };
}
