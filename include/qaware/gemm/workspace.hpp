#pragma once
// Scratch memory of the GEMMs (INT8 and float): one policy for both.
//
// A GEMM takes its packing buffers from the calling thread's workspace(), a
// 64-byte aligned buffer that grows to the largest request and never shrinks,
// so that a training step's repeated products do not allocate. It reserves
// everything a call needs -- the shares of every worker thread included --
// on the calling thread before its parallel region: allocation may throw,
// and an exception must not leave an OpenMP region. A call's scratch is
// valid until the next GEMM call on the same thread; neither GEMM calls the
// other while it holds it.

#include <cstddef>
#include <cstring>
#include <memory>
#include <utility>

#include "qaware/core/buffer_cache.hpp"

namespace qaware {
namespace gemm {
namespace detail {

// A 64-byte aligned, uninitialised byte buffer that only grows.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(std::size_t bytes) { reserve(bytes); }
  AlignedBuffer(const AlignedBuffer& o) {
    reserve(o.size_);
    if (o.size_) std::memcpy(ptr_.get(), o.ptr_.get(), o.size_);
  }
  AlignedBuffer& operator=(const AlignedBuffer& o) {
    if (this != &o) {
      AlignedBuffer t(o);
      *this = std::move(t);
    }
    return *this;
  }
  AlignedBuffer(AlignedBuffer&&) noexcept = default;
  AlignedBuffer& operator=(AlignedBuffer&&) noexcept = default;

  // Makes room for `bytes`; old contents are not kept.
  void reserve(std::size_t bytes) {
    if (bytes <= size_) return;
    const std::size_t rounded = qaware::detail::BufferCache::round_up(bytes);
    // Large buffers are recycled (core/buffer_cache.hpp): packed weights are
    // repacked every training step.
    ptr_ = std::unique_ptr<unsigned char[], qaware::detail::BufferRelease>(
        static_cast<unsigned char*>(qaware::detail::BufferCache::instance().allocate(rounded)),
        qaware::detail::BufferRelease{rounded});
    size_ = rounded;
  }
  unsigned char* data() { return ptr_.get(); }
  const unsigned char* data() const { return ptr_.get(); }
  std::size_t size() const { return size_; }

 private:
  std::unique_ptr<unsigned char[], qaware::detail::BufferRelease> ptr_;
  std::size_t size_ = 0;
};

// The calling thread's GEMM scratch (see the file comment).
inline AlignedBuffer& workspace() {
  thread_local AlignedBuffer w;
  return w;
}

}  // namespace detail
}  // namespace gemm
}  // namespace qaware
