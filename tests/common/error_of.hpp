#pragma once
// error_of(f): the message of the qaware::Error that f throws, for tests that
// check what a message names. "(no error)" when f throws nothing and
// "(not a qaware::Error: ...)" for any other exception, so that a check for a
// substring of the expected message fails in both cases.

#include <exception>
#include <string>

#include "qaware/core/error.hpp"

namespace qaware {
namespace test {

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("(not a qaware::Error: ") + e.what() + ")";
  }
  return "(no error)";
}

}  // namespace test
}  // namespace qaware
