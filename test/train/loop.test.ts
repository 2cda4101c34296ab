// The shared training loop: one checkpoint naming and cadence, resume (true | path), an output folder holding
// another run refused unless resuming or overwriting, a missing resume checkpoint an error naming the path, the
// log trimmed to the resumed step, and flat memory over a long run.
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { tensor, trainTransformer } from '../../dist/index.js';
import { run } from '../support/run.js';

const AR = { transformer_config: { params: { vocab_size: 16, block_size: 16, n_layer: 1, n_head: 2, n_embd: 32, class_num: 2, multiple_of: 32 } } };
const tokens = () => ({
  tokens: tensor(BigInt64Array.from({ length: 32 * 16 }, (_, i) => BigInt(i % 16)), [32, 16]),
  labels: tensor(BigInt64Array.from({ length: 32 }, (_, i) => BigInt(i % 2)), [32]),
});

describe('training loop: output folders, checkpoints, resume', () => {
  it('step=N.ckpt every checkpointEvery steps and last.ckpt; an outDir holding a run is refused, overwrite and resume are explicit', async () => {
    const out = mkdtempSync(join(tmpdir(), 'ibq-loop-'));
    const r = await trainTransformer(AR, { tokens: tokens(), outDir: out, maxSteps: 4, batchSize: 8, checkpointEvery: 2 });
    expect(r).toMatchObject({ globalStep: 4, stopped: 'done', lastCheckpoint: join(out, 'last.ckpt'), logPath: join(out, 'log.jsonl') });
    expect(readdirSync(out).filter((f) => f.endsWith('.ckpt')).sort()).toEqual(['last.ckpt', 'step=00000002.ckpt', 'step=00000004.ckpt']);
    // a second fresh run into the same folder would silently replace last.ckpt and append to the log
    const again = await trainTransformer(AR, { tokens: tokens(), outDir: out, maxSteps: 2, batchSize: 8 }).catch((e) => e);
    expect(again.code).toBe('ERR_IBQ_OUT_DIR_IN_USE');
    expect(again.message).toContain(out);
    expect(again.message).toMatch(/resume.*overwrite/);
    expect(readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').length).toBe(4);
    // resume from a given checkpoint path continues the step count; the log keeps one line per step
    const res = await trainTransformer(AR, { tokens: tokens(), outDir: out, maxSteps: 6, batchSize: 8, resume: join(out, 'step=00000002.ckpt') });
    expect(res.globalStep).toBe(6);
    const steps = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
    expect(steps).toEqual([0, 1, 2, 3, 4, 5]);
    // overwrite starts afresh: the old checkpoints and log are gone
    const fresh = await trainTransformer(AR, { tokens: tokens(), outDir: out, maxSteps: 1, batchSize: 8, overwrite: true });
    expect(fresh.globalStep).toBe(1);
    expect(readdirSync(out).filter((f) => f.endsWith('.ckpt'))).toEqual(['last.ckpt']);
    expect(readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').length).toBe(1);
  });

  it('resume with no checkpoint to resume from is an error naming the path (not a silent fresh start)', async () => {
    const out = mkdtempSync(join(tmpdir(), 'ibq-loop-none-'));
    for (const resume of [true, join(out, 'nope.ckpt')] as const) {
      const err = await trainTransformer(AR, { tokens: tokens(), outDir: out, maxSteps: 1, batchSize: 8, resume }).catch((e) => e);
      expect(err.code).toBe('ERR_IBQ_NO_CHECKPOINT');
      expect(err.message).toContain(resume === true ? join(out, 'last.ckpt') : resume);
    }
    const bad = await trainTransformer(AR, { tokens: tokens(), outDir: out, maxSteps: 1, batchSize: 8, resume: true, overwrite: true }).catch((e) => e);
    expect(bad).toBeInstanceOf(RangeError);
    expect(existsSync(join(out, 'log.jsonl'))).toBe(false);
  });

  it('trainTokenizer memory stays flat: RSS at step 200 within 5% of RSS at step 20 (checkpoints every 50 steps)', async () => {
    const out = mkdtempSync(join(tmpdir(), 'ibq-loop-rss-'));
    const r = await run(process.execPath, [join(__dirname, '..', 'support', 'rss_train.mjs'), out], {
      env: { ...process.env, MALLOC_MMAP_THRESHOLD_: '131072' }, timeout: 280_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const { at20, at200 } = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(at200 / at20, `RSS ${(at20 / 2 ** 20).toFixed(0)} MB at step 20, ${(at200 / 2 ** 20).toFixed(0)} MB at step 200`).toBeLessThan(1.05);
    expect(existsSync(join(out, 'step=00000200.ckpt'))).toBe(true);
  }, 300_000);

  it('a log with lines past the checkpoint (a crash between log and checkpoint) is trimmed on resume', async () => {
    const out = mkdtempSync(join(tmpdir(), 'ibq-loop-trim-'));
    await trainTransformer(AR, { tokens: tokens(), outDir: out, maxSteps: 2, batchSize: 8 });
    writeFileSync(join(out, 'log.jsonl'), readFileSync(join(out, 'log.jsonl'), 'utf8') + '{"step":2}\n{"step":3}\n');
    await trainTransformer(AR, { tokens: tokens(), outDir: out, maxSteps: 3, batchSize: 8, resume: true });
    const steps = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
    expect(steps).toEqual([0, 1, 2]);
  });
});
