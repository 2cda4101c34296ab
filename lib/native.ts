/**
 * The only module that loads the native addon. It checks the sidecar JSON written at build time (the
 * libtorch the addon was compiled against) before loading, wraps load failures in an actionable error, and
 * types the whole native surface. Everything else in lib/ imports `native` from here.
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { FieldTable } from './config/fields.js';
import { IbqError } from './core/errors.js';
import { isMainThread } from 'node:worker_threads';

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
  workers: number;
  libtorchDir?: string;
  quantizerKernels: string[];
}

// ---- AR transformer: native/bindings/transformer.cpp ----
/** Native handle of ibq::Transformer (see lib/transformer.ts). Config objects use the official field names. */
export interface TransformerNative extends ModuleHandleNative {
  forward(tokens: TensorHandle, labels: TensorHandle): Promise<TensorHandle>;
  sample(
    labels: TensorHandle,
    opts: JobOptions & { cfgScale: number; temperature: number; topK: number; topP: number; greedy: boolean; seed?: number; steps?: number },
  ): Promise<TensorHandle>;
  lossAndGrads(tokens: TensorHandle, labels: TensorHandle, wrt: string[], dropLabels: boolean): Promise<{ loss: number; grads: [string, TensorHandle][] }>;
  /** accumulate: micro-batches in `tokens` (rows divisible by it); nonfiniteRanks: data-parallel ranks whose loss was not finite. */
  trainStep(
    tokens: TensorHandle,
    labels: TensorHandle,
    opts: { lr: number; weightDecay: number; clip: number; autocast?: 'bfloat16' | 'float16'; accumulate?: number },
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
export interface TransformerNative {
  TransformerHandle: new (config: object, seed?: number, device?: string) => TransformerNative;
  /** The same model created on a worker thread (random initialisation of a large model takes seconds). */
  buildTransformer(config: object, seed?: number, device?: string): Promise<TransformerNative>;
  /** A preset's config, or the (validated) config given, plus parameterCount and the preset it equals ('' if none). */
  transformerConfig(config: object | string): Record<string, number | boolean | null | string>;
}
// ---- end AR transformer ----------------------------------------------------------------------------

// ---- distributed: native/bindings/process_group.cpp ----
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
// ---- end distributed ----

export interface NativeAddon extends TransformerNative {
  ProcessGroupHandle: new () => ProcessGroupNative;
  info(): NativeInfo;
  /**
   * The one declaration of each config (C++ for_each_field, native/bindings/config_fields.cpp): ddconfig,
   * ibq_quantizer, vq_quantizer, lossconfig, tokenizer_trainer, transformer. lib/ uses the generated copies
   * (lib/tokenizer/config_fields.ts, lib/transformer/config_fields.ts); the generator and the test read this.
   */
  configFields(): Record<string, FieldTable>;
  /**
   * Stops this environment's native jobs: no new ones, queued ones never start, running ones are cancelled
   * and awaited (their Promises never settle). `processExiting`: the process is about to call exit().
   */
  shutdown(processExiting: boolean): void;
  setNumThreads(n: number): void;
  TensorHandle: new () => TensorHandle;
  tensorFromData(data: ArrayBufferView, shape: number[], dtype: string, device?: string, raw?: boolean): TensorHandle;
  /** t[rows] along dim 0 on t's device (as `dtype` when given), copied on a worker thread. RangeError for a bad row. */
  selectRows(t: TensorHandle, rows: BigInt64Array, dtype?: string): Promise<TensorHandle>;
  testOps: {
    matmulLoop(size: number, iters: number, opts?: JobOptions & { queued?: boolean }): Promise<number>;
    fail(message: string, async?: boolean): Promise<never>;
  };

  // ---- checkpoints and files: native/bindings/tensor_io.cpp, native/ibq/tensor_io.h ----
  io: {
    /** The bytes of a record of a torch.save zip archive (name relative to the archive folder). */
    zipRecord(path: string, name: string): Promise<Buffer>;
    /**
     * Reads storages (zip records, or byte ranges of a plain file) once each and returns one tensor per
     * view; views of one storage share its memory. `mappable` storages (uncompressed bytes, aligned, no byte
     * swap) are memory-mapped copy-on-write instead of read (native/ibq/tensor_io.h; IBQ_NO_MMAP=1 reads).
     */
    loadTensors(
      path: string,
      zip: boolean,
      storages: [record: string, fileOffset: number, nbytes: number, dtype: string, byteswap: boolean, mappable?: boolean][],
      tensors: [storage: number, sizes: number[], strides: number[], offset: number][],
    ): Promise<TensorHandle[]>;
    /** Writes a torch.save zip archive (PyTorchStreamWriter; adds "version"), then fsyncs it. */
    writeZip(path: string, records: [name: string, data: Uint8Array | TensorHandle][]): Promise<void>;
    /** Writes bytes and tensor bytes one after another to `path`, then fsyncs it. */
    writeFile(path: string, parts: (Uint8Array | TensorHandle)[]): Promise<void>;
  };
  // ---- end checkpoints and files ----

  // ---- tokenizer area: handles of native/bindings/{tokenizer,ibq_quantizer,vector_quantizer}.cpp ----
  TokenizerHandle: new (config: object, device?: string, seed?: number) => TokenizerHandleNative;
  /** The same model created on a worker thread. */
  buildTokenizer(config: object, device?: string, seed?: number): Promise<TokenizerHandleNative>;
  IBQuantizerHandle: new (options: object, device?: string, seed?: number) => QuantizerHandleNative<IBQOutputName>;
  VectorQuantizerHandle: new (options: object, device?: string, seed?: number) => QuantizerHandleNative<VQOutputName>;
  // ---- end of tokenizer area ----

  // ---- evaluation: native/bindings/{fid_inception,lpips,metrics}.cpp, native/ibq/{inception,lpips,metrics}.h ----
  FidInceptionHandle: new () => FidInceptionHandleNative;
  LpipsHandle: new (net: 'vgg' | 'alex') => LpipsHandleNative;
  metrics: {
    frechetDistance(stats1: GaussianStatsNative, stats2: GaussianStatsNative, eps?: number): Promise<{ value: number; warning: string }>;
    featureStats(features: TensorHandle): Promise<GaussianStatsNative & { n: number }>;
    inceptionScore(logits: TensorHandle, splits: number): Promise<{ mean: number; std: number }>;
    ssimPsnr(a: TensorHandle, b: TensorHandle, symmetric: boolean): Promise<{ ssim: TensorHandle; psnr: TensorHandle }>;
    clamp(x: TensorHandle, lo: number, hi: number): TensorHandle;
    clampAsync(x: TensorHandle, lo: number, hi: number): Promise<TensorHandle>;
    /** float [B, C, H, W] -> uint8 [B, H, W, C] as the official sample script converts (toUint8Images). */
    samplePixels(x: TensorHandle): Promise<TensorHandle>;
    codebookUsage(indices: TensorHandle, nEmbed: number): Promise<{ histogram: TensorHandle; used: number; utilization: number }>;
    FeatureMomentsHandle: new () => {
      add(features: TensorHandle): Promise<void>;
      stats(): Promise<GaussianStatsNative & { n: number }>;
      count(): number;
    };
  };
  // ---- end evaluation ----
  // ---- tokenizer training: native/bindings/tokenizer_trainer.cpp ----
  TokenizerTrainerHandle: new (
    tokenizer: { moduleRef(): unknown },
    lossconfig: object,
    options: object,
    seed?: number,
  ) => TokenizerTrainerNative;
  /** The same trainer created on a worker thread, after the tokenizer's queued jobs. */
  buildTokenizerTrainer(tokenizer: { moduleRef(): unknown }, lossconfig: object, options: object, seed?: number): Promise<TokenizerTrainerNative>;
  // ---- end of tokenizer training ----
}

// ---- tokenizer training: native/bindings/tokenizer_trainer.cpp ----
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
    accumulate?: number,
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
// ---- end of tokenizer training ----

// ---- tokenizer area: IBQ tokenizer and quantizers (native/bindings/{tokenizer,ibq_quantizer,vector_quantizer}.cpp) ----

/** Options of the tokenizer/quantizer calls: run under autocast with this dtype (CPU: bfloat16 only). */
export interface AutocastOptions {
  autocast?: 'bfloat16' | 'float16';
}
export type TokenizerOutputName =
  | 'h' | 'z_q' | 'indices' | 'xrec' | 'quant_loss' | 'sample_entropy' | 'avg_entropy' | 'entropy_loss';
export interface TokenizerHandleNative extends ModuleHandleNative {
  forward(x: TensorHandle, opts?: AutocastOptions): Promise<Record<TokenizerOutputName, TensorHandle>>;
  encode(x: TensorHandle, opts?: AutocastOptions): Promise<{ indices: TensorHandle; z_q: TensorHandle }>;
  decode(indices: TensorHandle, opts?: AutocastOptions): Promise<TensorHandle>;
}
export interface QuantizerHandleNative<Out extends string> extends ModuleHandleNative {
  forward(z: TensorHandle, opts?: AutocastOptions): Promise<Record<Out, TensorHandle>>;
  lossAndGrads(
    z: TensorHandle,
    gradOut: TensorHandle,
    opts?: AutocastOptions & { quant_loss_weight?: number; entropy_loss_weight?: number },
  ): Promise<{ outputs: Record<Out | 'total', TensorHandle>; grads: [string, TensorHandle][] }>;
  getCodebookEntry(indices: TensorHandle): Promise<TensorHandle>;
}
export type IBQOutputName = 'z_q' | 'quant_loss' | 'sample_entropy' | 'avg_entropy' | 'entropy_loss' | 'indices';
export type VQOutputName = 'z_q' | 'loss' | 'indices';
// ---- end of tokenizer area ----

// ---- evaluation: FID Inception, LPIPS and metric handles ----
export interface GaussianStatsNative {
  mu: TensorHandle;
  sigma: TensorHandle;
  n?: number;
}
export interface FidInceptionHandleNative extends ModuleHandleNative {
  forward(
    images: TensorHandle,
    opts?: JobOptions & { input?: 'unit' | 'symmetric' | 'uint8'; batchSize?: number },
  ): Promise<{ pool3: TensorHandle; logits: TensorHandle; logitsUnbiased: TensorHandle }>;
}
export interface LpipsHandleNative extends ModuleHandleNative {
  forward(in0: TensorHandle, in1: TensorHandle, normalize: boolean, opts?: JobOptions): Promise<TensorHandle>;
  loadOfficial(entries: [string, TensorHandle][]): Promise<void>;
  loadTorchvision(backbone: [string, TensorHandle][], lin: [string, TensorHandle][]): Promise<void>;
  net(): 'vgg' | 'alex';
}
// ---- end evaluation ----

/** The sidecar cmake (or scripts/prebuild) writes next to the addon. */
interface Sidecar {
  version: string;
  libdir: string;
  versionHeader?: string;
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * How to (re)build the addon of the package at `dir`: in a git checkout `npm run build`; in a package
 * installed as a dependency `npm rebuild ibq-native` from the project that depends on it (cmake-js is a
 * dependency, so that works there), after allowing its install script where npm blocks them by default.
 */
export function rebuildAdvice(dir: string): string {
  const checkout = existsSync(join(dir, '.git')) || !/[\\/]node_modules[\\/]/.test(dir);
  if (checkout) return `rebuild it with \`npm run build\` (or \`bash scripts/setup\`) in ${dir}`;
  const project = dir.slice(0, dir.lastIndexOf('node_modules')).replace(/[\\/]$/, '') || '.';
  return (
    `rebuild it with \`npm rebuild ibq-native\` in ${project} (npm 11 runs a dependency's install script only ` +
    'once allowed: `npm install-scripts approve ibq-native` first). The build needs cmake (or node-gyp), a C++17 ' +
    'compiler and libtorch (Debian: apt-get install libtorch-dev libgloo-dev; elsewhere set LIBTORCH)'
  );
}
const REBUILD = rebuildAdvice(root);

function headerVersion(file: string | undefined): string | undefined {
  if (!file || !existsSync(file)) return undefined;
  const text = readFileSync(file, 'utf8');
  const part = (p: string) => /(\d+)/.exec(text.split(`TORCH_VERSION_${p}`)[1] ?? '')?.[1];
  const [a, b, c] = [part('MAJOR'), part('MINOR'), part('PATCH')];
  return a && b && c ? `${a}.${b}.${c}` : undefined;
}

function findSidecar(): { path: string; sidecar: Sidecar } | undefined {
  const candidates = [
    join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'ibq-native.libtorch.json'),
    join(root, 'build', 'Release', 'ibq-native.libtorch.json'),
  ];
  for (const path of candidates) {
    if (existsSync(path)) return { path, sidecar: JSON.parse(readFileSync(path, 'utf8')) as Sidecar };
  }
  return undefined;
}

function checkLibtorch(found: { path: string; sidecar: Sidecar } | undefined): void {
  if (!found) return;
  const { sidecar } = found;
  const libOk = existsSync(join(sidecar.libdir, 'libtorch_cpu.so')) || existsSync(join(sidecar.libdir, 'libtorch.so'));
  const now = headerVersion(sidecar.versionHeader);
  if (!libOk) {
    throw new IbqError(
      'ERR_IBQ_ADDON',
      `ibq-native was built against libtorch ${sidecar.version} in ${sidecar.libdir}, but no libtorch is there now; ` +
        REBUILD,
    );
  }
  if (now && now !== sidecar.version) {
    throw new IbqError(
      'ERR_IBQ_ADDON',
      `ibq-native was built against libtorch ${sidecar.version}, but libtorch ${now} is installed in ` +
        `${sidecar.libdir}; ${REBUILD}`,
    );
  }
}

function load(): NativeAddon {
  const found = findSidecar();
  checkLibtorch(found);
  const require = createRequire(import.meta.url);
  try {
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => NativeAddon;
    return nodeGypBuild(root);
  } catch (err) {
    const what = found ? `libtorch ${found.sidecar.version} in ${found.sidecar.libdir}` : 'an unknown libtorch';
    const msg = (err as Error).message;
    if (/No native build was found/.test(msg)) {
      throw new IbqError('ERR_IBQ_ADDON', `ibq-native: the native addon is not built; ${REBUILD}.\n(${msg.split('\n')[0]})`);
    }
    throw new IbqError(
      'ERR_IBQ_ADDON',
      `ibq-native: the native addon (built against ${what}) failed to load: ${msg.split('\n')[0]}; ${REBUILD}`,
    );
  }
}

/** `fn` (called on `self`) with the caller's stack put into the errors of the Promise it returns. */
function stackedCall(fn: (...a: unknown[]) => unknown, self: unknown): (...a: unknown[]) => unknown {
  const wrapped = (...args: unknown[]) => {
    const r = fn.apply(self, args);
    if (!(r instanceof Promise)) return r;
    const site: { stack?: string } = {};
    Error.captureStackTrace(site, wrapped);
    return r.catch((err: unknown) => {
      throw withStack(err, site.stack);
    });
  };
  return wrapped;
}

/** `err` with the frames of `stack` (a captured call site) in place of its own; other values as they are. */
export function withStack(err: unknown, stack: string | undefined): unknown {
  if (err instanceof Error && stack) {
    const head = err.stack?.split('\n    at ')[0] ?? `${err.name}: ${err.message}`;
    err.stack = head + stack.slice(stack.indexOf('\n'));
  }
  return err;
}

/**
 * Errors of native jobs are made on the JS thread when the job settles, so their stack shows no caller. The
 * exported functions (and those of exported namespaces) that return a Promise get the stack of the call that
 * started them, captured at the call as sharp does; model handles get the same through callerStacks().
 */
function withCallerStacks(addon: NativeAddon): NativeAddon {
  // classes (constructors with methods) stay as they are: their handles are wrapped by callerStacks()
  const isPlainFunction = (v: unknown): v is (...a: unknown[]) => unknown =>
    typeof v === 'function' && Object.getOwnPropertyNames((v as { prototype?: object }).prototype ?? {}).length <= 1;
  const wrapFunctions = (o: Record<string, unknown>) => {
    for (const [k, v] of Object.entries(o)) if (isPlainFunction(v)) o[k] = stackedCall(v, o);
  };
  const obj = addon as unknown as Record<string, unknown>;
  wrapFunctions(obj);
  for (const v of Object.values(obj)) {
    if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) wrapFunctions(v as Record<string, unknown>);
  }
  return addon;
}

/**
 * A view of a native handle whose Promise-returning methods put the caller's stack into their errors (the
 * classes' own methods cannot be replaced: Node-API defines them read-only). Calls reach the handle itself.
 */
export function callerStacks<H extends object>(handle: H): H {
  const cache = new Map<PropertyKey, unknown>();
  return new Proxy(handle, {
    get(target, key) {
      const v = Reflect.get(target, key, target);
      if (typeof v !== 'function') return v;
      let w = cache.get(key);
      if (!w) cache.set(key, (w = stackedCall(v as (...a: unknown[]) => unknown, target)));
      return w;
    },
  });
}

export const native: NativeAddon = withCallerStacks(load());

// process.exit() and uncaught exceptions end the main thread without the environment's cleanup hooks and
// then run exit(), which destroys libtorch's static objects: a job still running on an addon worker would
// crash the process (double free, SIGSEGV). 'exit' is the last moment JS runs: stop and await the jobs
// here. (worker_threads also get the addon's cleanup hook, which does the same when the thread ends.)
process.once('exit', () => native.shutdown(isMainThread));
