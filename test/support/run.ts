/**
 * Runs a command without blocking the test worker (the async counterpart of spawnSync, same result fields).
 * Tests never use spawnSync/execSync: vitest's worker answers its runner over an RPC that times out after
 * 60 s, and the expired timer fires before the reply is read when the worker's event loop was blocked that
 * long (a CLI run of a minute on a busy CI machine) -> "Timeout calling onTaskUpdate" with every test green.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Written to the child's stdin, which is then closed. */
  input?: string | Buffer;
  /** Milliseconds after which the child is killed (SIGTERM), as spawnSync's timeout. */
  timeout?: number;
  /** Largest stdout or stderr kept, in bytes (default 64 MiB); more kills the child. */
  maxBuffer?: number;
  /** Killed with SIGKILL instead of SIGTERM on a timeout. */
  killSignal?: NodeJS.Signals;
  /** Called with the child once it is started (to signal or inspect it). */
  onStart?(child: ChildProcess): void;
}

export interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Set when the command could not be started, timed out or overflowed maxBuffer. */
  error?: Error;
  /** Wall time of the run. */
  seconds: number;
}

export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const max = opts.maxBuffer ?? 64 << 20;
    const out: Buffer[] = [], err: Buffer[] = [];
    let outBytes = 0, errBytes = 0;
    let error: Error | undefined;
    const fail = (e: Error) => {
      error ??= e;
      child.kill(opts.killSignal ?? 'SIGTERM');
    };
    child.stdout.on('data', (d: Buffer) => ((outBytes += d.length) > max ? fail(new Error('stdout maxBuffer exceeded')) : out.push(d)));
    child.stderr.on('data', (d: Buffer) => ((errBytes += d.length) > max ? fail(new Error('stderr maxBuffer exceeded')) : err.push(d)));
    const timer = opts.timeout ? setTimeout(() => fail(new Error(`${cmd} timed out after ${opts.timeout} ms`)), opts.timeout) : undefined;
    child.on('error', (e) => (error ??= e));
    child.on('close', (status, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ status, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), error, seconds: (Date.now() - t0) / 1000 });
    });
    child.stdin.on('error', () => undefined); // a child that exits without reading its stdin
    child.stdin.end(opts.input);
    opts.onStart?.(child);
  });
}
