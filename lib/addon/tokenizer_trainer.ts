/** Types of native/bindings/tokenizer_trainer.cpp. */
import type { ModuleHandleNative, TensorHandle } from './handles.js';
import type { ProcessGroupNative } from './process_group.js';

/** One Adam optimizer's state: per parameter the step count (0: no state yet) and the two moments. */
export interface AdamStateNative {
  lr: number;
  steps: number[];
  expAvg: (TensorHandle | null)[];
  expAvgSq: (TensorHandle | null)[];
}
export interface TokenizerTrainerStateNative {
  /** [generator, discriminator] */
  optimizers: [AdamStateNative, AdamStateNative];
  /** LambdaLR.last_epoch of both schedulers. */
  schedulerSteps: number;
  /** LeCAM EMAs [logits_real_ema, logits_fake_ema]. */
  lecam: [number, number];
  /** torch.get_rng_state() of the CPU generator (uint8). */
  rng: TensorHandle;
}
export interface TokenizerTrainerNative extends ModuleHandleNative {
  step(
    x: TensorHandle,
    globalStep: number,
    /** Micro-batches' divisor (and most micro-batches); microBatch: rows of each (0 / absent: accumulate near-equal ones). */
    accumulate?: number,
    microBatch?: number,
  ): Promise<{ log: Record<string, number>; nonfinite: '' | 'generator' | 'discriminator'; nonfiniteRanks: number[]; lr: [number, number] }>;
  /** Collective: broadcasts parameters and buffers from rank 0; later steps average gradients (null: off). */
  setDataParallel(pg: ProcessGroupNative | null, opts?: { bucketCapMb?: number }): Promise<void>;
  lossAndGrads(
    x: TensorHandle,
    optimizerIdx: number,
    globalStep: number,
    wrt: string[],
  ): Promise<{ loss: number; log: Record<string, number>; grads: [string, TensorHandle][] }>;
  endEpoch(epoch: number): Promise<void>;
  lpips(in0: TensorHandle, in1: TensorHandle): Promise<TensorHandle>;
  loadLpipsTorchvision(vgg16: [string, TensorHandle][], lin: [string, TensorHandle][]): Promise<void>;
  getState(): Promise<TokenizerTrainerStateNative>;
  setState(state: Partial<Omit<TokenizerTrainerStateNative, 'optimizers'>> & { optimizers?: AdamStateNative[] }): Promise<void>;
}
