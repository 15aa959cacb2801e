#pragma once
// Observers: they watch tensors during calibration / training and turn what
// they saw into quantization parameters (as torch.ao.quantization.observer).
//
//   MinMaxObserver                        running min / max           (PyTorch's, exact)
//   MovingAverageMinMaxObserver           min += c * (batch_min - min), c = 0.01;
//                                         the first batch sets min/max (PyTorch's, exact)
//   PerChannelMinMaxObserver              per-channel MinMax along spec.axis (exact)
//   MovingAveragePerChannelMinMaxObserver per-channel moving average (exact)
//   HistogramObserver                     histogram_observer.hpp (PyTorch's L2 search)
//   PercentileObserver                    min / max = percentiles of each batch, averaged
//   MseObserver                           the clipping range minimising the batch's
//                                         fake-quant squared error, averaged
//
// "exact" means float32 arithmetic step for step as PyTorch 1.13's tensor
// ops, checked bit for bit against goldens. calculate_qparams() passes the
// min / max to choose_qparams (qparams.hpp) with the spec; nothing observed
// gives scale 1, zero point 0 (one entry, as PyTorch).
//
// Inputs are float; observe(DynTensor<double>) converts first (as PyTorch's
// x.to(min_val.dtype)). Empty inputs are ignored; NaN or infinite values
// raise qaware::Error (PyTorch would silently poison min/max with them).
//
// State (state_dict / load_state_dict) uses PyTorch's buffer names
// ("min_val", "max_val", plus observer-specific entries) with double values,
// which hold every float and count exactly.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "qaware/core/error.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/quant/fake_quantize.hpp"
#include "qaware/quant/qparams.hpp"

namespace qaware {

using StateDict = std::map<std::string, DynTensor<double>>;

namespace detail {
namespace obs {

inline constexpr float kInf = std::numeric_limits<float>::infinity();

inline void check_finite(const char* who, const float* x, Index n) {
  for (Index i = 0; i < n; ++i) {
    if (!std::isfinite(x[i]))
      detail::fail(concat(who, "::observe: x has a non-finite value (", x[i], ") at flat index ", i,
                          "; observers only accept finite values"));
  }
}

// The sequential definition: lo = min(lo, x[i]) from lo = x[0] (and the
// same for hi). For equal values (only -0 and +0 differ while comparing
// equal) the first one seen wins.
inline std::pair<float, float> aminmax_scalar(const float* x, Index n) {
  float lo = x[0], hi = x[0];
  for (Index i = 1; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  return {lo, hi};
}

#if QAWARE_FQ_X86
// min / max of n >= 8 finite floats, eight lanes at a time (four
// accumulators); false when x holds a NaN or an infinity (the caller then
// takes the scalar path). min and max are exact, so the values equal the
// sequential ones; only the sign of a zero result may differ (fixed by the
// caller).
__attribute__((target("avx2"))) inline bool minmax_avx2(const float* x, Index n, float& lo, float& hi) {
  const __m256 inf = _mm256_set1_ps(kInf), ninf = _mm256_set1_ps(-kInf);
  __m256 l0 = inf, l1 = inf, h0 = ninf, h1 = ninf, bad = _mm256_setzero_ps();
  Index i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
    l0 = _mm256_min_ps(l0, a);
    h0 = _mm256_max_ps(h0, a);
    l1 = _mm256_min_ps(l1, b);
    h1 = _mm256_max_ps(h1, b);
    bad = _mm256_or_ps(bad, _mm256_or_ps(_mm256_cmp_ps(a, a, _CMP_UNORD_Q), _mm256_cmp_ps(b, b, _CMP_UNORD_Q)));
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 a = _mm256_loadu_ps(x + i);
    l0 = _mm256_min_ps(l0, a);
    h0 = _mm256_max_ps(h0, a);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
  }
  alignas(32) float ls[8], hs[8];
  _mm256_store_ps(ls, _mm256_min_ps(l0, l1));
  _mm256_store_ps(hs, _mm256_max_ps(h0, h1));
  if (_mm256_movemask_ps(bad) != 0) return false;
  lo = ls[0];
  hi = hs[0];
  for (int k = 1; k < 8; ++k) {
    lo = std::min(lo, ls[k]);
    hi = std::max(hi, hs[k]);
  }
  for (; i < n; ++i) {
    if (std::isnan(x[i])) return false;
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  return std::isfinite(lo) && std::isfinite(hi);
}
#endif

// min and max of finite x[0, n) into lo / hi, equal to aminmax_scalar's
// bit for bit, vectorised; false (lo / hi unset) when the CPU lacks AVX2,
// n < 64, or x holds a NaN or an infinity.
inline bool fast_aminmax(const float* x, Index n, float& lo, float& hi) {
#if QAWARE_FQ_X86
  if (n < 64 || fq::active_isa() < Isa::kAvx2 || !minmax_avx2(x, n, lo, hi)) return false;
  // A zero result: the sequential loop keeps the first zero it meets (-0
  // and +0 compare equal), so take that one's sign.
  if (lo == 0.0f || hi == 0.0f) {
    Index k = 0;
    while (x[k] != 0.0f) ++k;
    if (lo == 0.0f) lo = x[k];
    if (hi == 0.0f) hi = x[k];
  }
  return true;
#else
  (void)x;
  (void)n;
  (void)lo;
  (void)hi;
  return false;
#endif
}

// min and max of x[0, n), n >= 1, as aminmax_scalar.
inline std::pair<float, float> aminmax(const float* x, Index n) {
  float lo = 0.0f, hi = 0.0f;
  if (fast_aminmax(x, n, lo, hi)) return {lo, hi};
  return aminmax_scalar(x, n);
}

// check_finite + aminmax, in one vectorised pass when possible (n >= 1).
inline std::pair<float, float> checked_aminmax(const char* who, const float* x, Index n) {
  float lo = 0.0f, hi = 0.0f;
  if (fast_aminmax(x, n, lo, hi)) return {lo, hi};
  check_finite(who, x, n);  // throws, naming the first non-finite value
  return aminmax_scalar(x, n);
}

// v + c * (cur - v), each step rounded in float (PyTorch runs them as three
// tensor ops; opaque() stops the compiler fusing them into an FMA).
inline float moving_average(float v, float cur, float c) { return v + detail::opaque(c * (cur - v)); }

// Folds a batch's range [lo, hi] into the running range [mn, mx] of the
// MinMax observers: the first batch sets it; later ones widen it (c = 0) or
// move it by the moving average with constant c (c in (0, 1]).
inline void fold_range(float& mn, float& mx, float lo, float hi, bool first, float c) {
  if (first) {
    mn = lo;
    mx = hi;
  } else if (c == 0.0f) {
    mn = std::min(lo, mn);
    mx = std::max(hi, mx);
  } else {
    mn = moving_average(mn, lo, c);
    mx = moving_average(mx, hi, c);
  }
}
inline float checked_averaging_constant(const char* who, double c) {
  QAWARE_CHECK(c > 0 && c <= 1, who, ": averaging_constant must be in (0, 1], got ", c);
  return static_cast<float>(c);
}

inline DynTensor<double> scalar_tensor(double v) { return DynTensor<double>(Shape{}, v); }
inline DynTensor<double> vector_tensor(const std::vector<float>& v) {
  DynTensor<double> t(Shape{static_cast<Index>(v.size())});
  for (std::size_t i = 0; i < v.size(); ++i) t[static_cast<Index>(i)] = v[i];
  return t;
}
inline const DynTensor<double>& entry(const StateDict& s, const std::string& who, const std::string& key) {
  auto it = s.find(key);
  QAWARE_CHECK(it != s.end(), who, "::load_state_dict: missing entry '", key, "'");
  return it->second;
}
inline double scalar_entry(const StateDict& s, const std::string& who, const std::string& key) {
  const auto& t = entry(s, who, key);
  QAWARE_CHECK(t.numel() == 1, who, "::load_state_dict: entry '", key, "' must hold one value, got shape ",
               t.shape().str());
  return t[0];
}
// Stored state is validated before an observer takes it: a value that
// cannot be what an observer wrote (NaN, min > max, a float that does not
// fit) is refused with its name, instead of surfacing as a bad scale at the
// next forward.
inline constexpr double kFloatMax = static_cast<double>(std::numeric_limits<float>::max());
// A min / max pair: the unset state (+inf, -inf) or a finite float range, min <= max.
inline void check_range(const std::string& who, const std::string& what, double lo, double hi) {
  const bool unset = lo == static_cast<double>(kInf) && hi == -static_cast<double>(kInf);
  const bool fits = std::fabs(lo) <= kFloatMax && std::fabs(hi) <= kFloatMax;  // false for NaN and inf
  QAWARE_CHECK(unset || (fits && lo <= hi), who, "::load_state_dict: ", what, " [", lo, ", ", hi,
               "] is neither a finite float range with min <= max nor the unset state [inf, -inf]");
}
inline void check_finite(const std::string& who, const std::string& key, double v, double bound = kFloatMax) {
  QAWARE_CHECK(std::fabs(v) <= bound, who, "::load_state_dict: entry '", key, "' is ", v, " (must be finite",
               bound < std::numeric_limits<double>::max() ? " and fit a float)" : ")");
}
inline std::vector<float> vector_entry(const StateDict& s, const std::string& who, const std::string& key) {
  const auto& t = entry(s, who, key);
  std::vector<float> v(static_cast<std::size_t>(t.numel()));
  for (Index i = 0; i < t.numel(); ++i) v[static_cast<std::size_t>(i)] = static_cast<float>(t[i]);
  return v;
}

}  // namespace obs
}  // namespace detail

// The interface every observer implements.
class Observer {
 public:
  explicit Observer(QuantSpec spec, QParamsAlgorithm algorithm = QParamsAlgorithm::Observer, float eps = kQuantEps)
      : spec_(spec), algorithm_(algorithm), eps_(eps) {
    (void)spec_.range();  // validates the spec
    QAWARE_CHECK(eps > 0 && std::isfinite(eps), "Observer: eps must be positive and finite, got ", eps);
  }
  virtual ~Observer() = default;

  virtual const char* name() const = 0;
  // Records the statistics of x (row-major, shape `shape`).
  virtual void observe(const float* x, const Shape& shape) = 0;
  void observe(const DynTensor<float>& x) { observe(x.data(), x.shape()); }
  template <typename Scalar>
  void observe(const DynTensor<Scalar>& x) {
    observe(x.template cast<float>());
  }
  // Whether anything has been observed.
  virtual bool initialized() const = 0;
  // The range the quantization parameters come from (one entry per tensor,
  // or per channel).
  virtual std::vector<float> min_vals() const = 0;
  virtual std::vector<float> max_vals() const = 0;
  virtual QuantParams calculate_qparams() const {
    if (!initialized()) return default_qparams();
    return choose_qparams(min_vals(), max_vals(), spec_, algorithm_, eps_);
  }
  virtual void reset() = 0;
  virtual StateDict state_dict() const = 0;
  virtual void load_state_dict(const StateDict& state) = 0;
  virtual std::unique_ptr<Observer> clone() const = 0;

  const QuantSpec& spec() const { return spec_; }
  QRange range() const { return spec_.range(); }
  QParamsAlgorithm algorithm() const { return algorithm_; }
  float eps() const { return eps_; }

 protected:
  Observer(const Observer&) = default;
  Observer& operator=(const Observer&) = default;

  // scale 1, zero point 0 (one entry), as PyTorch before any observation.
  QuantParams default_qparams() const {
    const QRange r = spec_.range();
    QuantParams q;
    q.per_channel = spec_.per_channel;
    q.axis = spec_.axis;
    q.quant_min = r.quant_min;
    q.quant_max = r.quant_max;
    return q;
  }
  void require_per_tensor() const {
    QAWARE_CHECK(!spec_.per_channel, name(), ": this observer is per tensor, but the spec asks for per-channel ",
                 "quantization (", spec_.str(), ")");
  }
  void require_per_channel() const {
    QAWARE_CHECK(spec_.per_channel, name(), ": this observer is per channel, but the spec is per tensor (",
                 spec_.str(), ")");
  }

  QuantSpec spec_;
  QParamsAlgorithm algorithm_;
  float eps_;
};

// ---------------------------------------------------------------------------
// Per tensor, min / max based.

class MinMaxObserver : public Observer {
 public:
  explicit MinMaxObserver(QuantSpec spec, QParamsAlgorithm algorithm = QParamsAlgorithm::Observer,
                          float eps = kQuantEps)
      : Observer(spec, algorithm, eps) {
    require_per_tensor();
  }
  const char* name() const override { return "MinMaxObserver"; }

  void observe(const float* x, const Shape& shape) override {
    const Index n = shape.numel();
    if (n == 0) return;
    const auto [lo, hi] = detail::obs::checked_aminmax(name(), x, n);
    update(lo, hi);
  }
  using Observer::observe;

  bool initialized() const override { return !(min_val_ == detail::obs::kInf && max_val_ == -detail::obs::kInf); }
  std::vector<float> min_vals() const override { return {min_val_}; }
  std::vector<float> max_vals() const override { return {max_val_}; }
  float min_val() const { return min_val_; }
  float max_val() const { return max_val_; }
  void reset() override {
    min_val_ = detail::obs::kInf;
    max_val_ = -detail::obs::kInf;
  }
  StateDict state_dict() const override {
    return {{"min_val", detail::obs::scalar_tensor(min_val_)}, {"max_val", detail::obs::scalar_tensor(max_val_)}};
  }
  void load_state_dict(const StateDict& s) override {
    const double lo = detail::obs::scalar_entry(s, name(), "min_val"), hi = detail::obs::scalar_entry(s, name(), "max_val");
    detail::obs::check_range(name(), "min_val / max_val", lo, hi);
    min_val_ = static_cast<float>(lo);
    max_val_ = static_cast<float>(hi);
  }
  std::unique_ptr<Observer> clone() const override { return std::make_unique<MinMaxObserver>(*this); }

 protected:
  void update(float lo, float hi) { detail::obs::fold_range(min_val_, max_val_, lo, hi, !initialized(), c_); }
  float min_val_ = detail::obs::kInf;
  float max_val_ = -detail::obs::kInf;
  float c_ = 0.0f;  // the moving average's constant; 0: plain min / max
};

class MovingAverageMinMaxObserver : public MinMaxObserver {
 public:
  explicit MovingAverageMinMaxObserver(QuantSpec spec, double averaging_constant = 0.01,
                                       QParamsAlgorithm algorithm = QParamsAlgorithm::Observer,
                                       float eps = kQuantEps)
      : MinMaxObserver(spec, algorithm, eps) {
    c_ = detail::obs::checked_averaging_constant("MovingAverageMinMaxObserver", averaging_constant);
  }
  const char* name() const override { return "MovingAverageMinMaxObserver"; }
  double averaging_constant() const { return c_; }
  std::unique_ptr<Observer> clone() const override { return std::make_unique<MovingAverageMinMaxObserver>(*this); }
};

// ---------------------------------------------------------------------------
// Per channel.

class PerChannelMinMaxObserver : public Observer {
 public:
  explicit PerChannelMinMaxObserver(QuantSpec spec, QParamsAlgorithm algorithm = QParamsAlgorithm::Observer,
                                    float eps = kQuantEps)
      : Observer(spec, algorithm, eps) {
    require_per_channel();
  }
  const char* name() const override { return "PerChannelMinMaxObserver"; }

  void observe(const float* x, const Shape& shape) override {
    if (shape.numel() == 0) return;
    const auto v = detail::fq::channel_view(name(), shape, spec_.axis);
    std::vector<float> lo(static_cast<std::size_t>(v.channels), detail::obs::kInf),
        hi(static_cast<std::size_t>(v.channels), -detail::obs::kInf);
    // Long contiguous runs (a weight's rows for axis 0): vectorised per run,
    // combined in order, which equals the element-by-element loop below.
    bool done = v.inner >= 64;
    for (Index o = 0; o < v.outer && done; ++o)
      for (Index c = 0; c < v.channels && done; ++c) {
        float a = 0.0f, b = 0.0f;
        done = detail::obs::fast_aminmax(x + (o * v.channels + c) * v.inner, v.inner, a, b);
        float& l = lo[static_cast<std::size_t>(c)];
        float& h = hi[static_cast<std::size_t>(c)];
        l = std::min(l, a);
        h = std::max(h, b);
      }
    if (!done) detail::obs::check_finite(name(), x, shape.numel());
    if (initialized()) {
      QAWARE_CHECK(static_cast<Index>(min_.size()) == v.channels, name(), "::observe: x ", shape.str(), " has ",
                   v.channels, " channels on axis ", v.axis, " but earlier inputs had ", min_.size());
    }
    if (!done) {
      std::fill(lo.begin(), lo.end(), detail::obs::kInf);
      std::fill(hi.begin(), hi.end(), -detail::obs::kInf);
    }
    for (Index o = 0; o < v.outer && !done; ++o)
      for (Index c = 0; c < v.channels; ++c) {
        const float* p = x + (o * v.channels + c) * v.inner;
        float& l = lo[static_cast<std::size_t>(c)];
        float& h = hi[static_cast<std::size_t>(c)];
        for (Index k = 0; k < v.inner; ++k) {
          l = std::min(l, p[k]);
          h = std::max(h, p[k]);
        }
      }
    update(lo, hi);
  }
  using Observer::observe;

  bool initialized() const override { return !min_.empty(); }
  std::vector<float> min_vals() const override { return min_; }
  std::vector<float> max_vals() const override { return max_; }
  void reset() override {
    min_.clear();
    max_.clear();
  }
  StateDict state_dict() const override {
    return {{"min_val", detail::obs::vector_tensor(min_)}, {"max_val", detail::obs::vector_tensor(max_)}};
  }
  void load_state_dict(const StateDict& s) override {
    const DynTensor<double>& lo_d = detail::obs::entry(s, name(), "min_val");
    const DynTensor<double>& hi_d = detail::obs::entry(s, name(), "max_val");
    QAWARE_CHECK(lo_d.numel() == hi_d.numel(), name(), "::load_state_dict: ", lo_d.numel(), " minima but ",
                 hi_d.numel(), " maxima");
    for (Index c = 0; c < lo_d.numel(); ++c)
      detail::obs::check_range(name(), "channel " + std::to_string(c) + " min_val / max_val", lo_d[c], hi_d[c]);
    auto lo = detail::obs::vector_entry(s, name(), "min_val");
    auto hi = detail::obs::vector_entry(s, name(), "max_val");
    min_ = std::move(lo);
    max_ = std::move(hi);
  }
  std::unique_ptr<Observer> clone() const override { return std::make_unique<PerChannelMinMaxObserver>(*this); }

 protected:
  void update(const std::vector<float>& lo, const std::vector<float>& hi) {
    const bool first = !initialized();
    if (first) {
      min_.resize(lo.size());
      max_.resize(hi.size());
    }
    for (std::size_t c = 0; c < lo.size(); ++c) detail::obs::fold_range(min_[c], max_[c], lo[c], hi[c], first, c_);
  }
  std::vector<float> min_, max_;
  float c_ = 0.0f;  // as MinMaxObserver's
};

class MovingAveragePerChannelMinMaxObserver : public PerChannelMinMaxObserver {
 public:
  explicit MovingAveragePerChannelMinMaxObserver(QuantSpec spec, double averaging_constant = 0.01,
                                                 QParamsAlgorithm algorithm = QParamsAlgorithm::Observer,
                                                 float eps = kQuantEps)
      : PerChannelMinMaxObserver(spec, algorithm, eps) {
    c_ = detail::obs::checked_averaging_constant("MovingAveragePerChannelMinMaxObserver", averaging_constant);
  }
  const char* name() const override { return "MovingAveragePerChannelMinMaxObserver"; }
  double averaging_constant() const { return c_; }
  std::unique_ptr<Observer> clone() const override {
    return std::make_unique<MovingAveragePerChannelMinMaxObserver>(*this);
  }
};

// ---------------------------------------------------------------------------
// Per-batch range estimators (not in PyTorch; defined here).
//
// Each batch yields a range [lo_b, hi_b]; the observer keeps, in double,
//   averaging_constant unset: the running mean  sum(lo_b) / count
//   averaging_constant = c:   lo = lo_1, then lo += c * (lo_b - lo)
// and reports min_val / max_val as those values rounded to float.

class BatchRangeObserver : public Observer {
 public:
  BatchRangeObserver(QuantSpec spec, std::optional<double> averaging_constant, QParamsAlgorithm algorithm, float eps)
      : Observer(spec, algorithm, eps), c_(averaging_constant) {
    require_per_tensor();
    if (c_) {
      QAWARE_CHECK(*c_ > 0 && *c_ <= 1, "BatchRangeObserver: averaging_constant must be in (0, 1], got ", *c_);
    }
  }
  void observe(const float* x, const Shape& shape) override {
    const Index n = shape.numel();
    if (n == 0) return;
    detail::obs::check_finite(name(), x, n);
    const auto [lo, hi] = batch_range(x, n);
    ++count_;
    if (!c_) {
      sum_lo_ += lo;
      sum_hi_ += hi;
      lo_ = sum_lo_ / static_cast<double>(count_);
      hi_ = sum_hi_ / static_cast<double>(count_);
    } else if (count_ == 1) {
      lo_ = lo;
      hi_ = hi;
    } else {
      lo_ = lo_ + detail::opaque(*c_ * (lo - lo_));
      hi_ = hi_ + detail::opaque(*c_ * (hi - hi_));
    }
  }
  using Observer::observe;
  bool initialized() const override { return count_ > 0; }
  std::vector<float> min_vals() const override { return {initialized() ? detail::to_float(lo_) : detail::obs::kInf}; }
  std::vector<float> max_vals() const override {
    return {initialized() ? detail::to_float(hi_) : -detail::obs::kInf};
  }
  // The range estimated from the last batch.
  std::pair<double, double> last_batch_range() const { return last_; }
  void reset() override {
    count_ = 0;
    sum_lo_ = sum_hi_ = lo_ = hi_ = 0.0;
  }
  StateDict state_dict() const override {
    return {{"min_val", detail::obs::scalar_tensor(min_vals()[0])},
            {"max_val", detail::obs::scalar_tensor(max_vals()[0])},
            {"running_min", detail::obs::scalar_tensor(lo_)},
            {"running_max", detail::obs::scalar_tensor(hi_)},
            {"sum_min", detail::obs::scalar_tensor(sum_lo_)},
            {"sum_max", detail::obs::scalar_tensor(sum_hi_)},
            {"count", detail::obs::scalar_tensor(static_cast<double>(count_))}};
  }
  void load_state_dict(const StateDict& s) override {
    const double lo = detail::obs::scalar_entry(s, name(), "running_min");
    const double hi = detail::obs::scalar_entry(s, name(), "running_max");
    const double sum_lo = detail::obs::scalar_entry(s, name(), "sum_min");
    const double sum_hi = detail::obs::scalar_entry(s, name(), "sum_max");
    const double c = detail::obs::scalar_entry(s, name(), "count");
    const double unbounded = std::numeric_limits<double>::max();
    detail::obs::check_finite(name(), "sum_min", sum_lo, unbounded);
    detail::obs::check_finite(name(), "sum_max", sum_hi, unbounded);
    QAWARE_CHECK(lo <= hi || c == 0, name(), "::load_state_dict: running_min ", lo, " > running_max ", hi);
    detail::obs::check_finite(name(), "running_min", lo);
    detail::obs::check_finite(name(), "running_max", hi);
    // 2^53: every count below is an exact double (and fits int64).
    QAWARE_CHECK(c >= 0 && c <= 9007199254740992.0 && c == std::floor(c), name(),
                 "::load_state_dict: count must be an integer in [0, 2^53], got ", c);
    lo_ = lo;
    hi_ = hi;
    sum_lo_ = sum_lo;
    sum_hi_ = sum_hi;
    count_ = static_cast<std::int64_t>(c);
  }

 protected:
  // [lo, hi] of one batch (finite, non-empty).
  virtual std::pair<double, double> batch_range(const float* x, Index n) = 0;

  std::optional<double> c_;
  std::int64_t count_ = 0;
  double sum_lo_ = 0, sum_hi_ = 0, lo_ = 0, hi_ = 0;
  std::pair<double, double> last_{0.0, 0.0};
};

// min / max = the (100 - p)-th and p-th percentiles of each batch, with the
// "linear" definition (numpy's default): for sorted values v[0..n-1] and
// q = p / 100, h = (n - 1) q, i = floor(h), t = h - i,
//   quantile = v[i] + (v[min(i + 1, n - 1)] - v[i]) * t   (in double).
class PercentileObserver : public BatchRangeObserver {
 public:
  explicit PercentileObserver(QuantSpec spec, double percentile = 99.99,
                              std::optional<double> averaging_constant = std::nullopt,
                              QParamsAlgorithm algorithm = QParamsAlgorithm::Observer, float eps = kQuantEps)
      : BatchRangeObserver(spec, averaging_constant, algorithm, eps), percentile_(percentile) {
    QAWARE_CHECK(percentile >= 50.0 && percentile <= 100.0, name(), ": percentile must be in [50, 100], got ",
                 percentile);
  }
  const char* name() const override { return "PercentileObserver"; }
  double percentile() const { return percentile_; }
  std::unique_ptr<Observer> clone() const override { return std::make_unique<PercentileObserver>(*this); }

  // The quantile q in [0, 1] of n values (sorted in place), as defined above.
  static double quantile(std::vector<float>& v, double q) {
    const Index n = static_cast<Index>(v.size());
    const double h = static_cast<double>(n - 1) * q;
    const Index i = std::min<Index>(static_cast<Index>(std::floor(h)), n - 1);
    const Index j = std::min<Index>(i + 1, n - 1);
    std::nth_element(v.begin(), v.begin() + i, v.end());
    const double a = v[static_cast<std::size_t>(i)];
    double b = a;
    if (j != i) b = *std::min_element(v.begin() + i + 1, v.end());
    const double t = h - static_cast<double>(i);
    return a + detail::opaque((b - a) * t);
  }

 protected:
  std::pair<double, double> batch_range(const float* x, Index n) override {
    std::vector<float> v(x, x + n);
    const double q = percentile_ / 100.0;
    const double hi = quantile(v, q);
    const double lo = quantile(v, 1.0 - q);
    last_ = {lo, hi};
    return last_;
  }
  double percentile_;
};

// The clipping range that minimises the batch's fake-quantization error:
// with [a, b] = the batch's min / max, candidate k = 1..K scales the range to
// [float(a * k / K), float(b * k / K)] (products in double, rounded to float),
// takes choose_qparams of that range under the spec, fake-quantizes the batch
// with it (the PyTorch-exact float kernel) and scores
//   E_k = sum_i (double(fq(x_i)) - double(x_i))^2   (in double: eight partial
//         sums over i mod 8, then added in order; see squared_error).
// The smallest E_k wins (the smallest k on ties).
class MseObserver : public BatchRangeObserver {
 public:
  explicit MseObserver(QuantSpec spec, int num_candidates = 100,
                       std::optional<double> averaging_constant = std::nullopt,
                       QParamsAlgorithm algorithm = QParamsAlgorithm::Observer, float eps = kQuantEps)
      : BatchRangeObserver(spec, averaging_constant, algorithm, eps), candidates_(num_candidates) {
    QAWARE_CHECK(num_candidates >= 1, name(), ": num_candidates must be >= 1, got ", num_candidates);
  }
  const char* name() const override { return "MseObserver"; }
  int num_candidates() const { return candidates_; }
  std::unique_ptr<Observer> clone() const override { return std::make_unique<MseObserver>(*this); }
  // E_k of the last batch (k = 1..K at index k - 1).
  const std::vector<double>& last_errors() const { return errors_; }

 protected:
  std::pair<double, double> batch_range(const float* x, Index n) override {
    const auto [a, b] = detail::obs::aminmax(x, n);
    const QRange r = spec_.range();
    errors_.assign(static_cast<std::size_t>(candidates_), 0.0);
    std::vector<ScaleZeroPoint> qs;  // chosen here, outside the parallel region: choose_qparams may throw
    for (int k = 1; k <= candidates_; ++k) {
      const double frac = static_cast<double>(k) / candidates_;
      const float lo = detail::to_float(static_cast<double>(a) * frac);
      const float hi = detail::to_float(static_cast<double>(b) * frac);
      qs.push_back(choose_qparams(lo, hi, spec_, algorithm_, eps_));
    }
    // Candidates are independent: score them in parallel, each with its own
    // buffer and its own fixed-order sum, so E_k does not depend on the threads.
    parallel_for(0, candidates_, 1, [&](Index k0, Index k1) {
      std::vector<float> y(static_cast<std::size_t>(n));
      for (Index k = k0 + 1; k <= k1; ++k) {
        const ScaleZeroPoint& q = qs[static_cast<std::size_t>(k - 1)];
        ops::fake_quantize_per_tensor_forward(x, y.data(), static_cast<std::uint64_t*>(nullptr), n, q.scale,
                                              q.zero_point, r.quant_min, r.quant_max);
        errors_[static_cast<std::size_t>(k - 1)] = squared_error(x, y.data(), n);
      }
    });
    int best = 0;
    for (int k = 1; k < candidates_; ++k)
      if (errors_[static_cast<std::size_t>(k)] < errors_[static_cast<std::size_t>(best)]) best = k;
    const double frac = static_cast<double>(best + 1) / candidates_;
    last_ = {detail::to_float(static_cast<double>(a) * frac), detail::to_float(static_cast<double>(b) * frac)};
    return last_;
  }
  // sum_i (double(y_i) - double(x_i))^2 as kLanes partial sums over
  // i mod kLanes, then the lanes in order: a fixed order (the same result on
  // any machine and thread count) whose independent chains do not wait on
  // one another's additions. opaque() keeps each square rounded on its own
  // (no FMA), so builds with and without FMA agree.
  static double squared_error(const float* x, const float* y, Index n) {
    constexpr Index kLanes = 8;
    double lane[kLanes] = {};
    Index i = 0;
    for (; i + kLanes <= n; i += kLanes)
      for (Index j = 0; j < kLanes; ++j) {
        const double d = static_cast<double>(y[i + j]) - static_cast<double>(x[i + j]);
        lane[j] = lane[j] + detail::opaque(d * d);
      }
    for (Index j = 0; i < n; ++i, ++j) {
      const double d = static_cast<double>(y[i]) - static_cast<double>(x[i]);
      lane[j] = lane[j] + detail::opaque(d * d);
    }
    double e = 0.0;
    for (double l : lane) e = e + l;
    return e;
  }

  int candidates_;
  std::vector<double> errors_;
};

}  // namespace qaware
