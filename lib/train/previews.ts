/**
 * TensorBoard images of a training run (lib/train/callbacks/run_hooks.ts): the tokenizer's reconstructions of a
 * fixed validation batch (originals above reconstructions) and the AR model's sample grids (one row per class).
 */
import { tensor, type Tensor } from '../core/tensor.js';
import { generate, imageGrid, toUint8Images, type TokenDecoder } from '../transformer/generate.js';
import type { Transformer } from '../transformer/transformer.js';


/** PNG: the images [B, 3, H, W] in [-1, 1] (top row) above `reconstruct(images)` (bottom row). */
export async function reconstructionGrid(images: Tensor, reconstruct: (x: Tensor) => Promise<Tensor>): Promise<Buffer> {
  const xrec = await reconstruct(images);
  const top = toUint8Images((await images.data()) as Float32Array, images.shape);
  const bottom = toUint8Images((await xrec.data()) as Float32Array, xrec.shape);
  xrec.dispose();
  const joined = new Uint8Array(top.data.length * 2);
  joined.set(top.data, 0);
  joined.set(bottom.data, top.data.length);
  const px = tensor(joined, [top.shape[0]! * 2, ...top.shape.slice(1)], { dtype: 'uint8' });
  try {
    return await imageGrid(px, { cols: images.shape[0]!, scale: images.shape[2]! < 64 ? 2 : 1 });
  } finally {
    px.dispose();
  }
}

/** PNG: `perClass` seeded samples (seed 0, guidance 1, temperature 1) of each class in `classes`, one row per class. */
export async function sampleGrid(model: Transformer, tokenizer: TokenDecoder, classes: number[], perClass: number): Promise<Buffer> {
  const labels = classes.flatMap((c) => Array.from({ length: perClass }, () => c));
  const wasTraining = model.training;
  model.eval();
  try {
    const g = await generate({ transformer: model, tokenizer, labels, seed: 0 });
    g.tokens.dispose();
    try {
      return await imageGrid(g.images, { cols: perClass, rowLabels: classes.map(String), scale: g.images.shape[1]! < 64 ? 2 : 1 });
    } finally {
      g.images.dispose();
    }
  } finally {
    if (wasTraining) model.train();
  }
}
