// Elastic launches (issue 24 item 5): `ibq launch --max-restarts 1` with one rank killed once mid-run restarts all
// ranks from the last checkpoint, exits 0 and ends with the weights of an uninterrupted run (dropouts off); a
// launcher stopped by SIGTERM reports a stop; a node that never starts makes the present ranks exit naming the
// missing ranks and their node within 1.2 x the timeout of the launch (the timeout counts from the launcher's start).
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadCheckpoint } from '../../dist/index.js';
import { maxAbsDiff } from '../support/compare.js';
import { writeArInputs } from './ar_inputs.js';
import { freePort, ibq, run } from './support.js';

describe('elastic launch', () => {
  const root = mkdtempSync(join(tmpdir(), 'ibq-elastic-'));
  let yaml: string, tokens: string;
  const STEPS = 300;
  const train = (out: string, steps = STEPS) =>
    ['train-ar', '--config', yaml, '--tokens', tokens, '--out', out, '--batch-size', '2', '--max-steps', String(steps), '--seed', '7', '--checkpoint-every', '20'];
  const launch = async (extra: string[], cmd: string[], opts: Parameters<typeof ibq>[1] = {}) =>
    ibq(['launch', '--nproc-per-node', '2', '--master-port', String(await freePort()), ...extra, '--', ...cmd], opts);
  beforeAll(async () => {
    ({ yaml, tokens } = await writeArInputs(root, 40));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('--max-restarts 1: rank 1 killed once mid-run; all ranks restart from the last checkpoint, exit 0, the weights of an uninterrupted run', async () => {
    const out = join(root, 'elastic');
    let killed = 0;
    let killedAfter = 0;
    const r = await launch(['--max-restarts', '1', '--monitor-interval', '0.2'], train(out), {
      timeoutMs: 240_000,
      onStart: (c) => {
        const poll = setInterval(async () => {
          const log = join(out, 'log.jsonl');
          if (killed || !existsSync(join(out, 'last.ckpt')) || !existsSync(log)) return;
          const lines = readFileSync(log, 'utf8').trim().split('\n').length;
          if (lines < 50) return;
          clearInterval(poll);
          const ps = (await run('ps', ['-eo', 'pid,ppid'])).stdout.split('\n').map((l) => l.trim().split(/\s+/).map(Number));
          const pids = ps.filter(([, ppid]) => ppid === c.pid).map(([pid]) => pid!).sort((x, y) => x - y);
          killed = pids[1]!; // the launcher's children in start order: rank 0, rank 1
          killedAfter = lines;
          process.kill(killed, 'SIGKILL');
        }, 50);
      },
    });
    expect(killed).toBeGreaterThan(0);
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`ibq launch: rank 1 \\(pid ${killed}\\) was killed by SIGKILL; stopping ranks 0 to restart`));
    expect(r.stderr).toMatch(/ibq launch: restart 1 of 1: rank 1 \(pid \d+\) was killed by SIGKILL.*restarting all ranks of node 0 from the last checkpoint/);
    expect(r.stderr).toMatch(/\[rank 0\] ibq: restart 1: resuming from .*last\.ckpt/);
    const log = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(log.map((l) => l.step)).toEqual([...Array(STEPS).keys()]);
    // uninterrupted, for the weights
    const plain = await launch([], train(join(root, 'plain')), { timeoutMs: 240_000 });
    expect(plain.code, plain.stderr.slice(-2000)).toBe(0);
    const [a, b] = await Promise.all([loadCheckpoint(join(out, 'last.ckpt')), loadCheckpoint(join(root, 'plain', 'last.ckpt'))]);
    let worst = 0, n = 0;
    for (const [k, v] of a.stateDict) {
      if (!k.startsWith('transformer.')) continue;
      worst = Math.max(worst, maxAbsDiff(v, b.stateDict.get(k)!));
      n++;
    }
    expect(n).toBeGreaterThan(10);
    expect(worst).toBe(0);
    console.log(`killed rank 1 after ${killedAfter} logged steps; restarted run vs uninterrupted: max |diff| ${worst} over ${n} tensors`);
  }, 480_000);

  it('SIGTERM on the launcher is reported as a stop (exit 143), not as a failed rank; no restart', async () => {
    const out = join(root, 'sigterm');
    const r = await launch(['--max-restarts', '2'], train(out, 100000), {
      timeoutMs: 120_000,
      onStart: (c) => {
        const poll = setInterval(() => {
          if (!existsSync(join(out, 'log.jsonl')) || readFileSync(join(out, 'log.jsonl'), 'utf8').split('\n').length < 3) return;
          clearInterval(poll);
          c.kill('SIGTERM');
        }, 100);
      },
    });
    expect(r.code, r.stderr.slice(-2000)).toBe(143);
    expect(r.stderr).toMatch(/ibq launch: stopped by SIGTERM \(forwarded to ranks 0, 1\)\n/);
    expect(r.stderr).not.toMatch(/exited with code 143|restart 1/);
    expect(existsSync(join(out, 'last.ckpt'))).toBe(true);
  }, 180_000);

  it('a node that never starts: both present ranks exit non-zero naming the missing ranks and node, within 1.2 x --dist-timeout of the launch', async () => {
    // the rendezvous timeout counts from the launcher's start (IBQ_LAUNCH_TIME_MS), the ranks' start-up included
    const T = 20;
    const t0 = Date.now();
    const r = await launch(['--nnodes', '2', '--node-rank', '0', '--dist-timeout', String(T)], train(join(root, 'missing'), 5), { timeoutMs: 120_000 });
    const seconds = (Date.now() - t0) / 1000;
    expect(r.code).not.toBe(0);
    for (const rank of [0, 1]) {
      expect(r.stderr).toMatch(new RegExp(`\\[rank ${rank}\\] .*rank ${rank}: ranks 2, 3 \\(node 1\\) did not join the rendezvous at 127\\.0\\.0\\.1:\\d+ within ${T} s \\(2 of 4 ranks arrived\\)`));
    }
    console.log(`missing node: the launcher ended ${seconds.toFixed(1)} s after it was spawned (--dist-timeout ${T}; ${(seconds / T).toFixed(2)} x)`);
    expect(seconds).toBeGreaterThanOrEqual(T); // the ranks waited the whole timeout
    expect(seconds).toBeLessThan(1.2 * T);
  }, 180_000);
});
