// Tokens once across ranks (issue 24 item 3): train-ar's tokenizing on 2 ranks encodes each image exactly once
// (each rank its half, counted at the encoder), gives every rank the token maps one process computes, and the
// cache rank 0 writes is read by both on the next run; from an image folder and from WebDataset shards.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Tokenizer, writeShards } from '../../dist/index.js';
import { tokensFromImages } from '../../dist/transformer/tokens.js';
import { writeClassFolders } from '../support/shard_images.js';
import { ROOT, runRanks } from './support.js';

const CFG = {
  ddconfig: { double_z: false, z_channels: 16, resolution: 16, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 },
  n_embed: 32, embed_dim: 8,
};

describe('tokens once across ranks', () => {
  const root = mkdtempSync(join(tmpdir(), 'ibq-tokens-once-'));
  beforeAll(async () => {
    await writeClassFolders(join(root, 'images'), ['a', 'b', 'c'], 5); // 15 images: 7 + 8 on 2 ranks
    await writeShards({ data: join(root, 'images'), outDir: join(root, 'shards'), shardSize: 4 });
  }, 60_000);
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  for (const kind of ['folder', 'shards'] as const) {
    it(`${kind}: each image encoded once (7 + 8), the token maps of one process on both ranks, then the cache on both`, async () => {
      const data = kind === 'folder' ? join(root, 'images') : join(root, 'shards', 'shard-{000000..000003}.tar');
      const job = { data, cacheDir: join(root, `cache-${kind}`), imageSize: 16, tokensPerImage: 64, cfg: CFG };
      const runs = await runRanks(join(ROOT, 'test/distributed/workers/tokens_rank.mjs'), job, 2);
      for (const r of runs) expect(r.code, r.stderr).toBe(0);
      const [r0, r1] = runs.map((r) => JSON.parse(r.stdout.trim().split('\n').pop()!));
      expect([r0.runs[0].counted, r1.runs[0].counted]).toEqual([7, 8]);
      expect([r0.runs[0].encoded, r1.runs[0].encoded]).toEqual([7, 8]);
      const one = await tokensFromImages(Tokenizer.create(CFG, { seed: 3 }), data, { cacheDir: join(root, `one-${kind}`), imageSize: 16, batchSize: 4 });
      expect(one.tokens.shape).toEqual([15, 64]);
      const hash = createHash('sha256').update(Buffer.from((await one.tokens.data()).buffer)).digest('hex');
      const labels = Array.from(await one.labels.data(), Number);
      for (const r of [r0, r1]) {
        expect(r.runs[0]).toMatchObject({ cached: false, n: 15, hash, labels });
        expect(r.runs[1]).toMatchObject({ cached: true, counted: 0, encoded: 0, n: 15, hash, labels });
      }
      expect(new Set(labels)).toEqual(new Set([0, 1, 2]));
    }, 180_000);
  }
});
