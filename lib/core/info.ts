import { checkInt } from './errors.js';
import { native } from '../native.js';

export interface Info {
  /** TORCH_VERSION of the libtorch the addon was compiled against, e.g. '1.13.0'. */
  libtorch: string;
  cuda: boolean;
  cudaDevices: number;
  /** Intra-op threads libtorch uses for native calls. */
  threads: number;
  /**
   * The fused CPU kernels of the IBQ quantizer (float32, quantizer_chunk) this CPU runs, widest first:
   * 'avx512', 'avx2' (x86-64 builds). Empty: the chunked path uses libtorch ops on blocks. The environment
   * variable IBQ_QUANTIZER_KERNEL picks one ('avx512', 'avx2') or the libtorch-op path ('aten').
   */
  quantizerKernels: string[];
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
    quantizerKernels: [...i.quantizerKernels], onednn: i.onednn,
  };
}

/** Sets libtorch's intra-op thread count for all later native calls (1..1024). */
export function setNumThreads(n: number): void {
  native.setNumThreads(checkInt(n, 'threads', 1, 1024));
}
