// libFuzzer harness for the safetensors reader (and through it the JSON
// parser). Built only with Clang and -DQAWARE_FUZZ=ON:
//   cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DQAWARE_FUZZ=ON
//   cmake --build build-fuzz --target qaware_safetensors_fuzz
//   build-fuzz/tests/io/qaware_safetensors_fuzz -max_total_time=60 -max_len=4096
// Any input may be rejected with qaware::Error; anything else (a crash, a
// sanitizer report, another exception, an accepted file that does not
// survive a write/read round trip) is a bug.

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "qaware/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace qaware::io;
  Safetensors st;
  try {
    st = parse_safetensors(data, size, "fuzz");
  } catch (const qaware::Error&) {
    return 0;
  }
  const auto bytes = serialize_safetensors(st.tensors, st.metadata);
  const Safetensors again = parse_safetensors(bytes.data(), bytes.size(), "round trip");
  if (again.metadata != st.metadata || again.tensors.size() != st.tensors.size()) std::abort();
  for (const auto& [name, t] : st.tensors) {
    const auto it = again.tensors.find(name);
    if (it == again.tensors.end() || it->second.bytes != t.bytes || it->second.shape != t.shape) std::abort();
  }
  return 0;
}
