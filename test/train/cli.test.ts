// The training commands as schedulers and scripts meet them: an --out folder holding a run is refused (naming
// the folder and the ways on), SIGTERM saves last.ckpt and exits 143, progress off a terminal is plain lines
// with step, rate and ETA, and --resume with nothing to resume from names the path.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { loadCheckpoint, saveSafetensors, tensor } from '../../dist/index.js';
import { run } from '../support/run.js';

const BIN = join(__dirname, '..', '..', 'bin', 'ibq.js');
const AR = { vocab_size: 16, block_size: 16, n_layer: 1, n_head: 2, n_embd: 32, class_num: 2, multiple_of: 32 };

describe('ibq train-ar / train-tokenizer as a scheduler runs them', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibq-train-cli-'));
  const yaml = join(dir, 'ar.yaml');
  const toks = join(dir, 'tokens.safetensors');
  const ibq = (args: string[], env: NodeJS.ProcessEnv = {}) => run(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout: 120_000 });
  beforeAll(async () => {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(yaml, `model:\n  init_args:\n    learning_rate: 1.0e-3\n    transformer_config:\n      params: ${JSON.stringify(AR)}\n`);
    await saveSafetensors(toks, new Map([
      ['tokens', tensor(BigInt64Array.from({ length: 32 * 16 }, (_, i) => BigInt(i % 16)), [32, 16])],
      ['labels', tensor(BigInt64Array.from({ length: 32 }, (_, i) => BigInt(i % 2)), [32])],
    ]));
  });

  it('a second run into the same --out is refused, naming the folder, --resume and --overwrite; nothing is replaced', async () => {
    const out = join(dir, 'run1');
    const base = ['train-ar', '--config', yaml, '--tokens', toks, '--out', out, '--batch-size', '8'];
    expect((await ibq([...base, '--max-steps', '3'])).status).toBe(0);
    const again = await ibq([...base, '--max-steps', '1']);
    expect(again.status).toBe(1);
    expect(again.stderr).toContain(out);
    expect(again.stderr).toMatch(/--resume/);
    expect(again.stderr).toMatch(/--overwrite/);
    expect((await loadCheckpoint(join(out, 'last.ckpt'))).meta.global_step).toBe(3);
    const over = await ibq([...base, '--max-steps', '1', '--overwrite']);
    expect(over.status, over.stderr).toBe(0);
    expect((await loadCheckpoint(join(out, 'last.ckpt'))).meta.global_step).toBe(1);
    const none = await ibq([...base, '--out', join(dir, 'empty'), '--max-steps', '1', '--resume']);
    expect(none.status).toBe(1);
    expect(none.stderr).toContain(join(dir, 'empty', 'last.ckpt'));
  });

  it('progress off a terminal: plain lines with step, rate and ETA', async () => {
    const r = await ibq(['train-ar', '--config', yaml, '--tokens', toks, '--out', join(dir, 'run2'), '--batch-size', '8', '--max-steps', '6'],
      { IBQ_PROGRESS_EVERY: '0' });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => /^\d+\/6 steps \| [\d.]+ steps\/s \| ETA /.test(l));
    expect(lines.length).toBeGreaterThanOrEqual(6);
    expect(lines.at(-1)).toMatch(/^6\/6 steps .*loss \d/);
  });

  it('scripts/train_ar/IBQ/run.sh reads and writes relative to the caller, not inside the package', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'ibq-script-cwd-'));
    copyFileSync(toks, join(cwd, 't.safetensors'));
    copyFileSync(yaml, join(cwd, 'ar.yaml'));
    const script = join(__dirname, '..', '..', 'scripts', 'train_ar', 'IBQ', 'run.sh');
    const port = String(20000 + Math.floor(Math.random() * 30000));
    const r = await run('bash', [script, '127.0.0.1', port, '0', '--max-steps', '1', '--batch-size', '8'], {
      cwd, timeout: 120_000, env: { ...process.env, TOKENS: 't.safetensors', CONFIG: 'ar.yaml', OUT: 'runs/ar', DEVICE: 'cpu' },
    });
    expect(r.status, r.stderr + r.stdout).toBe(0);
    expect((await loadCheckpoint(join(cwd, 'runs', 'ar', 'last.ckpt'))).meta.global_step).toBe(1);
    expect(existsSync(join(__dirname, '..', '..', 'runs'))).toBe(false);
  }, 120_000);

  it('SIGTERM saves last.ckpt after the running step and exits 143', async () => {
    const out = join(dir, 'run3');
    const child = spawn(process.execPath, [BIN, 'train-ar', '--config', yaml, '--tokens', toks, '--out', out, '--batch-size', '8',
      '--max-steps', '1000000', '--checkpoint-every', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const log = join(out, 'log.jsonl');
    for (let i = 0; i < 600 && !(existsSync(log) && readFileSync(log, 'utf8').split('\n').length > 3); i++) await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    expect(code, stderr).toBe(143);
    const steps = readFileSync(log, 'utf8').trim().split('\n').length;
    expect((await loadCheckpoint(join(out, 'last.ckpt'))).meta.global_step).toBe(steps);
  }, 120_000);
});
