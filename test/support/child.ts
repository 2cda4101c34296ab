/**
 * Runs a command in a child process WITHOUT blocking this test worker's event loop (spawnSync would: vitest's
 * worker must keep answering its main process, or the run fails with "Timeout calling onTaskUpdate").
 */
import { execFile } from 'node:child_process';

export interface ChildResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeout?: number; cwd?: string } = {}): Promise<ChildResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 2 ** 20, env: opts.env, timeout: opts.timeout, cwd: opts.cwd }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string; signal?: NodeJS.Signals }) | null;
      resolve({ status: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal: e?.signal ?? null, stdout, stderr });
    });
  });
}
