/**
 * `ibq shard`: WebDataset tar shards from an image folder (class sub-folders, an ImageNet root's train/, a flat
 * folder or a filelist; lib/data/image_files.ts), `shardSize` samples per shard, with a `shards.json` index of their
 * sample counts and the class names (lib/data/shards.ts). Each sample is `<class>/<stem>.<ext>` (the file's own
 * bytes: JPEG, PNG and WebP as they are, other formats re-encoded as PNG), `.cls` (the label) and `.json` (label,
 * class, source path).
 */
import { mkdirSync, readdirSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { basename, extname, join, relative } from 'node:path';

import sharp from 'sharp';

import { checkInt, checkString, IbqError } from '../core/errors.js';
import { epochOrder } from '../train/sampler.js';
import { listImages } from './image_files.js';
import { indexText, SHARD_IMAGE_EXTENSIONS, SHARD_INDEX_FILE, writeShard, type SampleToWrite } from './shards.js';

export interface WriteShardsOptions {
  /** The image folder or filelist. */
  data: string;
  /** Output folder (created; refused when it already holds shards). */
  outDir: string;
  /** Samples per shard (the last shard holds the rest). */
  shardSize: number;
  /** Shard file names: `<prefix>-000000.tar`, ... (default 'shard'). */
  prefix?: string;
  /** Seed of the order the images are written in (a shuffle, so that each shard mixes the classes; default 0); null: listing order. */
  seed?: number | null;
  /** Called after each shard is written. */
  onShard?(info: { path: string; samples: number; done: number; total: number }): void;
}

/**
 * Writes the shards; resolves with their paths, the sample count and the class names.
 * @throws TypeError / RangeError naming a bad option; Error naming `data` when it holds no images;
 *   IbqError ERR_IBQ_OUTPUT_CLASH when outDir already holds shards
 */
export async function writeShards(o: WriteShardsOptions): Promise<{ shards: string[]; samples: number; classes: string[] }> {
  const data = checkString(o.data, 'data');
  const outDir = checkString(o.outDir, 'outDir');
  const shardSize = checkInt(o.shardSize, 'shardSize', 1);
  const prefix = checkString(o.prefix ?? 'shard', 'prefix');
  if (/[/\\.]/.test(prefix)) throw new RangeError(`prefix: expected a file name stem without '/', '\\\\' or '.', got ${JSON.stringify(prefix)}`);
  const seed = o.seed === null ? null : checkInt(o.seed ?? 0, 'seed', 0, 2 ** 32 - 1);
  const list = listImages(data, 'train');
  mkdirSync(outDir, { recursive: true });
  const clash = readdirSync(outDir).filter((f) => f.endsWith('.tar') || f === SHARD_INDEX_FILE);
  if (clash.length > 0) throw new IbqError('ERR_IBQ_OUTPUT_CLASH', `outDir: ${outDir} already holds shards (${clash.slice(0, 3).join(', ')}); give an empty folder`);
  const n = list.paths.length;
  const order = seed === null ? [...Array(n).keys()] : epochOrder(n, seed, 0);
  const used = new Set<string>();
  const keyOf = (i: number) => {
    const cls = list.classes[list.labels[i]!] ?? 'images';
    const stem = basename(list.paths[i]!, extname(list.paths[i]!)).replace(/[.\s]/g, '_');
    let key = `${cls.replace(/[.\s]/g, '_')}/${stem}`;
    for (let k = 1; used.has(key); k++) key = `${cls.replace(/[.\s]/g, '_')}/${stem}_${k}`;
    used.add(key);
    return key;
  };
  const written: { name: string; bytes: number; samples: number }[] = [];
  const paths: string[] = [];
  for (let at = 0, s = 0; at < n; at += shardSize, s++) {
    const samples: SampleToWrite[] = [];
    for (const i of order.slice(at, at + shardSize)) {
      const path = list.paths[i]!;
      const ext = extname(path).slice(1).toLowerCase();
      const keep = (SHARD_IMAGE_EXTENSIONS as readonly string[]).includes(ext);
      const image = keep ? await readFile(path) : await sharp(path).png().toBuffer();
      const label = list.labels[i]!;
      samples.push({ key: keyOf(i), ext: keep ? ext : 'png', image, label, json: { class: list.classes[label] ?? null, path: relative(data, path) || path } });
    }
    const name = `${prefix}-${String(s).padStart(6, '0')}.tar`;
    const file = join(outDir, name);
    const bytes = await writeShard(`${file}.tmp`, samples);
    await rename(`${file}.tmp`, file);
    written.push({ name, bytes, samples: samples.length });
    paths.push(file);
    o.onShard?.({ path: file, samples: samples.length, done: Math.min(at + shardSize, n), total: n });
  }
  await writeFile(join(outDir, SHARD_INDEX_FILE), indexText(written, list.classes.length > 0 ? list.classes : undefined));
  return { shards: paths, samples: n, classes: list.classes };
}
