#pragma once
// qaware::Error and the QAWARE_CHECK macro.
//
// Every failure a user can cause (bad shapes, bad quantization parameters,
// malformed files, overflow risks) raises qaware::Error. Messages name the
// function and the shapes or values involved, e.g.
//   "linear: x has 96 input features but weight is [64, 128]".

#include <sstream>
#include <stdexcept>
#include <string>

namespace qaware {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {

template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

[[noreturn]] inline void fail(const std::string& message) { throw Error(message); }

}  // namespace detail
}  // namespace qaware

// QAWARE_CHECK(cond, parts...): throws qaware::Error with the streamed parts
// when cond is false. The parts are only evaluated on failure.
#define QAWARE_CHECK(cond, ...)                                        \
  do {                                                                 \
    if (!(cond)) ::qaware::detail::fail(::qaware::detail::concat(__VA_ARGS__)); \
  } while (0)
