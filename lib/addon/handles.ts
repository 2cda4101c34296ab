/** The addon's types shared by every native class: tensor and model handles, job options, info(). */

/** What every native model handle provides (see native/bindings/module_handle.h). */
export interface ModuleHandleNative {
  stateDict(): [string, TensorHandle][];
  /** `skip`: key prefixes left out (not copied). */
  snapshot(skip?: readonly string[]): Promise<[string, TensorHandle][]>;
  /** `skip`: key prefixes that are not the model's own (neither loaded nor reported as unexpected). */
  loadStateDict(entries: [string, TensorHandle][], strict: boolean, skip?: readonly string[]): Promise<LoadResult>;
  parameterNames(): string[];
  /** An External carrying the module and its job queue, for native objects built on this model. */
  moduleRef(): unknown;
  setTraining(training: boolean): void;
  isTraining(): boolean;
  device(): string;
  dispose(): void;
}

export interface LoadResult {
  missing: string[];
  unexpected: string[];
  mismatched: { key: string; expected: number[]; got: number[] }[];
}



/** Opaque native tensor handle; lib/tensor.ts wraps it in the public `Tensor` class. */
export interface TensorHandle {
  shape(): number[];
  dtype(): string;
  device(): string;
  disposed(): boolean;
  dataSync(raw?: boolean): ArrayBufferView;
  data(raw?: boolean): Promise<ArrayBufferView>;
  to(device: string): TensorHandle;
  dispose(): void;
}

/** Options every long native call accepts (set by lib/, never by users directly). */
export interface JobOptions {
  onProgress?: (step: number, total: number) => void;
  /** Int32Array(1) that lib/ sets to 1 when the call's AbortSignal fires. */
  abortFlag?: Int32Array;
}

export interface NativeInfo {
  libtorch: string;
  cuda: boolean;
  cudaDevices: number;
  threads: number;
  /** Why: 'user', 'launch', 'env', 'cgroup', 'affinity' (lib/core/threads.ts); 'libtorch' before any was set. */
  threadsSource: string;
  threadsReason: string;
  /** Whether jobs hold the BLAS (OpenBLAS) to one thread while they run (native/ibq/core/cpu_threads.h). */
  blasOneThread: boolean;
  nativeBf16: boolean;
  workers: number;
  libtorchDir?: string;
  quantizerKernels: string[];
  /** The kernel table of our other CPU kernels (GroupNorm, the FMA probe): 'avx512', 'avx2' or 'aten' (none; IBQ_KERNEL). */
  kernel: string;
  onednn: boolean;
}
