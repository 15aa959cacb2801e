#pragma once
// ONNX export of the INT8 model (BertModel): a QDQ graph that
// onnxruntime, TensorRT or OpenVINO can run.
//
// Needs the qaware::onnx CMake target (ONNX's generated protobuf classes and
// libprotobuf); the rest of qaware never includes this header.
//
// The graph, for a model converted from QAT or read by deploy::load:
//   inputs   input_ids, token_type_ids (int64 [batch, sequence]),
//            attention_mask (int64 [batch, sequence], 1 = attend, 0 = padding)
//   outputs  sequence_output [batch, sequence, hidden]; pooled_output
//            [batch, hidden] and logits [batch, labels] with a pooler and a
//            classifier; mlm_logits [batch, sequence, vocab] with an MLM head
// Every quantization of the INT8 model is a QuantizeLinear / DequantizeLinear
// pair (a frozen QAT point, a linear layer's input), and every integer
// weight a constant of its codes behind a DequantizeLinear (per tensor, or
// per output channel: axis 1 of the [in, out] MatMul operand):
//   opset 21 (IR 10, the default)  weights whose codes fit [-8, 7] as INT4
//                                  tensors, the rest INT8; activations whose
//                                  range is exactly 4-bit as UINT4 / INT4
//   opset 13 (IR 7)                INT8 codes for every weight, and
//                                  LayerNormalization spelled out in
//                                  ReduceMean / Sqrt / Div (it is opset 17)
// An activation range narrower than its storage type (e.g. [0, 7] for
// 3 bits, or 4 bits at opset 13) is QuantizeLinear, Clip to the range,
// DequantizeLinear: the same codes.
// LayerNorm, softmax, GELU (0.5 x (1 + erf(x / sqrt 2)), or the tanh form)
// and tanh are float ops; the padding mask becomes the additive mask the
// engine uses, (1 - mask) * lowest float.
//
// What the file computes, against the INT8 engine: the same function with
// the same codes, evaluated in float. A runtime multiplies dequantized
// values in float where the engine sums exact int32 products, and
// QuantizeLinear divides by the scale where PyTorch (and the engine)
// multiplies by its reciprocal; either can move a value that lies within
// rounding error of a code boundary to the neighbouring code. Outputs
// therefore agree to within a few quantization steps of the last layers, not
// bit for bit (tests/onnx measure it with onnxruntime).
//
// A quantization range that fits neither int8 nor uint8 has no ONNX
// QuantizeLinear type: to_onnx refuses it with an Error naming the
// layer. Writing uses io/atomic_file.hpp (a temporary renamed into place).

#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "qaware/core/error.hpp"
#include "qaware/deploy/model.hpp"
#include "qaware/io/atomic_file.hpp"

namespace qaware {
namespace deploy {

// Options of to_onnx / save_onnx. (The functions live in qaware::deploy, not
// in a qaware::onnx namespace, which would clash with ONNX's own ::onnx for
// code that says `using namespace qaware`.)
struct OnnxOptions {
  // 21 (INT4 weights, IR 10) or 13 (INT8 weights only, IR 7).
  int opset = 21;
  // Written into the model's metadata (producer_version).
  std::string producer_version = "0.1.0";
};

namespace onnx_detail {

// TensorProto.DataType values; ONNX 1.12's generated enum stops before the
// 4-bit types, whose numbers the format fixes all the same.
enum ElemType : int { kFloat = 1, kUint8 = 2, kInt8 = 3, kInt32 = 6, kInt64 = 7, kUint4 = 21, kInt4 = 22 };

class GraphWriter {
 public:
  GraphWriter(::onnx::GraphProto* g, int opset) : g_(g), opset_(opset) {}
  int opset() const { return opset_; }

  // A fresh value name from `stem`.
  std::string fresh(const std::string& stem) {
    const int n = counts_[stem]++;
    return n == 0 ? stem : stem + "_" + std::to_string(n);
  }

  std::string node(const std::string& op, const std::vector<std::string>& inputs, const std::string& stem,
                   const std::vector<::onnx::AttributeProto>& attrs = {}) {
    ::onnx::NodeProto* n = g_->add_node();
    n->set_op_type(op);
    const std::string out = fresh(stem);
    n->set_name(out);
    for (const std::string& i : inputs) n->add_input(i);
    n->add_output(out);
    for (const ::onnx::AttributeProto& a : attrs) *n->add_attribute() = a;
    return out;
  }

  // A constant of `dims` holding `bytes` (raw little-endian data).
  std::string constant(const std::string& stem, int type, const std::vector<std::int64_t>& dims, const void* bytes,
                       std::size_t n) {
    ::onnx::TensorProto* t = g_->add_initializer();
    const std::string name = fresh(stem);
    t->set_name(name);
    t->set_data_type(type);
    for (std::int64_t d : dims) t->add_dims(d);
    t->set_raw_data(bytes, n);
    return name;
  }
  std::string floats(const std::string& stem, const std::vector<std::int64_t>& dims, const std::vector<float>& v) {
    return constant(stem, kFloat, dims, v.data(), v.size() * sizeof(float));
  }
  std::string int64s(const std::string& stem, const std::vector<std::int64_t>& dims,
                     const std::vector<std::int64_t>& v) {
    return constant(stem, kInt64, dims, v.data(), v.size() * sizeof(std::int64_t));
  }
  // A float scalar; equal values (bit for bit) share one initializer.
  std::string scalar(float v) {
    std::uint32_t bits = 0;
    std::memcpy(&bits, &v, sizeof bits);
    auto it = scalars_.find(bits);
    if (it == scalars_.end()) it = scalars_.emplace(bits, floats("const_f", {}, {v})).first;
    return it->second;
  }

  // Integer codes as `type` (INT8, UINT8, INT4, UINT4) of `dims`; 4-bit
  // values are packed two per byte over the flattened tensor, element 2i in
  // the low nibble (the ONNX layout).
  std::string codes(const std::string& stem, int type, const std::vector<std::int64_t>& dims,
                    const std::vector<std::int32_t>& v) {
    std::vector<std::uint8_t> b;
    if (type == kInt4 || type == kUint4) {
      b.assign((v.size() + 1) / 2, 0);
      for (std::size_t i = 0; i < v.size(); ++i)
        b[i / 2] |= static_cast<std::uint8_t>((v[i] & 0xF) << (i % 2 ? 4 : 0));
    } else {
      b.resize(v.size());
      for (std::size_t i = 0; i < v.size(); ++i) b[i] = static_cast<std::uint8_t>(v[i]);
    }
    return constant(stem, type, dims, b.data(), b.size());
  }

  void value_info(::onnx::ValueInfoProto* v, const std::string& name, int type,
                  const std::vector<std::string>& dims) const {
    v->set_name(name);
    ::onnx::TypeProto_Tensor* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(type);
    for (const std::string& d : dims) t->mutable_shape()->add_dim()->set_dim_param(d);
  }
  void input(const std::string& name, int type, const std::vector<std::string>& dims) {
    value_info(g_->add_input(), name, type, dims);
  }
  // Gives `value` the graph output name `name`.
  void output(const std::string& value, const std::string& name, const std::vector<std::string>& dims) {
    node("Identity", {value}, name);
    value_info(g_->add_output(), name, kFloat, dims);
  }

 private:
  ::onnx::GraphProto* g_;
  int opset_;
  std::map<std::string, int> counts_;
  std::map<std::uint32_t, std::string> scalars_;
};

inline ::onnx::AttributeProto attr_int(const std::string& name, std::int64_t v) {
  ::onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(::onnx::AttributeProto::INT);
  a.set_i(v);
  return a;
}
inline ::onnx::AttributeProto attr_float(const std::string& name, float v) {
  ::onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(::onnx::AttributeProto::FLOAT);
  a.set_f(v);
  return a;
}
inline ::onnx::AttributeProto attr_ints(const std::string& name, const std::vector<std::int64_t>& v) {
  ::onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(::onnx::AttributeProto::INTS);
  for (std::int64_t x : v) a.add_ints(x);
  return a;
}
inline ::onnx::AttributeProto attr_string(const std::string& name, const std::string& v) {
  ::onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(::onnx::AttributeProto::STRING);
  a.set_s(v);
  return a;
}

// The storage type of codes in [lo, hi] and whether a Clip must narrow a
// QuantizeLinear of that type to the range.
struct CodeType {
  int type;
  bool clip;
};
inline CodeType code_type(std::int64_t lo, std::int64_t hi, int opset, const std::string& who) {
  QAWARE_CHECK(lo <= hi && ((lo >= 0 && hi <= 255) || (lo >= -128 && hi <= 127)), who, ": quantization range [", lo,
               ", ", hi, "] fits neither int8 nor uint8, which ONNX's QuantizeLinear needs");
  if (opset >= 21 && lo == 0 && hi == 15) return {kUint4, false};
  if (opset >= 21 && lo == -8 && hi == 7) return {kInt4, false};
  if (lo >= 0) return {kUint8, !(lo == 0 && hi == 255)};
  return {kInt8, !(lo == -128 && hi == 127)};
}

class Exporter {
 public:
  Exporter(::onnx::GraphProto* g, int opset) : w_(g, opset) {}

  // x -> DequantizeLinear(QuantizeLinear(x)) with `p`'s scales and zero
  // points (per tensor, or per channel along p.axis), clipped to its range.
  std::string qdq(const std::string& x, const QuantParams& p, const std::string& who) {
    const CodeType ct = code_type(p.quant_min, p.quant_max, w_.opset(), who);
    const std::vector<std::int64_t> dims =
        p.per_channel ? std::vector<std::int64_t>{static_cast<std::int64_t>(p.scale.size())} : std::vector<std::int64_t>{};
    const std::string s = w_.floats(who + ".scale", dims, p.scale);
    const std::string z = w_.codes(who + ".zero_point", ct.type, dims, p.zero_point);
    std::vector<::onnx::AttributeProto> attrs;
    if (p.per_channel) attrs.push_back(attr_int("axis", p.axis));
    std::string q = w_.node("QuantizeLinear", {x, s, z}, who + ".quantized", attrs);
    if (ct.clip) {
      const std::string lo = w_.codes(who + ".quant_min", ct.type, {}, {static_cast<std::int32_t>(p.quant_min)});
      const std::string hi = w_.codes(who + ".quant_max", ct.type, {}, {static_cast<std::int32_t>(p.quant_max)});
      q = w_.node("Clip", {q, lo, hi}, who + ".clipped");
    }
    return w_.node("DequantizeLinear", {q, s, z}, who + ".dequantized", attrs);
  }
  std::string step(const std::string& x, const QuantStep& s, const std::string& who) {
    return s.enabled() ? qdq(x, s.params(), who) : x;
  }

  // x (..., in) -> y (..., out), as Linear::forward.
  std::string linear(const std::string& x, const Linear& l, const std::string& who) {
    const Index in = l.in_features(), out = l.out_features();
    std::string y;
    if (l.is_integer()) {
      const IntegerLinearParams& p = l.params();
      QuantParams ip;
      ip.scale = {p.input_scale};
      ip.zero_point = {p.input_zero_point};
      ip.quant_min = p.input_min;
      ip.quant_max = p.input_max;
      const std::string xq = qdq(x, ip, who + ".input");
      // The [in, out] operand of MatMul: the codes transposed, dequantized per output channel (axis 1).
      const std::vector<std::int8_t> c = l.weight_codes();
      std::vector<std::int32_t> t(static_cast<std::size_t>(in * out));
      for (Index o = 0; o < out; ++o)
        for (Index i = 0; i < in; ++i) t[static_cast<std::size_t>(i * out + o)] = c[static_cast<std::size_t>(o * in + i)];
      const bool nibbles = w_.opset() >= 21 && p.weight_min >= -8 && p.weight_max <= 7;
      const int type = nibbles ? kInt4 : kInt8;
      const std::string wc = w_.codes(who + ".weight", type, {in, out}, t);
      const bool per_channel = p.weight_scales.size() > 1;
      const std::vector<std::int64_t> sd = per_channel ? std::vector<std::int64_t>{out} : std::vector<std::int64_t>{};
      const std::string ws = w_.floats(who + ".weight_scale", sd, p.weight_scales);
      const std::string wz =
          w_.codes(who + ".weight_zero_point", type, sd, std::vector<std::int32_t>(p.weight_scales.size(), 0));
      std::vector<::onnx::AttributeProto> attrs;
      if (per_channel) attrs.push_back(attr_int("axis", 1));
      const std::string wd = w_.node("DequantizeLinear", {wc, ws, wz}, who + ".weight_dequantized", attrs);
      y = w_.node("MatMul", {xq, wd}, who + ".matmul");
    } else {
      const std::string xq = step(x, l.input_step(), who + ".input_fake_quant");
      const DynTensor<float>& wt = l.float_weight();
      std::vector<float> t(static_cast<std::size_t>(in * out));
      for (Index o = 0; o < out; ++o)
        for (Index i = 0; i < in; ++i) t[static_cast<std::size_t>(i * out + o)] = wt[o * in + i];
      y = w_.node("MatMul", {xq, w_.floats(who + ".weight", {in, out}, t)}, who + ".matmul");
    }
    if (l.has_bias()) y = w_.node("Add", {y, w_.floats(who + ".bias", {out}, l.bias())}, who + ".biased");
    return step(y, l.output_step(), who + ".output_fake_quant");
  }

  std::string layer_norm(const std::string& x, const LayerNorm& ln, const std::string& who) {
    const Index C = ln.channels();
    const std::string g = w_.floats(who + ".weight", {C}, ln.weight()), b = w_.floats(who + ".bias", {C}, ln.bias());
    std::string y;
    if (w_.opset() >= 17) {
      y = w_.node("LayerNormalization", {x, g, b}, who,
                  {attr_int("axis", -1), attr_float("epsilon", ln.eps())});
    } else {
      // (x - mean) / sqrt(var + eps) * g + b over the last axis.
      const std::vector<::onnx::AttributeProto> last = {attr_ints("axes", {-1}), attr_int("keepdims", 1)};
      const std::string mean = w_.node("ReduceMean", {x}, who + ".mean", last);
      const std::string d = w_.node("Sub", {x, mean}, who + ".centered");
      const std::string var = w_.node("ReduceMean", {w_.node("Mul", {d, d}, who + ".squared")}, who + ".var", last);
      const std::string sd =
          w_.node("Sqrt", {w_.node("Add", {var, w_.scalar(ln.eps())}, who + ".var_eps")}, who + ".std");
      y = w_.node("Add", {w_.node("Mul", {w_.node("Div", {d, sd}, who + ".normalized"), g}, who + ".scaled"), b},
                  who);
    }
    return step(y, ln.output_step(), who + ".output_fake_quant");
  }

  std::string gelu(const std::string& x, GeluApprox approx, const std::string& who) {
    std::string inner;
    if (approx == GeluApprox::Erf) {
      inner = w_.node("Erf", {w_.node("Mul", {x, w_.scalar(0.70710678118654752440f)}, who + ".scaled")}, who + ".erf");
    } else {
      // tanh(sqrt(2 / pi) (x + 0.044715 x^3))
      const std::string x3 = w_.node("Mul", {w_.node("Mul", {x, x}, who + ".x2"), x}, who + ".x3");
      const std::string s = w_.node("Add", {x, w_.node("Mul", {x3, w_.scalar(0.044715f)}, who + ".cubic")}, who + ".sum");
      inner = w_.node("Tanh", {w_.node("Mul", {s, w_.scalar(0.79788456080286535588f)}, who + ".scaled")}, who + ".tanh");
    }
    const std::string one_plus = w_.node("Add", {inner, w_.scalar(1.0f)}, who + ".one_plus");
    return w_.node("Mul", {w_.node("Mul", {x, w_.scalar(0.5f)}, who + ".half"), one_plus}, who);
  }

  // x (B, T, C), mask (B, 1, 1, T) additive -> (B, T, C).
  std::string attention(const std::string& x, const std::string& mask, const Attention& a,
                        const std::string& who) {
    const Index C = a.hidden, NH = a.heads, HS = C / NH;
    const std::string self = who + ".self";
    const std::string split = w_.int64s(self + ".split_shape", {4}, {0, 0, NH, HS});
    auto heads = [&](const std::string& v, const std::vector<std::int64_t>& perm, const std::string& stem) {
      const std::string r = w_.node("Reshape", {v, split}, stem + ".split");
      return w_.node("Transpose", {r}, stem + ".heads", {attr_ints("perm", perm)});
    };
    const std::string q = step(linear(x, a.query, self + ".query"), a.q_step, self + ".q_fake_quant");
    const std::string k = step(linear(x, a.key, self + ".key"), a.k_step, self + ".k_fake_quant");
    const std::string v = step(linear(x, a.value, self + ".value"), a.v_step, self + ".v_fake_quant");
    const std::string qh = heads(q, {0, 2, 1, 3}, self + ".q"), kt = heads(k, {0, 2, 3, 1}, self + ".k"),
                      vh = heads(v, {0, 2, 1, 3}, self + ".v");
    const float alpha = 1.0f / std::sqrt(static_cast<float>(HS));
    std::string s = w_.node("Mul", {w_.node("MatMul", {qh, kt}, self + ".qk"), w_.scalar(alpha)}, self + ".scores");
    s = step(s, a.scores_step, self + ".scores_fake_quant");
    s = w_.node("Add", {s, mask}, self + ".masked_scores");
    std::string p = w_.node("Softmax", {s}, self + ".probs", {attr_int("axis", -1)});
    p = step(p, a.probs_step, self + ".probs_fake_quant");
    const std::string ctx = w_.node("Transpose", {w_.node("MatMul", {p, vh}, self + ".context_heads")},
                                    self + ".context_t", {attr_ints("perm", {0, 2, 1, 3})});
    const std::string merged =
        w_.node("Reshape", {ctx, w_.int64s(self + ".merge_shape", {3}, {0, 0, C})}, self + ".context");
    return linear(merged, a.dense, who + ".output.dense");
  }

  std::string block(const std::string& x, const std::string& mask, const Block& b, const std::string& who) {
    auto ffn = [&](const std::string& h) {
      const std::string i = gelu(linear(h, b.intermediate, who + ".intermediate.dense"), b.gelu,
                                 who + ".intermediate.intermediate_act_fn");
      return linear(step(i, b.gelu_step, who + ".intermediate.intermediate_act_fn.output_fake_quant"), b.output,
                    who + ".output.dense");
    };
    if (!b.pre_layer_norm) {
      const std::string h = layer_norm(
          w_.node("Add", {attention(x, mask, b.attention, who + ".attention"), x}, who + ".attention.residual"), b.ln1,
          who + ".attention.output.LayerNorm");
      return layer_norm(w_.node("Add", {ffn(h), h}, who + ".output.residual"), b.ln2, who + ".output.LayerNorm");
    }
    const std::string h = w_.node(
        "Add", {x, attention(layer_norm(x, b.ln1, who + ".attention.output.LayerNorm"), mask, b.attention, who + ".attention")},
        who + ".attention.residual");
    return w_.node("Add", {h, ffn(layer_norm(h, b.ln2, who + ".output.LayerNorm"))}, who + ".output.residual");
  }

  // The rows `ids` of a table (float, or its codes dequantized).
  std::string lookup(const EmbeddingTable& t, const std::string& ids, const std::string& who) {
    std::string table;
    if (!t.is_quantized()) {
      const DynTensor<float>& v = t.float_values();
      table = w_.floats(who, {t.rows(), t.cols()}, std::vector<float>(v.data(), v.data() + v.numel()));
    } else {
      const QuantParams& p = t.params();
      const CodeType ct = code_type(p.quant_min, p.quant_max, 13, who);  // tables keep 8-bit storage
      std::vector<std::int32_t> c(static_cast<std::size_t>(t.rows() * t.cols()));
      for (std::size_t i = 0; i < c.size(); ++i) c[i] = t.code(static_cast<Index>(i));
      const std::string codes = w_.codes(who, ct.type, {t.rows(), t.cols()}, c);
      const std::vector<std::int64_t> sd =
          p.per_channel ? std::vector<std::int64_t>{static_cast<std::int64_t>(p.scale.size())} : std::vector<std::int64_t>{};
      std::vector<::onnx::AttributeProto> attrs;
      if (p.per_channel) attrs.push_back(attr_int("axis", p.axis));
      table = w_.node("DequantizeLinear",
                      {codes, w_.floats(who + "_fake_quant.scale", sd, p.scale),
                       w_.codes(who + "_fake_quant.zero_point", ct.type, sd, p.zero_point)},
                      who + ".dequantized", attrs);
    }
    return w_.node("Gather", {table, ids}, who + ".lookup", {attr_int("axis", 0)});
  }

  void model(const BertModel& m) {
    const std::vector<std::string> bt = {"batch", "sequence"};
    w_.input("input_ids", kInt64, bt);
    w_.input("token_type_ids", kInt64, bt);
    w_.input("attention_mask", kInt64, bt);
    const Embeddings& e = m.embeddings();
    // positions = Range(0, T): T from the ids' shape.
    const std::string shape = w_.node("Shape", {"input_ids"}, "embeddings.input_shape");
    const std::string T = w_.node("Gather", {shape, w_.int64s("const_i", {}, {1})}, "embeddings.sequence_length",
                                  {attr_int("axis", 0)});
    const std::string positions =
        w_.node("Range", {w_.int64s("const_i", {}, {0}), T, w_.int64s("const_i", {}, {1})}, "embeddings.position_ids");
    const std::string words = lookup(e.word, "input_ids", "embeddings.word_embeddings.weight");
    const std::string types = lookup(e.token_type, "token_type_ids", "embeddings.token_type_embeddings.weight");
    const std::string pos = lookup(e.position, positions, "embeddings.position_embeddings.weight");
    std::string h = layer_norm(
        w_.node("Add", {w_.node("Add", {words, types}, "embeddings.word_and_type"), pos}, "embeddings.sum"),
        e.layer_norm, "embeddings.LayerNorm");
    // The additive mask (B, 1, 1, T): (1 - mask) * lowest.
    const std::string mf = w_.node("Cast", {"attention_mask"}, "attention_mask.float", {attr_int("to", kFloat)});
    const std::string inv = w_.node("Sub", {w_.scalar(1.0f), mf}, "attention_mask.inverted");
    const std::string add =
        w_.node("Mul", {inv, w_.scalar(std::numeric_limits<float>::lowest())}, "attention_mask.additive");
    const std::string mask = w_.node("Unsqueeze", {add, w_.int64s("const_axes", {2}, {1, 2})}, "attention_mask.bias");
    for (std::size_t i = 0; i < m.layers().size(); ++i)
      h = block(h, mask, m.layers()[i], "encoder.layer." + std::to_string(i));
    w_.output(h, "sequence_output", {"batch", "sequence", "hidden"});
    if (m.pooler()) {
      const std::string first =
          w_.node("Gather", {h, w_.int64s("const_i", {}, {0})}, "pooler.first_token", {attr_int("axis", 1)});
      const std::string pooled = w_.node("Tanh", {linear(first, *m.pooler(), "pooler.dense")}, "pooler.activation");
      w_.output(pooled, "pooled_output", {"batch", "hidden"});
      if (m.classifier()) w_.output(linear(pooled, *m.classifier(), "classifier"), "logits", {"batch", "labels"});
    }
    if (m.mlm_head()) {
      const MlmHead& mh = *m.mlm_head();
      std::string t = linear(h, mh.transform, "cls.predictions.transform.dense");
      t = gelu(t, mh.gelu, "cls.predictions.transform.transform_act_fn");
      t = layer_norm(t, mh.layer_norm, "cls.predictions.transform.LayerNorm");
      w_.output(linear(t, mh.decoder, "cls.predictions.decoder"), "mlm_logits", {"batch", "sequence", "vocab"});
    }
  }

 private:
  GraphWriter w_;
};

}  // namespace onnx_detail

// The ONNX model of `model` (see the file comment for the graph).
inline ::onnx::ModelProto to_onnx(const BertModel& model, const OnnxOptions& options = {}) {
  QAWARE_CHECK(options.opset == 13 || options.opset == 21, "deploy::to_onnx: opset ", options.opset,
               " is not supported (13 or 21)");
  ::onnx::ModelProto m;
  m.set_ir_version(options.opset >= 21 ? 10 : 7);
  m.set_producer_name("qaware");
  m.set_producer_version(options.producer_version);
  m.set_domain("ai.qaware");
  m.set_doc_string("A BERT encoder exported from qaware's INT8 model: QuantizeLinear/DequantizeLinear around every "
                   "quantized operation");
  ::onnx::OperatorSetIdProto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(options.opset);
  ::onnx::GraphProto* g = m.mutable_graph();
  g->set_name("qaware_bert");
  onnx_detail::Exporter(g, options.opset).model(model);
  return m;
}

// Writes to_onnx(model, options) to `path` (atomically).
inline void save_onnx(const BertModel& model, const std::string& path, const OnnxOptions& options = {}) {
  const ::onnx::ModelProto m = to_onnx(model, options);
  std::string bytes;
  QAWARE_CHECK(m.SerializeToString(&bytes), "deploy::save_onnx: ", path, ": the model could not be serialised (",
               m.ByteSizeLong(), " bytes; protobuf's limit is 2 GiB)");
  io::write_file_atomic(path, [&](std::FILE* f, const std::string& p) {
    io::write_bytes(f, bytes.data(), bytes.size(), p);
  });
}

}  // namespace deploy
}  // namespace qaware
