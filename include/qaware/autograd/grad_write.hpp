#pragma once
// How a backward writes a gradient: overwrite a fresh buffer, or add into
// one that holds a gradient already (Tape::GradSlot, autograd/tape.hpp).
// Header-only, without the tape, so raw kernels (ops, quantization) share it.

#include <type_traits>

namespace qaware {
namespace detail {

// Writing a gradient into a Tape::GradSlot: overwrite a fresh buffer, add
// into one that holds a gradient already. Loops are written once and run as
// for_mode(overwrite, [&](auto mode) { ... put(mode, dx[i], v) ... }), which
// compiles one copy per mode with no branch inside the loop.
//   put(mode, d, v): d = v + 0 when overwriting, d += v otherwise.
// The + 0 makes a fresh write d = v + 0, bitwise what adding v into a zeroed
// buffer gives (v == -0.0 becomes +0.0), so both modes give the same bits.
// It also works on Eigen arrays (d a map, v an expression).
using Overwrite = std::true_type;
using Accumulate = std::false_type;
template <typename F>
void for_mode(bool overwrite, F&& f) {
  if (overwrite)
    f(Overwrite{});
  else
    f(Accumulate{});
}
template <typename Mode, typename D, typename V>
inline void put(Mode, D&& d, const V& v) {
  using T = std::decay_t<D>;
  if constexpr (!Mode::value)
    d += v;
  else if constexpr (std::is_arithmetic_v<T>)
    d = v + T(0);
  else
    d = v + typename T::Scalar(0);
}

}  // namespace detail
}  // namespace qaware
