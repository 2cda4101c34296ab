// Fuzz: >= 2000 mutations and truncations of the gpt fixture checkpoint (~0.8 MB). Every outcome must be
// a clean load or an Error naming the file, each within a time limit; nothing crashes or hangs.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { loadCheckpoint, Tensor } from '../../dist/index.js';
import { fixture, HAVE_FIXTURES } from '../support/fixtures.js';
import { fixPickleCrc, locatePickle } from '../support/pickles.js';

const CASES = Number(process.env.IBQ_FUZZ_CASES ?? 2000);
const CASE_LIMIT_MS = 5000;
const tmp = mkdtempSync(join(tmpdir(), 'ibq-fuzz-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Small deterministic PRNG (mulberry32). */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function disposeAll(v: unknown, seen = new Set<unknown>()): void {
  if (v === null || typeof v !== 'object' || seen.has(v)) return;
  seen.add(v);
  if (v instanceof Tensor) return v.dispose();
  if (ArrayBuffer.isView(v)) return;
  const items = v instanceof Map ? [...v.values()] : v instanceof Set ? [...v] : Object.values(v);
  for (const x of items) disposeAll(x, seen);
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`TIMEOUT: ${what} took more than ${ms} ms`)), ms))),
  ]);
}

describe.skipIf(!HAVE_FIXTURES)('fuzzing loadCheckpoint', () => {
  it(`${CASES} mutated/truncated copies of gpt/model.ckpt: clean load or Error, each in time`, async () => {
    const orig = readFileSync(fixture('gpt', 'model.ckpt'));
    const pkl = locatePickle(orig);
    const next = rng(12345);
    const int = (n: number) => Math.floor(next() * n);
    const path = join(tmp, 'fuzz.ckpt');
    const outcomes = { loaded: 0, errors: 0 };
    const kinds: Record<string, number> = {};
    let slowest = 0;
    for (let i = 0; i < CASES; ++i) {
      let buf = Buffer.from(orig);
      const r = next();
      let kind: string;
      if (r < 0.35) {
        // pickle bytes, CRC fixed so the unpickler (not the zip CRC check) sees them
        kind = 'pickle';
        const k = 1 + int(6);
        for (let j = 0; j < k; ++j) {
          const at = pkl.start + int(pkl.end - pkl.start);
          buf[at] = next() < 0.3 ? [0x00, 0xff, 0x7f, 0x80, 0x28, 0x2e][int(6)] : int(256);
        }
        fixPickleCrc(buf, pkl);
      } else if (r < 0.45) {
        // a run of 0xff over a pickle region (huge lengths, indices), CRC fixed
        kind = 'pickle-run';
        const at = pkl.start + int(pkl.end - pkl.start - 8);
        buf.fill(0xff, at, at + 1 + int(8));
        fixPickleCrc(buf, pkl);
      } else if (r < 0.65) {
        kind = 'truncate';
        const len = next() < 0.5 ? int(buf.length) : buf.length - 1 - int(Math.min(4096, buf.length - 1));
        buf = buf.subarray(0, len);
      } else if (r < 0.8) {
        kind = 'tail-bytes'; // central directory and end records
        const k = 1 + int(4);
        for (let j = 0; j < k; ++j) buf[buf.length - 1 - int(Math.min(8192, buf.length))] = int(256);
      } else {
        kind = 'anywhere';
        const k = 1 + int(8);
        for (let j = 0; j < k; ++j) buf[int(buf.length)] = int(256);
      }
      kinds[kind] = (kinds[kind] ?? 0) + 1;
      writeFileSync(path, buf);
      const t0 = performance.now();
      try {
        const ck = await withTimeout(loadCheckpoint(path), CASE_LIMIT_MS, `case ${i} (${kind})`);
        outcomes.loaded++;
        disposeAll(ck.stateDict);
        disposeAll(ck.meta);
      } catch (err) {
        expect(err, `case ${i} (${kind})`).toBeInstanceOf(Error);
        const msg = (err as Error).message;
        expect(msg, `case ${i} (${kind})`).not.toMatch(/^TIMEOUT/);
        expect(msg, `case ${i} (${kind}): ${msg}`).toContain(path);
        outcomes.errors++;
      }
      slowest = Math.max(slowest, performance.now() - t0);
    }
    expect(outcomes.loaded + outcomes.errors).toBe(CASES);
    expect(outcomes.loaded).toBeGreaterThan(0);
    expect(outcomes.errors).toBeGreaterThan(0);
    expect(slowest).toBeLessThan(CASE_LIMIT_MS);
    console.log(`fuzz: ${JSON.stringify(outcomes)}, kinds ${JSON.stringify(kinds)}, slowest case ${slowest.toFixed(0)} ms`);
  });
});
