/**
 * The ranges of the process-group settings, declared once for the three ways they are given: ProcessGroup.init
 * options, the torchrun environment (distributedEnv) and the `ibq launch` flags. Each of those checks its own form
 * of input against them and names it (masterPort, MASTER_PORT, --master-port); the binding only converts, the
 * core only asserts.
 */

/** TCP ports the rendezvous store can listen on. */
export const PORT_RANGE = { min: 1, max: 65535 } as const;

/** Ranks of a group of `size` processes (or of a run of `size` nodes): 0 to size - 1. */
export function rankRange(size: number): { min: number; max: number } {
  return { min: 0, max: size - 1 };
}
