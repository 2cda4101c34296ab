// No call of ours blocks the event loop for more than 50 ms: the largest delay perf_hooks.monitorEventLoopDelay
// (1 ms resolution) sees during training (in-memory data, checkpoints on the way), sampling, generation (one call,
// and 16 at once), tokenizer evaluation and an explicit checkpoint save. Measured in a child process (event_loop_child.mjs) whose
// loop runs nothing else, so vitest's own work does not count; its JS thread (only that thread) runs at a higher
// priority where allowed, so other processes on a busy CI machine delay it less. Delays that are not ours still
// do not repeat at the same place, while a blocking call does every time: a phase over the bound is measured
// again, up to three times, and the smallest maximum counts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { run } from '../support/run.js';

const CHILD = new URL('./event_loop_child.mjs', import.meta.url).pathname;
const BOUND_MS = 50;
const PHASES = ['trainTokenizer', 'trainTransformer', 'sample', 'generate', 'generate16', 'evaluateTokenizer', 'saveCheckpoint'];

async function measure(dir: string, phases: string[]): Promise<Record<string, number>> {
  const r = await run(process.execPath, ['--expose-gc', CHILD, dir, ...phases], { timeout: 240_000 });
  expect(r.status, `${r.stderr}\n${r.stdout}`).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number>;
}

describe('event loop', () => {
  const root = mkdtempSync(join(tmpdir(), 'ibq-event-loop-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it(`no phase of training, sampling, evaluation or checkpoint saving blocks it for more than ${BOUND_MS} ms`, async () => {
    const attempts: Record<string, number[]> = Object.fromEntries(PHASES.map((p) => [p, []]));
    let over = PHASES;
    for (let attempt = 0; attempt < 3 && over.length > 0; attempt++) {
      const got = await measure(join(root, String(attempt)), attempt === 0 ? [] : over);
      for (const p of over) {
        expect(got[p], `phase ${p} measured`).toBeTypeOf('number');
        attempts[p]!.push(got[p]!);
      }
      over = over.filter((p) => got[p]! > BOUND_MS);
    }
    const best = Object.fromEntries(PHASES.map((p) => [p, Math.min(...attempts[p]!)]));
    const msg = `largest event-loop delay per phase in ms (each attempt): ${JSON.stringify(attempts)}`;
    for (const p of PHASES) expect(best[p], msg).toBeLessThanOrEqual(BOUND_MS);
  }, 600_000);
});
