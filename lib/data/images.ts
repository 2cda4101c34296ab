/**
 * Image I/O, the one image pipeline of the package: decoding any JPEG (libjpeg-turbo in the addon, PIL's bytes; CMYK
 * too), PNG (sharp; alpha dropped, as PIL's convert('RGB')), greyscale and WebP images, with the type taken from the
 * bytes, not the file name, into
 * model input by the official preprocessing (decodeImage); PNG encoding of [-1, 1] images for viewing.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import sharp, { type Metadata } from 'sharp';

import { checkInt, checkOptionKeys, describe, IbqError } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import { native } from '../native.js';

/** A file path or the encoded bytes of an image. */
export type ImageInput = string | Buffer | Uint8Array;

/**
 * Default `maxPixels` (width x height of an input, before any resizing): 4096 x 4096 = 16.8 megapixels, a
 * 12-megapixel phone photo with room to spare. Decoding holds about 3.5 MB per megapixel of input while it runs
 * (the full-size RGB pixels; README "Images from untrusted sources"), so one image at this limit takes about
 * 60 MB. `IBQ_MAX_PIXELS` in the environment sets another default (e.g. for the CLI); `maxPixels` sets it per call.
 */
export const DEFAULT_MAX_PIXELS = 4096 * 4096;

/**
 * Inputs up to this many pixels (width x height; 4 megapixels, e.g. 2304 x 1728) are decoded whole and resized by
 * Pillow's arithmetic (native/ibq/core/image_resample.h): the uint8 values of PIL's Image.resize(BILINEAR), what
 * torchvision's Resize gives PIL images, at 3 bytes per pixel while they decode (at most 12 MB). Larger inputs
 * stream through one libvips pipeline (about 1.3 MB per megapixel; libvips' bilinear: up to 3/255 from Pillow's on
 * the benchmark's photos).
 */
export const WHOLE_MAX_PIXELS = 4 * 1024 * 1024;

/** The default maxPixels: `IBQ_MAX_PIXELS` when set (a positive integer), else DEFAULT_MAX_PIXELS. */
export function defaultMaxPixels(): number {
  const env = process.env.IBQ_MAX_PIXELS;
  if (env === undefined || env === '') return DEFAULT_MAX_PIXELS;
  const n = Number(env);
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`IBQ_MAX_PIXELS: expected a positive integer, got ${JSON.stringify(env)}`);
  return n;
}

/** Options of loadImage / loadImages. */
export interface LoadImageOptions {
  /** Largest accepted input, in pixels (width x height), checked on the header before decoding (default defaultMaxPixels()). */
  maxPixels?: number;
}

const LOAD_OPTION_KEYS = ['maxPixels'] as const;

/** Validates LoadImageOptions (unknown keys rejected); returns maxPixels. */
export function checkLoadOptions(opts: unknown, name = 'opts'): number {
  if (opts === undefined) return defaultMaxPixels();
  if (opts === null || typeof opts !== 'object') throw new TypeError(`${name}: expected an object, got ${describe(opts)}`);
  checkOptionKeys(opts, LOAD_OPTION_KEYS, name);
  const m = (opts as LoadImageOptions).maxPixels;
  return m === undefined ? defaultMaxPixels() : checkInt(m, `${name}.maxPixels`, 1, Number.MAX_SAFE_INTEGER);
}

/** The side images are resized and cropped to (the same bound as encodeImages' imageSize). */
function checkSize(size: unknown): number {
  return checkInt(size, 'size', 1, 16384);
}

function checkCrop(crop: unknown): Crop {
  if (crop === 'centre') return crop;
  const c = crop as { fx?: unknown; fy?: unknown };
  if (c && typeof c === 'object' && typeof c.fx === 'number' && typeof c.fy === 'number' && c.fx >= 0 && c.fx < 1 && c.fy >= 0 && c.fy < 1 &&
    [undefined, true, false].includes((c as { flip?: unknown }).flip as never)) {
    return crop as Crop;
  }
  throw new TypeError(`crop: expected 'centre' or { fx, fy, flip? } with fractions in [0, 1) and a boolean flip, got ${describe(crop)}`);
}

function label(input: ImageInput, i: number): string {
  return typeof input === 'string' ? input : `inputs[${i}] (${input.byteLength} bytes)`;
}

/** Whether the bytes start as a JPEG does (SOI marker FF D8, then another marker). */
function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

function badJpeg(input: ImageInput, i: number, err: unknown): IbqError {
  return new IbqError('ERR_IBQ_BAD_IMAGE', `${label(input, i)}: not a decodable JPEG: ${(err as Error).message.split('\n')[0]}`, { cause: err });
}

function tooLarge(input: ImageInput, i: number, width: number, height: number, maxPixels: number): IbqError {
  return new IbqError('ERR_IBQ_IMAGE_TOO_LARGE', `${label(input, i)}: ${width}x${height} = ${width * height} pixels, more than maxPixels ${maxPixels}`);
}

/**
 * Where to crop: 'centre', or fractions in [0, 1) of the free room along x and y (a random crop); `flip`: mirror the
 * crop left to right (torchvision's RandomHorizontalFlip when drawn; the official tokenizer pipeline has none).
 */
export type Crop = 'centre' | { fx: number; fy: number; flip?: boolean };

/** The bytes of an input: the file read (synchronously when `sync`: a decode worker has nothing else to run), or the bytes given. */
async function bytesOf(input: ImageInput, i: number, sync: boolean): Promise<Buffer | Uint8Array> {
  if (typeof input === 'string') {
    try {
      return sync ? readFileSync(input) : await readFile(input);
    } catch (err) {
      throw new Error(`${input}: cannot read the image: ${(err as Error).message}`);
    }
  }
  if (input instanceof Uint8Array) return input;
  throw new TypeError(`inputs[${i}]: expected a path or a Buffer, got ${describe(input)}`);
}

/**
 * One image as float32 CHW [3, size, size] in [-1, 1], by the official data pipeline (src/IBQ/data/base.py,
 * ImagePaths.preprocess_image): PIL convert('RGB') (greyscale expanded, alpha dropped, CMYK to sRGB; an embedded ICC
 * profile ignored, as PIL ignores it), then
 * albumentations SmallestMaxSize(size) — the shorter side resized to `size` (the other side rounded), bilinear —
 * then CenterCrop (`crop` 'centre': evaluation, tokenizing, encodeImages) or RandomCrop (fractions: training), an
 * optional mirror, then x / 127.5 - 1. The bilinear resize is Pillow's (antialiased; PIL's and torchvision's uint8
 * values exactly) for inputs up to WHOLE_MAX_PIXELS, computed for the crop's pixels only, with the mirror and the
 * conversion to float32 CHW in the same native pass; larger inputs go through libvips (see WHOLE_MAX_PIXELS).
 * Every path that turns image files into model input uses this function.
 * @throws TypeError / RangeError for a bad `size` or `crop`; Error naming the file when it cannot be read; IbqError
 *   ERR_IBQ_BAD_IMAGE when the bytes are not a decodable image; IbqError ERR_IBQ_IMAGE_TOO_LARGE when width x
 *   height > opts.maxPixels (default defaultMaxPixels()), from the header, before decoding
 */
export function decodeImage(input: ImageInput, size: number, crop: Crop = 'centre', i = 0, opts?: LoadImageOptions): Promise<Float32Array> {
  return decode(input, size, crop, i, opts, false);
}

/**
 * decodeImage in a decode worker (lib/data/decode_worker.ts): the file is read synchronously, not on libuv's pool, and
 * the pixels go to `out` when given (3 x size x size floats: the image's place in a batch on a SharedArrayBuffer).
 */
export function decodeImageInWorker(input: ImageInput, size: number, crop: Crop, opts?: LoadImageOptions, out?: Float32Array): Promise<Float32Array> {
  return decode(input, size, crop, 0, opts, true, out);
}

/** `inWorker`: a decode worker's thread, which reads and decodes JPEGs synchronously (else on libuv's pool). */
async function decode(input: ImageInput, size: number, crop: Crop, i: number, opts: LoadImageOptions | undefined, inWorker: boolean,
  out?: Float32Array): Promise<Float32Array> {
  checkSize(size);
  checkCrop(crop);
  const maxPixels = checkLoadOptions(opts);
  const bytes = await bytesOf(input, i, inWorker);
  const flip = crop !== 'centre' && crop.flip === true;
  // the resized size (albumentations' SmallestMaxSize: the shorter side to `size`, the other rounded) and the crop
  const place = (width: number, height: number) => {
    const scale = size / Math.min(width, height);
    const w = Math.max(size, Math.round(width * scale));
    const h = Math.max(size, Math.round(height * scale));
    const left = crop === 'centre' ? Math.floor((w - size) / 2) : Math.floor(crop.fx * (w - size + 1));
    const top = crop === 'centre' ? Math.floor((h - size) / 2) : Math.floor(crop.fy * (h - size + 1));
    return { w, h, left, top };
  };
  // JPEGs within WHOLE_MAX_PIXELS (most images): decoded by libjpeg-turbo as PIL decodes them, then resized, cropped,
  // mirrored and converted, all in one native call (native/ibq/core/jpeg_decode.h): synchronous in a decode worker,
  // on libuv's pool (as sharp) from another thread
  if (isJpeg(bytes)) {
    let s: { width: number; height: number };
    try {
      s = native.jpegSize(bytes);
    } catch (err) {
      throw badJpeg(input, i, err);
    }
    if (s.width * s.height > maxPixels) throw tooLarge(input, i, s.width, s.height, maxPixels);
    if (s.width * s.height <= WHOLE_MAX_PIXELS) {
      const p = place(s.width, s.height);
      const c = { resizedWidth: p.w, resizedHeight: p.h, left: p.left, top: p.top, size, flip };
      try {
        if (inWorker) return native.decodeJpegCrop(bytes, c, out);
        const px = await native.decodeJpegCropAsync(bytes, c);
        return out ? (out.set(px), out) : px;
      } catch (err) {
        throw badJpeg(input, i, err);
      }
    }
  }
  // other images within WHOLE_MAX_PIXELS and maxPixels (sharp checks the header before decoding), decoded whole (RGB,
  // alpha dropped), then resized by Pillow's arithmetic for the crop's pixels alone, mirrored and converted in one
  // native pass. Any failure (larger, undecodable) goes on to the header checks below, which name it.
  let first: unknown;
  try {
    const rgb = await sharp(bytes, { failOn: 'error', ignoreIcc: true, limitInputPixels: Math.min(maxPixels, WHOLE_MAX_PIXELS) })
      .toColourspace('srgb').removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const { width, height, channels } = rgb.info;
    if (channels === 3 || channels === 4) {
      const p = place(width, height);
      return native.resampleCrop(rgb.data, { srcWidth: width, srcHeight: height, channels, resizedWidth: p.w, resizedHeight: p.h, left: p.left, top: p.top, size, flip }, out);
    }
    first = new Error(`decoded to ${channels} channels, not RGB`);
  } catch (err) {
    first = err;
  }
  let header: Metadata;
  try {
    // the header alone (no pixels are decoded): sharp's own pixel limit (268 megapixels) would refuse a larger
    // header as an undecodable image, where it is one too large (ours is checked below)
    header = await sharp(bytes, { failOn: 'error', limitInputPixels: false }).metadata();
  } catch (err) {
    throw new IbqError('ERR_IBQ_BAD_IMAGE', `${label(input, i)}: not a decodable image (JPEG, PNG, WebP, ...): ${(err as Error).message}`, { cause: err });
  }
  const { width: w0 = 0, height: h0 = 0 } = header;
  if (w0 * h0 > maxPixels) throw tooLarge(input, i, w0, h0, maxPixels);
  if (w0 * h0 <= WHOLE_MAX_PIXELS) {
    const m = (first as Error).message.split('\n')[0];
    throw new IbqError('ERR_IBQ_BAD_IMAGE', `${label(input, i)}: not a decodable image (JPEG, PNG, WebP, ...): ${m}`, { cause: first });
  }
  const plain = header.channels === 3 && !header.hasAlpha && header.space === 'srgb' && !header.orientation;
  try {
    // larger images stream through one libvips pipeline (libvips' bilinear, up to 3/255 from Pillow's; it mirrors
    // before it resizes and crops, whatever the call order: the crop is taken mirrored)
    let cropped: { data: Buffer; info: { width: number; height: number; channels: number } };
    const resize = (width: number, height: number) => {
      const p = place(width, height);
      const left = flip ? p.w - size - p.left : p.left;
      return { resize: { width: p.w, height: p.h, fit: 'fill' as const, kernel: 'linear' as const, fastShrinkOnLoad: false }, extract: { left, top: p.top, width: size, height: size } };
    };
    if (plain) {
      const p = resize(w0, h0);
      const img = sharp(bytes, { failOn: 'error', ignoreIcc: true, limitInputPixels: maxPixels }).resize(p.resize).extract(p.extract);
      cropped = await (flip ? img.flop() : img).raw().toBuffer({ resolveWithObject: true });
    } else {
      // Two passes: sharp premultiplies alpha while resizing, so the alpha channel is dropped first.
      const rgb = await sharp(bytes, { failOn: 'error', ignoreIcc: true, limitInputPixels: maxPixels }).toColourspace('srgb').removeAlpha().raw().toBuffer({ resolveWithObject: true });
      const { width, height, channels } = rgb.info;
      const p = resize(width, height);
      const img = sharp(rgb.data, { raw: { width, height, channels: channels as 1 | 2 | 3 | 4 } }).resize(p.resize).extract(p.extract);
      cropped = await (flip ? img.flop() : img).raw().toBuffer({ resolveWithObject: true });
    }
    // the crop as it is (no resize, no mirror), converted to float32 CHW
    const c = { srcWidth: size, srcHeight: size, channels: cropped.info.channels, resizedWidth: size, resizedHeight: size, left: 0, top: 0, size, flip: false };
    return native.resampleCrop(cropped.data, c, out);
  } catch (err) {
    throw new IbqError('ERR_IBQ_BAD_IMAGE', `${label(input, i)}: not a decodable image (JPEG, PNG, WebP, ...): ${(err as Error).message.split('\n')[0]}`, { cause: err });
  }
}


/** One image, centre-cropped (see decodeImage). */
export function loadImage(input: ImageInput, size: number, i = 0, opts?: LoadImageOptions): Promise<Float32Array> {
  return decodeImage(input, size, 'centre', i, opts);
}

/** Several images as one float32 buffer [B, 3, size, size] (see loadImage for the errors). */
export async function loadImages(inputs: ImageInput[], size: number, opts?: LoadImageOptions): Promise<Float32Array> {
  if (!Array.isArray(inputs) || inputs.length === 0) {
    throw new TypeError(`inputs: expected a non-empty array of paths or Buffers, got ${describe(inputs)}`);
  }
  checkSize(size);
  checkLoadOptions(opts);
  const per = 3 * size * size;
  const out = new Float32Array(inputs.length * per);
  const all = await Promise.all(inputs.map((inp, i) => loadImage(inp, size, i, opts)));
  all.forEach((img, i) => out.set(img, i * per));
  return out;
}

/**
 * [-1, 1] -> uint8 for viewing (PNG files of reconstructions): round((clamp(v, -1, 1) + 1) * 127.5). Samples and
 * evaluation use the official truncating rule instead (toUint8Images in lib/transformer/generate.ts).
 */
export function toUint8Rounded(v: number): number {
  return Math.round((Math.min(1, Math.max(-1, v)) + 1) * 127.5);
}

/** HWC uint8 RGB pixels of image `b` of a float [B, 3, H, W] array in [-1, 1]. */
export function toHWC(data: Float32Array, b: number, h: number, w: number): Buffer {
  const hw = h * w;
  const px = Buffer.alloc(hw * 3);
  const base = b * 3 * hw;
  for (let p = 0; p < hw; p++) for (let ch = 0; ch < 3; ch++) px[p * 3 + ch] = toUint8Rounded(data[base + ch * hw + p]!);
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
