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

// quant: PyTorch-exact fake quantization (per tensor / per channel, STE,
// learnable LSQ), qparams, observers, the FakeQuantize module
#include "qaware/quant/fake_quantize.hpp"
#include "qaware/quant/fake_quantize_module.hpp"
#include "qaware/quant/histogram_observer.hpp"
#include "qaware/quant/learnable.hpp"
#include "qaware/quant/observers.hpp"
#include "qaware/quant/qparams.hpp"
