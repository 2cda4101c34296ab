/** Random IBQ quantizer cases for the dense-vs-chunked tests (deterministic, no fixtures needed). */
import { IBQuantizer, tensor, type IBQuantizerOptions, type Tensor } from '../../dist/index.js';
import { ints, maxAbsDiff } from './compare.js';

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
