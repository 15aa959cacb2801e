#pragma once
// HistogramObserver: PyTorch 1.13's torch.ao.quantization.HistogramObserver,
// step for step.
//
// observe(x): the first batch (or any batch after one whose values were all
// equal) sets min_val / max_val to the batch's range and the histogram to
// torch.histc(x, bins, min, max). Later batches widen the range: the old
// histogram is upsampled by `upsample_rate`, placed on a grid covering the
// combined range (extended upwards so that it holds a whole number of old
// bins: _adjust_min_max) and integrated back down to `bins` bins
// (_combine_histograms), then the new batch's histc is added.
//
// calculate_qparams(): the non-linear search of
// caffe2 NormMinimization::NonlinearQuantizationParamsSearch
// (_non_linear_param_search): starting from the whole histogram, repeatedly
// drop 1e-5 of the probability mass from whichever end frees more bins, as
// long as the L2 quantization error (_compute_quantization_error, which
// models each histogram bin as uniformly filled and each of the dst_nbins
// quantization bins as collapsing to its centre) does not grow. The chosen
// [new_min, new_max] goes through choose_qparams with the spec.
//
// Exactness: every step mirrors PyTorch's dtypes (float32 tensors, Python
// doubles, double cumsums) and its evaluation order, with products kept
// apart from the additions that follow them (no FMA contraction). Two sums
// use PyTorch's own float reduction order, which we cannot reproduce bit for
// bit: the histogram total and the per-candidate error norm. We form both in
// double and round to float, which differs from PyTorch's by at most a few
// float ulps and only matters if two candidates' errors tie that closely.
//
// PyTorch 1.13 calls torch.histc with min=int(min_val), max=int(max_val),
// i.e. the range truncated toward zero (values outside it are dropped; a
// range inside (-1, 1) truncates to [0, 0], which histc replaces by the
// batch's own min/max). HistogramOptions::legacy_integer_histc_range = true
// (default) reproduces that; false passes the float range itself.
// The number of quantization bins the search models, dst_nbins, is
// 2^(bits of PyTorch's dtype) = 256 for qint8/quint8, whatever quant_min /
// quant_max are (as PyTorch).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "qaware/quant/observers.hpp"

namespace qaware {

struct HistogramOptions {
  int bins = 2048;
  int upsample_rate = 128;
  int dst_nbins = 256;
  bool legacy_integer_histc_range = true;
};

class HistogramObserver : public Observer {
 public:
  explicit HistogramObserver(QuantSpec spec, HistogramOptions options = {},
                             QParamsAlgorithm algorithm = QParamsAlgorithm::Observer, float eps = kQuantEps)
      : Observer(spec, algorithm, eps), opt_(options), hist_(static_cast<std::size_t>(options.bins), 0.0f) {
    require_per_tensor();
    QAWARE_CHECK(options.bins >= 1 && options.upsample_rate >= 1 && options.dst_nbins >= 1,
                 "HistogramObserver: bins (", options.bins, "), upsample_rate (", options.upsample_rate,
                 ") and dst_nbins (", options.dst_nbins, ") must be positive");
  }
  const char* name() const override { return "HistogramObserver"; }
  const HistogramOptions& options() const { return opt_; }

  void observe(const float* x, const Shape& shape) override {
    const Index n = shape.numel();
    if (n == 0) return;
    detail::obs::check_finite(name(), x, n);
    const auto [xmin, xmax] = detail::obs::aminmax(x, n);
    const bool same_values = min_val_ == max_val_;
    if (!initialized() || same_values) {
      min_val_ = xmin;
      max_val_ = xmax;
      histc(x, n, edge(xmin), edge(xmax), hist_);
      return;
    }
    float cmin = std::min(xmin, min_val_);
    float cmax = std::max(xmax, max_val_);
    const Adjusted a = adjust_min_max(cmin, cmax);
    cmin = a.min;
    cmax = a.max;
    std::vector<float> combined(static_cast<std::size_t>(opt_.bins));
    histc(x, n, edge(cmin), edge(cmax), combined);
    if (cmin == min_val_ && cmax == max_val_) {
      for (std::size_t i = 0; i < combined.size(); ++i) combined[i] += hist_[i];
    } else {
      combine_histograms(combined, a.downsample_rate, a.start_idx);
    }
    hist_ = std::move(combined);
    min_val_ = cmin;
    max_val_ = cmax;
  }
  using Observer::observe;

  bool initialized() const override {
    return !(min_val_ == detail::obs::kInf && max_val_ == -detail::obs::kInf);
  }
  float min_val() const { return min_val_; }
  float max_val() const { return max_val_; }
  const std::vector<float>& histogram() const { return hist_; }

  // The range the search keeps (PyTorch's _non_linear_param_search); the
  // observed range before anything is observed.
  std::pair<float, float> search_range() const {
    if (!initialized()) return {min_val_, max_val_};
    return non_linear_param_search();
  }
  std::vector<float> min_vals() const override { return {search_range().first}; }
  std::vector<float> max_vals() const override { return {search_range().second}; }
  QuantParams calculate_qparams() const override {
    if (!initialized()) return default_qparams();
    const auto [lo, hi] = non_linear_param_search();
    return choose_qparams(std::vector<float>{lo}, std::vector<float>{hi}, spec_, algorithm_, eps_);
  }

  void reset() override {
    min_val_ = detail::obs::kInf;
    max_val_ = -detail::obs::kInf;
    std::fill(hist_.begin(), hist_.end(), 0.0f);
  }
  StateDict state_dict() const override {
    return {{"min_val", detail::obs::scalar_tensor(min_val_)},
            {"max_val", detail::obs::scalar_tensor(max_val_)},
            {"histogram", detail::obs::vector_tensor(hist_)}};
  }
  void load_state_dict(const StateDict& s) override {
    auto h = detail::obs::vector_entry(s, name(), "histogram");
    QAWARE_CHECK(static_cast<int>(h.size()) == opt_.bins, name(), "::load_state_dict: histogram has ", h.size(),
                 " bins, this observer ", opt_.bins);
    const double lo = detail::obs::scalar_entry(s, name(), "min_val"), hi = detail::obs::scalar_entry(s, name(), "max_val");
    detail::obs::check_range(name(), "min_val / max_val", lo, hi);
    // Counts are finite and >= 0, except that combine_histograms (like
    // PyTorch's) subtracts a float-rounded running total from a double one,
    // which leaves bins after an empty stretch negative by a few float ulps
    // of the total mass. Those states are this observer's own and load; a
    // bin further below 0 than 2^-16 of the positive mass was not written by
    // it. (The search keeps the range inside [min_val, max_val] for any
    // finite histogram, so the bound is about provenance, not safety.)
    const DynTensor<double>& hd = detail::obs::entry(s, name(), "histogram");
    double mass = 0.0;
    for (Index i = 0; i < hd.numel(); ++i) {
      QAWARE_CHECK(std::fabs(hd[i]) <= detail::obs::kFloatMax, name(), "::load_state_dict: histogram bin ", i,
                   " holds ", hd[i], " (counts are finite)");
      if (hd[i] > 0) mass += hd[i];
    }
    const double tolerance = std::ldexp(mass, -16);
    for (Index i = 0; i < hd.numel(); ++i)
      QAWARE_CHECK(hd[i] >= -tolerance, name(), "::load_state_dict: histogram bin ", i, " holds ", hd[i],
                   " (counts are >= 0 up to float rounding: ", -tolerance, " for a histogram of ", mass, ")");
    min_val_ = static_cast<float>(lo);
    max_val_ = static_cast<float>(hi);
    hist_ = std::move(h);
  }
  std::unique_ptr<Observer> clone() const override { return std::make_unique<HistogramObserver>(*this); }

 private:
  static float mul(float a, float b) { return detail::opaque(a * b); }

  double edge(float v) const { return opt_.legacy_integer_histc_range ? std::trunc(static_cast<double>(v)) : v; }

  // torch.histc(x, bins, min=lo, max=hi) on float data (CPU, linear-interpolation kernel).
  void histc(const float* x, Index n, double lo, double hi, std::vector<float>& out) const {
    if (lo == hi) {
      const auto [a, b] = detail::obs::aminmax(x, n);
      lo = a;
      hi = b;
    }
    if (lo == hi) {
      lo -= 1;
      hi += 1;
    }
    QAWARE_CHECK(lo < hi, name(), ": histogram range [", lo, ", ", hi, "] is empty");
    const float left = detail::to_float(lo), right = detail::to_float(hi);
    const float width = right - left, nb = static_cast<float>(opt_.bins);
    std::fill(out.begin(), out.end(), 0.0f);
    for (Index i = 0; i < n; ++i) {
      const float e = x[i];
      if (!(e >= left && e <= right)) continue;
      auto pos = static_cast<std::int64_t>((e - left) * nb / width);
      if (pos == opt_.bins) pos -= 1;
      out[static_cast<std::size_t>(pos)] += 1.0f;
    }
  }

  struct Adjusted {
    float min, max;
    std::int64_t downsample_rate, start_idx;
  };

  // _adjust_min_max.
  Adjusted adjust_min_max(float cmin, float cmax) const {
    const float hist_bin_width = (max_val_ - min_val_) / static_cast<float>(opt_.bins * opt_.upsample_rate);
    const float grid = mul(static_cast<float>(opt_.bins), hist_bin_width);
    const float ratio = std::ceil((cmax - cmin) / grid);
    // PyTorch would allocate bins * ratio floats here; we never do, but the
    // integer arithmetic must not overflow.
    QAWARE_CHECK(hist_bin_width > 0.0f && ratio <= 1e12f, name(), ": the new range [", cmin, ", ", cmax,
                 "] is too wide relative to the observed range [", min_val_, ", ", max_val_,
                 "] to combine the histograms (downsampling factor ", ratio, ")");
    const auto downsample = static_cast<std::int64_t>(ratio);
    const float e = mul(static_cast<float>(downsample), grid) - (cmax - cmin);
    Adjusted a;
    a.min = cmin;
    a.max = cmax + e;
    a.downsample_rate = downsample;
    a.start_idx = static_cast<std::int64_t>(std::nearbyint((min_val_ - cmin) / hist_bin_width));
    return a;
  }

  // _combine_histograms: combined += the old histogram resampled onto the new grid.
  void combine_histograms(std::vector<float>& combined, std::int64_t downsample, std::int64_t start_idx) const {
    const std::int64_t nbins = opt_.bins, up = opt_.upsample_rate;
    const std::int64_t total = nbins * downsample;
    // The upsampled old histogram occupies [start, end) of a zero-filled grid
    // of `total` cells (clipped to the grid; PyTorch raises if it overflows).
    const std::int64_t start = std::max<std::int64_t>(0, start_idx);
    const std::int64_t end = std::min<std::int64_t>(total, start_idx + nbins * up);
    double run = 0.0;           // the double cumsum up to position p - 1
    std::int64_t p = start;     // next grid cell to add
    double prev_integral = 0.0;
    for (std::int64_t k = 0; k < nbins; ++k) {
      const std::int64_t last = (k + 1) * downsample - 1;  // cumsum sampled here
      for (; p < end && p <= last; ++p) run += static_cast<double>(hist_[static_cast<std::size_t>((p - start_idx) / up)]);
      const double integral = run;
      const double shifted = k == 0 ? 0.0 : static_cast<double>(detail::to_float(prev_integral));
      const double interpolated = (integral - shifted) / static_cast<double>(up);
      combined[static_cast<std::size_t>(k)] += detail::to_float(interpolated);
      prev_integral = integral;
    }
  }

  // c10's div_floor_floating (torch.div(..., rounding_mode='floor')) in float.
  static float div_floor(float a, float b) {
    if (b == 0.0f) return a / b;
    const float mod = std::fmod(a, b);
    float div = (a - mod) / b;
    if (mod != 0.0f && ((b < 0.0f) != (mod < 0.0f))) div -= 1.0f;
    if (div != 0.0f) {
      float fl = std::floor(div);
      if (div - fl > 0.5f) fl += 1.0f;
      return fl;
    }
    return std::copysign(0.0f, a / b);
  }

  // density * (end^3 - begin^3) / 3
  static float get_norm(float begin, float end, float density) {
    const float e3 = mul(mul(end, end), end), b3 = mul(mul(begin, begin), begin);
    return mul(density, (e3 - b3) / 3.0f);
  }

  // _compute_quantization_error.
  double quantization_error(std::int64_t next_start_bin, std::int64_t next_end_bin) const {
    const double bin_width = (static_cast<double>(max_val_) - static_cast<double>(min_val_)) / opt_.bins;
    const double dst_bin_width =
        bin_width * static_cast<double>(next_end_bin - next_start_bin + 1) / static_cast<double>(opt_.dst_nbins);
    if (dst_bin_width == 0.0) return 0.0;
    const float bw = detail::to_float(bin_width), dbw = detail::to_float(dst_bin_width);
    const float half = detail::to_float(dst_bin_width / 2), neg_half = detail::to_float(-dst_bin_width / 2);
    const float top = static_cast<float>(opt_.dst_nbins - 1);
    double sum = 0.0;
    for (std::int64_t i = 0; i < opt_.bins; ++i) {
      const float src_begin = mul(static_cast<float>(i - next_start_bin), bw);
      const float src_end = src_begin + bw;
      const float dbb = std::min(std::max(div_floor(src_begin, dbw), 0.0f), top);
      const float dbb_center = mul(dbb + 0.5f, dbw);
      const float dbe = std::min(std::max(div_floor(src_end, dbw), 0.0f), top);
      const float density = hist_[static_cast<std::size_t>(i)] / bw;
      float norm = get_norm(src_begin - dbb_center, half, density);
      norm = norm + mul(dbe - dbb - 1.0f, get_norm(neg_half, half, density));
      const float dbe_center = mul(dbe, dbw) + half;
      norm = norm + get_norm(neg_half, src_end - dbe_center, density);
      sum += norm;
    }
    return detail::to_float(sum);
  }

  // _non_linear_param_search.
  std::pair<float, float> non_linear_param_search() const {
    const std::int64_t nbins = opt_.bins;
    const float bin_width = (max_val_ - min_val_) / static_cast<float>(nbins);
    double total_d = 0.0;
    for (float h : hist_) total_d += h;
    const double total = detail::to_float(total_d);
    std::vector<float> csum(hist_.size());
    double acc = 0.0;
    for (std::size_t i = 0; i < hist_.size(); ++i) {
      acc += hist_[i];
      csum[i] = detail::to_float(acc);
    }
    const double stepsize = 1e-5;
    double alpha = 0.0, beta = 1.0;
    std::int64_t start_bin = 0, end_bin = nbins - 1;
    double norm_min = std::numeric_limits<double>::infinity();
    while (alpha < beta) {
      const double next_alpha = alpha + stepsize;
      const double next_beta = beta - stepsize;
      // torch compares the float cumsum with the Python double cast to float.
      const float lo_mass = detail::to_float(next_alpha * total);
      const float hi_mass = detail::to_float(next_beta * total);
      std::int64_t l = start_bin, r = end_bin;
      while (l < end_bin && csum[static_cast<std::size_t>(l)] < lo_mass) ++l;
      while (r > start_bin && csum[static_cast<std::size_t>(r)] > hi_mass) --r;
      std::int64_t next_start_bin = start_bin, next_end_bin = end_bin;
      if ((l - start_bin) > (end_bin - r)) {
        next_start_bin = l;
        alpha = next_alpha;
      } else {
        next_end_bin = r;
        beta = next_beta;
      }
      if (next_start_bin == start_bin && next_end_bin == end_bin) continue;
      const double norm = quantization_error(next_start_bin, next_end_bin);
      if (norm > norm_min) break;
      norm_min = norm;
      start_bin = next_start_bin;
      end_bin = next_end_bin;
    }
    const float new_min = min_val_ + mul(bin_width, static_cast<float>(start_bin));
    const float new_max = min_val_ + mul(bin_width, static_cast<float>(end_bin + 1));
    return {new_min, new_max};
  }

  HistogramOptions opt_;
  std::vector<float> hist_;
  float min_val_ = detail::obs::kInf;
  float max_val_ = -detail::obs::kInf;
};

}  // namespace qaware
