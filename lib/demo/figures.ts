/**
 * The demo's two figures (PNG, imageGrid): reconstructions.png (a row of held-out originals above the row of
 * their reconstructions) and samples.png (one row per class, its name written on the left). Images are uint8 HWC
 * [n, S, S, 3] as generate() returns them; thumbnails are enlarged by `scale` (nearest neighbour) so 32-pixel
 * images stay visible.
 */
import { imageGrid, tensor, toUint8Images } from '../index.js';

const PAD = 2;

/**
 * reconstructions.png: originals (float CHW [n, 3, S, S] in [-1, 1]) above their reconstructions (same
 * layout), converted to uint8 as generate() converts samples.
 */
export async function reconstructionFigure(originals: Float32Array, reconstructions: Float32Array, n: number, size: number, scale = 2): Promise<Buffer> {
  const shape = [n, 3, size, size];
  const both = new Uint8Array(2 * n * size * size * 3);
  both.set(toUint8Images(originals, shape).data);
  both.set(toUint8Images(reconstructions, shape).data, n * size * size * 3);
  const images = tensor(both, [2 * n, size, size, 3], { dtype: 'uint8' });
  try {
    return await imageGrid(images, { cols: n, pad: PAD, scale, rowLabels: ['original', 'reconstruction'] });
  } finally {
    images.dispose();
  }
}

/** samples.png: `perClass` samples of each class (uint8 [classes * perClass, S, S, 3], class-major), one labelled row per class. */
export async function samplesFigure(images: Uint8Array, classNames: string[], perClass: number, size: number, scale = 2): Promise<Buffer> {
  const t = tensor(images, [classNames.length * perClass, size, size, 3], { dtype: 'uint8' });
  try {
    return await imageGrid(t, { cols: perClass, pad: PAD, scale, rowLabels: classNames });
  } finally {
    t.dispose();
  }
}
