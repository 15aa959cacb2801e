// qaware::Error and QAWARE_CHECK.

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "qaware/core/error.hpp"
#include "qaware/core/shape.hpp"

namespace qaware {
namespace {

TEST(ErrorTest, IsAStdException) {
  try {
    throw Error("boom");
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "boom");
  }
  static_assert(std::is_base_of_v<std::exception, Error>);
}

TEST(ErrorTest, CheckStreamsEveryPartIntoTheMessage) {
  const Shape a{2, 3}, b{4, 5};
  try {
    QAWARE_CHECK(a == b, "matmul: ", a, " vs ", b.str(), ", k = ", 7, ", scale = ", 0.5);
    FAIL() << "expected qaware::Error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "matmul: [2, 3] vs [4, 5], k = 7, scale = 0.5");
  }
}

TEST(ErrorTest, CheckEvaluatesConditionOnceAndPartsOnlyOnFailure) {
  int cond_evals = 0, part_evals = 0;
  auto part = [&] {
    ++part_evals;
    return "x";
  };
  QAWARE_CHECK((++cond_evals, true), part());
  EXPECT_EQ(cond_evals, 1);
  EXPECT_EQ(part_evals, 0);
  EXPECT_THROW(QAWARE_CHECK((++cond_evals, false), part()), Error);
  EXPECT_EQ(cond_evals, 2);
  EXPECT_EQ(part_evals, 1);
}

TEST(ErrorTest, CheckIsOneStatement) {
  // The do/while(0) wrapper keeps an unbraced if/else intact.
  bool threw = false;
  try {
    if (true)
      QAWARE_CHECK(false, "first");
    else
      threw = true;  // never reached
  } catch (const Error& e) {
    threw = std::string(e.what()) == "first";
  }
  EXPECT_TRUE(threw);
}

}  // namespace
}  // namespace qaware
