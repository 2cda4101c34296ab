/**
 * A c10d process group for data-parallel training, as torch.distributed.init_process_group(init_method='env://'):
 * TCPStore rendezvous at masterAddr:masterPort (rank 0 hosts the store), Gloo on the CPU, NCCL on CUDA
 * (device cuda:LOCAL_RANK). Collective failures reject with DistributedError naming this rank and the rank that
 * failed (gone, or stopped with a reported reason).
 */
import { checkInt, checkNumber, checkString, IbqError } from '../core/errors.js';
import { native, type ProcessGroupNative } from '../native.js';
import type { Tensor } from '../core/tensor.js';
import type { DistributedEnv } from './env.js';
import { PORT_RANGE, rankRange } from './ranges.js';

/**
 * A collective or the rendezvous failed: a rank is gone or failed, a timeout, a port in use, no master
 * (code ERR_IBQ_DISTRIBUTED; native training steps reject with that code too).
 */
export class DistributedError extends IbqError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_IBQ_DISTRIBUTED', message, options);
    this.name = 'DistributedError';
  }
}

function wrapError(e: unknown): unknown {
  if (e instanceof Error && !(e instanceof TypeError) && !(e instanceof RangeError)) {
    return new DistributedError(e.message, { cause: e });
  }
  return e;
}

export interface ProcessGroupOptions {
  masterAddr: string;
  masterPort: number;
  worldSize: number;
  rank: number;
  /** Rendezvous and collective timeout in seconds (default 60). */
  timeoutSeconds?: number;
  /** 'cpu' (Gloo, default) or 'cuda:i' (NCCL). */
  device?: string;
  /** Network interface Gloo binds to (GLOO_SOCKET_IFNAME); default: the address that routes to the master. */
  glooInterface?: string;
  /** Ranks per node (LOCAL_WORLD_SIZE): a rendezvous that times out names the nodes of the missing ranks too. */
  ranksPerNode?: number;
  /**
   * When the rendezvous timeout starts, in ms since the Unix epoch (Date.now()'s clock): the start of this process
   * or of its launcher (distributedEnv), so that the ranks present give up timeoutSeconds after the launch, their
   * start-up included (see rendezvousDeadline). Default: the call.
   */
  startedAt?: number;
}

/**
 * When a rendezvous whose timeout counts from `startedAt` gives up (ms since the epoch): timeoutSeconds after
 * `startedAt`, but never sooner after this rank's arrival (`now`) than a quarter of the timeout, nor than half of
 * this rank's own start-up (now - startedAt; at most the whole timeout). Ranks whose start-up took (nearly) the whole
 * timeout — a loaded machine, a timeout shorter than the start-up — still meet when they arrive about as late as
 * each other, instead of failing on arrival; a missing rank is named once the timeout from the launch has passed,
 * when the present ones started in under 3/4 of it.
 */
export function rendezvousDeadline(startedAt: number, timeoutSeconds: number, now = Date.now()): number {
  const timeout = timeoutSeconds * 1000;
  const floor = Math.max(timeout / 4, Math.min(timeout, (now - startedAt) / 2));
  return Math.max(startedAt + timeout, now + floor);
}

export class ProcessGroup {
  private constructor(readonly native: ProcessGroupNative, readonly rank: number, readonly worldSize: number) {}

  /**
   * Joins the group; resolves when all worldSize ranks have joined.
   * @throws RangeError/TypeError for bad options; DistributedError when the port is in use (rank 0), the master
   *   is unreachable or not all ranks join within the timeout (the message names the ranks, and with ranksPerNode
   *   the nodes, that did not arrive; the whole rendezvous keeps to one timeout, counted from `startedAt` when given)
   */
  static async init(o: ProcessGroupOptions): Promise<ProcessGroup> {
    const worldSize = checkInt(o.worldSize, 'worldSize', 1);
    const ranks = rankRange(worldSize);
    const opts = {
      masterAddr: checkString(o.masterAddr, 'masterAddr'),
      masterPort: checkInt(o.masterPort, 'masterPort', PORT_RANGE.min, PORT_RANGE.max),
      worldSize,
      rank: checkInt(o.rank, 'rank', ranks.min, ranks.max),
      timeoutSeconds: checkNumber(o.timeoutSeconds ?? 60, 'timeoutSeconds', 0.001),
      device: o.device === undefined ? undefined : checkString(o.device, 'device'),
      glooInterface: o.glooInterface === undefined ? undefined : checkString(o.glooInterface, 'glooInterface'),
      ranksPerNode: o.ranksPerNode === undefined ? undefined : checkInt(o.ranksPerNode, 'ranksPerNode', 1, worldSize),
      rendezvousDeadlineMs: undefined as number | undefined,
    };
    if (o.startedAt !== undefined) opts.rendezvousDeadlineMs = rendezvousDeadline(checkNumber(o.startedAt, 'startedAt', 0), opts.timeoutSeconds);
    const handle = new native.ProcessGroupHandle();
    try {
      await handle.init(opts);
    } catch (e) {
      throw wrapError(e);
    }
    return new ProcessGroup(handle, opts.rank, worldSize);
  }

  /** The group the torchrun environment describes (see distributedEnv). */
  static fromEnv(env: DistributedEnv, opts: { device?: string } = {}): Promise<ProcessGroup> {
    return ProcessGroup.init({ ...env, device: opts.device ?? env.device });
  }

  /** Element-wise mean over ranks. */
  async mean(values: number[]): Promise<number[]> {
    try {
      const s = await this.native.allReduceValues(Float64Array.from(values));
      return Array.from(s, (v) => v / this.worldSize);
    } catch (e) {
      throw wrapError(e);
    }
  }

  /** Element-wise sum over ranks. */
  async sum(values: number[]): Promise<number[]> {
    try {
      return Array.from(await this.native.allReduceValues(Float64Array.from(values)));
    } catch (e) {
      throw wrapError(e);
    }
  }

  /** In-place element-wise sum over ranks of each tensor (same shapes and dtypes on every rank; on this rank's device). */
  async sumTensors(tensors: Tensor[]): Promise<void> {
    try {
      await this.native.allReduceTensors(tensors.map((t) => t.handle));
    } catch (e) {
      throw wrapError(e);
    }
  }

  async barrier(): Promise<void> {
    try {
      await this.native.barrier();
    } catch (e) {
      throw wrapError(e);
    }
  }

  /** Tells the other ranks (through the rendezvous store) that this rank stops, and why. Never throws. */
  reportFailure(message: string): void {
    try {
      this.native.reportFailure(`${message}`.slice(0, 2000));
    } catch {
      /* best effort */
    }
  }

  destroy(): void {
    this.native.destroy();
  }
}

export { wrapError as distributedError };
