#pragma once
// BitMask: one bit per tensor element, packed into 64-bit words.
//
// The fake-quant ops keep their straight-through-estimator mask this way:
// bit i of the mask is (words[i / 64] >> (i % 64)) & 1, so an element costs
// 1/32 of its float. Bits past size() in the last word are zero.

#include <cstdint>
#include <vector>

#include "qaware/core/error.hpp"
#include "qaware/core/shape.hpp"

namespace qaware {

class BitMask {
 public:
  BitMask() = default;
  // n bits, all zero.
  explicit BitMask(Index n) : size_(n), words_(static_cast<std::size_t>(word_count(n)), 0) {
    QAWARE_CHECK(n >= 0, "BitMask: negative size ", n);
  }

  static Index word_count(Index n) { return (n + 63) / 64; }

  Index size() const { return size_; }
  bool empty() const { return size_ == 0; }
  bool operator[](Index i) const {
    return (words_[static_cast<std::size_t>(i >> 6)] >> (i & 63)) & 1u;
  }
  void set(Index i, bool on) {
    const std::uint64_t bit = std::uint64_t(1) << (i & 63);
    auto& w = words_[static_cast<std::size_t>(i >> 6)];
    w = on ? (w | bit) : (w & ~bit);
  }
  // Number of set bits.
  Index count() const {
    Index c = 0;
    for (std::uint64_t w : words_) c += static_cast<Index>(popcount(w));
    return c;
  }

  std::uint64_t* words() { return words_.data(); }
  const std::uint64_t* words() const { return words_.data(); }
  Index num_words() const { return static_cast<Index>(words_.size()); }

 private:
  static int popcount(std::uint64_t w) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_popcountll(w);
#else
    int c = 0;
    for (; w; w &= w - 1) ++c;
    return c;
#endif
  }

  Index size_ = 0;
  std::vector<std::uint64_t> words_;
};

}  // namespace qaware
