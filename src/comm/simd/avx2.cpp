// The native kernels built for the avx2 instruction set (flags in CMakeLists.txt).
#define DECENT_KERNELS_ISA avx2
#include "comm/simd/native_kernels.inc"
