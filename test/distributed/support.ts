/** Helpers of the data-parallel tests: free ports, running the ranks of a job (torchrun environment), the CLI. */
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';

import { run as runChild } from '../support/run.js';

export const ROOT = join(__dirname, '..', '..');
export const BIN = join(ROOT, 'bin', 'ibq.js');

/** A TCP port that was free a moment ago (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Runs a command to its end (SIGKILLed after `timeoutMs`, default 240 s), collecting its output (test/support/run.ts). */
export async function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; onStart?(c: ChildProcess): void } = {}): Promise<Run> {
  const r = await runChild(cmd, args, { env: { ...process.env, ...opts.env }, timeout: opts.timeoutMs ?? 240_000, killSignal: 'SIGKILL', onStart: opts.onStart });
  if (r.error && r.status === null && r.signal === null) throw r.error;
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, seconds: r.seconds };
}

/** `node <script> <json>` as W ranks with the torchrun environment on 127.0.0.1; resolves when all ended. */
export async function runRanks(script: string, job: object, worldSize: number, extraEnv: NodeJS.ProcessEnv = {}): Promise<Run[]> {
  const port = await freePort();
  return Promise.all(
    Array.from({ length: worldSize }, (_, rank) =>
      run(process.execPath, [script, JSON.stringify(job)], {
        env: {
          MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), WORLD_SIZE: String(worldSize), RANK: String(rank), LOCAL_RANK: String(rank),
          IBQ_DIST_TIMEOUT: '60', OMP_NUM_THREADS: '1', ...extraEnv,
        },
      }),
    ),
  );
}

/** The ibq CLI (bin/ibq.js) with `args`. */
export function ibq(args: string[], opts: Parameters<typeof run>[2] = {}): Promise<Run> {
  return run(process.execPath, [BIN, ...args], { ...opts, env: { OMP_NUM_THREADS: '1', ...opts.env } });
}
