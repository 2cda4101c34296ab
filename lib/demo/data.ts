/**
 * Demo data: a labelled image set split into training and held-out images, all as float32 [N, 3, S, S] in
 * [-1, 1] (S = 32 by default) with class ids. Two sources:
 * - a folder of IDX files (MNIST / Fashion-MNIST layout: train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
 *   t10k-images-..., t10k-labels-...); the greyscale images are centred on an S x S black canvas (28 -> 32:
 *   2 pixels each side) and copied to three channels. The bundled data/fashion-mnist subset is one.
 * - a folder of class sub-folders (or an ImageNet-style root with train/ and val/ inside), decoded with the
 *   package's image helpers (shorter side resized to S, centre crop). Without a val/ split every 10th image of
 *   each class (at least one of a class with two or more images) is held out.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { decodeImage, listImages, readIdx } from '../index.js';

/** Fashion-MNIST class names (label ids 0..9), as the dataset's documentation lists them. */
export const FASHION_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

/** The bundled Fashion-MNIST subset (data/fashion-mnist at the package root). */
export const BUNDLED_DATA = fileURLToPath(new URL('../../data/fashion-mnist', import.meta.url));

/** Images with their class ids: pixels float32 [n, 3, size, size] in [-1, 1], row-major per image. */
export interface LabelledImages {
  pixels: Float32Array;
  labels: number[];
  size: number;
}

export interface DemoData {
  train: LabelledImages;
  test: LabelledImages;
  classes: string[];
  /** 'idx' or 'image-folder', and where it came from. */
  source: { kind: 'idx' | 'image-folder'; path: string };
}

const idxFile = (dir: string, stem: string): string | undefined =>
  [`${stem}.gz`, stem].map((f) => join(dir, f)).find((p) => existsSync(p));

/** Whether `dir` holds the four IDX files of the (Fashion-)MNIST layout. */
export function isIdxFolder(dir: string): boolean {
  return ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']
    .every((s) => idxFile(dir, s) !== undefined);
}

async function idxSplit(dir: string, split: 'train' | 't10k', size: number, limit: number): Promise<LabelledImages> {
  const images = await readIdx(idxFile(dir, `${split}-images-idx3-ubyte`)!);
  const labels = await readIdx(idxFile(dir, `${split}-labels-idx1-ubyte`)!);
  const [count, h, w] = images.shape as [number, number, number];
  if (images.shape.length !== 3 || labels.shape.length !== 1 || labels.shape[0] !== count) {
    throw new RangeError(`${dir}: ${split} images [${images.shape}] and labels [${labels.shape}] do not match`);
  }
  if (h > size || w > size) throw new RangeError(`${dir}: ${h}x${w} images do not fit in ${size}x${size}`);
  const n = Math.min(count, limit);
  const top = Math.floor((size - h) / 2), left = Math.floor((size - w) / 2);
  const plane = size * size;
  const pixels = new Float32Array(n * 3 * plane).fill(-1);
  for (let i = 0; i < n; i++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const v = images.data[(i * h + y) * w + x]! / 127.5 - 1;
        for (let c = 0; c < 3; c++) pixels[(i * 3 + c) * plane + (y + top) * size + x + left] = v;
      }
    }
  }
  return { pixels, labels: Array.from(labels.data.subarray(0, n)), size };
}

async function decodeAll(paths: string[], labels: number[], size: number, onImage?: () => void): Promise<LabelledImages> {
  const per = 3 * size * size;
  const pixels = new Float32Array(paths.length * per);
  const chunk = 64;
  for (let i = 0; i < paths.length; i += chunk) {
    const part = await Promise.all(paths.slice(i, i + chunk).map((p) => decodeImage(p, size, 'centre')));
    part.forEach((px, k) => {
      pixels.set(px, (i + k) * per);
      onImage?.();
    });
  }
  return { pixels, labels: [...labels], size };
}

/** Keeps at most `limit` items, taken round-robin over the classes so every class stays represented. */
function balancedSubset<T extends { label: number }>(items: T[], limit: number): T[] {
  if (items.length <= limit) return items;
  const byClass = new Map<number, T[]>();
  for (const it of items) (byClass.get(it.label) ?? byClass.set(it.label, []).get(it.label)!).push(it);
  const queues = [...byClass.values()];
  const out: T[] = [];
  for (let k = 0; out.length < limit; k++) for (const q of queues) if (k < q.length && out.length < limit) out.push(q[k]!);
  return out;
}

async function folderData(dir: string, size: number, limit: number, onImage?: () => void): Promise<DemoData> {
  const train = listImages(dir, 'train');
  if (train.classes.length < 2) throw new RangeError(`--data ${dir}: expected class sub-folders (at least two classes), found ${train.layout} images`);
  let trainItems = train.paths.map((path, i) => ({ path, label: train.labels[i]! }));
  let testItems: typeof trainItems;
  const hasVal = train.layout === 'imagenet' && existsSync(join(dir, 'val')) && readdirSync(join(dir, 'val')).length > 0;
  if (hasVal) {
    const val = listImages(join(dir, 'val'), 'val');
    const ids = new Map(train.classes.map((c, i) => [c, i]));
    testItems = val.paths.flatMap((path, i) => {
      const id = ids.get(val.classes[val.labels[i]!]!);
      return id === undefined ? [] : [{ path, label: id }];
    });
  } else {
    const count = new Map<number, number>();
    for (const it of trainItems) count.set(it.label, (count.get(it.label) ?? 0) + 1);
    const seen = new Map<number, number>();
    const held: typeof trainItems = [];
    const kept: typeof trainItems = [];
    for (const it of trainItems) {
      const k = seen.get(it.label) ?? 0, n = count.get(it.label)!;
      seen.set(it.label, k + 1);
      const hold = n >= 2 && (n < 10 ? k === n - 1 : k % 10 === 9);
      (hold ? held : kept).push(it);
    }
    testItems = held;
    trainItems = kept;
  }
  trainItems = balancedSubset(trainItems, limit);
  const trainSet = await decodeAll(trainItems.map((t) => t.path), trainItems.map((t) => t.label), size, onImage);
  const testSet = await decodeAll(testItems.map((t) => t.path), testItems.map((t) => t.label), size, onImage);
  return { train: trainSet, test: testSet, classes: train.classes, source: { kind: 'image-folder', path: dir } };
}

/**
 * Loads the demo data from `dir` (default: the bundled Fashion-MNIST subset): IDX files or class folders.
 * `maxImages` caps the training images (the held-out set is kept whole). `onImage` is called per decoded
 * folder image (for a progress bar).
 * @throws RangeError naming the folder when it holds neither IDX files nor two or more class folders
 */
export async function loadDemoData(
  dir: string = BUNDLED_DATA,
  opts: { size?: number; maxImages?: number; onImage?: () => void } = {},
): Promise<DemoData> {
  const size = opts.size ?? 32;
  const limit = opts.maxImages ?? Infinity;
  if (!existsSync(dir)) throw new RangeError(`--data ${dir}: no such folder`);
  if (isIdxFolder(dir)) {
    const [train, test] = await Promise.all([idxSplit(dir, 'train', size, limit), idxSplit(dir, 't10k', size, Infinity)]);
    const k = Math.max(...train.labels, ...test.labels) + 1;
    const classes = k === FASHION_CLASSES.length ? FASHION_CLASSES : Array.from({ length: k }, (_, i) => `class ${i}`);
    return { train, test, classes, source: { kind: 'idx', path: dir } };
  }
  return folderData(dir, size, limit, opts.onImage);
}
