// Test files never block their worker's event loop on a child process: vitest's worker RPC (onTaskUpdate)
// times out after 60 s, and a spawnSync of a CLI run or a Python reference that long on a busy CI machine made
// a green run fail with "Timeout calling onTaskUpdate". test/support/run.ts is the async replacement.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

import { describe, expect, it } from 'vitest';

const testRoot = new URL('..', import.meta.url).pathname;

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : /\.(ts|mjs|js)$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

describe('test hygiene', () => {
  it('no test file runs a child process synchronously (spawnSync, execSync, execFileSync)', () => {
    const offenders: string[] = [];
    for (const f of files(testRoot)) {
      const code = readFileSync(f, 'utf8').replace(/^\s*(\/\/|\*).*$/gm, ''); // comments may name them
      const m = code.match(/\b(spawnSync|execSync|execFileSync)\s*\(/g);
      if (m) offenders.push(`${relative(testRoot, f)}: ${m.length} call(s)`);
    }
    expect(offenders).toEqual([]);
  });
});
