// The native kernels built for the avx512 instruction set (flags in CMakeLists.txt).
#define DECENT_KERNELS_ISA avx512
#include "comm/simd/native_kernels.inc"
