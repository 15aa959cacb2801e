#pragma once
// Recycling of large buffers (DynTensor storage, packed INT8 weights).
//
// A training step allocates the same large activations, gradients and packed
// weights every step and frees them when its tape and products are done.
// glibc serves blocks this large with fresh mmap()s, whose pages fault in
// (and are zeroed by the kernel) on first touch: some 20 000 page faults per
// step of a BERT-base block, several percent of its time. So freed buffers
// of at least kMinBytes are kept, up to a limit, and handed to the next
// request of the same size; when the limit is reached the oldest go back to
// the system.
//
//   qaware::set_buffer_cache_limit(bytes)   default 1 GiB (0 under AddressSanitizer,
//                                           so that a use after free of tensor
//                                           storage is still reported); 0 turns
//                                           the cache off and frees what it holds
//   qaware::buffer_cache_bytes()            bytes held now
//
// Thread-safe (one mutex; only large allocations take it). Recycled memory
// is not zeroed: callers that need zeros fill them, as they must with
// std::aligned_alloc.

#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define QAWARE_BUFFER_CACHE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QAWARE_BUFFER_CACHE_ASAN 1
#endif
#endif

namespace qaware {
namespace detail {

class BufferCache {
 public:
  static constexpr std::size_t kMinBytes = std::size_t(1) << 20;
  static constexpr std::size_t kAlign = 64;

  // The process's cache. Never destroyed: static objects holding tensors
  // may free them after any destructor of ours would have run.
  static BufferCache& instance() {
    static BufferCache* cache = new BufferCache();
    return *cache;
  }

  // `bytes` rounded up to whole kAlign units (what allocate() takes).
  static std::size_t round_up(std::size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

  // A block of `bytes` (a multiple of kAlign) aligned to kAlign, from the
  // cache when one of that size is held, else new; nullptr for 0 bytes.
  void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    if (bytes >= kMinBytes) {
      std::lock_guard<std::mutex> lock(mu_);
      for (std::size_t i = blocks_.size(); i-- > 0;) {
        if (blocks_[i].bytes != bytes) continue;
        void* p = blocks_[i].ptr;
        blocks_.erase(blocks_.begin() + static_cast<std::ptrdiff_t>(i));
        held_ -= bytes;
        return p;
      }
    }
    void* p = std::aligned_alloc(kAlign, bytes);
    if (!p) throw std::bad_alloc();
    return p;
  }

  // Returns a block from allocate() (same `bytes`): kept when large enough
  // and within the limit, else freed.
  void release(void* p, std::size_t bytes) noexcept {
    if (!p) return;
    if (bytes >= kMinBytes) {
      std::lock_guard<std::mutex> lock(mu_);
      if (bytes <= limit_) {
        evict_to(limit_ - bytes);
        try {
          blocks_.push_back({p, bytes});
          held_ += bytes;
          return;
        } catch (...) {  // no memory for the list: free the block instead
        }
      }
    }
    std::free(p);
  }

  // Sets the most bytes kept; returns the previous limit.
  std::size_t set_limit(std::size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    const std::size_t old = limit_;
    limit_ = bytes;
    evict_to(limit_);
    return old;
  }
  std::size_t held() {
    std::lock_guard<std::mutex> lock(mu_);
    return held_;
  }

 private:
  struct Block {
    void* ptr;
    std::size_t bytes;
  };
  BufferCache() = default;

  // Frees the oldest blocks until at most `bytes` are held (mu_ held).
  void evict_to(std::size_t bytes) {
    std::size_t n = 0;
    while (held_ > bytes && n < blocks_.size()) {
      std::free(blocks_[n].ptr);
      held_ -= blocks_[n].bytes;
      ++n;
    }
    blocks_.erase(blocks_.begin(), blocks_.begin() + static_cast<std::ptrdiff_t>(n));
  }

  std::mutex mu_;
  std::vector<Block> blocks_;  // oldest first
  std::size_t held_ = 0;
#if defined(QAWARE_BUFFER_CACHE_ASAN)
  std::size_t limit_ = 0;  // recycled blocks would hide use-after-free from ASan
#else
  std::size_t limit_ = std::size_t(1) << 30;
#endif
};

// The unique_ptr deleter for a block from BufferCache::allocate(): hands it
// back with the size it was allocated with.
struct BufferRelease {
  std::size_t bytes = 0;
  void operator()(void* p) const noexcept { BufferCache::instance().release(p, bytes); }
};

}  // namespace detail

// Sets how many bytes of freed large buffers are kept for reuse (see the top
// of this file); returns the previous limit. 0 frees them all and keeps none.
inline std::size_t set_buffer_cache_limit(std::size_t bytes) { return detail::BufferCache::instance().set_limit(bytes); }
// Bytes of freed buffers held for reuse now.
inline std::size_t buffer_cache_bytes() { return detail::BufferCache::instance().held(); }

}  // namespace qaware
