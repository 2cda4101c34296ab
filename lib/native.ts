/**
 * The only module that loads the native addon. It chooses the addon file (a build from source, else a prebuild
 * whose libtorch tag matches the libtorch found at run time: chooseAddon), checks the sidecar JSON written at build
 * time (the libtorch the addon was compiled against) before loading, wraps load failures in an actionable error,
 * and types the whole native surface. Everything else in lib/ imports `native` from here.
 */
import { createRequire } from 'node:module';
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { abortError, IbqError } from './core/errors.js';
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
  onednn: boolean;
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
export interface TransformerNative {
  TransformerHandle: new (config: object, seed?: number, device?: string) => TransformerNative;
  /** The same model created on a worker thread (random initialisation of a large model takes seconds). */
  buildTransformer(config: object, seed?: number, device?: string): Promise<TransformerNative>;
  /** The full config (defaults filled in, validated) plus parameterCount and the preset it equals ('' if none). */
  transformerConfig(config: object | string): Record<string, number | boolean | null | string>;
  /** The official transformer_config.params field names (native/ibq/transformer/transformer.h, for_each_field). */
  transformerConfigFields(): string[];
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
   * Stops this environment's native jobs: no new ones, queued ones never start, running ones are cancelled
   * and awaited (their Promises never settle). `processExiting`: the process is about to call exit().
   */
  shutdown(processExiting: boolean): void;
  setNumThreads(n: number): void;
  TensorHandle: new () => TensorHandle;
  tensorFromData(data: ArrayBufferView, shape: number[], dtype: string, device?: string, raw?: boolean): TensorHandle;
  /** t[rows] along dim 0 on t's device (as `dtype` when given), copied on a worker thread. RangeError for a bad row. */
  selectRows(t: TensorHandle, rows: BigInt64Array, dtype?: string): Promise<TensorHandle>;
  /** The tensors one after another along dim 0, copied on a worker thread. RangeError for ones that do not stack. */
  catRows(tensors: TensorHandle[]): Promise<TensorHandle>;
  testOps: {
    matmulLoop(size: number, iters: number, opts?: JobOptions & { queued?: boolean }): Promise<number>;
    fail(message: string, async?: boolean): Promise<never>;
  };

  // ---- checkpoints and files: native/bindings/tensor_io.cpp, native/ibq/io/tensor_io.h ----
  io: {
    /** The bytes of a record of a torch.save zip archive (name relative to the archive folder). */
    zipRecord(path: string, name: string): Promise<Buffer>;
    /**
     * Reads storages (zip records, or byte ranges of a plain file) once each and returns one tensor per
     * view; views of one storage share its memory. `mappable` storages (uncompressed bytes, aligned, no byte
     * swap) are memory-mapped copy-on-write instead of read (native/ibq/io/tensor_io.h; IBQ_NO_MMAP=1 reads).
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

  // ---- evaluation: native/bindings/{fid_inception,lpips,metrics}.cpp, native/ibq/eval/{inception,lpips,metrics}.h ----
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
  /** float32 [B, C, H, W]; samplePixels: uint8 [B, H, W, C] by the official sample script's conversion, in the same job. */
  decode(indices: TensorHandle, opts?: AutocastOptions & { samplePixels?: boolean }): Promise<TensorHandle>;
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

/**
 * The sidecar JSON next to an addon (CMakeLists.txt writes build/Release/ibq-native.libtorch.json; scripts/prebuild
 * writes <prebuild>.json): the libtorch it was compiled against and the folder its RUNPATH names.
 */
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

function readSidecar(path: string): Sidecar | undefined {
  try {
    const j = JSON.parse(readFileSync(path, 'utf8')) as Partial<Sidecar>;
    return typeof j.version === 'string' && typeof j.libdir === 'string' ? (j as Sidecar) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The libtorch that an addon whose RUNPATH is `libdir` gets from the dynamic linker: the first folder holding
 * libtorch_cpu of LD_LIBRARY_PATH, `libdir`, the system's library folders. Its version comes from the library's
 * versioned file name (Debian: libtorch_cpu.so.1.13.0), else from the headers beside it (<dir>/../include, as in a
 * libtorch archive or a Python wheel), else from `versionHeader` when that folder is `libdir`.
 */
export function runtimeLibtorch(libdir: string, versionHeader?: string): { dir: string; version?: string } | undefined {
  const multiarch = process.arch === 'x64' ? 'x86_64-linux-gnu' : process.arch === 'arm64' ? 'aarch64-linux-gnu' : '';
  const system = [multiarch && `/usr/lib/${multiarch}`, multiarch && `/lib/${multiarch}`, '/usr/lib64', '/usr/lib', '/usr/local/lib'];
  const dirs = [...(process.env.LD_LIBRARY_PATH ?? '').split(':'), libdir, ...system].filter(Boolean);
  for (const dir of dirs) {
    let files: string[];
    try {
      files = readdirSync(dir).filter((f) => f === 'libtorch_cpu.so' || f.startsWith('libtorch_cpu.so.'));
    } catch {
      continue;
    }
    if (files.length === 0) continue;
    for (const f of files) {
      let real: string;
      try {
        real = realpathSync(join(dir, f));
      } catch {
        continue; // a dangling link
      }
      const m = /\.so\.(\d+\.\d+\.\d+)$/.exec(real);
      if (m) return { dir, version: m[1] };
    }
    const beside = headerVersion(join(dir, '..', 'include', 'torch', 'csrc', 'api', 'include', 'torch', 'version.h'));
    return { dir, version: beside ?? (dir === libdir ? headerVersion(versionHeader) : undefined) };
  }
  return undefined;
}

/** The file-name tag of a prebuild for libtorch `version`: ibq-native.libtorch-1_13_0.napi.glibc.node. */
export function libtorchTag(version: string): string {
  return `libtorch-${version.replace(/\./g, '_')}`;
}

/** The libtorch version a prebuild's file name names, or undefined without a libtorch tag. */
function taggedVersion(file: string): string | undefined {
  const tag = file.split('.').find((t) => /^libtorch-\d+(_\d+)*$/.test(t));
  return tag?.slice('libtorch-'.length).replace(/_/g, '.');
}

/** node-gyp-build's tag matching (platform-arch folders; napi, abi, libc, ... tags of the file names). */
interface NodeGypBuildTags {
  parseTuple(name: string): { name: string } | undefined;
  matchTuple(platform: string, arch: string): (t: unknown) => boolean;
  compareTuples(a: unknown, b: unknown): number;
  parseTags(file: string): { file: string } | undefined;
  matchTags(runtime: string, abi: string): (t: unknown) => boolean;
  compareTags(runtime: string): (a: unknown, b: unknown) => number;
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * The addon file to load from the package at `dir`, as node-gyp-build chooses it with one more rule:
 *   1. a build from source, build/Release/*.node (not with PREBUILDS_ONLY=1, node-gyp-build's variable), which must
 *      find the libtorch it was built against (else ERR_IBQ_ADDON naming both versions and how to rebuild);
 *   2. a prebuild, prebuilds/<platform>-<arch>/<name>.<tags>.node, whose node-gyp-build tags (napi, glibc, ...) fit
 *      this Node and whose libtorch tag (libtorch-1_13_0) names the version of the libtorch the dynamic linker will
 *      give it (runtimeLibtorch, from the folder its sidecar records); a prebuild for another libtorch, or with no
 *      libtorch tag, is never chosen;
 *   3. none: ERR_IBQ_ADDON "not built", naming the libtorch found and the prebuilds there, and how to build.
 */
export function chooseAddon(dir: string): { file: string; kind: 'build' | 'prebuild'; libtorch: string } {
  const advice = rebuildAdvice(dir);
  if (!process.env.PREBUILDS_ONLY) {
    const release = join(dir, 'build', 'Release');
    const built = listDir(release).find((f) => f.endsWith('.node'));
    if (built) {
      const sidecar = readSidecar(join(release, 'ibq-native.libtorch.json'));
      if (sidecar) {
        const now = runtimeLibtorch(sidecar.libdir, sidecar.versionHeader);
        if (!now) {
          throw new IbqError('ERR_IBQ_ADDON', `ibq-native was built against libtorch ${sidecar.version} in ${sidecar.libdir}, but no libtorch is there now; ${advice}`);
        }
        if (now.version && now.version !== sidecar.version) {
          throw new IbqError('ERR_IBQ_ADDON', `ibq-native was built against libtorch ${sidecar.version}, but libtorch ${now.version} is installed in ${now.dir}; ${advice}`);
        }
      }
      return { file: join(release, built), kind: 'build', libtorch: sidecar?.version ?? 'unknown' };
    }
  }
  const ngb = createRequire(import.meta.url)('node-gyp-build') as NodeGypBuildTags;
  const tuple = listDir(join(dir, 'prebuilds')).map(ngb.parseTuple).filter(ngb.matchTuple(process.platform, process.arch)).sort(ngb.compareTuples)[0];
  const folder = tuple ? join(dir, 'prebuilds', tuple.name) : undefined;
  const fitting = folder ? listDir(folder).map(ngb.parseTags).filter(ngb.matchTags('node', process.versions.modules)).sort(ngb.compareTags('node')) : [];
  const offered: string[] = [];
  let found: { dir: string; version?: string } | undefined;
  for (const t of fitting as { file: string }[]) {
    const version = taggedVersion(t.file);
    const sidecar = readSidecar(join(folder!, t.file.replace(/\.node$/, '.json')));
    if (!version || !sidecar || sidecar.version !== version) continue;
    offered.push(version);
    const now = runtimeLibtorch(sidecar.libdir, sidecar.versionHeader);
    found ??= now;
    if (now?.version === version) return { file: join(folder!, t.file), kind: 'prebuild', libtorch: version };
  }
  const where = found ? `libtorch ${found.version ?? '(version unknown)'} in ${found.dir}` : 'no libtorch';
  const prebuilt = offered.length ? ` and its prebuilt addons (for libtorch ${[...new Set(offered)].join(', ')}) do not fit ${where}` : '';
  throw new IbqError('ERR_IBQ_ADDON', `ibq-native: the native addon is not built${prebuilt}; ${advice}.`);
}

function load(): NativeAddon {
  const choice = chooseAddon(root);
  try {
    return createRequire(import.meta.url)(choice.file) as NativeAddon;
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0];
    throw new IbqError(
      'ERR_IBQ_ADDON',
      `ibq-native: the native addon ${choice.file} (${choice.kind === 'prebuild' ? 'prebuilt' : 'built'} for libtorch ${choice.libtorch}) failed to load: ${msg}; ${REBUILD}`,
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
      throw withStack(ownError(err), site.stack);
    });
  };
  return wrapped;
}

/** A native job's error as lib/ makes it: a job stopped by its abort flag rejects with abortError() (the one aborted error). */
function ownError(err: unknown): unknown {
  return (err as { code?: unknown })?.code === 'ERR_IBQ_ABORTED' ? abortError() : err;
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
