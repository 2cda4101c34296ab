#!/usr/bin/env node
// Checks that an x86-64 addon runs on any x86-64 CPU: every function holding AVX, AVX2 or AVX-512 instructions
// (VEX/EVEX-encoded `v...` instructions, `k...` mask instructions, ymm/zmm registers) must be one of our run-time
// dispatched kernels: ibq::fused::<isa> (the quantizer's), ibq::kernels::<isa> (GroupNorm and the FMA probe) and
// ibq::rows::<isa> (the serving engine's batch-invariant row kernels) and ibq::image::<isa> (the image resampling),
// which run only after a CPUID check (quantizer/quantizer_fused.cpp, core/cpu_kernels.cpp, transformer/rows_linear.cpp,
// core/image_resample.cpp); and libjpeg-turbo's AVX2 functions (jsimd_*_avx2, linked in statically for
// core/jpeg_decode.cpp), which libjpeg-turbo calls only after its own CPUID check (jsimd_can_*). Anything else (a
// -march=native build, an AVX flag leaking into another file, an inline function of a kernel file that the linker
// kept for everyone) fails the check.
// Usage: node scripts/check-isa.js FILE.node [--json]   (needs objdump; run it before the file is stripped)
import { spawnSync } from 'node:child_process';

const KERNEL_NAMESPACES = {
  avx2: ['ibq::fused::avx2::', 'ibq::kernels::avx2::', 'ibq::rows::avx2::', 'ibq::image::avx2::'],
  avx512: ['ibq::fused::avx512::', 'ibq::kernels::avx512::', 'ibq::rows::avx512::', 'ibq::image::avx512::'],
};
/** libjpeg-turbo's AVX2 kernels (and their local labels, which objdump shows as functions). */
const LIBJPEG_TURBO_AVX2 = /^jsimd_\w+_avx2(\.\w+)?$/;
const VECTOR = /%[yz]mm\d+|%k[0-7]\b|\{%k[0-7]\}/;
const MNEMONIC = /^\s*[0-9a-f]+:\s+((?:v|k)[a-z0-9]+)\s/;

/** { kernels: { avx2: n, avx512: n }, offenders: [function names] } of the disassembly of `file`. */
export function scanIsa(file) {
  const r = spawnSync('objdump', ['-d', '--no-show-raw-insn', '-C', file], { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.error) throw new Error(`check-isa: cannot run objdump (${r.error.message}); install binutils`);
  if (r.status !== 0) throw new Error(`check-isa: objdump ${file} failed: ${r.stderr.trim()}`);
  const kernels = { avx2: 0, avx512: 0 };
  const offenders = new Set();
  let fn = '';
  let counted = false;
  for (const line of r.stdout.split('\n')) {
    const head = /^[0-9a-f]+ <(.*)>:$/.exec(line);
    if (head) {
      fn = head[1];
      counted = false;
      continue;
    }
    if (!VECTOR.test(line) && !MNEMONIC.test(line)) continue;
    const isa = Object.keys(KERNEL_NAMESPACES).find((k) => KERNEL_NAMESPACES[k].some((ns) => fn.includes(ns)));
    if (!isa) {
      if (!LIBJPEG_TURBO_AVX2.test(fn)) offenders.add(fn || '(no symbol)');
    }
    else if (!counted) {
      kernels[isa]++;
      counted = true;
    }
  }
  return { kernels, offenders: [...offenders] };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node scripts/check-isa.js FILE.node [--json]');
    process.exit(2);
  }
  const r = scanIsa(file);
  if (process.argv.includes('--json')) console.log(JSON.stringify(r));
  if (r.offenders.length) {
    console.error(`check-isa: ${file}: AVX/AVX2/AVX-512 instructions outside the run-time dispatched kernels, in:\n  ` +
      r.offenders.slice(0, 20).join('\n  ') + (r.offenders.length > 20 ? `\n  ... (${r.offenders.length} functions)` : '') +
      '\n(compile without -march=native or -mavx* flags; only native/ibq/quantizer/quantizer_fused_avx*.cpp, native/ibq/core/cpu_kernels_avx*.cpp and native/ibq/transformer/rows_linear_avx*.cpp may use them, by target pragma)');
    process.exit(1);
  }
  if (r.kernels.avx2 === 0 || r.kernels.avx512 === 0) {
    console.error(`check-isa: ${file}: no AVX2 or no AVX-512 kernel functions found (${JSON.stringify(r.kernels)}): not an x86-64 build of the addon, or stripped`);
    process.exit(1);
  }
  if (!process.argv.includes('--json')) {
    console.log(`check-isa: ${file}: baseline x86-64 outside the kernels; vector code only in ${r.kernels.avx2} AVX2 and ${r.kernels.avx512} AVX-512 kernel functions`);
  }
}
