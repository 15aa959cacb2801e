// qaware_to_onnx: turns an INT8 model file (deploy::save) into an ONNX file
// (deploy::save_onnx, QDQ format) that onnxruntime and other runtimes run.
//
//   qaware_to_onnx MODEL.qaware OUT.onnx [--opset 21|13]
//
// Exit status 0 on success, 1 when the model cannot be read or exported (the
// message names the file and the layer), 2 on a usage error.

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "qaware/deploy/format.hpp"
#include "qaware/onnx/export.hpp"

namespace {

void usage(const char* argv0) {
  std::printf(
      "usage: %s MODEL OUT.onnx [--opset 21|13]\n"
      "  MODEL       an INT8 model file written by qaware::deploy::save\n"
      "  OUT.onnx    the ONNX file to write (atomically)\n"
      "  --opset N   21 (default; IR 10, 4-bit weights as INT4) or 13 (IR 7, every weight INT8)\n",
      argv0);
}

}  // namespace

int main(int argc, char** argv) {
  std::string in, out;
  qaware::deploy::OnnxOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage(argv[0]);
      return 0;
    }
    if (a == "--opset") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s: --opset needs a value (21 or 13)\n", argv[0]);
        return 2;
      }
      const std::string v = argv[++i];
      if (v != "21" && v != "13") {
        std::fprintf(stderr, "%s: --opset takes 21 or 13, got '%s'\n", argv[0], v.c_str());
        return 2;
      }
      options.opset = std::atoi(v.c_str());
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "%s: unknown option %s (see --help)\n", argv[0], a.c_str());
      return 2;
    } else if (in.empty()) {
      in = a;
    } else if (out.empty()) {
      out = a;
    } else {
      std::fprintf(stderr, "%s: one model and one output file, got a third argument '%s'\n", argv[0], a.c_str());
      return 2;
    }
  }
  if (in.empty() || out.empty()) {
    usage(argv[0]);
    return 2;
  }
  try {
    const qaware::deploy::BertModel model = qaware::deploy::load(in);
    qaware::deploy::save_onnx(model, out, options);
    const qaware::deploy::ModelConfig& c = model.config();
    std::printf("%s -> %s: opset %d, %ld layers, hidden %ld, outputs sequence_output%s%s%s\n", in.c_str(), out.c_str(),
                options.opset, static_cast<long>(c.layers), static_cast<long>(c.hidden),
                model.pooler() ? ", pooled_output" : "", model.classifier() ? ", logits" : "",
                model.mlm_head() ? ", mlm_logits" : "");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 1;
  }
  return 0;
}
