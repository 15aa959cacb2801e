// Tensor aliases, as_matrix views and DynTensor: ownership (copy/move),
// reshape, Eigen views and conversions, 64-byte alignment.

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>

#include "qaware/core/tensor.hpp"

namespace qaware {
namespace {

DynTensor<double> iota(Shape s, double start = 0.0) {
  DynTensor<double> t(std::move(s));
  for (Index i = 0; i < t.numel(); ++i) t[i] = start + static_cast<double>(i);
  return t;
}

// Runs f, which must throw qaware::Error, and returns the message.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected qaware::Error";
  return {};
}

bool aligned64(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 64 == 0; }

// --- Tensor aliases and as_matrix ------------------------------------------

TEST(TensorTest, AliasIsRowMajor) {
  Tensor<float, 2> t(2, 3);
  for (Index i = 0; i < 2; ++i)
    for (Index j = 0; j < 3; ++j) t(i, j) = static_cast<float>(10 * i + j);
  // Row-major: the last index varies fastest in memory, as in PyTorch.
  EXPECT_EQ(t.data()[1], 1.0f);
  EXPECT_EQ(t.data()[3], 10.0f);
  EXPECT_EQ(shape_of(t), Shape({2, 3}));
}

TEST(TensorTest, AByteCountThatWouldWrapIsRefused) {
  // 2^62 + 16 floats: numel fits Index, numel * 4 wraps size_t to 64 bytes
  // (issue 22); the tensor must not be created with that buffer.
  const Index n = (Index(1) << 62) + 16;
  EXPECT_THROW(DynTensor<float>(Shape{n}), Error);
  EXPECT_THROW(DynTensor<double>(Shape{Index(1) << 61, 4}), Error);
  try {
    DynTensor<float> t(Shape{Index(1) << 31, Index(1) << 31});
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not fit in memory"), std::string::npos) << e.what();
  }
}

TEST(TensorTest, ShapeOfWorksForMapsAndScalars) {
  float buf[24] = {};
  TensorMap<float, 3> m(buf, 2, 3, 4);
  EXPECT_EQ(shape_of(m), Shape({2, 3, 4}));
  Tensor<double, 0> s;
  EXPECT_EQ(shape_of(s), Shape());
  EXPECT_EQ(shape_of(s).numel(), 1);
}

TEST(AsMatrixTest, FoldsLeadingDimsIntoRowsAndAliases) {
  Tensor<float, 3> t(2, 3, 4);
  for (Index i = 0; i < t.size(); ++i) t.data()[i] = static_cast<float>(i);
  MatrixMap<float> m = as_matrix(t);
  ASSERT_EQ(m.rows(), 6);
  ASSERT_EQ(m.cols(), 4);
  EXPECT_EQ(m.data(), t.data());
  for (Index r = 0; r < 6; ++r)
    for (Index c = 0; c < 4; ++c) EXPECT_EQ(m(r, c), t(r / 3, r % 3, c));
  m(5, 3) = -1.0f;  // writes through
  EXPECT_EQ(t(1, 2, 3), -1.0f);

  const Tensor<float, 3>& ct = t;
  ConstMatrixMap<float> cm = as_matrix(ct);
  EXPECT_EQ(cm.rows(), 6);
  EXPECT_EQ(cm.cols(), 4);
  EXPECT_EQ(cm.data(), t.data());
}

TEST(AsMatrixTest, ZeroColumnsKeepTheRows) {
  Tensor<float, 3> t(5, 2, 0);
  EXPECT_EQ(as_matrix(t).rows(), 10);  // agrees with Shape::rows()
  EXPECT_EQ(as_matrix(t).cols(), 0);
  EXPECT_EQ(shape_of(t).rows(), 10);
}

TEST(AsMatrixTest, ExplicitShapeIsChecked) {
  Tensor<double, 3> t(2, 3, 4);
  EXPECT_EQ(as_matrix(t, 2, 12).rows(), 2);
  EXPECT_EQ(as_matrix(t, 2, 12).cols(), 12);
  const Tensor<double, 3>& ct = t;
  EXPECT_EQ(as_matrix(ct, 24, 1).rows(), 24);
  const std::string m = error_of([&] { as_matrix(t, 5, 5); });
  EXPECT_NE(m.find("as_matrix"), std::string::npos) << m;
  EXPECT_NE(m.find("[2, 3, 4]"), std::string::npos) << m;
  EXPECT_NE(m.find("5 x 5"), std::string::npos) << m;
  // (-2) x (-12) has the right product but is not a matrix.
  EXPECT_THROW(as_matrix(t, -2, -12), Error);
}

// --- DynTensor ---------------------------------------------------------------

TEST(DynTensorTest, ConstructionAndFill) {
  DynTensor<float> z = DynTensor<float>::zeros({2, 3});
  EXPECT_EQ(z.shape(), Shape({2, 3}));
  EXPECT_EQ(z.rank(), 2);
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(z.bytes(), 6 * sizeof(float));
  EXPECT_EQ(z.dim(-1), 3);
  for (float v : z) EXPECT_EQ(v, 0.0f);
  DynTensor<float> f({4}, 2.5f);
  for (float v : f) EXPECT_EQ(v, 2.5f);
  EXPECT_EQ(DynTensor<float>::zeros_like(f).shape(), Shape({4}));
  EXPECT_EQ(DynTensor<float>::empty_like(f).shape(), Shape({4}));
  f.set_zero();
  for (float v : f) EXPECT_EQ(v, 0.0f);
  // A rank-0 tensor holds one element.
  DynTensor<double> s(Shape{}, 7.0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s[0], 7.0);
}

TEST(DynTensorTest, DefaultIsEmptyShapeZero) {
  DynTensor<float> t;
  EXPECT_EQ(t.shape(), Shape({0}));
  EXPECT_EQ(t.numel(), 0);
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.begin(), t.end());
}

TEST(DynTensorTest, CopyIsDeep) {
  DynTensor<double> a = iota({2, 3});
  DynTensor<double> b = a;
  EXPECT_EQ(b.shape(), a.shape());
  EXPECT_NE(b.data(), a.data());
  b[0] = 100.0;
  EXPECT_EQ(a[0], 0.0);
  for (Index i = 1; i < 6; ++i) EXPECT_EQ(b[i], a[i]);

  // Assignment between different sizes reallocates; equal sizes keep the
  // buffer but take the new shape.
  DynTensor<double> c = iota({5});
  c = a;
  EXPECT_EQ(c.shape(), Shape({2, 3}));
  for (Index i = 0; i < 6; ++i) EXPECT_EQ(c[i], a[i]);
  DynTensor<double> d = iota({3, 2}, 50.0);
  const double* before = d.data();
  d = a;
  EXPECT_EQ(d.data(), before);
  EXPECT_EQ(d.shape(), Shape({2, 3}));
  EXPECT_EQ(d[5], 5.0);

  DynTensor<double>& self = d;
  d = self;
  EXPECT_EQ(d[5], 5.0);
}

TEST(DynTensorTest, MoveStealsStorageAndLeavesSourceEmpty) {
  DynTensor<double> a = iota({2, 3});
  const double* p = a.data();
  DynTensor<double> b = std::move(a);
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(b.shape(), Shape({2, 3}));
  // The moved-from tensor is a valid empty tensor: its size matches its storage.
  EXPECT_EQ(a.numel(), 0);  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(a.empty());

  DynTensor<double> c = iota({4});
  c = std::move(b);
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(b.numel(), 0);  // NOLINT(bugprone-use-after-move)

  // Moved-from and default tensors can be reused: copying a one-element
  // tensor into them must allocate.
  DynTensor<double> one(Shape{}, 3.0);
  b = one;
  ASSERT_NE(b.data(), nullptr);
  EXPECT_EQ(b[0], 3.0);
  DynTensor<double> e;
  e = one;
  ASSERT_NE(e.data(), nullptr);
  EXPECT_EQ(e[0], 3.0);
  DynTensor<double> f(a);  // copy of an empty tensor
  EXPECT_TRUE(f.empty());
}

TEST(DynTensorTest, ReshapeKeepsDataAndNamesShapesOnError) {
  DynTensor<double> t = iota({2, 3, 4});
  const double* p = t.data();
  t.reshape({6, 4});
  EXPECT_EQ(t.shape(), Shape({6, 4}));
  EXPECT_EQ(t.data(), p);
  EXPECT_EQ(t[23], 23.0);
  const std::string m = error_of([&] { t.reshape({5, 5}); });
  EXPECT_NE(m.find("reshape"), std::string::npos) << m;
  EXPECT_NE(m.find("[6, 4]"), std::string::npos) << m;
  EXPECT_NE(m.find("[5, 5]"), std::string::npos) << m;
  EXPECT_NE(m.find("24"), std::string::npos) << m;
  EXPECT_EQ(t.shape(), Shape({6, 4}));  // unchanged after the failure
}

TEST(DynTensorTest, StorageIs64ByteAligned) {
  for (Index n : {1, 3, 17, 64, 1000, 4097}) {
    DynTensor<float> f({n});
    DynTensor<double> d({n, 3});
    DynTensor<std::int8_t> c({n});
    EXPECT_TRUE(aligned64(f.data())) << n;
    EXPECT_TRUE(aligned64(d.data())) << n;
    EXPECT_TRUE(aligned64(c.data())) << n;
    DynTensor<float> copy = f;
    EXPECT_TRUE(aligned64(copy.data())) << n;
  }
}

TEST(DynTensorTest, EigenViewsAliasAndCheckRank) {
  DynTensor<double> t = iota({2, 3, 4});
  TensorMap<double, 3> v = t.view<3>();
  EXPECT_EQ(v.data(), t.data());
  EXPECT_EQ(v.dimension(0), 2);
  EXPECT_EQ(v.dimension(2), 4);
  EXPECT_EQ(v(1, 2, 3), 23.0);
  EXPECT_EQ(v(1, 0, 2), 14.0);
  v(0, 1, 0) = -5.0;
  EXPECT_EQ(t[4], -5.0);

  const DynTensor<double>& ct = t;
  ConstTensorMap<double, 3> cv = ct.view<3>();
  EXPECT_EQ(cv(0, 1, 0), -5.0);

  const std::string m = error_of([&] { t.view<2>(); });
  EXPECT_NE(m.find("DynTensor::view"), std::string::npos) << m;
  EXPECT_NE(m.find("rank-2"), std::string::npos) << m;
  EXPECT_NE(m.find("[2, 3, 4]"), std::string::npos) << m;
  EXPECT_THROW(t.to_tensor<4>(), Error);
}

TEST(DynTensorTest, RoundTripsThroughEigenTensors) {
  Tensor<float, 3> e(2, 3, 4);
  for (Index i = 0; i < 2; ++i)
    for (Index j = 0; j < 3; ++j)
      for (Index k = 0; k < 4; ++k) e(i, j, k) = static_cast<float>(100 * i + 10 * j + k);
  DynTensor<float> d = DynTensor<float>::from(e);
  EXPECT_EQ(d.shape(), Shape({2, 3, 4}));
  EXPECT_NE(d.data(), e.data());
  EXPECT_EQ(d[(1 * 3 + 2) * 4 + 3], 123.0f);  // row-major flat index
  Tensor<float, 3> back = d.to_tensor<3>();
  EXPECT_NE(back.data(), d.data());
  for (Index i = 0; i < e.size(); ++i) EXPECT_EQ(back.data()[i], e.data()[i]);

  const float raw[3] = {1.f, 2.f, 3.f};
  DynTensor<float> r = DynTensor<float>::from({3}, raw);
  EXPECT_EQ(r[2], 3.0f);
  EXPECT_THROW(DynTensor<float>::from({3}, nullptr), Error);
  EXPECT_TRUE(DynTensor<float>::from({0}, nullptr).empty());
}

TEST(DynTensorTest, MatrixAndFlatViews) {
  DynTensor<double> t = iota({2, 3, 4});
  auto m = t.matrix();
  EXPECT_EQ(m.rows(), 6);
  EXPECT_EQ(m.cols(), 4);
  EXPECT_EQ(m(4, 1), 17.0);
  auto m2 = t.matrix(3, 8);
  EXPECT_EQ(m2(1, 0), 8.0);
  const std::string msg = error_of([&] { t.matrix(5, 5); });
  EXPECT_NE(msg.find("[2, 3, 4]"), std::string::npos) << msg;
  EXPECT_EQ(t.flat().size(), 24);
  EXPECT_EQ(t.flat().sum(), 23.0 * 24.0 / 2.0);
  m(0, 0) = 9.0;
  EXPECT_EQ(t[0], 9.0);
}

TEST(DynTensorTest, CastConvertsElementwise) {
  DynTensor<double> t({3});
  t[0] = 0.1;
  t[1] = -2.5;
  t[2] = 1e10;
  DynTensor<float> f = t.cast<float>();
  EXPECT_EQ(f.shape(), Shape({3}));
  EXPECT_EQ(f[0], 0.1f);
  EXPECT_EQ(f[1], -2.5f);
  EXPECT_EQ(f[2], 1e10f);
}

}  // namespace
}  // namespace qaware
