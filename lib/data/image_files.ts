/**
 * Image files for tokenizer training: listing (ImageNet layout `train/<wnid>/*.JPEG` with classes from the
 * folders, any folder of class sub-folders, a flat folder, or a filelist of paths) and decoding with the
 * official preprocessing of taming's ImagePaths (src/IBQ/data/base.py): shorter side resized to `size`, a random
 * crop for training or a centre crop for validation, values x / 127.5 - 1.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, extname, isAbsolute, join, resolve } from 'node:path';
import sharp from 'sharp';

export const IMAGE_EXTENSIONS = new Set(['.jpeg', '.jpg', '.png', '.webp', '.bmp', '.tif', '.tiff', '.gif']);

export interface ImageList {
  paths: string[];
  /** Class index per path (folder layouts; 0 for flat folders and filelists). */
  labels: number[];
  /** Class folder names, sorted (ImageNet: wnids). */
  classes: string[];
  /** How the source was read. */
  layout: 'imagenet' | 'class-folders' | 'flat' | 'filelist';
}

const isImage = (name: string) => IMAGE_EXTENSIONS.has(extname(name).toLowerCase());

function filesIn(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && isImage(e.name))
    .map((e) => join(dir, e.name))
    .sort();
}

function subdirs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
}

/**
 * Lists the images of `source` for `split` ('train' | 'val'): a folder with `<split>/` inside (ImageNet layout),
 * a folder of class sub-folders, a flat folder of images, or a text file with one path per line (relative
 * paths are taken from the file's folder). Throws an Error naming `source` when it holds no images.
 */
export function listImages(source: string, split: 'train' | 'val' = 'train'): ImageList {
  let st;
  try {
    st = statSync(source);
  } catch {
    throw new Error(`${source}: no such file or folder`);
  }
  if (st.isFile()) {
    const base = dirname(resolve(source));
    const paths = readFileSync(source, 'utf8')
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => (isAbsolute(l) ? l : join(base, l)));
    if (paths.length === 0) throw new Error(`${source}: the filelist is empty`);
    return { paths, labels: paths.map(() => 0), classes: [], layout: 'filelist' };
  }
  let root = source;
  let layout: ImageList['layout'] = 'class-folders';
  const top = subdirs(source);
  if (top.includes(split) && statSync(join(source, split)).isDirectory()) {
    root = join(source, split);
    layout = 'imagenet';
  }
  const classes = subdirs(root).filter((c) => filesIn(join(root, c)).length > 0);
  const paths: string[] = [];
  const labels: number[] = [];
  if (classes.length > 0) {
    classes.forEach((c, i) => {
      for (const p of filesIn(join(root, c))) {
        paths.push(p);
        labels.push(i);
      }
    });
  } else {
    layout = 'flat';
    paths.push(...filesIn(root));
    labels.push(...paths.map(() => 0));
  }
  if (paths.length === 0) throw new Error(`${source}: no images found (${[...IMAGE_EXTENSIONS].join(', ')})`);
  return { paths, labels, classes, layout };
}

/** Where to crop: 'centre', or fractions in [0, 1) of the free room along x and y (random crop). */
export type Crop = 'centre' | { fx: number; fy: number };

/**
 * One image as float32 CHW [3, size, size] in [-1, 1]: RGB (greyscale expanded, alpha dropped), shorter side
 * resized to `size` (bilinear, as albumentations' SmallestMaxSize), then cropped. Throws an Error naming the file
 * when it cannot be read or decoded.
 */
export async function decodeImage(path: string, size: number, crop: Crop): Promise<Float32Array> {
  let rgb: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    const bytes = await readFile(path);
    rgb = await sharp(bytes, { failOn: 'error' }).toColourspace('srgb').removeAlpha().raw().toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new Error(`${path}: cannot decode the image: ${(err as Error).message.split('\n')[0]}`);
  }
  const { width, height, channels } = rgb.info;
  const scale = size / Math.min(width, height);
  const w = Math.max(size, Math.round(width * scale));
  const h = Math.max(size, Math.round(height * scale));
  const left = crop === 'centre' ? Math.floor((w - size) / 2) : Math.floor(crop.fx * (w - size + 1));
  const top = crop === 'centre' ? Math.floor((h - size) / 2) : Math.floor(crop.fy * (h - size + 1));
  const out = await sharp(rgb.data, { raw: { width, height, channels: channels as 1 | 2 | 3 | 4 } })
    .resize({ width: w, height: h, fit: 'fill', kernel: 'linear' })
    .extract({ left, top, width: size, height: size })
    .raw()
    .toBuffer({ resolveWithObject: true });
  const c = out.info.channels;
  const hw = size * size;
  const px = new Float32Array(3 * hw);
  for (let p = 0; p < hw; p++) for (let ch = 0; ch < 3; ch++) px[ch * hw + p] = out.data[p * c + ch]! / 127.5 - 1;
  return px;
}
