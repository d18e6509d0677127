// The native kernels built for the baseline instruction set (flags in CMakeLists.txt).
#define DECENT_KERNELS_ISA baseline
#include "comm/simd/native_kernels.inc"
