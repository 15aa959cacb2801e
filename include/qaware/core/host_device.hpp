#pragma once
// QAWARE_HD marks the functions that CUDA device code shares with the host:
// the quantization arithmetic in numerics.hpp, which the CUDA GEMM's output
// stages call so that a GPU and a CPU give the same codes. Outside nvcc it is
// empty.

#if defined(__CUDACC__)
#define QAWARE_HD __host__ __device__
#else
#define QAWARE_HD
#endif
