/**
 * `ibq launch`: torchrun for ibq commands. Starts --nproc-per-node processes of `ibq <command ...>` on this
 * node with the torchrun environment (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE,
 * NODE_RANK, IBQ_DIST_TIMEOUT, IBQ_LAUNCH_TIME_MS: the rendezvous timeout counts from the launcher's start),
 * prefixes every output line with the global rank, forwards SIGINT/SIGTERM, and
 * exits non-zero when any rank fails: the other ranks then get the collective timeout to stop by themselves
 * (naming the failed rank), after which they are terminated. No child outlives the launcher (each watches it).
 *
 *   ibq launch --nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P]
 *              [--dist-timeout S] [--max-restarts N [--monitor-interval S]] -- <ibq subcommand and its flags>
 *
 * With --max-restarts N (torchrun's elastic agent): when a rank fails the others are stopped at once and all are
 * started again, up to N times, each restart logged with its cause; the training commands resume from
 * <out>/last.ckpt (TORCHELASTIC_RESTART_COUNT > 0). The exit code is the last attempt's. A launcher stopped by
 * SIGINT / SIGTERM reports a stop (exit 130 / 143) and does not restart.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';

import { PORT_RANGE } from '../distributed/ranges.js';
import { launchThreads, positiveInt, readThreadInputs } from '../core/threads.js';
import { intArg, numberArg } from './parse.js';

interface Flags {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  distTimeout: number;
  maxRestarts: number;
  monitorInterval: number;
}

const BIN = fileURLToPath(new URL('../../bin/ibq.js', import.meta.url));

interface Rank {
  rank: number;
  child: ChildProcess;
  exited: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
}

function pipeLines(stream: NodeJS.ReadableStream | null, out: NodeJS.WritableStream, prefix: string): Promise<void> {
  if (!stream) return Promise.resolve();
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  rl.on('line', (line) => out.write(`${prefix}${line}\n`));
  return new Promise((resolve) => rl.once('close', resolve));
}

function describeExit(r: Rank): string {
  return r.signal ? `was killed by ${r.signal}` : `exited with code ${r.code}`;
}

/**
 * The thread settings of each rank, as torchrun sets OMP_NUM_THREADS: unless the user set OMP_NUM_THREADS, the
 * CPUs this launcher may use (affinity, cgroup quota) divided among the node's processes, in OMP_NUM_THREADS (for
 * every library of the rank) and IBQ_LAUNCH_THREADS (so `info()` names `ibq launch` as the source).
 */
export function rankThreads(procs: number, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  if (positiveInt(env.OMP_NUM_THREADS) !== undefined) return {};
  const n = String(launchThreads(readThreadInputs(env), procs));
  return { OMP_NUM_THREADS: n, IBQ_LAUNCH_THREADS: n };
}

/** What the launcher runs: this node's ranks of a world of nprocPerNode x nnodes. */
export interface LaunchOptions {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  distTimeout: number;
  command: string[];
  /** Restarts of all ranks after a failure (torchrun's --max-restarts; default 0). */
  maxRestarts?: number;
  /** Seconds between checks of the ranks' state while restarts remain (torchrun's --monitor-interval; default 1). */
  monitorInterval?: number;
}

/** How one attempt ended: the exit code, what failed first, and the signal that stopped it (a stop, not a failure). */
interface Attempt {
  code: number;
  cause?: string;
  stoppedBy?: NodeJS.Signals;
}

const SIGNAL_CODES: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

/** Runs one attempt: starts the ranks, watches them, stops the rest after a failure; resolves when all ended. */
async function attempt(o: LaunchOptions, restart: number, restartsLeft: number, log: (m: string) => void): Promise<Attempt> {
  // the ranks' rendezvous timeout counts from here: the launcher's own start (first attempt) or the restart
  const startedAt = restart === 0 ? performance.timeOrigin : Date.now();
  const world = o.nprocPerNode * o.nnodes;
  const ranks: Rank[] = [];
  const done: Promise<void>[] = [];
  for (let local = 0; local < o.nprocPerNode; local++) {
    const rank = o.nodeRank * o.nprocPerNode + local;
    const env = {
      ...process.env,
      MASTER_ADDR: o.masterAddr,
      MASTER_PORT: String(o.masterPort),
      WORLD_SIZE: String(world),
      RANK: String(rank),
      LOCAL_RANK: String(local),
      LOCAL_WORLD_SIZE: String(o.nprocPerNode),
      NODE_RANK: String(o.nodeRank),
      GROUP_RANK: String(o.nodeRank),
      IBQ_DIST_TIMEOUT: String(o.distTimeout),
      IBQ_LAUNCH_TIME_MS: String(Math.floor(startedAt)),
      IBQ_LAUNCHER_PID: String(process.pid),
      ...rankThreads(o.nprocPerNode),
      // torchrun's names: a restarted training resumes from <out>/last.ckpt (lib/cli/train_flags.ts)
      TORCHELASTIC_RESTART_COUNT: String(restart),
      TORCHELASTIC_MAX_RESTARTS: String(o.maxRestarts ?? 0),
    };
    // own process group: a terminal's Ctrl-C reaches the launcher only, which forwards it once
    const child = spawn(process.execPath, [BIN, ...o.command], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const r: Rank = { rank, child, exited: false, code: null, signal: null };
    ranks.push(r);
    const prefix = `[rank ${rank}] `;
    const streams = Promise.all([pipeLines(child.stdout, process.stdout, prefix), pipeLines(child.stderr, process.stderr, prefix)]);
    done.push(
      new Promise<void>((resolve) => {
        child.once('error', (e) => {
          log(`rank ${rank} could not start: ${e.message}`);
          r.exited = true;
          r.code = 1;
          resolve();
        });
        child.once('exit', (code, signal) => {
          r.exited = true;
          r.code = code;
          r.signal = signal;
          void streams.then(() => resolve());
        });
      }),
    );
  }

  const live = () => ranks.filter((r) => !r.exited);
  const signalAll = (sig: NodeJS.Signals) => {
    for (const r of live()) {
      try {
        process.kill(-r.child.pid!, sig);
      } catch {
        /* already gone */
      }
    }
  };
  let firstFailure: Rank | undefined;
  const timers: NodeJS.Timeout[] = [];
  const seen = new Map<NodeJS.Signals, number>();
  const onFailure = (r: Rank) => {
    if (firstFailure) return;
    firstFailure = r;
    if (live().length === 0 || seen.size > 0) return; // after a forwarded signal every rank is stopping anyway
    if (restartsLeft > 0) {
      // torchrun's agent: stop the other ranks at once (SIGTERM, SIGKILL 5 s later) and restart them all
      log(`rank ${r.rank} (pid ${r.child.pid}) ${describeExit(r)}; stopping ranks ${live().map((x) => x.rank).join(', ')} to restart`);
      signalAll('SIGTERM');
      timers.push(setTimeout(() => signalAll('SIGKILL'), 5000));
      return;
    }
    log(`rank ${r.rank} (pid ${r.child.pid}) ${describeExit(r)}; the other ranks get ${o.distTimeout} s to stop`);
    timers.push(
      setTimeout(() => {
        if (live().length) log(`terminating ranks ${live().map((x) => x.rank).join(', ')} (rank ${r.rank} failed)`);
        signalAll('SIGTERM');
        timers.push(setTimeout(() => signalAll('SIGKILL'), 5000));
      }, o.distTimeout * 1000),
    );
  };
  const failedNow = (r: Rank) => r.exited && (r.code !== 0 || r.signal !== null);
  if (restartsLeft > 0) {
    // the state of the ranks is checked every monitorInterval seconds (torchrun's monitor loop)
    const monitor = setInterval(() => ranks.filter(failedNow).slice(0, 1).forEach(onFailure), (o.monitorInterval ?? 1) * 1000);
    timers.push(monitor);
  } else {
    for (const r of ranks) r.child.once('exit', () => failedNow(r) && onFailure(r));
  }
  const forward = (sig: NodeJS.Signals) => {
    const n = (seen.get(sig) ?? 0) + 1;
    seen.set(sig, n);
    signalAll(n > 1 ? 'SIGKILL' : sig);
  };
  const onInt = () => forward('SIGINT');
  const onTerm = () => forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    await Promise.all(done);
  } finally {
    process.removeListener('SIGINT', onInt);
    process.removeListener('SIGTERM', onTerm);
    for (const t of timers) clearTimeout(t);
  }
  const failed = ranks.filter(failedNow);
  const stoppedBy = [...seen.keys()][0];
  if (stoppedBy) {
    // a stop the launcher was asked for: the ranks saved last.ckpt and exited with 130 / 143 (or were killed)
    const odd = failed.filter((r) => r.code !== SIGNAL_CODES[stoppedBy] && r.signal !== stoppedBy && r.signal !== 'SIGKILL');
    log(`stopped by ${stoppedBy} (forwarded to ranks ${ranks.map((r) => r.rank).join(', ')})` +
      (odd.length ? `; ${odd.map((r) => `rank ${r.rank} ${describeExit(r)}`).join(', ')}` : ''));
    return { code: SIGNAL_CODES[stoppedBy] ?? 1, stoppedBy };
  }
  if (failed.length === 0) return { code: 0 };
  const first = firstFailure ?? failed[0]!;
  const others = failed.filter((r) => r !== first).map((r) => `rank ${r.rank} ${describeExit(r)}`);
  const cause = `rank ${first.rank} (pid ${first.child.pid}) ${describeExit(first)}${others.length ? `; then ${others.join(', ')}` : ''}`;
  return { code: first.code && first.code > 0 ? first.code : 1, cause };
}

/**
 * Runs the ranks of this node, restarting all of them after a failure up to maxRestarts times (each restart
 * logged with its cause; a training command resumes from its last checkpoint); resolves with the exit code of
 * the last attempt (130 / 143 when the launcher was stopped by SIGINT / SIGTERM: a stop, never restarted).
 */
export async function launch(o: LaunchOptions): Promise<number> {
  const log = (m: string) => process.stderr.write(`ibq launch: ${m}\n`);
  const max = o.maxRestarts ?? 0;
  for (let k = 0; ; k++) {
    const r = await attempt(o, k, max - k, log);
    if (r.code === 0 || r.stoppedBy) return r.code;
    if (k >= max) {
      log(`failed: ${r.cause}${max > 0 ? ` (after ${max} restart${max > 1 ? 's' : ''})` : ''}`);
      return r.code;
    }
    log(`restart ${k + 1} of ${max}: ${r.cause}; restarting all ranks of node ${o.nodeRank} from the last checkpoint`);
  }
}

export function register(program: Command): void {
  program
    .command('launch')
    .description('run an ibq command data-parallel: N processes on this node with the torchrun environment')
    .requiredOption('--nproc-per-node <n>', 'processes on this node (one per GPU with NCCL)', intArg('--nproc-per-node'))
    .option('--nnodes <m>', 'nodes in the run', intArg('--nnodes'), 1)
    .option('--node-rank <r>', 'rank of this node in [0, nnodes)', intArg('--node-rank', 0), 0)
    .option('--master-addr <addr>', 'address of node 0 (it hosts the rendezvous store)', '127.0.0.1')
    .option('--master-port <port>', 'free TCP port on node 0', intArg('--master-port', PORT_RANGE.min, PORT_RANGE.max), 29500)
    .option('--dist-timeout <seconds>', 'rendezvous and collective timeout', numberArg('--dist-timeout'), 60)
    .option('--max-restarts <n>', 'restart all ranks after a failure, up to n times; training resumes from <out>/last.ckpt', intArg('--max-restarts', 0), 0)
    .option('--monitor-interval <seconds>', 'seconds between checks of the ranks while restarts remain', numberArg('--monitor-interval'), 1)
    .argument('<command...>', 'the ibq subcommand and its flags, after --')
    .action(async (command: string[], f: Flags) => {
      if (!(f.distTimeout > 0)) throw new RangeError(`--dist-timeout: expected seconds > 0, got '${f.distTimeout}'`);
      if (f.nodeRank >= f.nnodes) throw new RangeError(`--node-rank: expected an integer in [0, ${f.nnodes - 1}], got '${f.nodeRank}'`);
      if (command[0] === 'launch') throw new RangeError('launch: the command to run cannot be launch itself');
      const threads = (program.opts() as { threads?: number }).threads;
      if (threads !== undefined) command = [...command, '--threads', String(threads)];  // per rank
      if (!(f.monitorInterval > 0)) throw new RangeError(`--monitor-interval: expected seconds > 0, got '${f.monitorInterval}'`);
      process.exitCode = await launch({
        nprocPerNode: f.nprocPerNode,
        nnodes: f.nnodes,
        nodeRank: f.nodeRank,
        masterAddr: f.masterAddr,
        masterPort: f.masterPort,
        distTimeout: f.distTimeout,
        command,
        maxRestarts: f.maxRestarts,
        monitorInterval: f.monitorInterval,
      });
    });
}
