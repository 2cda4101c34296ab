import { checkInt } from './errors.js';
import { native } from '../native.js';

export interface Info {
  /** TORCH_VERSION of the libtorch the addon was compiled against, e.g. '1.13.0'. */
  libtorch: string;
  cuda: boolean;
  cudaDevices: number;
  /** Intra-op threads libtorch uses for native calls. */
  threads: number;
}

/** What the addon runs on. */
export function info(): Info {
  const i = native.info();
  return { libtorch: i.libtorch, cuda: i.cuda, cudaDevices: i.cudaDevices, threads: i.threads };
}

/** Sets libtorch's intra-op thread count for all later native calls (1..1024). */
export function setNumThreads(n: number): void {
  native.setNumThreads(checkInt(n, 'threads', 1, 1024));
}
