/**
 * Image I/O for the tokenizer (sharp): decoding any JPEG (CMYK too), PNG (alpha dropped, as PIL's
 * convert('RGB')), greyscale and WebP images, with the type taken from the bytes, not the file name; shorter
 * side resized to the target size then a centre crop; values scaled to [-1, 1]. PNG encoding of [-1, 1] images.
 */
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';

import { describe } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';

/** A file path or the encoded bytes of an image. */
export type ImageInput = string | Buffer | Uint8Array;

function label(input: ImageInput, i: number): string {
  return typeof input === 'string' ? input : `inputs[${i}] (${input.byteLength} bytes)`;
}

/**
 * One image as float32 CHW [3, size, size] in [-1, 1]: RGB (greyscale expanded, alpha dropped, CMYK
 * converted to sRGB), the shorter side resized to `size` (Lanczos) and centre-cropped.
 * @throws Error naming the file when it is missing or not a decodable image
 */
export async function loadImage(input: ImageInput, size: number, i = 0): Promise<Float32Array> {
  let bytes: Buffer | Uint8Array;
  if (typeof input === 'string') {
    try {
      bytes = await readFile(input);
    } catch (err) {
      throw new Error(`${input}: cannot read the image: ${(err as Error).message}`);
    }
  } else if (input instanceof Uint8Array) {
    bytes = input;
  } else {
    throw new TypeError(`inputs[${i}]: expected a path or a Buffer, got ${describe(input)}`);
  }
  let raw: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    // Two passes: sharp premultiplies alpha while resizing, so the alpha channel is dropped first.
    const rgb = await sharp(bytes, { failOn: 'error' })
      .toColourspace('srgb')
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    const { width, height, channels } = rgb.info;
    raw = await sharp(rgb.data, { raw: { width, height, channels } })
      .resize({ width: size, height: size, fit: 'cover', position: 'centre' })
      .raw()
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new Error(`${label(input, i)}: not a decodable image (JPEG, PNG, WebP, ...): ${(err as Error).message}`);
  }
  const { data, info } = raw;
  const c = info.channels;
  if (info.width !== size || info.height !== size || c < 3) {
    throw new Error(`${label(input, i)}: decoded to ${info.width}x${info.height}x${c}, expected ${size}x${size}x3`);
  }
  const hw = size * size;
  const out = new Float32Array(3 * hw);
  for (let p = 0; p < hw; p++) {
    for (let ch = 0; ch < 3; ch++) out[ch * hw + p] = data[p * c + ch]! / 127.5 - 1;
  }
  return out;
}

/** Several images as one float32 buffer [B, 3, size, size] (see loadImage). */
export async function loadImages(inputs: ImageInput[], size: number): Promise<Float32Array> {
  if (!Array.isArray(inputs) || inputs.length === 0) {
    throw new TypeError(`inputs: expected a non-empty array of paths or Buffers, got ${describe(inputs)}`);
  }
  const per = 3 * size * size;
  const out = new Float32Array(inputs.length * per);
  const all = await Promise.all(inputs.map((inp, i) => loadImage(inp, size, i)));
  all.forEach((img, i) => out.set(img, i * per));
  return out;
}

/** [-1, 1] -> uint8 with clamping and rounding: round((clamp(v, -1, 1) + 1) * 127.5). */
export function toUint8(v: number): number {
  return Math.round((Math.min(1, Math.max(-1, v)) + 1) * 127.5);
}

/** HWC uint8 RGB pixels of image `b` of a float [B, 3, H, W] array in [-1, 1]. */
export function toHWC(data: Float32Array, b: number, h: number, w: number): Buffer {
  const hw = h * w;
  const px = Buffer.alloc(hw * 3);
  const base = b * 3 * hw;
  for (let p = 0; p < hw; p++) for (let ch = 0; ch < 3; ch++) px[p * 3 + ch] = toUint8(data[base + ch * hw + p]!);
  return px;
}

/** PNG bytes of RGB pixels (HWC uint8). */
export function encodePng(pixels: Buffer, width: number, height: number): Promise<Buffer> {
  return sharp(pixels, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

/** One PNG per image of a float [B, 3, H, W] tensor in [-1, 1]. */
export async function decodeToPng(x: Tensor): Promise<Buffer[]> {
  const [b, c, h, w] = x.shape as [number, number, number, number];
  if (x.shape.length !== 4 || c !== 3) throw new RangeError(`images: expected [B, 3, H, W], got [${x.shape.join(', ')}]`);
  const data = (await x.data()) as Float32Array;
  return Promise.all([...Array(b).keys()].map((i) => encodePng(toHWC(data, i, h, w), w, h)));
}
