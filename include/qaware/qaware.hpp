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

// optim: AdamW, SGD, parameter groups, gradient clipping, LR schedules
#include "qaware/optim/adamw.hpp"
#include "qaware/optim/clip.hpp"
#include "qaware/optim/optimizer.hpp"
#include "qaware/optim/schedule.hpp"
#include "qaware/optim/sgd.hpp"

// io: safetensors reader/writer (with its JSON and F16/BF16 helpers), checkpoints
#include "qaware/io/checkpoint.hpp"
#include "qaware/io/safetensors.hpp"
