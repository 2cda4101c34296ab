/**
 * How many intra-op threads our jobs use, and why: the CPUs this process may run on (its affinity mask), capped
 * by a cgroup CPU quota (containers, `docker --cpus`, systemd CPUQuota), divided among the local processes of
 * `ibq launch` (or torchrun: LOCAL_WORLD_SIZE), unless OMP_NUM_THREADS or the user (`setNumThreads`,
 * `--threads`) says otherwise. The decision is a pure function of those inputs (decideThreads); readThreadInputs
 * gathers them from /proc and /sys. No Node-API here: lib/native.ts applies the decision when it loads the addon.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

export type ThreadSource = 'affinity' | 'cgroup' | 'env' | 'launch' | 'user';

export interface ThreadInputs {
  /** CPUs in the process's affinity mask. */
  affinity: number;
  /** The cgroup CPU quota in CPUs (quota / period, the tightest of the process's cgroup and its parents); absent: none. */
  cgroupCpus?: number;
  /** OMP_NUM_THREADS as set in the environment. */
  ompNumThreads?: string;
  /** IBQ_LAUNCH_THREADS: the per-process count `ibq launch` computed for its ranks. */
  launchThreads?: string;
  /** LOCAL_WORLD_SIZE: processes on this node (torchrun's environment). */
  localWorldSize?: string;
  /** A count the user asked for (setNumThreads, --threads). */
  user?: number;
}

export interface ThreadDecision {
  threads: number;
  source: ThreadSource;
  /** One line saying why, e.g. 'cgroup CPU quota 1.5 CPUs (affinity: 4 CPUs)'. */
  reason: string;
}

/** A positive whole number from an environment value ('4', '4,2' as OpenMP nests them); undefined otherwise. */
export function positiveInt(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const first = v.split(',')[0]!.trim();
  if (!/^\d+$/.test(first)) return undefined;
  const n = Number(first);
  return n >= 1 && n <= 1024 ? n : undefined;
}

/** The CPUs the hardware and the cgroup quota leave to this process (at least 1). */
export function availableCpus(i: Pick<ThreadInputs, 'affinity' | 'cgroupCpus'>): { cpus: number; source: 'affinity' | 'cgroup'; reason: string } {
  const affinity = Math.max(1, Math.floor(i.affinity));
  const plural = (n: number) => `${n} CPU${n === 1 ? '' : 's'}`;
  if (i.cgroupCpus !== undefined && i.cgroupCpus > 0 && i.cgroupCpus < affinity) {
    // A quota of 1.5 CPUs gives 1 thread: a second one would be throttled in every period.
    const cpus = Math.max(1, Math.floor(i.cgroupCpus + 1e-9));
    return { cpus, source: 'cgroup', reason: `cgroup CPU quota ${+i.cgroupCpus.toFixed(3)} CPUs (affinity: ${plural(affinity)})` };
  }
  return { cpus: affinity, source: 'affinity', reason: `${plural(affinity)} in the process's affinity mask` };
}

/** The thread count for our jobs: user, then launch, then OMP_NUM_THREADS, then the cgroup quota / affinity. */
export function decideThreads(i: ThreadInputs): ThreadDecision {
  if (i.user !== undefined) return { threads: i.user, source: 'user', reason: `asked for ${i.user}` };
  const launched = positiveInt(i.launchThreads);
  if (launched !== undefined) {
    return { threads: launched, source: 'launch', reason: `ibq launch: the node's CPUs divided among its ${positiveInt(i.localWorldSize) ?? '?'} processes` };
  }
  const omp = positiveInt(i.ompNumThreads);
  if (omp !== undefined) return { threads: omp, source: 'env', reason: `OMP_NUM_THREADS=${i.ompNumThreads}` };
  const avail = availableCpus(i);
  const local = positiveInt(i.localWorldSize);
  if (local !== undefined && local > 1) {
    const threads = Math.max(1, Math.floor(avail.cpus / local));
    return { threads, source: 'launch', reason: `${avail.reason}, divided among LOCAL_WORLD_SIZE=${local} processes` };
  }
  return { threads: avail.cpus, source: avail.source, reason: avail.reason };
}

/** Threads per process for `ibq launch` with `procs` local processes (what torchrun's OMP_NUM_THREADS does, sized). */
export function launchThreads(i: Pick<ThreadInputs, 'affinity' | 'cgroupCpus'>, procs: number): number {
  return Math.max(1, Math.floor(availableCpus(i).cpus / Math.max(1, procs)));
}

/** The number of CPUs of a Linux CPU list ('0-3,8,10-11'); undefined when it cannot be parsed. */
export function parseCpuList(list: string): number | undefined {
  let n = 0;
  for (const part of list.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return undefined;
    const a = Number(m[1]), b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) return undefined;
    n += b - a + 1;
  }
  return n > 0 ? n : undefined;
}

/** CPUs of a cgroup v2 `cpu.max` ('200000 100000'; 'max 100000': none) or v1 quota and period (quota -1: none). */
export function parseCpuQuota(quota: string, period?: string): number | undefined {
  const [q, p] = period === undefined ? quota.trim().split(/\s+/) : [quota.trim(), period.trim()];
  const qn = Number(q), pn = Number(p);
  if (q === 'max' || !Number.isFinite(qn) || !Number.isFinite(pn) || qn <= 0 || pn <= 0) return undefined;
  return qn / pn;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The tightest cgroup CPU quota on the path from the process's cgroup to the root (v2, else v1); undefined: none. */
export function readCgroupCpus(procSelfCgroup = read('/proc/self/cgroup'), readFile = read): number | undefined {
  if (!procSelfCgroup) return undefined;
  let best: number | undefined;
  const take = (v: number | undefined) => {
    if (v !== undefined && (best === undefined || v < best)) best = v;
  };
  for (const line of procSelfCgroup.split('\n')) {
    const [, controllers, path] = line.split(':', 3) as [string, string | undefined, string | undefined];
    if (path === undefined) continue;
    const v2 = controllers === '';
    if (!v2 && !controllers!.split(',').includes('cpu')) continue;
    const roots = v2 ? ['/sys/fs/cgroup'] : ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpu,cpuacct'];
    for (const root of roots) {
      // In a container the cgroup path may name the host's hierarchy: also try the mount root itself.
      const parts = path.split('/').filter(Boolean);
      for (let k = parts.length; k >= 0; k--) {
        const dir = [root, ...parts.slice(0, k)].join('/');
        if (v2) {
          const max = readFile(`${dir}/cpu.max`);
          if (max !== undefined) take(parseCpuQuota(max));
        } else {
          const q = readFile(`${dir}/cpu.cfs_quota_us`), p = readFile(`${dir}/cpu.cfs_period_us`);
          if (q !== undefined && p !== undefined) take(parseCpuQuota(q, p));
        }
      }
    }
  }
  return best;
}

/** CPUs in this process's affinity mask (/proc/self/status Cpus_allowed_list; Node's count elsewhere). */
export function readAffinity(status = read('/proc/self/status')): number {
  const m = status ? /^Cpus_allowed_list:\s*(.+)$/m.exec(status) : null;
  return (m && parseCpuList(m[1]!)) || availableParallelism();
}

/** The inputs of decideThreads from this process (no user choice). */
export function readThreadInputs(env: NodeJS.ProcessEnv = process.env): ThreadInputs {
  return {
    affinity: readAffinity(),
    cgroupCpus: readCgroupCpus(),
    ompNumThreads: env.OMP_NUM_THREADS,
    launchThreads: env.IBQ_LAUNCH_THREADS,
    localWorldSize: env.LOCAL_WORLD_SIZE,
  };
}
