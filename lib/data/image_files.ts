/**
 * Listing image files, once for every use (tokenizer training, tokenizing for AR training, evaluation): the
 * ImageNet layout `train/<wnid>/*.JPEG` (and `val/`) with classes from the folders, any folder of class
 * sub-folders, a flat folder, or a filelist of paths. Decoding: lib/data/images.ts (decodeImage).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, isAbsolute, join, resolve } from 'node:path';

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
  if (paths.length === 0) {
    const tars = readdirSync(root).filter((f) => /\.(tar|tgz|tar\.gz)$/i.test(f)).sort();
    const [a, b] = [/^(.*?)(\d+)(\.tar)$/.exec(tars[0] ?? ''), /^(.*?)(\d+)(\.tar)$/.exec(tars.at(-1) ?? '')];
    const range = a && b && a[1] === b[1] && tars.length > 1 ? `${a[1]}{${a[2]}..${b[2]}}.tar` : tars[0];
    const hint = tars.length > 0 ? `; it holds tar shards: name them, e.g. ${JSON.stringify(join(root, range!))} or ${JSON.stringify(join(root, '*.tar'))}` : '';
    throw new Error(`${source}: no images found (${[...IMAGE_EXTENSIONS].join(', ')})${hint}`);
  }
  return { paths, labels, classes, layout };
}
