#pragma once
// qaware: quantization-aware training for BERT-style transformers, with a
// real INT8 path. This umbrella header is the table of contents; include the
// area headers directly to keep compile times down.

// core: tensor aliases, shapes, errors, RNG, threading, the CPU probe and
// instruction-set cap
#include "qaware/core/cpu.hpp"
#include "qaware/core/error.hpp"
#include "qaware/core/numerics.hpp"
#include "qaware/core/rng.hpp"
#include "qaware/core/shape.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"

// autograd: Tape, Var, Param, gradient checking
#include "qaware/autograd/gradcheck.hpp"
#include "qaware/autograd/tape.hpp"

// ops: differentiable ops, one per header
#include "qaware/ops/add.hpp"
#include "qaware/ops/attention_products.hpp"
#include "qaware/ops/cross_entropy.hpp"
#include "qaware/ops/dropout.hpp"
#include "qaware/ops/embedding.hpp"
#include "qaware/ops/gelu.hpp"
#include "qaware/ops/layer_norm.hpp"
#include "qaware/ops/linear.hpp"
#include "qaware/ops/matmul.hpp"
#include "qaware/ops/mean.hpp"
#include "qaware/ops/mse_loss.hpp"
#include "qaware/ops/mul.hpp"
#include "qaware/ops/permute.hpp"
#include "qaware/ops/quantized_attention.hpp"
#include "qaware/ops/quantized_linear.hpp"
#include "qaware/ops/reshape.hpp"
#include "qaware/ops/scale.hpp"
#include "qaware/ops/select_position.hpp"
#include "qaware/ops/softmax.hpp"
#include "qaware/ops/sub.hpp"
#include "qaware/ops/sum.hpp"
#include "qaware/ops/tanh.hpp"

// optim: AdamW, SGD, parameter groups, gradient clipping, LR schedules,
// training checkpoints
#include "qaware/optim/adamw.hpp"
#include "qaware/optim/checkpoint.hpp"
#include "qaware/optim/clip.hpp"
#include "qaware/optim/optimizer.hpp"
#include "qaware/optim/schedule.hpp"
#include "qaware/optim/sgd.hpp"

// io: safetensors reader/writer (with its JSON and F16/BF16 helpers)
#include "qaware/io/safetensors.hpp"

// quant: PyTorch-exact fake quantization (per tensor / per channel, STE,
// learnable LSQ), qparams, observers, the FakeQuantize module
#include "qaware/quant/fake_quantize.hpp"
#include "qaware/quant/fake_quantize_module.hpp"
#include "qaware/quant/histogram_observer.hpp"
#include "qaware/quant/learnable.hpp"
#include "qaware/quant/observers.hpp"
#include "qaware/quant/qparams.hpp"

// gemm: INT8 GEMM (AMX / AVX-512 VNNI / AVX-VNNI / AVX2 / scalar, chosen at
// run time) and the float GEMM (AVX-512F / AVX2 + FMA, Eigen otherwise)
#include "qaware/gemm/gemm.hpp"
#include "qaware/gemm/reference.hpp"
#include "qaware/gemm/sgemm.hpp"

// nn: QAT layers (Module, QConfig, QATLinear, QATAttention, QATLayerNorm,
// QATGelu, QATTransformerBlock, embeddings, heads, QATBertModel) and
// model checkpoints
#include "qaware/nn/attention.hpp"
#include "qaware/nn/bert.hpp"
#include "qaware/nn/checkpoint.hpp"
#include "qaware/nn/embedding.hpp"
#include "qaware/nn/gelu.hpp"
#include "qaware/nn/heads.hpp"
#include "qaware/nn/layer_norm.hpp"
#include "qaware/nn/linear.hpp"
#include "qaware/nn/module.hpp"
#include "qaware/nn/qconfig.hpp"
#include "qaware/nn/transformer_block.hpp"

// deploy: the exported INT8 model (inference only, no tape), its pieces,
// and deploy::convert from a QAT model
#include "qaware/deploy/convert.hpp"
#include "qaware/deploy/format.hpp"
#include "qaware/deploy/linear.hpp"
#include "qaware/deploy/model.hpp"
