// The fused IBQ quantizer kernels (quantizer_fused_impl.h, written once) for AVX2 + FMA, 8 floats per vector.
#include "ibq/quantizer/quantizer_fused_kernels.h"

#define IBQ_UNIT_NS ibq::fused
#define IBQ_UNIT_TABLE Kernels
#define IBQ_UNIT_GETTER kernels_avx2
#define IBQ_UNIT_ISA avx2
#define IBQ_UNIT_TARGET "avx2,fma"
#define IBQ_UNIT_IMPL "ibq/quantizer/quantizer_fused_impl.h"
#define IBQ_SIMD_WIDTH 8
#define IBQ_SIMD_NAME "avx2"
#include "ibq/core/simd_isa_unit.h"
