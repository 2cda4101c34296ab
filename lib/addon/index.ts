/**
 * The addon's whole surface, one file per native class (native/bindings/exports.h lists the binding files);
 * lib/native.ts loads the addon and types it as NativeAddon.
 */
import type { FieldTable } from '../config/fields.js';
import type { JobOptions, NativeInfo, TensorHandle } from './handles.js';
import type { FidInceptionHandleNative, GaussianStatsNative, LpipsHandleNative } from './eval.js';
import type { ProcessGroupNative } from './process_group.js';
import type { IBQOutputName, QuantizerHandleNative, TokenizerHandleNative, VQOutputName } from './tokenizer.js';
import type { TokenizerTrainerNative } from './tokenizer_trainer.js';
import type { TransformerAddon } from './transformer.js';

export type * from './handles.js';
export type * from './eval.js';
export type * from './process_group.js';
export type * from './tokenizer.js';
export type * from './tokenizer_trainer.js';
export type * from './transformer.js';

export interface NativeAddon extends TransformerAddon {
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
  /** Intra-op threads of our jobs; `source` other than 'user' is a default, applied only while none is set (returns false). */
  setNumThreads(n: number, source?: string, reason?: string): boolean;
  /** This CPU's float32 FMA peak on one thread (GFLOP/s, 2 per lane and FMA), measured on a worker for about `seconds`. */
  fmaPeak(seconds: number): Promise<{ gflops: number; kernel: string }>;
  /**
   * The resize (Pillow's antialiased bilinear, its uint8 values), crop, optional mirror and conversion to float32
   * [3, size, size] in [-1, 1] of HWC uint8 pixels, synchronous (native/ibq/core/image_resample.h). lib/data/images.ts
   * validates the arguments; RangeError for a crop outside the resized image. `out` (3 x size x size floats, also on a
   * SharedArrayBuffer): written and returned instead of a new array.
   */
  resampleCrop(pixels: Uint8Array, crop: { srcWidth: number; srcHeight: number; channels: number; resizedWidth: number; resizedHeight: number;
    left: number; top: number; size: number; flip: boolean }, out?: Float32Array): Float32Array;
  /** A JPEG's header (native/ibq/core/jpeg_decode.h): size and colour components; Error with libjpeg's message when corrupt. */
  jpegSize(bytes: Uint8Array): { width: number; height: number; components: number };
  /** The whole JPEG as HWC uint8 RGB, PIL's Image.open(f).convert('RGB') bytes; Error with libjpeg's message when corrupt or truncated. */
  decodeJpeg(bytes: Uint8Array): Uint8Array;
  /** decodeJpeg then resampleCrop (of the size jpegSize gives) in one call; errors as both. */
  decodeJpegCrop(bytes: Uint8Array, crop: { resizedWidth: number; resizedHeight: number; left: number; top: number; size: number; flip: boolean },
    out?: Float32Array): Float32Array;
  /** decodeJpegCrop on libuv's pool (for the main thread: no blocking); rejects with libjpeg's message. */
  decodeJpegCropAsync(bytes: Uint8Array, crop: { resizedWidth: number; resizedHeight: number; left: number; top: number; size: number; flip: boolean }): Promise<Float32Array>;
  TensorHandle: new () => TensorHandle;
  tensorFromData(data: ArrayBufferView, shape: number[], dtype: string, device?: string, raw?: boolean): TensorHandle;
  /** t[rows] along dim 0 on t's device (as `dtype` when given), copied on a worker thread. RangeError for a bad row. */
  selectRows(t: TensorHandle, rows: BigInt64Array, dtype?: string): Promise<TensorHandle>;
  /** The tensors one after another along dim 0, copied on a worker thread. RangeError for ones that do not stack. */
  catRows(tensors: TensorHandle[]): Promise<TensorHandle>;
  testOps: {
    matmulLoop(size: number, iters: number, opts?: JobOptions & { queued?: boolean }): Promise<number>;
    fail(message: string, async?: boolean): Promise<never>;
    /** The intra-op and BLAS thread counts a job runs with (BLAS 0: no such query in this BLAS). */
    threads(): Promise<{ intraOp: number; blas: number }>;
    /**
     * GroupNorm (+ SiLU) of x by our channels-last kernel and by libtorch against libtorch's float64 result; the best of
     * `reps` timings of each (libtorch on the contiguous and on the channels-last input).
     */
    groupNorm(x: TensorHandle, groups: number, weight: TensorHandle, bias: TensorHandle, eps: number, silu: boolean, reps: number):
      Promise<{ used: boolean; maxDiff: number; atenMaxDiff: number; kernelS: number; atenS: number; atenClS: number;
        dxDiff: number; dweightDiff: number; dbiasDiff: number; atenDxDiff: number; atenDweightDiff: number; atenDbiasDiff: number }>;
    /**
     * parallel_bmm (native/ibq/core/parallel_bmm.h) against torch.bmm, forward and backward, against float64: a given
     * as [B, K, M] and transposed when `aTransposed` (b likewise); `layoutsKept`: each gradient had its input's strides.
     */
    bmm(a: TensorHandle, b: TensorHandle, aTransposed: boolean, bTransposed: boolean): Promise<{ outDiff: number;
      daDiff: number; dbDiff: number; atenOutDiff: number; atenDaDiff: number; atenDbDiff: number; layoutsKept: boolean }>;
    /** The BLAS library's thread count now, outside jobs. */
    blasThreads(): number;
    /**
     * `reps` draws of our multinomial (native/ibq/transformer/draw.h) and of torch.multinomial(probs, 1) from generators
     * seeded alike: int64 [reps, B] each; fast: our path in use; sameState: both generators end in the same state.
     */
    multinomial(probs: TensorHandle, seed: number, reps: number):
      Promise<{ fast: boolean; ours: TensorHandle; ref: TensorHandle; sameState: boolean }>;
    /** The serving engine's single-query attention (rows::attend) for pairs with the given cache offsets and lengths. */
    attend(q: TensorHandle, kt: TensorHandle, v: TensorHandle, offsets: number[], lengths: number[], T: number, scale: number):
      Promise<TensorHandle>;
    /** Teacher-forced logits [B, T + 1, V] through the decode step (labels int64 [B], tokens int64 [B, T]). */
    decodeLogits(transformer: unknown, labels: TensorHandle, tokens: TensorHandle): Promise<TensorHandle>;
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
