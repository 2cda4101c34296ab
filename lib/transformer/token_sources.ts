/**
 * The images AR training tokenizes, as one numbered sequence any rank can read a slice of: an image folder (class
 * sub-folders; lib/data/image_files.ts) or WebDataset shards in the spec's order (labels from `.cls` / `.json`;
 * lib/data/shards.ts). Each source also names what its token cache depends on (files with sizes and times).
 */
import { statSync } from 'node:fs';

import { listImages } from '../data/image_files.js';
import { indexedClasses, isShardSpec, readShard } from '../data/shards.js';
import { openShards } from '../data/webdataset.js';

/** One image to encode: a path or its bytes, its class id, and a name for errors. */
export interface SourceImage {
  input: string | Buffer;
  label: number;
  name: string;
}

export interface TokenSource {
  /** Images in the sequence. */
  count: number;
  /** Class names by id ([] when the shards carry no names). */
  classes: string[];
  /** What the cache key covers: one line per file (path, bytes, modification time). */
  keyLines: string[];
  /** Images [lo, hi) of the sequence, in order. */
  read(lo: number, hi: number): AsyncGenerator<SourceImage>;
}

const fileLine = (p: string) => {
  const s = statSync(p);
  return `${p}\t${s.size}\t${s.mtimeMs}`;
};

/**
 * The source `data` names: tar shards (a shard spec) or an image folder with class sub-folders. `sum` (a process
 * group's element-wise sum) divides the counting of unindexed shards among the ranks. `split`: which part of a folder
 * with train/ and val/ sub-folders (listImages).
 * @throws RangeError when a folder has no class sub-folders; Error naming a spec that matches no shard
 */
export async function tokenSource(
  data: string, shard: { rank: number; worldSize: number }, sum?: (v: number[]) => Promise<number[]>, split: 'train' | 'val' = 'train',
): Promise<TokenSource> {
  if (isShardSpec(data)) {
    const { paths, counts } = await openShards(data, 'data', shard, sum);
    const starts: number[] = [];
    counts.reduce((a, c, i) => ((starts[i] = a), a + c), 0);
    return {
      count: counts.reduce((a, b) => a + b, 0),
      classes: indexedClasses(paths[0]!) ?? [],
      keyLines: paths.map(fileLine),
      async *read(lo, hi) {
        for (let s = 0; s < paths.length && lo < hi; s++) {
          const end = starts[s]! + counts[s]!;
          if (end <= lo) continue;
          for await (const x of readShard(paths[s]!, lo - starts[s]!)) {
            const name = `${paths[s]}:${x.key}.${x.ext}`;
            if (x.label === undefined) throw new RangeError(`data: ${name} has no .cls or .json label (the AR model needs the class of every image)`);
            yield { input: x.image, label: x.label, name };
            if (++lo >= Math.min(hi, end)) break;
          }
        }
      },
    };
  }
  const { paths, labels, classes, layout } = listImages(data, split);
  if (classes.length === 0) throw new RangeError(`data: ${data} has no class sub-folders (found a ${layout} of images); the AR model needs one folder per class`);
  return {
    count: paths.length,
    classes,
    keyLines: paths.map(fileLine),
    async *read(lo, hi) {
      for (let i = lo; i < hi; i++) yield { input: paths[i]!, label: labels[i]!, name: paths[i]! };
    },
  };
}
