#pragma once
// Runs an ONNX file with onnxruntime through its Node.js binding
// (tools/onnx/ort_run.js), for the ONNX tests and the demo: qaware has no
// onnxruntime C++ dependency, and npm's onnxruntime-node bundles the CPU
// library. Inputs go to a work folder as raw little-endian tensors, the
// outputs come back the same way.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>
#include <sys/stat.h>

#include "qaware/core/error.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/io/json.hpp"

namespace qaware_tools {

using qaware::DynTensor;
using qaware::Index;
using qaware::Shape;

struct OrtOptions {
  std::string node = "node";        // the Node.js executable
  std::string ort_dir;              // holds node_modules/onnxruntime-node
  std::string script;               // tools/onnx/ort_run.js
  std::string optimization = "all"; // graph optimisation level: all, extended, basic, disabled
  int accuracy_level = -1;          // session.qdq_matmulnbits_accuracy_level; -1: onnxruntime's default
  int threads = 1;
  std::vector<std::string> outputs;  // the outputs to fetch; empty: all
};

inline bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Why onnxruntime cannot be run with `o`, or "" when it can.
inline std::string ort_unavailable(const OrtOptions& o) {
  if (o.ort_dir.empty() || !file_exists(o.ort_dir + "/node_modules/onnxruntime-node/package.json"))
    return "onnxruntime-node is not installed in '" + o.ort_dir + "' (scripts/fetch_onnxruntime.sh installs it)";
  if (!file_exists(o.script)) return "the runner script " + o.script + " is missing";
  if (std::system((shell_quote(o.node) + " --version > /dev/null 2>&1").c_str()) != 0)
    return "Node.js ('" + o.node + "') does not run";
  return {};
}

template <class T>
void write_raw(const std::string& path, const DynTensor<T>& t) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(t.data()), static_cast<std::streamsize>(t.numel() * sizeof(T)));
  QAWARE_CHECK(f.good(), "onnxruntime runner: cannot write ", path);
}

inline std::string dims_json(const Shape& s) {
  std::string d = "[";
  for (Index i = 0; i < s.rank(); ++i) d += (i ? ", " : "") + std::to_string(s[i]);
  return d + "]";
}

// Runs `model` on (ids, token types, attention mask), each int64 [B, T];
// returns the outputs (o.outputs, or every one) by name. `work` is a folder for the exchange files.
inline std::map<std::string, DynTensor<float>> run_onnxruntime(const OrtOptions& o, const std::string& model,
                                                               const DynTensor<std::int64_t>& ids,
                                                               const DynTensor<std::int64_t>& types,
                                                               const DynTensor<std::int64_t>& mask,
                                                               const std::string& work) {
  const std::string in = work + "/in", out = work + "/out";
  std::error_code ec;
  std::filesystem::create_directories(in, ec);
  if (!ec) std::filesystem::create_directories(out, ec);
  QAWARE_CHECK(!ec, "onnxruntime runner: cannot create ", work, ": ", ec.message());
  write_raw(in + "/input_ids.bin", ids);
  write_raw(in + "/token_type_ids.bin", types);
  write_raw(in + "/attention_mask.bin", mask);
  {
    std::ofstream f(in + "/inputs.json");
    f << "{\"input_ids\": {\"dtype\": \"int64\", \"dims\": " << dims_json(ids.shape()) << "},"
      << " \"token_type_ids\": {\"dtype\": \"int64\", \"dims\": " << dims_json(types.shape()) << "},"
      << " \"attention_mask\": {\"dtype\": \"int64\", \"dims\": " << dims_json(mask.shape()) << "}}";
  }
  std::string cmd = shell_quote(o.node) + " " + shell_quote(o.script) + " --ort " + shell_quote(o.ort_dir) +
                    " --model " + shell_quote(model) + " --in " + shell_quote(in) + " --out " + shell_quote(out) +
                    " --optimization " + o.optimization + " --threads " + std::to_string(o.threads);
  if (o.accuracy_level >= 0) cmd += " --accuracy-level " + std::to_string(o.accuracy_level);
  if (!o.outputs.empty()) {
    std::string list;
    for (const std::string& n : o.outputs) list += (list.empty() ? "" : ",") + n;
    cmd += " --outputs " + shell_quote(list);
  }
  const std::string err = work + "/stderr.txt";
  const int rc = std::system((cmd + " 2> " + shell_quote(err)).c_str());
  QAWARE_CHECK(rc == 0, "onnxruntime runner: '", cmd, "' failed: ", read_text(err));
  const qaware::io::json::Value manifest = qaware::io::json::parse(read_text(out + "/outputs.json"));
  std::map<std::string, DynTensor<float>> result;
  for (const auto& [name, spec] : manifest.members()) {
    const qaware::io::json::Value* dims = spec.find("dims");
    QAWARE_CHECK(dims != nullptr, "onnxruntime runner: output ", name, " has no dims");
    std::vector<Index> d;
    for (const auto& v : dims->items()) d.push_back(static_cast<Index>(v.as_uint64()));
    DynTensor<float> t{Shape(d)};
    const std::string bytes = read_text(out + "/" + name + ".bin");
    QAWARE_CHECK(bytes.size() == static_cast<std::size_t>(t.numel()) * sizeof(float), "onnxruntime runner: output ",
                 name, " has ", bytes.size(), " bytes for ", t.shape().str());
    std::memcpy(t.data(), bytes.data(), bytes.size());
    result.emplace(name, std::move(t));
  }
  return result;
}

}  // namespace qaware_tools
