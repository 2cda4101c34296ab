/**
 * What a training run needs to know about data parallelism: whether it runs in a process group (from the
 * `distributed` option or the torchrun environment), its rank, the device of this rank, agreement on stopping,
 * and failure reports. One process (no group) is rank 0 of 1.
 */
import { describe } from '../core/errors.js';
import { distributedEnv } from './env.js';
import { ProcessGroup, type ProcessGroupOptions } from './process_group.js';

/**
 * `distributed` option of trainTokenizer / trainTransformer: undefined or true: join the group the torchrun
 * environment describes when WORLD_SIZE > 1 (else one process); false: one process whatever the environment;
 * a ProcessGroup: use it; an object: join that group.
 */
export type DistributedOption = boolean | ProcessGroup | ProcessGroupOptions;

export interface DistributedContext {
  group?: ProcessGroup;
  rank: number;
  worldSize: number;
  /** Global rank 0: the rank that writes checkpoints, logs and progress. */
  isMain: boolean;
  /** The device of this rank: 'cuda' becomes 'cuda:LOCAL_RANK' in a group. */
  device: string | undefined;
  /** True when any rank asks to stop (a collective in a group: every rank calls it at the same step). */
  anyStops(local: boolean): Promise<boolean>;
  /** Element-wise mean over ranks (identity for one process). */
  mean(values: number[]): Promise<number[]>;
  /** Tells the other ranks why this one stops (no-op for one process). */
  fail(err: unknown): void;
}

/** Joins the group `opt` describes (see DistributedOption). */
export async function distributedContext(opt: DistributedOption | undefined, device: string | undefined): Promise<DistributedContext> {
  let group: ProcessGroup | undefined;
  let localRank = 0;
  if (opt instanceof ProcessGroup) {
    group = opt;
  } else if (opt !== undefined && opt !== null && typeof opt === 'object') {
    group = await ProcessGroup.init({ ...opt, device: opt.device ?? device });
  } else if (opt === undefined || opt === true) {
    const env = distributedEnv();
    if (env) {
      localRank = env.localRank;
      const dev = device?.startsWith('cuda') ? `cuda:${localRank}` : undefined;
      group = await ProcessGroup.fromEnv(env, { device: dev });
    }
  } else if (opt !== false) {
    throw new TypeError(`distributed: expected a boolean, a ProcessGroup or process-group options, got ${describe(opt)}`);
  }
  if (group && group.worldSize === 1) group = undefined;
  const rank = group?.rank ?? 0;
  return {
    group,
    rank,
    worldSize: group?.worldSize ?? 1,
    isMain: rank === 0,
    device: group && device?.startsWith('cuda') && !device.includes(':') ? `cuda:${localRank}` : device,
    anyStops: async (local) => (group ? (await group.sum([local ? 1 : 0]))[0]! > 0 : local),
    mean: async (values) => (group ? group.mean(values) : values),
    fail: (err) => group?.reportFailure(err instanceof Error ? err.message : String(err)),
  };
}
