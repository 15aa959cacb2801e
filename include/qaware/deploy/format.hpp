#pragma once
// The INT8 model file: deploy::save / deploy::load of a deploy::BertModel,
// readable without the training code.
//
// A safetensors file (io/safetensors.hpp: strict parsing, atomic writes)
// whose __metadata__ holds
//   "format"  = "qaware-int8"
//   "version" = "1"
//   "model"   = JSON: the ModelConfig, which heads there are, and every
//               module's quantization (below)
// and whose tensors are named after the QAT model's modules:
//   <linear>.weight          integer layer, weight codes within [-8, 7]: U8
//                            [OUT, ceil(IN / 2)], two codes per byte, code
//                            2j in the low nibble and 2j + 1 in the high
//                            one, each a 4-bit two's complement value (an
//                            odd IN leaves the last high nibble 0); wider
//                            codes: I8 [OUT, IN]
//                            float layer: F32 [OUT, IN]
//   <linear>.weight_scale    F32 [1] or [OUT] (integer layers)
//   <linear>.input_scale     F32 [1], <linear>.input_zero_point I32 [1] (integer layers)
//   <linear>.bias            F32 [OUT] (when it has one)
//   <norm>.weight, .bias     F32 [C] (LayerNorm)
//   <table>                  F32 [rows, C], or its codes (4-bit packed as
//                            above within [-8, 7], I8 within int8, U8 within
//                            uint8) for a quantized table
//   <step>.scale             F32 [channels], <step>.zero_point I32 [channels]:
//                            a quantization step (a frozen QAT point), also
//                            for a quantized table's parameters
// The "model" JSON:
//   {"config": {"hidden": ..., "heads": ..., "intermediate": ..., "layers": ...,
//               "vocab_size": ..., "max_positions": ..., "type_vocab_size": ...,
//               "pre_layer_norm": bool, "gelu": "erf" | "tanh"},
//    "pooler": bool, "classifier_labels": int (0: no classifier), "mlm": bool,
//    "linears": {"<linear>": {"kind": "integer" | "float", "bias": bool,
//                             "input_min", "input_max", "weight_min", "weight_max" (integer)}},
//    "norms":   {"<norm>": {"eps": "<float as text>"}},
//    "attention": {"<layer>.attention": {"integer_products": bool}},
//    "tables":  {"<table>": {"quantized": bool}},
//    "steps":   {"<step>": {"per_channel": bool, "axis": int, "quant_min": int, "quant_max": int}}}
// where <step> is the QAT point's name (e.g. "...input_fake_quant",
// "...self.scores_fake_quant", "<table>_fake_quant"). Integers are JSON
// numbers (possibly negative); eps is text so that the float round-trips.
//
// load() trusts nothing: every tensor the model JSON implies must be present
// with the dtype and shape it implies, and no other; codes must lie in their
// declared ranges, scales be finite and positive, zero points in range,
// biases and float weights finite; unknown formats or versions are refused.
// Each problem raises qaware::Error naming the file and the tensor or key.
// Weights are packed for the best GEMM path of the CPU that loads them.

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "qaware/core/error.hpp"
#include "qaware/deploy/model.hpp"
#include "qaware/io/json.hpp"
#include "qaware/io/safetensors.hpp"

namespace qaware {
namespace deploy {

inline constexpr const char* kFormatName = "qaware-int8";
inline constexpr int kFormatVersion = 1;

namespace format_detail {

using io::json::Value;

// ---- JSON helpers ----

inline Value number(long long v) { return Value::number_text(std::to_string(v)); }
inline Value float_text(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  return Value::string(buf);
}

class Reader {
 public:
  explicit Reader(std::string source) : src_(std::move(source)) {}
  const std::string& source() const { return src_; }

  const Value& member(const Value& obj, const std::string& key, const std::string& where) const {
    QAWARE_CHECK(obj.is_object(), src_, ": ", where, " must be a JSON object");
    const Value* v = obj.find(key);
    QAWARE_CHECK(v != nullptr, src_, ": ", where, " has no \"", key, "\"");
    return *v;
  }
  long long integer(const Value& obj, const std::string& key, const std::string& where, long long lo,
                    long long hi) const {
    const Value& v = member(obj, key, where);
    QAWARE_CHECK(v.is_number(), src_, ": ", where, ".", key, " must be a number");
    const std::string& t = v.number_text();
    errno = 0;
    char* end = nullptr;
    const long long x = std::strtoll(t.c_str(), &end, 10);
    QAWARE_CHECK(errno == 0 && end != nullptr && *end == '\0', src_, ": ", where, ".", key, " = ", t,
                 " is not an integer");
    QAWARE_CHECK(x >= lo && x <= hi, src_, ": ", where, ".", key, " = ", x, " is outside [", lo, ", ", hi, "]");
    return x;
  }
  bool boolean(const Value& obj, const std::string& key, const std::string& where) const {
    const Value& v = member(obj, key, where);
    QAWARE_CHECK(v.is_bool(), src_, ": ", where, ".", key, " must be true or false");
    return v.as_bool();
  }
  std::string string(const Value& obj, const std::string& key, const std::string& where) const {
    const Value& v = member(obj, key, where);
    QAWARE_CHECK(v.is_string(), src_, ": ", where, ".", key, " must be a string");
    return v.as_string();
  }
  float real(const Value& obj, const std::string& key, const std::string& where) const {
    const std::string t = string(obj, key, where);
    errno = 0;
    char* end = nullptr;
    const float x = std::strtof(t.c_str(), &end);
    QAWARE_CHECK(!t.empty() && errno == 0 && end != nullptr && *end == '\0' && std::isfinite(x), src_, ": ", where,
                 ".", key, " = \"", t, "\" is not a finite number");
    return x;
  }

 private:
  std::string src_;
};

// ---- codes ----

inline bool fits_nibble(std::int64_t lo, std::int64_t hi) { return lo >= -8 && hi <= 7; }

// rows x cols codes -> the stored tensor: 4-bit packed, I8 or U8.
inline io::TensorData store_codes(const std::vector<std::int32_t>& codes, Index rows, Index cols, std::int64_t lo,
                                  std::int64_t hi) {
  io::TensorData d;
  if (fits_nibble(lo, hi)) {
    const Index bpr = (cols + 1) / 2;
    d.dtype = io::DType::U8;
    d.shape = Shape{rows, bpr};
    d.bytes.assign(static_cast<std::size_t>(rows * bpr), 0);
    for (Index r = 0; r < rows; ++r)
      for (Index c = 0; c < cols; ++c) {
        const auto nib = static_cast<std::uint8_t>(codes[static_cast<std::size_t>(r * cols + c)] & 0xF);
        d.bytes[static_cast<std::size_t>(r * bpr + c / 2)] |= static_cast<std::uint8_t>(c % 2 ? nib << 4 : nib);
      }
    return d;
  }
  d.dtype = lo >= -128 && hi <= 127 ? io::DType::I8 : io::DType::U8;
  d.shape = Shape{rows, cols};
  d.bytes.resize(static_cast<std::size_t>(rows * cols));
  for (std::size_t i = 0; i < d.bytes.size(); ++i) d.bytes[i] = static_cast<std::uint8_t>(codes[i]);
  return d;
}

// The inverse, with every check (dtype, shape, each code within [lo, hi]).
// The sizes come from the model JSON, so they are checked against the
// stored tensor (whose bytes the safetensors reader has checked) before
// anything of that size is allocated.
inline std::vector<std::int32_t> load_codes(const io::TensorData& d, Index rows, Index cols, std::int64_t lo,
                                            std::int64_t hi, const std::string& who) {
  std::vector<std::int32_t> out;
  if (fits_nibble(lo, hi)) {
    const Index bpr = (cols + 1) / 2;
    QAWARE_CHECK(d.dtype == io::DType::U8 && d.shape == Shape({rows, bpr}), who, ": 4-bit codes must be U8 [", rows,
                 ", ", bpr, "], got ", io::dtype_name(d.dtype), " ", d.shape.str());
    out.resize(static_cast<std::size_t>(rows * cols));
    for (Index r = 0; r < rows; ++r) {
      for (Index c = 0; c < cols; ++c) {
        const std::uint8_t b = d.bytes[static_cast<std::size_t>(r * bpr + c / 2)];
        const int nib = (c % 2 ? b >> 4 : b) & 0xF;
        out[static_cast<std::size_t>(r * cols + c)] = nib >= 8 ? nib - 16 : nib;
      }
      if (cols % 2)
        QAWARE_CHECK((d.bytes[static_cast<std::size_t>(r * bpr + bpr - 1)] >> 4) == 0, who, ": row ", r,
                     " has a nonzero padding nibble");
    }
  } else {
    const io::DType want = lo >= -128 && hi <= 127 ? io::DType::I8 : io::DType::U8;
    QAWARE_CHECK(d.dtype == want && d.shape == Shape({rows, cols}), who, ": codes must be ", io::dtype_name(want), " [",
                 rows, ", ", cols, "], got ", io::dtype_name(d.dtype), " ", d.shape.str());
    out.resize(static_cast<std::size_t>(rows * cols));
    for (std::size_t i = 0; i < out.size(); ++i)
      out[i] = want == io::DType::I8 ? static_cast<std::int32_t>(static_cast<std::int8_t>(d.bytes[i]))
                                     : static_cast<std::int32_t>(d.bytes[i]);
  }
  for (std::size_t i = 0; i < out.size(); ++i)
    QAWARE_CHECK(out[i] >= lo && out[i] <= hi, who, ": code ", out[i], " at row ", static_cast<Index>(i) / cols,
                 ", column ", static_cast<Index>(i) % cols, " is outside the declared range [", lo, ", ", hi, "]");
  return out;
}

// ---- writer ----

class Writer {
 public:
  void step(const QuantStep& s, const std::string& name) {
    if (!s.enabled()) return;
    const QuantParams& p = s.params();
    const auto C = static_cast<Index>(p.scale.size());
    tensors_[name + ".scale"] = io::TensorData::from(Shape{C}, p.scale.data());
    tensors_[name + ".zero_point"] = io::TensorData::from(Shape{C}, p.zero_point.data());
    steps_.push_back({name, Value::object({{"per_channel", Value::boolean(p.per_channel)},
                                           {"axis", number(p.axis)},
                                           {"quant_min", number(p.quant_min)},
                                           {"quant_max", number(p.quant_max)}})});
  }
  void linear(const Linear& l, const std::string& name) {
    const Index OUT = l.out_features(), IN = l.in_features();
    Value::Members m{{"kind", Value::string(l.is_integer() ? "integer" : "float")},
                     {"bias", Value::boolean(l.has_bias())}};
    if (l.has_bias()) tensors_[name + ".bias"] = io::TensorData::from(Shape{OUT}, l.bias().data());
    if (l.is_integer()) {
      const IntegerLinearParams& p = l.params();
      m.push_back({"input_min", number(p.input_min)});
      m.push_back({"input_max", number(p.input_max)});
      m.push_back({"weight_min", number(p.weight_min)});
      m.push_back({"weight_max", number(p.weight_max)});
      const std::vector<std::int8_t> c8 = l.weight_codes();
      tensors_[name + ".weight"] =
          store_codes(std::vector<std::int32_t>(c8.begin(), c8.end()), OUT, IN, p.weight_min, p.weight_max);
      tensors_[name + ".weight_scale"] =
          io::TensorData::from(Shape{static_cast<Index>(p.weight_scales.size())}, p.weight_scales.data());
      tensors_[name + ".input_scale"] = io::TensorData::from(Shape{1}, &p.input_scale);
      tensors_[name + ".input_zero_point"] = io::TensorData::from(Shape{1}, &p.input_zero_point);
    } else {
      tensors_[name + ".weight"] = io::TensorData::from(l.float_weight());
      step(l.input_step(), name + ".input_fake_quant");
    }
    step(l.output_step(), name + ".output_fake_quant");
    linears_.push_back({name, Value::object(std::move(m))});
  }
  void norm(const LayerNorm& n, const std::string& name) {
    tensors_[name + ".weight"] = io::TensorData::from(Shape{n.channels()}, n.weight().data());
    tensors_[name + ".bias"] = io::TensorData::from(Shape{n.channels()}, n.bias().data());
    norms_.push_back({name, Value::object({{"eps", float_text(n.eps())}})});
    step(n.output_step(), name + ".output_fake_quant");
  }
  void table(const EmbeddingTable& t, const std::string& name) {
    tables_.push_back({name, Value::object({{"quantized", Value::boolean(t.is_quantized())}})});
    if (!t.is_quantized()) {
      tensors_[name] = io::TensorData::from(t.float_values());
      return;
    }
    std::vector<std::int32_t> codes(static_cast<std::size_t>(t.rows() * t.cols()));
    for (Index i = 0; i < t.rows() * t.cols(); ++i) codes[static_cast<std::size_t>(i)] = t.code(i);
    tensors_[name] = store_codes(codes, t.rows(), t.cols(), t.params().quant_min, t.params().quant_max);
    step(QuantStep(t.params(), name), name + "_fake_quant");
  }

  io::TensorDict& tensors() { return tensors_; }
  Value::Members& linears() { return linears_; }
  Value::Members& norms() { return norms_; }
  Value::Members& tables() { return tables_; }
  Value::Members& steps() { return steps_; }
  Value::Members& attention() { return attention_; }

 private:
  io::TensorDict tensors_;
  Value::Members linears_, norms_, tables_, steps_, attention_;
};

// ---- loader ----

class Loader {
 public:
  Loader(io::Safetensors file, const Value& model, std::string source)
      : file_(std::move(file)), rd_(std::move(source)) {
    for (const char* section : {"linears", "norms", "tables", "steps", "attention"}) {
      const Value& s = rd_.member(model, section, "model");
      QAWARE_CHECK(s.is_object(), rd_.source(), ": model.", section, " must be an object");
      sections_[section] = &s;
    }
  }

  const io::TensorData& tensor(const std::string& name) {
    const auto it = file_.tensors.find(name);
    QAWARE_CHECK(it != file_.tensors.end(), rd_.source(), ": tensor \"", name, "\" is missing");
    used_.insert(name);
    return it->second;
  }
  template <typename T>
  std::vector<T> vec(const std::string& name, Index n) {
    const io::TensorData& d = tensor(name);
    QAWARE_CHECK(d.dtype == io::dtype_of<T>() && d.shape == Shape({n}), rd_.source(), ": tensor \"", name,
                 "\" must be ", io::dtype_name(io::dtype_of<T>()), " [", n, "], got ", io::dtype_name(d.dtype), " ",
                 d.shape.str());
    const DynTensor<T> t = d.as<T>();
    return std::vector<T>(t.data(), t.data() + n);
  }
  std::vector<float> finite_vec(const std::string& name, Index n) {
    std::vector<float> v = vec<float>(name, n);
    for (std::size_t i = 0; i < v.size(); ++i)
      QAWARE_CHECK(std::isfinite(v[i]), rd_.source(), ": tensor \"", name, "\" value ", v[i], " at ", i,
                   " is not finite");
    return v;
  }
  const Value* entry(const char* section, const std::string& name) { return sections_[section]->find(name); }
  const Value& need(const char* section, const std::string& name) {
    const Value* v = entry(section, name);
    QAWARE_CHECK(v != nullptr, rd_.source(), ": model.", section, " has no entry \"", name, "\"");
    entries_used_.insert(std::string(section) + "/" + name);
    return *v;
  }

  // The step `name`: present when model.steps lists it, else off. Per
  // channel, it needs `channels` scales (the features of the tensor it
  // quantizes; 0: the point is per tensor only); the QuantStep checks the
  // values.
  QuantStep step(const std::string& name, Index channels) {
    const Value* s = entry("steps", name);
    if (!s) return QuantStep();
    const std::string where = "model.steps." + name;
    QuantParams p;
    p.per_channel = rd_.boolean(*s, "per_channel", where);
    p.axis = static_cast<int>(rd_.integer(*s, "axis", where, -8, 8));
    p.quant_min = rd_.integer(*s, "quant_min", where, -kMaxQuantMagnitude, kMaxQuantMagnitude);
    p.quant_max = rd_.integer(*s, "quant_max", where, -kMaxQuantMagnitude, kMaxQuantMagnitude);
    QAWARE_CHECK(!p.per_channel || channels > 0, rd_.source(), ": ", where, " is per channel, but this point is per tensor only");
    const Index C = p.per_channel ? channels : 1;
    p.scale = vec<float>(name + ".scale", C);
    p.zero_point = vec<std::int32_t>(name + ".zero_point", C);
    entries_used_.insert("steps/" + name);
    return QuantStep(std::move(p), rd_.source() + ": " + name);
  }

  Linear linear(const std::string& name, Index out, Index in) {
    const Value& m = need("linears", name);
    const std::string where = "model.linears." + name, who = rd_.source() + ": " + name;
    const std::string kind = rd_.string(m, "kind", where);
    const bool has_bias = rd_.boolean(m, "bias", where);
    std::vector<float> bias = has_bias ? finite_vec(name + ".bias", out) : std::vector<float>();
    QuantStep output = step(name + ".output_fake_quant", out);
    if (kind == "integer") {
      IntegerLinearParams p;
      p.input_min = static_cast<std::int32_t>(rd_.integer(m, "input_min", where, -128, 255));
      p.input_max = static_cast<std::int32_t>(rd_.integer(m, "input_max", where, -128, 255));
      p.weight_min = static_cast<std::int32_t>(rd_.integer(m, "weight_min", where, -128, 127));
      p.weight_max = static_cast<std::int32_t>(rd_.integer(m, "weight_max", where, -128, 127));
      QAWARE_CHECK(p.weight_min <= p.weight_max && p.input_min <= p.input_max, who, ": empty code range");
      const std::vector<float> is = vec<float>(name + ".input_scale", 1);
      p.input_scale = is[0];
      p.input_zero_point = vec<std::int32_t>(name + ".input_zero_point", 1)[0];
      const io::TensorData& ws = tensor(name + ".weight_scale");
      const Index S = ws.shape.rank() == 1 ? ws.shape[0] : -1;
      QAWARE_CHECK(S == 1 || S == out, who, ": weight_scale must be F32 [1] or [", out, "], got ", ws.shape.str());
      p.weight_scales = vec<float>(name + ".weight_scale", S);
      const std::vector<std::int32_t> c =
          load_codes(tensor(name + ".weight"), out, in, p.weight_min, p.weight_max, who + ".weight");
      const std::vector<std::int8_t> c8(c.begin(), c.end());
      return Linear::integer(c8.data(), out, in, std::move(p), std::move(bias), std::move(output), who);
    }
    QAWARE_CHECK(kind == "float", who, ": unknown linear kind \"", kind, "\" (expected integer or float)");
    const io::TensorData& w = tensor(name + ".weight");
    QAWARE_CHECK(w.dtype == io::DType::F32 && w.shape == Shape({out, in}), who, ": a float weight must be F32 [", out,
                 ", ", in, "], got ", io::dtype_name(w.dtype), " ", w.shape.str());
    return Linear::floating(w.as<float>(), std::move(bias), step(name + ".input_fake_quant", in), std::move(output), who);
  }

  LayerNorm norm(const std::string& name, Index C) {
    const Value& m = need("norms", name);
    const float eps = rd_.real(m, "eps", "model.norms." + name);
    return LayerNorm(finite_vec(name + ".weight", C), finite_vec(name + ".bias", C), eps,
                     step(name + ".output_fake_quant", C), rd_.source() + ": " + name);
  }

  EmbeddingTable table(const std::string& name, Index rows, Index cols) {
    const Value& m = need("tables", name);
    const std::string who = rd_.source() + ": " + name;
    if (!rd_.boolean(m, "quantized", "model.tables." + name)) {
      const io::TensorData& d = tensor(name);
      QAWARE_CHECK(d.dtype == io::DType::F32 && d.shape == Shape({rows, cols}), who, ": must be F32 [", rows, ", ",
                   cols, "], got ", io::dtype_name(d.dtype), " ", d.shape.str());
      return EmbeddingTable::floating(d.as<float>(), who);
    }
    const std::string sname = name + "_fake_quant";
    const Value& js = need("steps", sname);
    const long long axis = rd_.integer(js, "axis", "model.steps." + sname, -2, 1);
    const QuantStep s = step(sname, (axis == 0 || axis == -2) ? rows : cols);
    QAWARE_CHECK(s.enabled(), who, ": a quantized table needs the step \"", name, "_fake_quant\"");
    const QuantParams& p = s.params();
    return EmbeddingTable::quantized(load_codes(tensor(name), rows, cols, p.quant_min, p.quant_max, who), rows, cols,
                                     p, who);
  }

  // Everything in the file was read, and every listed entry was used.
  void check_all_used() const {
    for (const auto& kv : file_.tensors)
      QAWARE_CHECK(used_.count(kv.first), rd_.source(), ": unexpected tensor \"", kv.first, "\"");
    for (const auto& [section, value] : sections_)
      for (const Value::Members::value_type& kv : value->members())
        QAWARE_CHECK(entries_used_.count(section + "/" + kv.first), rd_.source(), ": model.", section, " lists \"",
                     kv.first, "\", which no module of this model uses");
  }
  const Reader& reader() const { return rd_; }

 private:
  io::Safetensors file_;
  Reader rd_;
  std::map<std::string, const Value*> sections_;  // linears, norms, tables, steps, attention
  std::set<std::string> used_, entries_used_;
};

}  // namespace format_detail

// Writes `model` to `path` (atomically: a temporary renamed into place).
inline void save(const BertModel& model, const std::string& path) {
  using format_detail::number;
  using io::json::Value;
  format_detail::Writer w;
  const ModelConfig& c = model.config();
  const Embeddings& e = model.embeddings();
  w.table(e.word, "embeddings.word_embeddings.weight");
  w.table(e.position, "embeddings.position_embeddings.weight");
  w.table(e.token_type, "embeddings.token_type_embeddings.weight");
  w.norm(e.layer_norm, "embeddings.LayerNorm");
  for (std::size_t i = 0; i < model.layers().size(); ++i) {
    const Block& b = model.layers()[i];
    const std::string p = "encoder.layer." + std::to_string(i);
    w.linear(b.attention.query, p + ".attention.self.query");
    w.linear(b.attention.key, p + ".attention.self.key");
    w.linear(b.attention.value, p + ".attention.self.value");
    w.step(b.attention.q_step, p + ".attention.self.q_fake_quant");
    w.step(b.attention.k_step, p + ".attention.self.k_fake_quant");
    w.step(b.attention.v_step, p + ".attention.self.v_fake_quant");
    w.step(b.attention.scores_step, p + ".attention.self.scores_fake_quant");
    w.step(b.attention.probs_step, p + ".attention.self.probs_fake_quant");
    w.linear(b.attention.dense, p + ".attention.output.dense");
    w.attention().push_back(
        {p + ".attention", Value::object({{"integer_products", Value::boolean(b.attention.integer_products)}})});
    w.norm(b.ln1, p + ".attention.output.LayerNorm");
    w.linear(b.intermediate, p + ".intermediate.dense");
    w.step(b.gelu_step, p + ".intermediate.intermediate_act_fn.output_fake_quant");
    w.linear(b.output, p + ".output.dense");
    w.norm(b.ln2, p + ".output.LayerNorm");
  }
  if (model.pooler()) w.linear(*model.pooler(), "pooler.dense");
  if (model.classifier()) w.linear(*model.classifier(), "classifier");
  if (model.mlm_head()) {
    const MlmHead& h = *model.mlm_head();
    w.linear(h.transform, "cls.predictions.transform.dense");
    w.norm(h.layer_norm, "cls.predictions.transform.LayerNorm");
    w.linear(h.decoder, "cls.predictions.decoder");
  }
  const Value config = Value::object({{"hidden", number(c.hidden)},
                                      {"heads", number(c.heads)},
                                      {"intermediate", number(c.intermediate)},
                                      {"layers", number(c.layers)},
                                      {"vocab_size", number(c.vocab_size)},
                                      {"max_positions", number(c.max_positions)},
                                      {"type_vocab_size", number(c.type_vocab_size)},
                                      {"pre_layer_norm", Value::boolean(c.pre_layer_norm)},
                                      {"gelu", Value::string(c.gelu == GeluApprox::Erf ? "erf" : "tanh")}});
  const Value root = Value::object({{"config", config},
                                    {"pooler", Value::boolean(model.pooler().has_value())},
                                    {"classifier_labels", number(model.classifier() ? model.classifier()->out_features() : 0)},
                                    {"mlm", Value::boolean(model.mlm_head().has_value())},
                                    {"linears", Value::object(std::move(w.linears()))},
                                    {"norms", Value::object(std::move(w.norms()))},
                                    {"tables", Value::object(std::move(w.tables()))},
                                    {"steps", Value::object(std::move(w.steps()))},
                                    {"attention", Value::object(std::move(w.attention()))}});
  io::Metadata meta{{"format", kFormatName},
                    {"version", std::to_string(kFormatVersion)},
                    {"model", io::json::dump(root)}};
  io::save_safetensors(path, w.tensors(), meta);
}

// Reads a model written by save() (see the file comment for what is checked).
inline BertModel load(const std::string& path) {
  io::Safetensors file = io::load_safetensors(path);
  const auto fmt = file.metadata.find("format");
  QAWARE_CHECK(fmt != file.metadata.end() && fmt->second == kFormatName, path, ": not a qaware INT8 model (metadata ",
               "\"format\" is ", fmt == file.metadata.end() ? std::string("missing") : "\"" + fmt->second + "\"",
               ", expected \"", kFormatName, "\")");
  const auto ver = file.metadata.find("version");
  QAWARE_CHECK(ver != file.metadata.end() && ver->second == std::to_string(kFormatVersion), path,
               ": unsupported format version ", ver == file.metadata.end() ? std::string("(missing)") : ver->second,
               " (this build reads version ", kFormatVersion, ")");
  const auto mj = file.metadata.find("model");
  QAWARE_CHECK(mj != file.metadata.end(), path, ": metadata has no \"model\"");
  const io::json::Value root = io::json::parse(mj->second, 64, SIZE_MAX, io::kMaxSafetensorsHeaderValues);
  format_detail::Loader ld(std::move(file), root, path);
  const format_detail::Reader& rd = ld.reader();
  const io::json::Value& jc = rd.member(root, "config", "model");
  constexpr long long kMaxSize = 1LL << 20;
  ModelConfig c;
  c.hidden = rd.integer(jc, "hidden", "model.config", 1, kMaxSize);
  c.heads = rd.integer(jc, "heads", "model.config", 1, c.hidden);
  c.intermediate = rd.integer(jc, "intermediate", "model.config", 1, kMaxSize);
  c.layers = rd.integer(jc, "layers", "model.config", 0, 4096);
  c.vocab_size = rd.integer(jc, "vocab_size", "model.config", 1, 1LL << 24);
  c.max_positions = rd.integer(jc, "max_positions", "model.config", 1, kMaxSize);
  c.type_vocab_size = rd.integer(jc, "type_vocab_size", "model.config", 1, kMaxSize);
  c.pre_layer_norm = rd.boolean(jc, "pre_layer_norm", "model.config");
  const std::string gelu = rd.string(jc, "gelu", "model.config");
  QAWARE_CHECK(gelu == "erf" || gelu == "tanh", path, ": model.config.gelu must be \"erf\" or \"tanh\", got \"", gelu,
               "\"");
  c.gelu = gelu == "erf" ? GeluApprox::Erf : GeluApprox::Tanh;
  QAWARE_CHECK(c.hidden % c.heads == 0, path, ": hidden size ", c.hidden, " is not a multiple of ", c.heads, " heads");
  const Index C = c.hidden, F = c.intermediate;

  Embeddings e;
  e.word = ld.table("embeddings.word_embeddings.weight", c.vocab_size, C);
  e.position = ld.table("embeddings.position_embeddings.weight", c.max_positions, C);
  e.token_type = ld.table("embeddings.token_type_embeddings.weight", c.type_vocab_size, C);
  e.layer_norm = ld.norm("embeddings.LayerNorm", C);
  std::vector<Block> layers;
  for (Index i = 0; i < c.layers; ++i) {
    const std::string p = "encoder.layer." + std::to_string(i);
    Block b;
    b.pre_layer_norm = c.pre_layer_norm;
    b.gelu = c.gelu;
    b.attention.hidden = C;
    b.attention.heads = c.heads;
    b.attention.query = ld.linear(p + ".attention.self.query", C, C);
    b.attention.key = ld.linear(p + ".attention.self.key", C, C);
    b.attention.value = ld.linear(p + ".attention.self.value", C, C);
    b.attention.q_step = ld.step(p + ".attention.self.q_fake_quant", C);
    b.attention.k_step = ld.step(p + ".attention.self.k_fake_quant", C);
    b.attention.v_step = ld.step(p + ".attention.self.v_fake_quant", C);
    b.attention.scores_step = ld.step(p + ".attention.self.scores_fake_quant", 0);
    b.attention.probs_step = ld.step(p + ".attention.self.probs_fake_quant", 0);
    b.attention.dense = ld.linear(p + ".attention.output.dense", C, C);
    b.attention.integer_products = rd.boolean(ld.need("attention", p + ".attention"), "integer_products",
                                              "model.attention." + p + ".attention");
    b.attention.check(path + ": " + p + ".attention");
    b.ln1 = ld.norm(p + ".attention.output.LayerNorm", C);
    b.intermediate = ld.linear(p + ".intermediate.dense", F, C);
    b.gelu_step = ld.step(p + ".intermediate.intermediate_act_fn.output_fake_quant", F);
    b.output = ld.linear(p + ".output.dense", C, F);
    b.ln2 = ld.norm(p + ".output.LayerNorm", C);
    layers.push_back(std::move(b));
  }
  std::optional<Linear> pooler, cls;
  std::optional<MlmHead> mlm;
  if (rd.boolean(root, "pooler", "model")) pooler = ld.linear("pooler.dense", C, C);
  const Index labels = rd.integer(root, "classifier_labels", "model", 0, kMaxSize);
  if (labels > 0) cls = ld.linear("classifier", labels, C);
  if (rd.boolean(root, "mlm", "model")) {
    MlmHead h;
    h.gelu = c.gelu;
    h.transform = ld.linear("cls.predictions.transform.dense", C, C);
    h.layer_norm = ld.norm("cls.predictions.transform.LayerNorm", C);
    h.decoder = ld.linear("cls.predictions.decoder", c.vocab_size, C);
    mlm = std::move(h);
  }
  ld.check_all_used();
  return BertModel(c, std::move(e), std::move(layers), std::move(pooler), std::move(cls), std::move(mlm));
}

}  // namespace deploy
}  // namespace qaware
