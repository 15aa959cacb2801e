#pragma once
// The fuzz harnesses of the file parsers (json, safetensors); see
// harnesses.hpp for what every harness checks. Kept apart from the model
// harnesses so that their fuzz programs compile only the io headers.

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "qaware/core/threading.hpp"
#include "qaware/io/json.hpp"
#include "qaware/io/safetensors.hpp"

namespace qaware {
namespace fuzz {

inline bool same(const io::TensorDict& a, const io::TensorDict& b, std::string& which) {
  if (a.size() != b.size()) {
    which = "(entry count)";
    return false;
  }
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    if (it == b.end() || it->second.dtype != t.dtype || it->second.shape != t.shape || it->second.bytes != t.bytes) {
      which = name;
      return false;
    }
  }
  return true;
}

// A file of this process for the loaders that take a path.
inline std::string scratch_file(const char* tag, const std::uint8_t* data, std::size_t size) {
  const std::string path = "/tmp/qaware_fuzz_" + std::string(tag) + "_" + std::to_string(::getpid()) + ".bin";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return std::string();
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  return path;
}

inline std::string json(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  io::json::Value v;
  try {
    v = io::json::parse(text, 64, SIZE_MAX, std::size_t(1) << 16);
  } catch (const Error&) {
    return "";
  }
  const std::string once = io::json::dump(v);
  std::string twice;
  try {
    twice = io::json::dump(io::json::parse(once));
  } catch (const Error& e) {
    return std::string("json: the dump of a parsed document does not parse: ") + e.what();
  }
  return once == twice ? "" : "json: dump(parse(dump(v))) != dump(v)";
}

inline std::string safetensors(const std::uint8_t* data, std::size_t size) {
  io::Safetensors f;
  try {
    f = io::parse_safetensors(data, size);
  } catch (const Error&) {
    return "";
  }
  for (const auto& [name, t] : f.tensors) {
    const std::size_t want = static_cast<std::size_t>(t.shape.numel()) * io::dtype_size(t.dtype);
    if (t.bytes.size() != want) return "safetensors: tensor '" + name + "' holds the wrong byte count";
  }
  // What was accepted survives a write and a read unchanged.
  io::Safetensors again;
  try {
    const std::vector<std::uint8_t> bytes = io::serialize_safetensors(f.tensors, f.metadata);
    again = io::parse_safetensors(bytes.data(), bytes.size(), "round trip");
  } catch (const Error& e) {
    return std::string("safetensors: an accepted file does not survive a write and a read: ") + e.what();
  }
  if (again.metadata != f.metadata || again.tensors.size() != f.tensors.size())
    return "safetensors: the round trip changed the metadata or the tensor count";
  for (const auto& [name, t] : f.tensors) {
    const auto it = again.tensors.find(name);
    if (it == again.tensors.end() || it->second.bytes != t.bytes || it->second.shape != t.shape ||
        it->second.dtype != t.dtype)
      return "safetensors: the round trip changed tensor '" + name + "'";
  }
  return "";
}

}  // namespace fuzz
}  // namespace qaware
