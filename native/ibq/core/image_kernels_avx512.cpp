// The image kernels (image_kernels_impl.h, written once) for AVX512.
#include <algorithm>
#include <cstring>

#include "ibq/core/image_kernels_table.h"

#define IBQ_UNIT_NS ibq::image
#define IBQ_UNIT_TABLE Kernels
#define IBQ_UNIT_GETTER kernels_avx512
#define IBQ_UNIT_ISA avx512
#define IBQ_UNIT_TARGET "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma"
#define IBQ_UNIT_IMPL "ibq/core/image_kernels_impl.h"
#define IBQ_SIMD_WIDTH 16
#define IBQ_SIMD_NAME "avx512"
#include "ibq/core/simd_isa_unit.h"
