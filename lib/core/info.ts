import { checkInt } from './errors.js';
import type { ThreadSource } from './threads.js';
import { native } from '../native.js';

export interface Info {
  /** TORCH_VERSION of the libtorch the addon was compiled against, e.g. '1.13.0'. */
  libtorch: string;
  cuda: boolean;
  cudaDevices: number;
  /** Intra-op threads libtorch uses for our native calls. */
  threads: number;
  /**
   * Why that many (lib/core/threads.ts): 'user' (setNumThreads, --threads), 'launch' (the node's CPUs divided among
   * the processes of `ibq launch` / torchrun's LOCAL_WORLD_SIZE), 'env' (OMP_NUM_THREADS), 'cgroup' (a CPU quota
   * below the affinity mask), 'affinity' (the CPUs this process may run on).
   */
  threadsSource: ThreadSource;
  /** One line with the figures behind threadsSource, e.g. '2 CPUs in the process's affinity mask'. */
  threadsReason: string;
  /**
   * Whether our jobs run the BLAS (OpenBLAS) on their own thread only, so that its thread pool never spins next to
   * libtorch's threads; the process's BLAS setting is given back when no job runs. False when OPENBLAS_NUM_THREADS
   * or GOTO_NUM_THREADS is set (the user's choice stands) or the BLAS has no such control.
   */
  blasOneThread: boolean;
  /** Whether the CPU computes bfloat16 natively (AVX-512 BF16 or AMX-BF16): where `autocast: 'bfloat16'` can pay. */
  nativeBf16: boolean;
  /**
   * The fused CPU kernels of the IBQ quantizer (float32, quantizer_chunk) this CPU runs, widest first:
   * 'avx512', 'avx2' (x86-64 builds). Empty: the chunked path uses libtorch ops on blocks. The environment
   * variable IBQ_QUANTIZER_KERNEL picks one ('avx512', 'avx2') or the libtorch-op path ('aten').
   */
  quantizerKernels: string[];
  /**
   * Our other CPU kernels' instruction set (channels-last GroupNorm + SiLU of encode/decode, the FMA probe): 'avx512',
   * 'avx2', or 'aten' (libtorch ops only). IBQ_KERNEL picks one ('avx512', 'avx2', 'aten'); it also picks the
   * quantizer's unless IBQ_QUANTIZER_KERNEL is set.
   */
  kernel: string;
  /**
   * Whether libtorch runs its convolutions and bfloat16 products on oneDNN. False when libtorch has no oneDNN,
   * or when DNNL_MAX_CPU_ISA / ONEDNN_MAX_CPU_ISA limits oneDNN below AVX512_CORE on a CPU with AVX-512:
   * libtorch 1.13 would still send bfloat16 work to oneDNN, which fails there, so the addon turns libtorch's
   * oneDNN use off at load and every op runs on libtorch's own kernels, bfloat16 ones as on an AVX2-only CPU.
   */
  onednn: boolean;
}

/** What the addon runs on. */
export function info(): Info {
  const i = native.info();
  return {
    libtorch: i.libtorch, cuda: i.cuda, cudaDevices: i.cudaDevices, threads: i.threads,
    threadsSource: i.threadsSource as ThreadSource, threadsReason: i.threadsReason, blasOneThread: i.blasOneThread,
    nativeBf16: i.nativeBf16, quantizerKernels: [...i.quantizerKernels], kernel: i.kernel, onednn: i.onednn,
  };
}

/** Sets libtorch's intra-op thread count for all later native calls (1..1024); info().threadsSource says 'user'. */
export function setNumThreads(n: number): void {
  native.setNumThreads(checkInt(n, 'threads', 1, 1024));
}
