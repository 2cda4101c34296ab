/** Types of native/bindings/transformer.cpp: the transformer handle and the addon functions that make one. */
import type { JobOptions, ModuleHandleNative, TensorHandle } from './handles.js';
import type { ProcessGroupNative } from './process_group.js';

/** Native handle of ibq::Transformer (see lib/transformer.ts). Config objects use the official field names. */
export interface TransformerNative extends ModuleHandleNative {
  forward(tokens: TensorHandle, labels: TensorHandle): Promise<TensorHandle>;
  sample(
    labels: TensorHandle,
    opts: JobOptions & { cfgScale: number; temperature: number; topK: number; topP: number; greedy: boolean; seed?: number; steps?: number },
  ): Promise<TensorHandle>;
  lossAndGrads(tokens: TensorHandle, labels: TensorHandle, wrt: string[], dropLabels: boolean): Promise<{ loss: number; grads: [string, TensorHandle][] }>;
  /**
   * accumulate: the micro-batches' loss divisor (and most micro-batches); microBatch: rows of each (the last may be
   * smaller; absent: accumulate near-equal ones); nonfiniteRanks: data-parallel ranks whose loss was not finite.
   */
  trainStep(
    tokens: TensorHandle,
    labels: TensorHandle,
    opts: { lr: number; weightDecay: number; clip: number; autocast?: 'bfloat16' | 'float16'; accumulate?: number; microBatch?: number },
  ): Promise<{ loss: number; gradNorm: number; nonfiniteRanks: number[] }>;
  /** Collective: broadcasts weights and buffers from rank 0; later trainSteps average gradients (null: off). */
  setDataParallel(pg: ProcessGroupNative | null, opts?: { bucketCapMb?: number }): Promise<void>;
  optimizerState(): [string, TensorHandle][];
  loadOptimizerState(entries: [string, TensorHandle][]): void;
  /** uint8 [n] state of the default generator of the model's device (training dropouts draw from it). */
  rngState(): TensorHandle;
  setRngState(state: TensorHandle): void;
  config(): Record<string, number | boolean | null>;
  to(device: string): void;
}
/** Native handle of the continuous-batching engine (native/bindings/generator.cpp; lib/transformer/generator.ts). */
export interface GeneratorNative {
  /** Queues request `id`; the Promise of the decode loop it started, or undefined when one is running. */
  submit(
    id: number,
    label: number,
    opts: { cfgScale: number; temperature: number; topK: number; topP: number; greedy: boolean; seed: number },
  ): Promise<void> | undefined;
  /** Drops a queued or running request (its slot is freed at the next step). */
  cancel(id: number): void;
  /** int64 [block_size] tokens of a finished request (after onFinished(id)); undefined when none. */
  take(id: number): TensorHandle | undefined;
  stats(): { queued: number; running: number };
}
/** The addon functions of native/bindings/transformer.cpp (part of NativeAddon). */
export interface TransformerAddon {
  TransformerHandle: new (config: object, seed?: number, device?: string) => TransformerNative;
  /** The engine of one transformer: static buffers for maxBatch requests; onFinished(id) when a request is done. */
  GeneratorHandle: new (transformer: { moduleRef(): unknown }, maxBatch: number, onFinished: (id: number) => void) => GeneratorNative;
  /** The same model created on a worker thread (random initialisation of a large model takes seconds). */
  buildTransformer(config: object, seed?: number, device?: string): Promise<TransformerNative>;
  /** A preset's config, or the (validated) config given, plus parameterCount and the preset it equals ('' if none). */
  transformerConfig(config: object | string): Record<string, number | boolean | null | string>;
}
