// How far libtorch may use oneDNN on this process's CPU, when the user restricts oneDNN's instruction set.
#pragma once

#include <string>

namespace ibq {

/**
 * The oneDNN instruction-set limit from DNNL_MAX_CPU_ISA or ONEDNN_MAX_CPU_ISA (oneDNN reads both; the
 * first one set wins), upper-cased; empty when neither is set.
 */
std::string onednn_isa_limit();

/**
 * Whether oneDNN can run bfloat16 primitives under that limit: bfloat16 needs at least AVX512_CORE in oneDNN
 * (the library's ISA names: SSE41, AVX, AVX2, AVX2_VNNI, AVX2_VNNI_2 are below it).
 */
bool onednn_limit_allows_bf16(const std::string& limit);

/**
 * libtorch 1.13 decides whether bfloat16 matrix products and convolutions go to oneDNN from the CPU's own
 * flags (AVX-512 BW/VL/DQ), not from oneDNN's limit. With the limit below AVX512_CORE on an AVX-512 CPU it
 * sends them to oneDNN all the same, which then fails ("could not create a primitive descriptor iterator").
 * Called once when the addon loads: in that case only (limit below AVX512_CORE, CPU with AVX-512 BW/VL/DQ), it turns libtorch's use of oneDNN off for the process,
 * so that bfloat16 work runs on libtorch's own kernels as on a CPU without AVX-512 (float32 convolutions then
 * also run on libtorch's own kernels). Returns true when it did.
 */
bool apply_onednn_isa_limit();

}  // namespace ibq
