// Ending the process (or a worker thread) while a native call runs: the addon's jobs are cancelled and awaited
// before exit() destroys libtorch's static objects (before the fix: SIGSEGV in 2 of 3 `train` runs, with the
// main thread in c10::Dispatcher::deregisterImpl_ under exit() while a worker ran mkldnn_convolution).
import { spawn } from 'node:child_process';

import { describe, expect, it } from 'vitest';

const child = new URL('./exit_child.mjs', import.meta.url).pathname;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}
function run(scenario: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, scenario], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
/** `n` runs of `scenario`, two at a time; the distinct outcomes. */
async function outcomes(scenario: string, n: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  let next = 0;
  const lane = async () => {
    while (next < n) {
      next++;
      const r = await run(scenario);
      const key = r.signal ? `signal ${r.signal}` : `exit ${r.code}`;
      out.set(key, (out.get(key) ?? 0) + 1);
      if (key !== 'exit 0' && !out.has(`stderr: ${r.stderr.slice(-300)}`)) out.set(`stderr: ${r.stderr.slice(-300)}`, 0);
    }
  };
  await Promise.all([lane(), lane()]);
  return out;
}

describe('exit while a native call runs', () => {
  for (const scenario of ['sample', 'encode', 'train']) {
    it(`process.exit(0) 50 ms into ${scenario}: exit code 0 in 20 of 20 runs`, async () => {
      expect(Object.fromEntries(await outcomes(scenario, 20))).toEqual({ 'exit 0': 20 });
    }, 300_000);
  }

  it('an uncaught exception during sample exits 1 with the error printed, not 134', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await run('sample-throw');
      expect([r.code, r.signal]).toEqual([1, null]);
      expect(r.stderr).toMatch(/Error: thrown while sampling/);
    }
  }, 120_000);

  it('worker_threads: a worker exiting mid-call leaves the addon working in the main thread; main exiting mid-call in a worker exits 0', async () => {
    for (let i = 0; i < 5; i++) {
      const w = await run('worker-sample');
      expect([w.code, w.signal, w.stderr]).toEqual([0, null, '']);
      expect(w.stdout).toMatch(/worker exit 0, main sample 1x16/);
      const m = await run('main-train');
      expect([m.code, m.signal, m.stderr]).toEqual([0, null, '']);
    }
  }, 180_000);
});
