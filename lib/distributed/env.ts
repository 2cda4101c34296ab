/**
 * The torchrun environment of a data-parallel process: MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK
 * (RANK may instead come from NODE_RANK x LOCAL_WORLD_SIZE + LOCAL_RANK), IBQ_DIST_TIMEOUT (seconds, `ibq launch
 * --dist-timeout`, default 60), IBQ_LAUNCH_TIME_MS (when the launcher started: the rendezvous timeout counts from
 * there; default: this process's start) and GLOO_SOCKET_IFNAME. `ibq launch` sets all of them.
 */
import { PORT_RANGE, rankRange } from './ranges.js';

export interface DistributedEnv {
  masterAddr: string;
  masterPort: number;
  worldSize: number;
  /** Global rank in [0, worldSize). */
  rank: number;
  /** Rank on this node (the CUDA device index with NCCL). */
  localRank: number;
  timeoutSeconds: number;
  glooInterface?: string;
  /** LOCAL_WORLD_SIZE (processes per node), when set: names the nodes of ranks that never join. */
  ranksPerNode?: number;
  /**
   * When the rendezvous timeout starts (ms since the Unix epoch): IBQ_LAUNCH_TIME_MS (`ibq launch` sets it to the
   * start of the launcher, or of the restart), else the start of this process.
   */
  startedAt: number;
  /** Set by callers: 'cpu' or 'cuda:LOCAL_RANK'. */
  device?: string;
}

function intVar(env: NodeJS.ProcessEnv, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || n < min || n > max) {
    throw new RangeError(`${name}: expected an integer in [${min}, ${max}], got '${v}'`);
  }
  return n;
}

/**
 * The process group this process belongs to, or undefined when WORLD_SIZE is unset or 1 (one process).
 * @throws RangeError naming the variable that is missing or malformed
 */
export function distributedEnv(env: NodeJS.ProcessEnv = process.env): DistributedEnv | undefined {
  const worldSize = intVar(env, 'WORLD_SIZE', 1);
  if (worldSize === undefined || worldSize === 1) return undefined;
  const masterAddr = env.MASTER_ADDR;
  if (!masterAddr) throw new RangeError('MASTER_ADDR: expected the address of the rank-0 host (WORLD_SIZE > 1 is set)');
  const masterPort = intVar(env, 'MASTER_PORT', PORT_RANGE.min, PORT_RANGE.max);
  if (masterPort === undefined) throw new RangeError('MASTER_PORT: expected a free TCP port on the rank-0 host (WORLD_SIZE > 1 is set)');
  const ranks = rankRange(worldSize);
  const localRank = intVar(env, 'LOCAL_RANK', ranks.min, ranks.max) ?? 0;
  let rank = intVar(env, 'RANK', ranks.min, ranks.max);
  if (rank === undefined) {
    const nodeRank = intVar(env, 'NODE_RANK', 0) ?? intVar(env, 'GROUP_RANK', 0);
    const perNode = intVar(env, 'LOCAL_WORLD_SIZE', 1);
    if (nodeRank === undefined || perNode === undefined) {
      throw new RangeError('RANK: expected the global rank, or NODE_RANK with LOCAL_WORLD_SIZE and LOCAL_RANK');
    }
    rank = nodeRank * perNode + localRank;
    if (rank >= worldSize) throw new RangeError(`RANK: NODE_RANK x LOCAL_WORLD_SIZE + LOCAL_RANK = ${rank} is not below WORLD_SIZE ${worldSize}`);
  }
  const t = env.IBQ_DIST_TIMEOUT;
  const timeoutSeconds = t === undefined || t === '' ? 60 : Number(t);
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) throw new RangeError(`IBQ_DIST_TIMEOUT: expected seconds > 0, got '${t}'`);
  const perNode = intVar(env, 'LOCAL_WORLD_SIZE', 1, worldSize);
  const l = env.IBQ_LAUNCH_TIME_MS;
  const startedAt = l === undefined || l === '' ? performance.timeOrigin : Number(l);
  if (!Number.isFinite(startedAt) || startedAt <= 0) throw new RangeError(`IBQ_LAUNCH_TIME_MS: expected ms since the Unix epoch, got '${l}'`);
  return { masterAddr, masterPort, worldSize, rank, localRank, timeoutSeconds, glooInterface: env.GLOO_SOCKET_IFNAME || undefined, ranksPerNode: perNode, startedAt };
}

/**
 * In a process started by `ibq launch` (IBQ_LAUNCHER_PID set): exits with code 1 once the launcher is gone
 * (killed with SIGKILL, say), so that no rank outlives it. The check (once a second) does not keep the process
 * alive.
 */
export function watchLauncher(env: NodeJS.ProcessEnv = process.env): void {
  const pid = Number(env.IBQ_LAUNCHER_PID);
  if (!Number.isInteger(pid) || pid <= 0) return;
  const t = setInterval(() => {
    if (process.ppid !== pid) {
      process.stderr.write(`ibq: the launcher (pid ${pid}) is gone; stopping rank ${env.RANK ?? '?'}\n`);
      process.exit(1);
    }
  }, 1000);
  t.unref();
}
