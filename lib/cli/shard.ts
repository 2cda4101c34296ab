/**
 * ibq shard --data FOLDER --out DIR --shard-size N [--prefix NAME] [--seed N | --no-shuffle]
 *   writes WebDataset tar shards of an image folder (lib/data/make_shards.ts) and prints a JSON summary.
 */
import type { Command } from 'commander';

import { writeShards } from '../data/make_shards.js';
import { intArg } from './parse.js';

interface ShardFlags {
  data: string;
  out: string;
  shardSize: number;
  prefix: string;
  seed: number;
  shuffle: boolean;
}

export function register(program: Command): void {
  program
    .command('shard')
    .description('write WebDataset tar shards (<key>.jpg|png|webp, <key>.cls, <key>.json; shards.json index) from an image folder with class sub-folders')
    .requiredOption('--data <dir|filelist>', 'images: class folders, an ImageNet root (train/), a flat folder or a filelist')
    .requiredOption('--out <dir>', 'output folder for <prefix>-000000.tar, ... and shards.json')
    .requiredOption('--shard-size <n>', 'samples per shard', intArg('--shard-size'))
    .option('--prefix <name>', 'shard file name prefix', 'shard')
    .option('--seed <n>', 'seed of the shuffle that mixes the classes across shards', intArg('--seed', 0, 2 ** 32 - 1), 0)
    .option('--no-shuffle', 'write the images in listing order (class by class)')
    .action(async (o: ShardFlags) => {
      const r = await writeShards({
        data: o.data, outDir: o.out, shardSize: o.shardSize, prefix: o.prefix, seed: o.shuffle ? o.seed : null,
        onShard: (s) => console.error(`ibq shard: ${s.path} (${s.samples} samples; ${s.done}/${s.total})`),
      });
      console.log(JSON.stringify({ shards: r.shards.length, samples: r.samples, classes: r.classes.length, out: o.out }));
    });
}
