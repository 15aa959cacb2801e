#pragma once
// qaware: quantization-aware training for BERT-style transformers, with a
// real INT8 path. This umbrella header is the table of contents; include the
// area headers directly to keep compile times down.

// core: tensor aliases, shapes, errors, RNG, threading
#include "qaware/core/error.hpp"
#include "qaware/core/rng.hpp"
#include "qaware/core/shape.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"

// autograd: Tape, Var, Param, gradient checking
#include "qaware/autograd/gradcheck.hpp"
#include "qaware/autograd/tape.hpp"

// ops: differentiable ops, one per header
#include "qaware/ops/linear.hpp"

// gemm: INT8 GEMM (AMX / AVX-512 VNNI / AVX-VNNI / AVX2 / scalar, chosen at run time)
#include "qaware/gemm/gemm.hpp"
#include "qaware/gemm/reference.hpp"

// quant: the shared quantize / requantize routine
#include "qaware/quant/requantize.hpp"
