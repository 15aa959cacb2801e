#pragma once
// A deterministic random number generator and tensor initialisers.
//
// Same seed, same numbers on every machine: the generator is xoshiro256**
// seeded through splitmix64, and every distribution is written here (the
// standard library's distributions differ between implementations). Normals
// use the Marsaglia polar method, which needs only sqrt (exact in IEEE) and
// log (glibc's double log); floats are drawn in double and rounded once.

#include <array>
#include <cmath>
#include <cstdint>

#include "qaware/core/error.hpp"
#include "qaware/core/tensor.hpp"

namespace qaware {
namespace detail {

// splitmix64 (Vigna's reference splitmix64.c): the state advances by
// kSplitmixGamma and each output is splitmix64_mix(state). Rng seeds
// xoshiro256** with it; dropout's counter-based mask mixes seed + (j + 1) *
// kSplitmixGamma for pair j, so its AVX2 form uses the same constants.
inline constexpr std::uint64_t kSplitmixGamma = 0x9e3779b97f4a7c15ULL;
inline constexpr std::uint64_t kSplitmixMul1 = 0xbf58476d1ce4e5b9ULL;
inline constexpr std::uint64_t kSplitmixMul2 = 0x94d049bb133111ebULL;

inline std::uint64_t splitmix64_mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * kSplitmixMul1;
  z = (z ^ (z >> 27)) * kSplitmixMul2;
  return z ^ (z >> 31);
}

inline std::uint64_t splitmix64_next(std::uint64_t& state) { return splitmix64_mix(state += kSplitmixGamma); }

}  // namespace detail

class Rng {
 public:
  using State = std::array<std::uint64_t, 4>;

  explicit Rng(std::uint64_t seed = 0x5eed) { reseed(seed); }

  void reseed(std::uint64_t seed) {
    std::uint64_t x = seed;
    for (auto& s : s_) s = detail::splitmix64_next(x);
    has_spare_ = false;
  }

  // Full generator state, for checkpoints: restore(snapshot()) resumes the
  // exact stream, including a pending second normal of the polar method.
  struct Snapshot {
    State s;
    bool has_spare;
    double spare;
  };
  Snapshot snapshot() const { return {s_, has_spare_, spare_}; }
  void restore(const Snapshot& snap) {
    s_ = snap.s;
    has_spare_ = snap.has_spare;
    spare_ = snap.spare;
  }

  std::uint64_t next_u64() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  std::uint32_t next_u32() { return static_cast<std::uint32_t>(next_u64() >> 32); }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n), without modulo bias.
  std::uint64_t below(std::uint64_t n) {
    QAWARE_CHECK(n > 0, "Rng::below: n must be positive");
    const std::uint64_t limit = ~std::uint64_t(0) - (~std::uint64_t(0) % n);
    std::uint64_t r;
    do {
      r = next_u64();
    } while (r >= limit);
    return r % n;
  }

  // Standard normal (Marsaglia polar method).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u, v, s;
    do {
      u = 2.0 * uniform() - 1.0;
      v = 2.0 * uniform() - 1.0;
      s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    const double m = std::sqrt(-2.0 * std::log(s) / s);
    spare_ = v * m;
    has_spare_ = true;
    return u * m;
  }
  double normal(double mean, double stddev) { return mean + stddev * normal(); }

  // Normal(mean, stddev) truncated to [lo, hi] (absolute bounds, as
  // torch.nn.init.trunc_normal_), by rejection. The expected number of draws
  // per sample is 1 / P(lo <= X <= hi), so intervals holding less than
  // kMinTruncatedMass of the distribution are rejected rather than looping
  // (practically) forever: a bound "within 6 stddev" alone does not ensure
  // that, e.g. [5.9, 6.1] stddev or a very narrow interval.
  static constexpr double kMinTruncatedMass = 1e-4;
  double truncated_normal(double mean, double stddev, double lo, double hi) {
    QAWARE_CHECK(lo < hi, "truncated_normal: lo (", lo, ") must be below hi (", hi, ")");
    QAWARE_CHECK(stddev > 0, "truncated_normal: stddev must be positive, got ", stddev);
    // P(a <= Z <= b) for the standard normal Z, via erfc (accurate in both tails).
    const double a = (lo - mean) / stddev, b = (hi - mean) / stddev;
    const double k = 1.0 / std::sqrt(2.0);
    const double mass = b <= 0 ? 0.5 * (std::erfc(-b * k) - std::erfc(-a * k))
                               : (a >= 0 ? 0.5 * (std::erfc(a * k) - std::erfc(b * k))
                                         : 1.0 - 0.5 * (std::erfc(-a * k) + std::erfc(b * k)));
    QAWARE_CHECK(mass >= kMinTruncatedMass, "truncated_normal: [", lo, ", ", hi, "] holds only ", mass,
                 " of Normal(", mean, ", ", stddev, "); at least ", kMinTruncatedMass, " is needed");
    for (;;) {
      const double x = normal(mean, stddev);
      if (x >= lo && x <= hi) return x;
    }
  }

  // Bernoulli(p).
  bool bernoulli(double p) { return uniform() < p; }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

  State s_{};
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// ---------------------------------------------------------------------------
// Initialisers. Each fills a contiguous buffer; overloads take Eigen tensors
// and DynTensors.

namespace init {

template <typename Scalar>
void uniform(Scalar* p, Index n, Rng& rng, double lo, double hi) {
  QAWARE_CHECK(lo <= hi, "init::uniform: lo (", lo, ") must not exceed hi (", hi, ")");
  for (Index i = 0; i < n; ++i) p[i] = static_cast<Scalar>(rng.uniform(lo, hi));
}
template <typename Scalar>
void normal(Scalar* p, Index n, Rng& rng, double mean, double stddev) {
  QAWARE_CHECK(stddev >= 0, "init::normal: stddev must be non-negative, got ", stddev);
  for (Index i = 0; i < n; ++i) p[i] = static_cast<Scalar>(rng.normal(mean, stddev));
}
template <typename Scalar>
void truncated_normal(Scalar* p, Index n, Rng& rng, double mean, double stddev, double lo, double hi) {
  for (Index i = 0; i < n; ++i) p[i] = static_cast<Scalar>(rng.truncated_normal(mean, stddev, lo, hi));
}

// Container overloads: anything with data() and either numel() (DynTensor)
// or size() (Eigen tensors and matrices).
namespace detail {
template <typename T>
auto element_count(const T& t) -> decltype(t.numel(), Index()) { return static_cast<Index>(t.numel()); }
template <typename T>
auto element_count(const T& t) -> decltype(t.size(), Index()) { return static_cast<Index>(t.size()); }
}  // namespace detail

template <typename T>
auto uniform(T& t, Rng& rng, double lo, double hi) -> decltype(t.data(), void()) {
  uniform(t.data(), detail::element_count(t), rng, lo, hi);
}
template <typename T>
auto normal(T& t, Rng& rng, double mean, double stddev) -> decltype(t.data(), void()) {
  normal(t.data(), detail::element_count(t), rng, mean, stddev);
}
template <typename T>
auto truncated_normal(T& t, Rng& rng, double mean, double stddev, double lo, double hi)
    -> decltype(t.data(), void()) {
  truncated_normal(t.data(), detail::element_count(t), rng, mean, stddev, lo, hi);
}

}  // namespace init

}  // namespace qaware
