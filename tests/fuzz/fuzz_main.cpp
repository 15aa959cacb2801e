// The libFuzzer entry of one harness (tests/fuzz/harnesses.hpp), chosen at
// compile time: QAWARE_FUZZ_HARNESS is the harness function's name, and
// QAWARE_FUZZ_IO_ONLY=1 keeps the parsers' programs to the io headers.
#include <cstdio>
#include <cstdlib>
#include <string>

#if QAWARE_FUZZ_IO_ONLY
#include "fuzz/harness_io.hpp"
#else
#include "fuzz/harnesses.hpp"
#endif

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  qaware::set_num_threads(1);  // one thread: reproducible, and no pool to confuse the leak checker
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string problem = qaware::fuzz::QAWARE_FUZZ_HARNESS(data, size);
  if (!problem.empty()) {
    std::fprintf(stderr, "property violated: %s\n", problem.c_str());
    std::abort();
  }
  return 0;
}
