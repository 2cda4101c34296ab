// The AR trainer as a research run: held-out loss validation (valTokens) every step, the learning rate of both
// AdamW parameter groups in the log (LearningRateMonitor), and TensorBoard files (--logger tensorboard's layout)
// with the training and validation scalars, a sample grid per class decoded by the frozen tokenizer, and the
// hyper-parameters, read back by the independent reader (test/support/tb_reader.py).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { tensor, trainTransformer } from '../../dist/index.js';
import { fixtureTokenizer, TINY_AR } from '../support/ar_tiny.js';
import { HAVE_FIXTURES } from '../support/fixtures.js';
import { run } from '../support/run.js';

const PY = '/usr/bin/python3';
const HAVE_PROTOBUF = (await run(PY, ['-c', 'import google.protobuf'])).status === 0;

function tokens(n: number, seed: number) {
  let s = seed;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s);
  return {
    tokens: tensor(BigInt64Array.from({ length: n * 256 }, () => BigInt(next() % 128)), [n, 256]),
    labels: tensor(BigInt64Array.from({ length: n }, () => BigInt(next() % 3)), [n]),
  };
}

describe.skipIf(!HAVE_FIXTURES || !HAVE_PROTOBUF)('AR training with validation and TensorBoard', () => {
  const out = mkdtempSync(join(tmpdir(), 'ibq-ar-tb-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('logs val/loss and lr per group, and writes scalars, per-class sample grids and hparams', async () => {
    const tokenizer = await fixtureTokenizer();
    const r = await trainTransformer({ transformer_config: { params: TINY_AR }, learning_rate: 1e-3 }, {
      tokens: tokens(8, 1), valTokens: tokens(5, 2), tokenizer, outDir: out, maxSteps: 2, batchSize: 4, seed: 3,
      valEvery: 1, numSanityValSteps: 0, logger: 'tensorboard', lrMonitor: true,
    });
    expect(r.validations.map((v) => v.step)).toEqual([0, 1]);
    const log = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const train = log.filter((l) => 'loss' in l), val = log.filter((l) => 'val/loss' in l);
    expect(val.map((l) => [l.step, l['val/loss'], l['val/sequences']])).toEqual(r.validations.map((v) => [v.step, v.values['val/loss'], 5]));
    expect(val[0]['val/loss']).toBeGreaterThan(0);
    for (const l of train) expect([l['lr-AdamW/pg1'], l['lr-AdamW/pg2']]).toEqual([l.lr, l.lr]);
    expect(r.logDir).toBe(join(out, 'lightning_logs', 'version_0'));
    const py = await run(PY, [join(__dirname, '..', 'support', 'tb_reader.py'), r.logDir!]);
    expect(py.status, py.stderr).toBe(0);
    const tb = JSON.parse(py.stdout);
    expect(tb.scalars['val/loss'].map(([s, v]: [number, number]) => [s, v])).toEqual(val.map((l) => [l.step, Math.fround(l['val/loss'])]));
    expect(tb.scalars.loss.map(([s]: [number]) => s)).toEqual([0, 1]);
    // 3 classes x 2 samples of 32 px, scale 2, one row per class
    expect(tb.images['samples/per_class'].map(([s, , , png]: [number, number, number, boolean]) => [s, png])).toEqual([[0, true], [1, true]]);
    const [, w, h] = tb.images['samples/per_class'][0];
    expect(h).toBeGreaterThan(3 * 64);
    expect(w).toBeGreaterThan(2 * 64);
    expect(tb.hparams['transformer_config/n_embd']).toBe(TINY_AR.n_embd);
    expect(tb.hparams.learning_rate).toBe(1e-3);
  }, 120_000);
});
