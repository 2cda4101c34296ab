/**
 * Seeded pseudo-random numbers for data order and augmentation (not for model weights, which libtorch's
 * generators draw): mulberry32 and an FNV-1a mix of several integers into one 32-bit seed.
 */

/** mulberry32: a small, fast, seedable PRNG returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One 32-bit seed from several non-negative integers (FNV-1a over their low and high 32 bits). */
export function mixSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x01000193) >>> 0;
    h = Math.imul(h ^ Math.floor(p / 4294967296), 0x01000193) >>> 0;
  }
  return h;
}
