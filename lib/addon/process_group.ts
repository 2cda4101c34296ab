/** Types of native/bindings/process_group.cpp. */
import type { TensorHandle } from './handles.js';

/** A c10d process group (TCPStore rendezvous; Gloo on the CPU, NCCL on CUDA). Collectives reject with an Error
 *  naming this rank and the rank that failed. */
export interface ProcessGroupNative {
  init(opts: {
    masterAddr: string;
    masterPort: number;
    worldSize: number;
    rank: number;
    timeoutSeconds: number;
    device?: string;
    glooInterface?: string;
    ranksPerNode?: number;
    /** When the rendezvous gives up, ms since the Unix epoch (default: timeoutSeconds from the call). */
    rendezvousDeadlineMs?: number;
  }): Promise<void>;
  rank(): number;
  worldSize(): number;
  /** Element-wise sum over ranks. */
  allReduceValues(values: Float64Array): Promise<Float64Array>;
  /** In-place sum over ranks. */
  allReduceTensors(tensors: TensorHandle[]): Promise<void>;
  barrier(): Promise<void>;
  /** Records in the rendezvous store that this rank stops, and why (best effort). */
  reportFailure(message: string): void;
  destroy(): void;
}
