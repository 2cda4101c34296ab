/**
 * `ibq launch`: torchrun for ibq commands. Starts --nproc-per-node processes of `ibq <command ...>` on this
 * node with the torchrun environment (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE,
 * NODE_RANK, IBQ_DIST_TIMEOUT), prefixes every output line with the global rank, forwards SIGINT/SIGTERM, and
 * exits non-zero when any rank fails: the other ranks then get the collective timeout to stop by themselves
 * (naming the failed rank), after which they are terminated. No child outlives the launcher (each watches it).
 *
 *   ibq launch --nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P]
 *              [--dist-timeout S] -- <ibq subcommand and its flags>
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

/** Runs the ranks of this node; resolves with the launcher's exit code. */
export async function launch(o: {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  distTimeout: number;
  command: string[];
}): Promise<number> {
  const world = o.nprocPerNode * o.nnodes;
  const log = (m: string) => process.stderr.write(`ibq launch: ${m}\n`);
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
      IBQ_LAUNCHER_PID: String(process.pid),
      ...rankThreads(o.nprocPerNode),
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
  const seen = new Map<string, number>();
  const onFailure = (r: Rank) => {
    if (firstFailure) return;
    firstFailure = r;
    if (live().length === 0 || seen.size > 0) return; // after a forwarded signal every rank is stopping anyway
    log(`rank ${r.rank} (pid ${r.child.pid}) ${describeExit(r)}; the other ranks get ${o.distTimeout} s to stop`);
    timers.push(
      setTimeout(() => {
        if (live().length) log(`terminating ranks ${live().map((x) => x.rank).join(', ')} (rank ${r.rank} failed)`);
        signalAll('SIGTERM');
        timers.push(setTimeout(() => signalAll('SIGKILL'), 5000));
      }, o.distTimeout * 1000),
    );
  };
  for (const r of ranks) {
    r.child.once('exit', (code, signal) => {
      if (code !== 0 || signal) onFailure(r);
    });
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
  const failed = ranks.filter((r) => r.code !== 0 || r.signal);
  if (failed.length === 0) return 0;
  const first = firstFailure ?? failed[0]!;
  const others = failed.filter((r) => r !== first).map((r) => `rank ${r.rank} ${describeExit(r)}`);
  log(`failed: rank ${first.rank} ${describeExit(first)}${others.length ? `; then ${others.join(', ')}` : ''}`);
  if (seen.has('SIGINT') && failed.every((r) => r.code === 130)) return 130;
  return first.code && first.code > 0 ? first.code : 1;
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
    .argument('<command...>', 'the ibq subcommand and its flags, after --')
    .action(async (command: string[], f: Flags) => {
      if (!(f.distTimeout > 0)) throw new RangeError(`--dist-timeout: expected seconds > 0, got '${f.distTimeout}'`);
      if (f.nodeRank >= f.nnodes) throw new RangeError(`--node-rank: expected an integer in [0, ${f.nnodes - 1}], got '${f.nodeRank}'`);
      if (command[0] === 'launch') throw new RangeError('launch: the command to run cannot be launch itself');
      const threads = (program.opts() as { threads?: number }).threads;
      if (threads !== undefined) command = [...command, '--threads', String(threads)];  // per rank
      process.exitCode = await launch({
        nprocPerNode: f.nprocPerNode,
        nnodes: f.nnodes,
        nodeRank: f.nodeRank,
        masterAddr: f.masterAddr,
        masterPort: f.masterPort,
        distTimeout: f.distTimeout,
        command,
      });
    });
}
