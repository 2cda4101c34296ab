/** Image-quality metrics of the tokenizer (the evaluation code builds on these). */
import { describe } from '../core/errors.js';
import { Tensor } from '../core/tensor.js';

/**
 * PSNR per image, in dB, of two float tensors [B, C, H, W] holding images in [0, 1]:
 * 10 * log10(1 / mean((a - b)^2)) over each image's C*H*W values (Infinity for identical images).
 * Use `toUnitRange` first for [-1, 1] tensors.
 * @throws TypeError for non-tensors, RangeError for different or non-4-D shapes
 */
export async function psnr(a: Tensor, b: Tensor): Promise<number[]> {
  if (!(a instanceof Tensor)) throw new TypeError(`a: expected a Tensor, got ${describe(a)}`);
  if (!(b instanceof Tensor)) throw new TypeError(`b: expected a Tensor, got ${describe(b)}`);
  if (a.shape.length !== 4 || a.shape.join() !== b.shape.join()) {
    throw new RangeError(`psnr: expected two [B, C, H, W] tensors of one shape, got [${a.shape.join(', ')}] and [${b.shape.join(', ')}]`);
  }
  const [x, y] = await Promise.all([a.data(), b.data()]);
  return psnrArrays(x as Float32Array, y as Float32Array, a.shape[0]!);
}

/** psnr() on flat arrays of `batch` equally sized images with values in [0, 1]. */
export function psnrArrays(x: ArrayLike<number>, y: ArrayLike<number>, batch: number): number[] {
  const per = x.length / batch;
  const out: number[] = [];
  for (let i = 0; i < batch; i++) {
    let se = 0;
    for (let j = i * per; j < (i + 1) * per; j++) {
      const d = Number(x[j]) - Number(y[j]);
      se += d * d;
    }
    const mse = se / per;
    out.push(mse === 0 ? Infinity : 10 * Math.log10(1 / mse));
  }
  return out;
}

/** [-1, 1] values to [0, 1]: (clamp(v, -1, 1) + 1) / 2, as a new Float32Array. */
export function toUnitRange(data: ArrayLike<number>): Float32Array {
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = (Math.min(1, Math.max(-1, Number(data[i]))) + 1) / 2;
  return out;
}
