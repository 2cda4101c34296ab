// The fused IBQ quantizer kernels (quantizer_fused_impl.h, written once) for AVX-512 (F, DQ), 16 floats per vector.
#include "ibq/quantizer/quantizer_fused_kernels.h"

#define IBQ_UNIT_NS ibq::fused
#define IBQ_UNIT_TABLE Kernels
#define IBQ_UNIT_GETTER kernels_avx512
#define IBQ_UNIT_ISA avx512
#define IBQ_UNIT_TARGET "avx512f,avx512dq,avx2,fma"
#define IBQ_UNIT_IMPL "ibq/quantizer/quantizer_fused_impl.h"
#define IBQ_SIMD_WIDTH 16
#define IBQ_SIMD_NAME "avx512"
#include "ibq/core/simd_isa_unit.h"
