// qaware::Shape: element counts, the matrix view's rows/cols, PyTorch-style
// formatting and rejection of invalid dimensions.

#include <gtest/gtest.h>

#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "common/error_of.hpp"
#include "qaware/core/shape.hpp"

namespace qaware {
namespace {

using test::error_of;

TEST(ShapeTest, NumelIsTheProductOfDims) {
  EXPECT_EQ(Shape({2, 8, 64}).numel(), 2 * 8 * 64);
  EXPECT_EQ(Shape({7}).numel(), 7);
  EXPECT_EQ(Shape({3, 0, 5}).numel(), 0);
  EXPECT_EQ(Shape().numel(), 1);  // a scalar (rank 0) has one element
  EXPECT_EQ(Shape().rank(), 0);
  EXPECT_EQ(Shape({2, 8, 64}).rank(), 3);
}

TEST(ShapeTest, RowsAndColsDescribeTheMatrixView) {
  const Shape s{2, 8, 64};
  EXPECT_EQ(s.rows(), 16);
  EXPECT_EQ(s.cols(), 64);
  EXPECT_EQ(Shape({5}).rows(), 1);
  EXPECT_EQ(Shape({5}).cols(), 5);
  EXPECT_EQ(Shape().rows(), 1);
  EXPECT_EQ(Shape().cols(), 1);
  // A zero last dimension keeps the leading rows.
  EXPECT_EQ(Shape({4, 3, 0}).rows(), 12);
  EXPECT_EQ(Shape({4, 3, 0}).cols(), 0);
}

TEST(ShapeTest, DimCountsNegativeAxesFromTheEnd) {
  const Shape s{2, 8, 64};
  EXPECT_EQ(s.dim(0), 2);
  EXPECT_EQ(s.dim(-1), 64);
  EXPECT_EQ(s.dim(-3), 2);
  EXPECT_EQ(s[1], 8);
  EXPECT_THROW(s.dim(3), Error);
  EXPECT_THROW(s.dim(-4), Error);
  try {
    (void)s.dim(5);
    FAIL() << "expected qaware::Error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("Shape::dim"), std::string::npos) << m;
    EXPECT_NE(m.find("5"), std::string::npos) << m;
    EXPECT_NE(m.find("[2, 8, 64]"), std::string::npos) << m;
  }
}

TEST(ShapeTest, FormatsLikePyTorch) {
  EXPECT_EQ(Shape({2, 8, 64}).str(), "[2, 8, 64]");
  EXPECT_EQ(Shape({5}).str(), "[5]");
  EXPECT_EQ(Shape().str(), "[]");
  std::ostringstream os;
  os << Shape({3, 0});
  EXPECT_EQ(os.str(), "[3, 0]");
}

TEST(ShapeTest, ConstructorsAgree) {
  const std::vector<Index> dims{4, 5, 6};
  EXPECT_EQ(Shape(dims), Shape({4, 5, 6}));
  EXPECT_EQ(Shape(dims.begin(), dims.end()), Shape({4, 5, 6}));
  EXPECT_NE(Shape({4, 5, 6}), Shape({4, 30}));
  EXPECT_EQ(Shape({4, 5, 6}).dims(), dims);
  const Shape s{4, 5, 6};
  std::vector<Index> seen(s.begin(), s.end());
  EXPECT_EQ(seen, dims);
}

TEST(ShapeTest, NegativeDimsAreRejectedByEveryConstructor) {
  EXPECT_THROW(Shape({2, -1}), Error);
  EXPECT_THROW(Shape(std::vector<Index>{-3}), Error);
  const std::vector<Index> bad{4, -2, 1};
  EXPECT_THROW(Shape(bad.begin(), bad.end()), Error);
  const std::string m = error_of([] { Shape({2, -1}); });
  EXPECT_NE(m.find("negative"), std::string::npos) << m;
  EXPECT_NE(m.find("[2, -1]"), std::string::npos) << m;
}

TEST(ShapeTest, ElementCountOverflowIsRejected) {
  const Index big = Index(1) << 32;
  EXPECT_THROW(Shape({big, big}), Error);  // 2^64 elements do not fit in a signed 64-bit Index
  EXPECT_NO_THROW(Shape({big, Index(1) << 30}));  // 2^62 fits
  EXPECT_THROW(Shape({std::numeric_limits<Index>::max(), 2}), Error);
  const std::string m = error_of([] { Shape({Index(1) << 40, Index(1) << 40}); });
  EXPECT_NE(m.find("Shape"), std::string::npos) << m;
  EXPECT_NE(m.find("1099511627776"), std::string::npos) << m;
}

}  // namespace
}  // namespace qaware
