/**
 * The demo's class-consistency judge: a nearest-class-mean classifier on raw pixels. Fitted on the real
 * training images (the mean image of each class), it labels an image with the class whose mean is nearest in
 * Euclidean distance. It knows nothing of the tokenizer or the generator, so the share of generated samples it
 * labels with their conditioning class measures how class-specific the samples are (chance: 1 / classes).
 */
import type { LabelledImages } from './data.js';

export class NearestClassMean {
  /** Mean image per class, float64 [classes][3 * S * S]; empty classes have no mean (never chosen). */
  readonly means: (Float64Array | undefined)[];

  /**
   * @param images real training images ([-1, 1] pixels)
   * @param classes number of classes (label ids 0..classes-1)
   */
  constructor(images: LabelledImages, classes: number) {
    const per = 3 * images.size * images.size;
    const sums = Array.from({ length: classes }, () => new Float64Array(per));
    const counts = new Array<number>(classes).fill(0);
    images.labels.forEach((c, i) => {
      if (c < 0 || c >= classes) throw new RangeError(`labels[${i}]: ${c} is outside [0, ${classes})`);
      counts[c]!++;
      const s = sums[c]!;
      const off = i * per;
      for (let k = 0; k < per; k++) s[k]! += images.pixels[off + k]!;
    });
    this.means = sums.map((s, c) => (counts[c]! > 0 ? s.map((v) => v / counts[c]!) : undefined));
  }

  /** The class of one image (float pixels [3 * S * S] in [-1, 1], as the training images). */
  predict(pixels: ArrayLike<number>): number {
    let best = -1;
    let bestD = Infinity;
    this.means.forEach((m, c) => {
      if (!m) return;
      let d = 0;
      for (let k = 0; k < m.length; k++) {
        const e = pixels[k]! - m[k]!;
        d += e * e;
      }
      if (d < bestD) [bestD, best] = [d, c];
    });
    return best;
  }

  /** Share of `images` predicted as their label, and the per-image predictions. */
  score(images: LabelledImages): { accuracy: number; predictions: number[] } {
    const per = 3 * images.size * images.size;
    const predictions = images.labels.map((_, i) => this.predict(images.pixels.subarray(i * per, (i + 1) * per)));
    const hits = predictions.reduce((a, p, i) => a + (p === images.labels[i] ? 1 : 0), 0);
    return { accuracy: images.labels.length ? hits / images.labels.length : NaN, predictions };
  }
}

/** uint8 HWC images [n, S, S, 3] (generate()'s output) -> float CHW pixels in [-1, 1] (the classifier's input). */
export function uint8ToPixels(data: Uint8Array, n: number, size: number): Float32Array {
  const plane = size * size;
  const out = new Float32Array(n * 3 * plane);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < 3; c++) out[(i * 3 + c) * plane + p] = data[(i * plane + p) * 3 + c]! / 127.5 - 1;
    }
  }
  return out;
}
