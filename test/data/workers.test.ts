// Decode workers (numWorkers): the same pixels as decoding in the main thread, errors with their codes, and a
// tokenizer run with 2 workers equal to one without, with data_wait_ms in every log line.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { DecodePool, decodeImage, trainTokenizer, writeShards } from '../../dist/index.js';
import { tinyTokenizerYaml, writeClassFolders } from '../support/shard_images.js';

const root = mkdtempSync(join(tmpdir(), 'ibq-workers-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const YAML = tinyTokenizerYaml();

describe('decode workers', () => {
  it('decode the pixels decodeImage gives, flips included, and keep the error codes', async () => {
    const [paths] = await writeClassFolders(join(root, 'imgs'), ['a'], 6);
    const pool = new DecodePool(2);
    try {
      for (const [i, p] of paths!.entries()) {
        const crop = { fx: i / 7, fy: 0.5, flip: i % 2 === 1 };
        const [a, b] = await Promise.all([pool.decode(p, 24, crop), decodeImage(p, 24, crop)]);
        expect(Buffer.compare(Buffer.from(a.buffer), Buffer.from(b.buffer)), p).toBe(0);
      }
      const flipped = await pool.decode(paths![0]!, 24, { fx: 0, fy: 0, flip: true });
      const plain = await pool.decode(paths![0]!, 24, { fx: 0, fy: 0 });
      expect(flipped[0]).toBe(plain[23]); // row 0, column 0 <- column 23
      await expect(pool.decode(Buffer.from('not an image'), 24, 'centre')).rejects.toMatchObject({ code: 'ERR_IBQ_BAD_IMAGE' });
    } finally {
      pool.close();
    }
    await expect(pool.decode(paths![0]!, 24, 'centre')).rejects.toThrow(/decode workers: the pool is closed/);
    expect(() => new DecodePool(0)).toThrow(/^numWorkers: expected an integer/);
  });

  it('a tokenizer run with 2 decode workers equals one without; every log line has data_wait_ms', async () => {
    await writeClassFolders(join(root, 'set'), ['x', 'y'], 6);
    await writeShards({ data: join(root, 'set'), outDir: join(root, 'shards'), shardSize: 5 });
    writeFileSync(join(root, 'tok.yaml'), YAML);
    const base = { batchSize: 3, maxSteps: 4, seed: 1, checkpointEvery: 0, distributed: false as const };
    const runs: Record<string, number[][]> = {};
    for (const [name, data] of [['folder', join(root, 'set')], ['shards', join(root, 'shards', 'shard-{000000..000002}.tar')]] as const) {
      for (const numWorkers of [0, 2]) {
        const out = join(root, `${name}-${numWorkers}`);
        await trainTokenizer(join(root, 'tok.yaml'), { ...base, data, numWorkers, outDir: out });
        const lines = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
        for (const l of lines) expect(l.data_wait_ms).toBeGreaterThanOrEqual(0);
        (runs[name] ??= []).push(lines.map((l) => l['train/total_loss']));
      }
      expect(runs[name]![1], name).toEqual(runs[name]![0]);
    }
  }, 240_000);
});
