// The buffer cache behind DynTensor storage (core/buffer_cache.hpp): large
// freed buffers come back for a request of the same size, small ones and
// anything past the limit go back to the system, and a recycled buffer is an
// ordinary tensor (values written, read, copied).

#include <gtest/gtest.h>

#include <cstdint>

#include "qaware/core/buffer_cache.hpp"
#include "qaware/core/tensor.hpp"

namespace qaware {
namespace {

// Restores the limit (and empties the cache) after each test.
class BufferCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    old_ = set_buffer_cache_limit(0);
    set_buffer_cache_limit(std::size_t(64) << 20);
  }
  void TearDown() override {
    set_buffer_cache_limit(0);
    set_buffer_cache_limit(old_);
  }
  std::size_t old_ = 0;
};

const Shape kBig{512, 1024};  // 2 MiB of float
constexpr std::size_t kBigBytes = 512 * 1024 * sizeof(float);

TEST_F(BufferCacheTest, LargeBuffersAreReusedForTheSameSize) {
  const float* first = nullptr;
  {
    DynTensor<float> t(kBig);
    first = t.data();
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(first) % 64, 0u);
  }
  EXPECT_EQ(buffer_cache_bytes(), kBigBytes);
  DynTensor<float> other(Shape{512, 1025});  // another size: not that block
  EXPECT_NE(other.data(), first);
  DynTensor<float> again = DynTensor<float>::zeros(kBig);
  EXPECT_EQ(again.data(), first);
  EXPECT_EQ(buffer_cache_bytes(), 0u);
  for (float v : again) ASSERT_EQ(v, 0.0f);  // zeros() still fills recycled memory
  again[7] = 3.0f;
  const DynTensor<float> copy = again;
  EXPECT_EQ(copy[7], 3.0f);
}

TEST_F(BufferCacheTest, SmallBuffersAreNotKept) {
  { DynTensor<float> t(Shape{16, 16}); }
  EXPECT_EQ(buffer_cache_bytes(), 0u);
}

TEST_F(BufferCacheTest, TheLimitEvictsTheOldestAndZeroTurnsItOff) {
  set_buffer_cache_limit(2 * kBigBytes);
  const float* oldest = nullptr;
  {
    DynTensor<float> a(kBig), b(kBig), c(kBig);
    oldest = a.data();
  }  // freed c, b, a: a is the newest
  EXPECT_EQ(buffer_cache_bytes(), 2 * kBigBytes);
  DynTensor<float> t(kBig);
  EXPECT_EQ(t.data(), oldest);  // the newest block of the size comes back first
  EXPECT_EQ(set_buffer_cache_limit(0), 2 * kBigBytes);
  EXPECT_EQ(buffer_cache_bytes(), 0u);
  { DynTensor<float> u(kBig); }
  EXPECT_EQ(buffer_cache_bytes(), 0u);
}

}  // namespace
}  // namespace qaware
