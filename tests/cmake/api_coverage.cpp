// api_coverage.cpp: one consumer translation unit that instantiates and runs
// the public API a qaware user touches, each part checked against an
// independent reference computed here (scalar loops, double precision, the
// formulas the headers document), never against recorded outputs.
//
// It includes only <qaware/qaware.hpp> and is built by a consumer project
// without any -march flag (and with -march=x86-64-v2 / native, GCC and
// Clang): every template, SIMD kernel and run-time dispatcher the library has
// must compile for the baseline ISA and choose the instruction set at run
// time. Exit status 0 when every check passes; otherwise each failed check is
// printed with its values and the status is 1.
//
// Sections (one line of output each):
//   core        Rng, Shape, DynTensor, Error messages, the tape, parallel_for
//   fake_quant  per-tensor / per-channel fake quantization (DynTensor, Tensor,
//               cachemask, QuantParams, tape with every SteMode), LSQ forward
//               and backward, float and double, every fake-quant kernel ISA
//   observers   MinMax, moving average, per channel, histogram, percentile,
//               MSE observers, choose_qparams, the FakeQuantize module
//   gemm        the INT8 GEMM on every enabled path (and AVX2 format), uint8 /
//               int8 A, every output stage, 1 vs 2 threads
//   float_ops   matmul on every float GEMM kernel, softmax, layer norm, GELU,
//               cross-entropy, dropout, attention products (and their bits vs
//               the composed ops), embedding, a finite-difference grad_check
//   layers      every QAT layer, forward and backward, FP32 / W8A8 / LSQ
//   optim       AdamW, SGD, clipping, schedules, io training checkpoints
//   io          safetensors (every dtype), its JSON header, JSON, state dicts
//   training    a tiny BERT classifier trained with AdamW; a checkpoint
//               resumes bit for bit
//   deploy      that classifier exported to INT8, saved, loaded and run: bit
//               for bit the QAT eval forward; an integer linear against the
//               integer product; a truncated file refused
//
// To run every kernel it uses the hooks the library's own tests use:
// qaware::ScopedMaxIsa (the library-wide instruction-set cap: fake-quant and
// float GEMM kernels), qaware::detail::fq::stream_threshold (streaming
// stores) and gemm::detail_pack_b (each AVX2 packing format). A cap from
// QAWARE_MAX_ISA is honoured: only the kernels it admits are run.

#include <qaware/qaware.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

using namespace qaware;
namespace fs = std::filesystem;

// ===========================================================================
// Reporting. EXPECT(cond, parts...) counts a check; on failure it prints the
// line, the condition and the streamed parts (built only on failure).
// ===========================================================================

struct Tally {
  long checks = 0;
  long failures = 0;
  long section_failures = 0;
} g_tally;

template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  os.precision(10);
  (os << ... << args);
  return os.str();
}

void report_failure(int line, const char* cond, const std::string& msg) {
  ++g_tally.failures;
  if (++g_tally.section_failures <= 25) std::printf("    FAIL (line %d) %s: %s\n", line, cond, msg.c_str());
}

#define EXPECT(cond, ...)                                              \
  do {                                                                 \
    ++g_tally.checks;                                                  \
    if (!(cond)) report_failure(__LINE__, #cond, cat(__VA_ARGS__));    \
  } while (0)

// The message of the qaware::Error f throws, or "" when it throws nothing.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const qaware::Error& e) {
    return e.what();
  }
  return "";
}
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

template <typename S>
const char* scalar_name() {
  return std::is_same_v<S, float> ? "float" : "double";
}

// A product rounded on its own: GCC contracts a * b + c into an FMA by
// default, and the library keeps such products apart (PyTorch's roundings).
float rounded(float v) {
  volatile float t = v;
  return t;
}
double rounded(double v) {
  volatile double t = v;
  return t;
}

// ---------------------------------------------------------------------------
// Comparisons.

// The first i with got[i] != want[i] (exact), or -1.
template <typename A, typename B>
Index first_mismatch(const A* got, const B* want, Index n) {
  for (Index i = 0; i < n; ++i)
    if (!(got[i] == want[i])) return i;
  return -1;
}

// The first i with |got[i] - want[i]| > atol + rtol * scale[i] (scale: |want|
// when not given), or -1. NaN fails.
template <typename G>
Index first_far(const G* got, const std::vector<double>& want, double rtol, double atol,
                const std::vector<double>& scale = {}) {
  for (Index i = 0; i < static_cast<Index>(want.size()); ++i) {
    const double s = scale.empty() ? std::fabs(want[i]) : scale[i];
    if (!(std::fabs(static_cast<double>(got[i]) - want[i]) <= atol + rtol * s)) return i;
  }
  return -1;
}

template <typename S>
bool all_finite(const DynTensor<S>& t) {
  for (Index i = 0; i < t.numel(); ++i)
    if (!std::isfinite(t[i])) return false;
  return true;
}
template <typename S>
bool any_nonzero(const DynTensor<S>& t) {
  for (Index i = 0; i < t.numel(); ++i)
    if (t[i] != S(0)) return true;
  return false;
}
template <typename S>
bool same_bits(const DynTensor<S>& a, const DynTensor<S>& b) {
  return a.shape() == b.shape() && (a.numel() == 0 || std::memcmp(a.data(), b.data(), a.bytes()) == 0);
}

template <typename S>
DynTensor<S> randn(Shape shape, Rng& rng, double sd = 1.0, double mean = 0.0) {
  DynTensor<S> t(std::move(shape));
  init::normal(t, rng, mean, sd);
  return t;
}
template <typename S>
DynTensor<S> randu(Shape shape, Rng& rng, double lo, double hi) {
  DynTensor<S> t(std::move(shape));
  init::uniform(t, rng, lo, hi);
  return t;
}

// A directory under the system temp directory, removed at exit.
struct TempDir {
  fs::path path;
  TempDir() {
    const auto tick = std::chrono::steady_clock::now().time_since_epoch().count();
    path = fs::temp_directory_path() / ("qaware_api_coverage_" + std::to_string(tick));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};
TempDir* g_tmp = nullptr;

// ===========================================================================
// core: Rng, Shape, DynTensor, Error, the tape, parallel_for.
// ===========================================================================

// xoshiro256** seeded by splitmix64, written out from the algorithm's
// definition: qaware's Rng must produce exactly this stream.
struct RefXoshiro {
  std::uint64_t s[4];
  explicit RefXoshiro(std::uint64_t seed) {
    for (auto& w : s) {
      std::uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      w = z ^ (z >> 31);
    }
  }
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t next() {
    const std::uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
  }
};

std::string section_core() {
  // Rng: the documented generator, bit for bit; snapshot/restore replays the
  // stream including a pending normal; the distributions have their moments.
  {
    Rng r(2024);
    RefXoshiro ref(2024);
    Index bad = -1;
    for (Index i = 0; i < 1000 && bad < 0; ++i)
      if (r.next_u64() != ref.next()) bad = i;
    EXPECT(bad < 0, "Rng(2024) departs from xoshiro256** at draw ", bad);
    Rng a(7);
    a.normal();  // leaves the polar method's second normal pending
    const Rng::Snapshot snap = a.snapshot();
    std::vector<double> first;
    for (int i = 0; i < 9; ++i) first.push_back(a.normal());
    a.restore(snap);
    bool same = true;
    for (int i = 0; i < 9; ++i) same = same && a.normal() == first[static_cast<std::size_t>(i)];
    EXPECT(same, "restore(snapshot()) does not replay the normal stream");

    Rng m(99);
    const int n = 20000;
    double s = 0, s2 = 0, us = 0, umin = 1, umax = 0;
    std::vector<int> seen(7, 0);
    bool below_ok = true, trunc_ok = true;
    for (int i = 0; i < n; ++i) {
      const double x = m.normal();
      s += x;
      s2 += x * x;
      const double u = m.uniform();
      us += u;
      umin = std::min(umin, u);
      umax = std::max(umax, u);
      const std::uint64_t b = m.below(7);
      below_ok = below_ok && b < 7;
      if (b < 7) ++seen[b];
      const double t = m.truncated_normal(0.0, 1.0, -0.5, 2.0);
      trunc_ok = trunc_ok && t >= -0.5 && t <= 2.0;
    }
    const double mean = s / n, var = s2 / n - mean * mean;
    // 5 standard errors: 5 / sqrt(n) for the mean, 5 sqrt(2 / n) for the variance.
    EXPECT(std::fabs(mean) < 0.036 && std::fabs(var - 1.0) < 0.05, "normal(): mean ", mean, ", variance ", var);
    EXPECT(umin >= 0.0 && umax < 1.0 && std::fabs(us / n - 0.5) < 0.011, "uniform(): range [", umin, ", ", umax,
           "], mean ", us / n);
    EXPECT(below_ok && *std::min_element(seen.begin(), seen.end()) > 2000, "below(7) misses values");
    EXPECT(trunc_ok, "truncated_normal left [-0.5, 2]");
  }

  // Shape and DynTensor: row-major layout, views, copies, moves, reshape.
  {
    const Shape s{2, 3, 4};
    EXPECT(s.numel() == 24 && s.rows() == 6 && s.cols() == 4 && s.dim(-1) == 4 && s.str() == "[2, 3, 4]",
           "Shape ", s.str(), " numel ", s.numel(), " rows ", s.rows());
    DynTensor<float> t(Shape{2, 3});
    for (Index i = 0; i < 6; ++i) t[i] = static_cast<float>(10 * i);
    EXPECT(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0, "DynTensor storage is not 64-byte aligned");
    const auto v = t.view<2>();
    EXPECT(v(1, 2) == t[5] && v(0, 1) == t[1], "view<2>() is not row-major");
    const Tensor<float, 2> et = t.to_tensor<2>();
    EXPECT(et(1, 0) == t[3] && shape_of(et) == t.shape(), "to_tensor<2>()");
    const DynTensor<float> back = DynTensor<float>::from(et);
    EXPECT(same_bits(back, t), "DynTensor::from(Tensor) does not round-trip");
    EXPECT(t.matrix().rows() == 2 && t.matrix().cols() == 3 && t.matrix()(1, 1) == t[4], "matrix() view");
    DynTensor<float> c = t;
    c[0] = -1.0f;
    EXPECT(t[0] == 0.0f, "a DynTensor copy shares storage");
    DynTensor<float> moved = std::move(c);
    EXPECT(c.numel() == 0 && c.shape() == Shape{0} && moved[0] == -1.0f, "a moved-from DynTensor is not empty");
    DynTensor<double> d = t.cast<double>();
    EXPECT(d[5] == 50.0 && d.shape() == t.shape(), "cast<double>()");
    t.reshape(Shape{3, 2});
    EXPECT(t.shape() == Shape({3, 2}) && t[5] == 50.0f, "reshape keeps the data");
    const DynTensor<float> z = DynTensor<float>::zeros(Shape{5});
    EXPECT(!any_nonzero(z) && z.numel() == 5, "zeros()");
  }

  // Errors name the shapes involved.
  {
    const std::string e1 = error_of([] {
      DynTensor<float> t(Shape{2, 3});
      t.reshape(Shape{4, 2});
    });
    EXPECT(contains(e1, "[2, 3]") && contains(e1, "[4, 2]"), "reshape error message: '", e1, "'");
    const std::string e2 = error_of([] {
      Tape<float> tape;
      linear(tape.constant(DynTensor<float>(Shape{2, 3}, 1.0f)), tape.constant(DynTensor<float>(Shape{4, 5}, 1.0f)));
    });
    EXPECT(contains(e2, "linear") && contains(e2, "[2, 3]") && contains(e2, "[4, 5]"), "linear error message: '", e2,
           "'");
    const std::string e3 = error_of([] {
      Tape<float> tape;
      matmul(tape.constant(DynTensor<float>(Shape{2, 3})), tape.constant(DynTensor<float>(Shape{4, 5})));
    });
    EXPECT(contains(e3, "[2, 3]") && contains(e3, "[4, 5]"), "matmul error message: '", e3, "'");
    const std::string e4 = error_of([] { Shape bad{2, -1}; });
    EXPECT(!e4.empty(), "a negative dimension must raise qaware::Error");
  }

  // The tape: constants need no gradient, a Param accumulates into its own
  // gradient, a NoGradGuard records nothing.
  {
    Tape<double> tape;
    Param<double> w(DynTensor<double>(Shape{3}, 2.0));
    const Var<double> x = tape.constant(DynTensor<double>(Shape{3}, 5.0));
    const Var<double> y = sum(mul(x, tape.param(w)));  // sum(x * w) = 30
    EXPECT(y.item() == 30.0 && !x.requires_grad() && y.requires_grad(), "sum(x * w) = ", y.item());
    tape.backward(y);
    EXPECT(w.grad()[0] == 5.0 && w.grad()[2] == 5.0, "d sum(x w) / dw = x, got ", w.grad()[0]);
    tape.clear();
    {
      NoGradGuard<double> guard(tape);
      const Var<double> z = mul(tape.param(w), tape.param(w));
      EXPECT(!z.requires_grad(), "NoGradGuard: a product of Params requires a gradient");
    }
    EXPECT(tape.grad_enabled(), "NoGradGuard did not restore the setting");
    w.zero_grad();
    EXPECT(!any_nonzero(w.grad()), "zero_grad() leaves a non-zero gradient");
  }

  // parallel_for covers [begin, end) exactly once, with 2 threads too.
  {
    const int saved = num_threads();
    set_num_threads(2);
    std::vector<int> hits(100000, 0);
    parallel_for(0, 100000, 1000, [&](Index lo, Index hi) {
      for (Index i = lo; i < hi; ++i) ++hits[static_cast<std::size_t>(i)];
    });
    EXPECT(std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; }), "parallel_for misses or repeats");
    set_num_threads(saved);
  }
  return cat("threads available ", hardware_threads(), ", in use ", num_threads());
}

// ===========================================================================
// fake_quant: every fake-quantization op against a scalar loop.
// ===========================================================================

// The reference of the fake-quant kernels (quant/fake_quantize_kernels.hpp),
// one element at a time in S: q = zp + nearbyint(x * (1 / scale)); in range
// when qmin <= q <= qmax (the STE mask); y = (clamp(q, qmin, qmax) - zp) * scale.
template <typename S>
S ref_fq(S x, S scale, std::int64_t zp, std::int64_t qmin, std::int64_t qmax, bool* in_range = nullptr) {
  const S inv = S(1) / scale;
  const S q = static_cast<S>(zp) + std::nearbyint(x * inv);
  if (in_range) *in_range = q >= static_cast<S>(qmin) && q <= static_cast<S>(qmax);
  const S qc = std::min(std::max(q, static_cast<S>(qmin)), static_cast<S>(qmax));
  return (qc - static_cast<S>(zp)) * scale;
}

// (OUTER, C, INNER) of a shape around a channel axis.
struct Channels {
  Index outer, C, inner;
};
Channels channels_of(const Shape& s, int axis) {
  const int a = axis < 0 ? axis + s.rank() : axis;
  Channels c{1, s[a], 1};
  for (int i = 0; i < a; ++i) c.outer *= s[i];
  for (int i = a + 1; i < s.rank(); ++i) c.inner *= s[i];
  return c;
}

template <typename S>
struct FqExpect {
  std::vector<S> y;
  std::vector<char> in;  // the STE mask
  Index saturated = 0;
};

template <typename S>
FqExpect<S> expect_fq(const DynTensor<S>& x, const std::vector<S>& scale, const std::vector<std::int32_t>& zp, int axis,
                      std::int64_t qmin, std::int64_t qmax) {
  const bool per_channel = scale.size() > 1 || axis >= 0;
  const Channels ch = per_channel ? channels_of(x.shape(), axis) : Channels{1, 1, x.numel()};
  FqExpect<S> e;
  for (Index i = 0; i < x.numel(); ++i) {
    const Index c = (i / ch.inner) % ch.C;
    bool in = false;
    e.y.push_back(ref_fq(x[i], scale[static_cast<std::size_t>(c)], zp[static_cast<std::size_t>(c)], qmin, qmax, &in));
    e.in.push_back(in);
    e.saturated += !in;
  }
  return e;
}

// One op's output (and mask) against the expectation.
template <typename S>
void check_fq(const std::string& what, const DynTensor<S>& x, const S* y, const FqExpect<S>& e,
              const BitMask* mask = nullptr) {
  const Index n = x.numel();
  const Index bad = first_mismatch(y, e.y.data(), n);
  EXPECT(bad < 0, what, ": element ", bad, " x = ", x[bad], ": got ", y[bad], ", want ", e.y[bad]);
  if (mask) {
    Index mbad = -1;
    for (Index i = 0; i < n && mbad < 0; ++i)
      if ((*mask)[i] != static_cast<bool>(e.in[static_cast<std::size_t>(i)])) mbad = i;
    EXPECT(mask->size() == n && mbad < 0, what, ": mask bit ", mbad, " (x = ", x[mbad], ") differs; size ",
           mask->size());
  }
}

// The tape op under SteMode `ste`: forward as above; backward dx == dy where
// in range and 0 outside (Clipped, LearnableClip), dx == dy everywhere
// (PassThrough).
template <typename S, typename Op>
void check_fq_tape(const std::string& what, const DynTensor<S>& x, const FqExpect<S>& e, SteMode ste, Rng& rng,
                   Op op) {
  Tape<S> tape;
  const Var<S> xv = tape.leaf(x);
  const Var<S> yv = op(xv, ste);
  const std::string tag = cat(what, " ste=", ste_mode_name(ste));
  check_fq(tag + " forward", x, yv.value().data(), e);
  const DynTensor<S> dy = randn<S>(x.shape(), rng);
  tape.backward(yv, dy);
  const DynTensor<S>& dx = xv.grad();
  Index bad = -1;
  for (Index i = 0; i < x.numel() && bad < 0; ++i) {
    const bool pass = ste == SteMode::PassThrough || e.in[static_cast<std::size_t>(i)];
    if (dx[i] != (pass ? dy[i] : S(0))) bad = i;
  }
  EXPECT(bad < 0, tag, " backward: dx[", bad, "] = ", dx[bad], " for dy = ", dy[bad], ", in range ",
         static_cast<int>(e.in[static_cast<std::size_t>(bad)]));
}

constexpr SteMode kSteModes[] = {SteMode::Clipped, SteMode::PassThrough, SteMode::LearnableClip};

template <typename S, int R>
void check_fq_eigen_per_channel(const std::string& what, const DynTensor<S>& x, const std::vector<S>& sc,
                                const std::vector<std::int32_t>& zp, int axis, std::int64_t qmin, std::int64_t qmax,
                                const FqExpect<S>& e) {
  Tensor<S, R> xt(to_dsizes<R>(x.shape()));
  std::memcpy(xt.data(), x.data(), x.bytes());
  const Tensor<S, R> yt = fake_quantize_per_channel_affine(xt, sc, zp, axis, qmin, qmax);
  check_fq(what + " Tensor<S, " + std::to_string(R) + ">", x, yt.data(), e);
}

template <typename S>
void fake_quant_suite(Rng& rng, const std::string& isa) {
  const std::string tag = cat("[", scalar_name<S>(), ", ", isa, "]");
  // 1037 = 16 * 64 + 13: whole SIMD blocks and mask words, then a tail.
  const Index N = 1037;
  const DynTensor<S> x = randn<S>(Shape{N}, rng, 1.5);

  // Per tensor: uint8 affine, int8 with a negative zero point, 4-bit signed.
  struct PerTensor {
    float scale;
    std::int64_t zp, qmin, qmax;
  };
  for (const PerTensor& c : {PerTensor{0.0173f, 37, 0, 255}, PerTensor{0.021f, -5, -128, 127}, PerTensor{0.3f, 0, -8, 7}}) {
    const S scale = static_cast<S>(c.scale);
    const FqExpect<S> e = expect_fq<S>(x, {scale}, {static_cast<std::int32_t>(c.zp)}, -1, c.qmin, c.qmax);
    const std::string t = cat(tag, " per tensor (scale ", scale, ", zp ", c.zp, ", [", c.qmin, ", ", c.qmax, "])");
    EXPECT(e.saturated > 0 && e.saturated < N, t, ": the data should saturate some elements, got ", e.saturated);
    check_fq(t + " DynTensor", x, fake_quantize_per_tensor_affine(x, scale, c.zp, c.qmin, c.qmax).data(), e);
    Tensor<S, 2> xt(17, 61);
    std::memcpy(xt.data(), x.data(), x.bytes());
    const Tensor<S, 2> yt = fake_quantize_per_tensor_affine(xt, scale, c.zp, c.qmin, c.qmax);
    check_fq(t + " Tensor<S, 2>", x, yt.data(), e);
    const FakeQuantResult<S> cm = fake_quantize_per_tensor_affine_cachemask(x, scale, c.zp, c.qmin, c.qmax);
    check_fq(t + " cachemask", x, cm.output.data(), e, &cm.mask);
    QuantParams qp;
    qp.scale = {c.scale};
    qp.zero_point = {static_cast<std::int32_t>(c.zp)};
    qp.quant_min = c.qmin;
    qp.quant_max = c.qmax;
    check_fq(t + " fake_quantize(QuantParams)", x, fake_quantize(x, qp).data(), e);
    const FakeQuantResult<S> cm2 = fake_quantize_cachemask(x, qp);
    check_fq(t + " fake_quantize_cachemask(QuantParams)", x, cm2.output.data(), e, &cm2.mask);
    for (SteMode ste : kSteModes) {
      check_fq_tape(t + " tape", x, e, ste, rng, [&](Var<S> v, SteMode m) {
        return fake_quantize_per_tensor_affine(v, scale, c.zp, c.qmin, c.qmax, m);
      });
      check_fq_tape(t + " tape(QuantParams)", x, e, ste, rng, [&](Var<S> v, SteMode m) { return fake_quantize(v, qp, m); });
    }
  }

  // Per channel: a short inner run (the vector-parameter kernel), a long one
  // (the broadcast kernel) and the last axis (inner 1).
  struct PerChannel {
    Shape shape;
    int axis;
    bool is_signed;
  };
  for (const PerChannel& c : {PerChannel{Shape{11, 7, 13}, 1, false}, PerChannel{Shape{7, 149}, 0, true},
                              PerChannel{Shape{61, 17}, -1, false}}) {
    const DynTensor<S> xc = randn<S>(c.shape, rng, 1.5);
    const Index C = channels_of(c.shape, c.axis).C;
    const std::int64_t qmin = c.is_signed ? -128 : 0, qmax = c.is_signed ? 127 : 255;
    std::vector<S> sc;
    std::vector<std::int32_t> zp;
    for (Index k = 0; k < C; ++k) {
      sc.push_back(static_cast<S>(static_cast<float>(rng.uniform(0.006, 0.03))));
      zp.push_back(c.is_signed ? 0 : static_cast<std::int32_t>(20 + rng.below(200)));
    }
    const FqExpect<S> e = expect_fq<S>(xc, sc, zp, c.axis, qmin, qmax);
    const std::string t = cat(tag, " per channel ", c.shape.str(), " axis ", c.axis);
    EXPECT(e.saturated > 0 && e.saturated < xc.numel(), t, ": the data should saturate some elements");
    check_fq(t + " DynTensor", xc, fake_quantize_per_channel_affine(xc, sc, zp, c.axis, qmin, qmax).data(), e);
    if (c.shape.rank() == 2)
      check_fq_eigen_per_channel<S, 2>(t, xc, sc, zp, c.axis, qmin, qmax, e);
    else
      check_fq_eigen_per_channel<S, 3>(t, xc, sc, zp, c.axis, qmin, qmax, e);
    const FakeQuantResult<S> cm = fake_quantize_per_channel_affine_cachemask(xc, sc, zp, c.axis, qmin, qmax);
    check_fq(t + " cachemask", xc, cm.output.data(), e, &cm.mask);
    QuantParams qp;
    qp.scale.assign(sc.begin(), sc.end());
    qp.zero_point = zp;
    qp.per_channel = true;
    qp.axis = c.axis;
    qp.quant_min = qmin;
    qp.quant_max = qmax;
    check_fq(t + " fake_quantize(QuantParams)", xc, fake_quantize(xc, qp).data(), e);
    for (SteMode ste : kSteModes)
      check_fq_tape(t + " tape", xc, e, ste, rng, [&](Var<S> v, SteMode m) {
        return fake_quantize_per_channel_affine(v, sc, zp, c.axis, qmin, qmax, m);
      });
  }
}

// A tensor large enough to be split across 2 threads, with the
// non-temporal-store path forced on (threshold 0), then off again.
void fake_quant_parallel(Rng& rng, const std::string& isa) {
  const DynTensor<float> x = randn<float>(Shape{40000 + 37}, rng, 1.5);
  const FqExpect<float> e = expect_fq<float>(x, {0.0173f}, {37}, -1, 0, 255);
  const int saved_threads = num_threads();
  auto& threshold = qaware::detail::fq::stream_threshold();
  const std::size_t saved = threshold.load();
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (std::size_t th : {saved, std::size_t(0)}) {
      threshold.store(th);
      const std::string t = cat("[float, ", isa, "] 40037 elements, ", threads, " thread(s), stream threshold ", th);
      check_fq(t, x, fake_quantize_per_tensor_affine(x, 0.0173f, 37, 0, 255).data(), e);
      const FakeQuantResult<float> cm = fake_quantize_per_tensor_affine_cachemask(x, 0.0173f, 37, 0, 255);
      check_fq(t + " cachemask", x, cm.output.data(), e, &cm.mask);
    }
  }
  threshold.store(saved);
  set_num_threads(saved_threads);
}

// LSQ (quant/learnable.hpp) written out per element from the header:
//   forward: zp_f = clamp(nearbyint(zp)), y = fake_quantize(x, scale, zp_f)
//   backward: zp_b = (int64) clamp(zp + 0.5) per tensor, zp_f per channel;
//     q = nearbyint(fma(x, 1 / scale, zp_b));
//     in range: dx = dy, dscale += dy * fma(q - zp_b, scale, -x) / scale * g
//               (not for LearnableClip);
//     outside:  dx = 0 (dy for PassThrough), dscale += dy * (qmin|qmax - zp_b) * g,
//               dzp += -dy * scale * g.
template <typename S>
struct LsqExpect {
  std::vector<S> y, dx;
  std::vector<double> ds, dz, ds_mag, dz_mag;
};

template <typename S>
LsqExpect<S> expect_lsq(const DynTensor<S>& x, const DynTensor<S>& dy, const std::vector<S>& scale,
                        const std::vector<S>& zp, int axis, std::int64_t qmin, std::int64_t qmax, S g, SteMode ste) {
  const bool per_channel = axis >= 0;
  const Channels ch = per_channel ? channels_of(x.shape(), axis) : Channels{1, 1, x.numel()};
  const S lo = static_cast<S>(qmin), hi = static_cast<S>(qmax);
  std::vector<S> zp_f, zp_b;
  for (Index c = 0; c < ch.C; ++c) {
    const S z = zp[static_cast<std::size_t>(c)];
    zp_f.push_back(std::min(std::max(std::nearbyint(z), lo), hi));
    zp_b.push_back(per_channel ? zp_f.back()
                               : static_cast<S>(static_cast<std::int64_t>(std::min(std::max(z + S(0.5), lo), hi))));
  }
  LsqExpect<S> e;
  e.ds.assign(static_cast<std::size_t>(ch.C), 0.0);
  e.dz = e.ds_mag = e.dz_mag = e.ds;
  for (Index i = 0; i < x.numel(); ++i) {
    const std::size_t c = static_cast<std::size_t>((i / ch.inner) % ch.C);
    const S s = scale[c], inv = S(1) / s, zb = zp_b[c];
    e.y.push_back(ref_fq(x[i], s, static_cast<std::int64_t>(zp_f[c]), qmin, qmax));
    const S q = std::nearbyint(std::fma(x[i], inv, zb));
    const bool below = q < lo, above = q > hi;
    e.dx.push_back(ste == SteMode::PassThrough || !(below || above) ? dy[i] : S(0));
    double ts = 0, tz = 0;
    if (below || above) {
      tz = static_cast<double>(((dy[i] * S(-1)) * s) * g);
      ts = static_cast<double>((dy[i] * ((below ? lo : hi) - zb)) * g);
    } else if (ste != SteMode::LearnableClip) {
      ts = static_cast<double>(((dy[i] * std::fma(q - zb, s, -x[i])) * inv) * g);
    }
    e.ds[c] += ts;
    e.dz[c] += tz;
    e.ds_mag[c] += std::fabs(ts);
    e.dz_mag[c] += std::fabs(tz);
  }
  return e;
}

// Sums of per-element terms: the library sums in double too, in another order.
template <typename S>
double sum_tolerance(double magnitude) {
  return (std::is_same_v<S, float> ? 2e-6 : 1e-13) * magnitude + 1e-30;
}

template <typename S>
void check_lsq_grads(const std::string& what, const LsqExpect<S>& e, const S* dx, Index n, const S* ds, const S* dz,
                     double ds_factor = 1.0, const std::vector<S>* log_scale_of = nullptr) {
  const Index bad = first_mismatch(dx, e.dx.data(), n);
  EXPECT(bad < 0, what, ": dx[", bad, "] = ", dx[bad], ", want ", e.dx[bad]);
  for (std::size_t c = 0; c < e.ds.size(); ++c) {
    // Log domain: dL/dlog_scale = dL/dscale * scale.
    const double f = log_scale_of ? static_cast<double>((*log_scale_of)[c]) : ds_factor;
    const double want_s = e.ds[c] * f, want_z = e.dz[c];
    EXPECT(std::fabs(static_cast<double>(ds[c]) - want_s) <= sum_tolerance<S>(e.ds_mag[c] * std::fabs(f)) +
                                                                  std::fabs(want_s) * 1.2e-7,
           what, ": dscale[", c, "] = ", ds[c], ", want ", want_s);
    EXPECT(std::fabs(static_cast<double>(dz[c]) - want_z) <= sum_tolerance<S>(e.dz_mag[c]) + std::fabs(want_z) * 1.2e-7,
           what, ": dzero_point[", c, "] = ", dz[c], ", want ", want_z);
  }
}

template <typename S>
void lsq_suite(Rng& rng, const std::string& isa) {
  const std::string tag = cat("[", scalar_name<S>(), ", ", isa, "] LSQ");
  const Index N = 1037;
  const DynTensor<S> x = randn<S>(Shape{N}, rng, 1.5), dy = randn<S>(Shape{N}, rng);
  const S scale = static_cast<S>(0.0173f);
  const S g = static_cast<S>(1.0 / std::sqrt(static_cast<double>(N) * 255.0));  // LSQ's default grad factor
  // 36.5: the forward rounds it half to even (36), the backward truncates 37.0 (37).
  for (S zp : {S(36.5), S(12.3)}) {
    for (SteMode ste : kSteModes) {
      const std::string t = cat(tag, " per tensor zp ", zp, " ste=", ste_mode_name(ste));
      const LsqExpect<S> e = expect_lsq<S>(x, dy, {scale}, {zp}, -1, 0, 255, g, ste);
      const DynTensor<S> y = fake_quantize_learnable_per_tensor_affine(x, scale, zp, 0, 255);
      const Index bad = first_mismatch(y.data(), e.y.data(), N);
      EXPECT(bad < 0, t, " forward: y[", bad, "] = ", y[bad], ", want ", e.y[bad]);
      const LearnableGrads<S> gr =
          fake_quantize_learnable_per_tensor_affine_backward(dy, x, scale, zp, 0, 255, static_cast<double>(g), ste);
      check_lsq_grads(t + " backward()", e, gr.dx.data(), N, gr.dscale.data(), gr.dzero_point.data());

      // The tape op with Params, linear and log scale domains.
      for (ScaleDomain dom : {ScaleDomain::Linear, ScaleDomain::Log}) {
        const bool log = dom == ScaleDomain::Log;
        const S stored = log ? std::log(scale) : scale;
        const S s_eff = log ? std::max(std::exp(stored), static_cast<S>(kQuantEps)) : scale;
        const LsqExpect<S> el = log ? expect_lsq<S>(x, dy, {s_eff}, {zp}, -1, 0, 255, g, ste) : e;
        Tape<S> tape;
        Param<S> ps(DynTensor<S>(Shape{1}, stored)), pz(DynTensor<S>(Shape{1}, zp));
        const Var<S> xv = tape.leaf(x);
        LearnableOptions o;
        o.ste = ste;
        o.scale_domain = dom;
        const Var<S> yv = fake_quantize_learnable_per_tensor_affine(xv, tape.param(ps), tape.param(pz), 0, 255, o);
        const std::string tt = t + (log ? " tape (log scale)" : " tape");
        const Index b2 = first_mismatch(yv.value().data(), el.y.data(), N);
        EXPECT(b2 < 0, tt, " forward: y[", b2, "] = ", yv.value()[b2], ", want ", el.y[b2]);
        tape.backward(yv, dy);
        const std::vector<S> sv{s_eff};
        check_lsq_grads(tt, el, xv.grad().data(), N, ps.grad().data(), pz.grad().data(), 1.0, log ? &sv : nullptr);
      }
    }
  }
  // Per channel: shape (5, 7, 31) along axis 1, fractional zero points.
  const DynTensor<S> xc = randn<S>(Shape{5, 7, 31}, rng, 1.5), dyc = randn<S>(Shape{5, 7, 31}, rng);
  std::vector<S> sc, zc;
  for (int c = 0; c < 7; ++c) {
    sc.push_back(static_cast<S>(static_cast<float>(rng.uniform(0.008, 0.03))));
    zc.push_back(static_cast<S>(c == 0 ? 100.5 : rng.uniform(5.0, 250.0)));
  }
  const S gc = static_cast<S>(0.01);
  for (SteMode ste : kSteModes) {
    const std::string t = cat(tag, " per channel ste=", ste_mode_name(ste));
    const LsqExpect<S> e = expect_lsq<S>(xc, dyc, sc, zc, 1, 0, 255, gc, ste);
    const DynTensor<S> y = fake_quantize_learnable_per_channel_affine(xc, sc, zc, 1, 0, 255);
    const Index bad = first_mismatch(y.data(), e.y.data(), xc.numel());
    EXPECT(bad < 0, t, " forward: y[", bad, "] = ", y[bad], ", want ", e.y[bad]);
    const LearnableGrads<S> gr =
        fake_quantize_learnable_per_channel_affine_backward(dyc, xc, sc, zc, 1, 0, 255, static_cast<double>(gc), ste);
    check_lsq_grads(t + " backward()", e, gr.dx.data(), xc.numel(), gr.dscale.data(), gr.dzero_point.data());
    Tape<S> tape;
    Param<S> ps(DynTensor<S>::from(Shape{7}, sc.data())), pz(DynTensor<S>::from(Shape{7}, zc.data()));
    const Var<S> xv = tape.leaf(xc);
    LearnableOptions o;
    o.ste = ste;
    o.grad_factor = static_cast<double>(gc);
    const Var<S> yv = fake_quantize_learnable_per_channel_affine(xv, tape.param(ps), tape.param(pz), 1, 0, 255, o);
    const Index b2 = first_mismatch(yv.value().data(), e.y.data(), xc.numel());
    EXPECT(b2 < 0, t, " tape forward: y[", b2, "]");
    tape.backward(yv, dyc);
    check_lsq_grads(t + " tape", e, xv.grad().data(), xc.numel(), ps.grad().data(), pz.grad().data());
  }
}

std::string section_fake_quant() {
  // Each kernel family the cap (QAWARE_MAX_ISA) admits on this CPU.
  std::vector<std::string> isas;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (!isa_enabled(isa)) continue;
    const ScopedMaxIsa cap(isa);
    const std::string name = isa_name(isa);
    isas.push_back(name);
    Rng rng(41);
    fake_quant_suite<float>(rng, name);
    lsq_suite<float>(rng, name);
    fake_quant_parallel(rng, name);
  }
  Rng rng(42);
  fake_quant_suite<double>(rng, "scalar");
  lsq_suite<double>(rng, "scalar");
  return "float kernels: " + join(isas) + "; double";
}

// ===========================================================================
// observers: choose_qparams, every observer, the FakeQuantize module.
// ===========================================================================

std::pair<float, float> range_of(const DynTensor<float>& t) {
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (Index i = 0; i < t.numel(); ++i) {
    lo = std::min(lo, t[i]);
    hi = std::max(hi, t[i]);
  }
  return {lo, hi};
}

// choose_qparams written out (quant/qparams.hpp, PyTorch's float32 math):
//   affine:    scale = max((max(hi, 0) - min(lo, 0)) / (qmax - qmin), eps),
//              zp = clamp(qmin - nearbyint(min(lo, 0) / scale), qmin, qmax)
//   symmetric: scale = max(max(-min(lo, 0), max(hi, 0)) / ((qmax - qmin) / 2), eps), zp = 0 (signed)
ScaleZeroPoint ref_qparams(float lo, float hi, std::int64_t qmin, std::int64_t qmax, bool symmetric) {
  const float mn = std::min(lo, 0.0f), mx = std::max(hi, 0.0f);
  ScaleZeroPoint q;
  if (symmetric) {
    q.scale = std::max(std::max(-mn, mx) / (static_cast<float>(qmax - qmin) / 2.0f), kQuantEps);
    q.zero_point = 0;
  } else {
    q.scale = std::max((mx - mn) / static_cast<float>(qmax - qmin), kQuantEps);
    const std::int64_t zp = qmin - static_cast<std::int64_t>(std::nearbyint(mn / q.scale));
    q.zero_point = static_cast<std::int32_t>(std::clamp(zp, qmin, qmax));
  }
  return q;
}

// numpy's "linear" quantile of v (double), as PercentileObserver documents.
double ref_quantile(std::vector<float> v, double q) {
  std::sort(v.begin(), v.end());
  const Index n = static_cast<Index>(v.size());
  const double h = static_cast<double>(n - 1) * q;
  const Index i = std::min<Index>(static_cast<Index>(std::floor(h)), n - 1), j = std::min<Index>(i + 1, n - 1);
  const double a = v[static_cast<std::size_t>(i)], b = v[static_cast<std::size_t>(j)];
  return a + rounded((b - a) * (h - static_cast<double>(i)));
}

void expect_qparams_equal(const std::string& what, const QuantParams& got, const ScaleZeroPoint& want, std::size_t c = 0) {
  EXPECT(got.scale.size() > c && got.scale[c] == want.scale && got.zero_point[c] == want.zero_point, what,
         " channel ", c, ": (scale, zp) = (", got.scale.size() > c ? got.scale[c] : -1.0f, ", ",
         got.zero_point.size() > c ? got.zero_point[c] : -1, "), want (", want.scale, ", ", want.zero_point, ")");
}

// Positive finite scales and zero points inside the range.
void expect_sane(const std::string& what, const QuantParams& q) {
  bool ok = !q.scale.empty() && q.scale.size() == q.zero_point.size();
  for (std::size_t c = 0; ok && c < q.scale.size(); ++c)
    ok = std::isfinite(q.scale[c]) && q.scale[c] > 0 && q.zero_point[c] >= q.quant_min && q.zero_point[c] <= q.quant_max;
  EXPECT(ok, what, ": bad qparams, first scale ", q.scale.empty() ? 0.0f : q.scale[0], ", zero point ",
         q.zero_point.empty() ? 0 : q.zero_point[0], " in [", q.quant_min, ", ", q.quant_max, "]");
}

std::string section_observers() {
  Rng rng(5);
  const Index N = 1037;
  const DynTensor<float> b1 = randn<float>(Shape{N}, rng, 1.0), b2 = randn<float>(Shape{N}, rng, 2.0, 0.7);
  const auto [lo1, hi1] = range_of(b1);
  const auto [lo2, hi2] = range_of(b2);
  const QuantSpec u8 = QuantSpec::uint8(), s8 = QuantSpec::int8(true);

  // choose_qparams against the formulas, affine uint8 and symmetric int8.
  for (auto [lo, hi] : {std::pair<float, float>{lo1, hi1}, {lo2, hi2}, {0.25f, 3.0f}, {-2.0f, -0.5f}}) {
    const ScaleZeroPoint a = choose_qparams(lo, hi, u8), ra = ref_qparams(lo, hi, 0, 255, false);
    EXPECT(a.scale == ra.scale && a.zero_point == ra.zero_point, "choose_qparams(", lo, ", ", hi, ", uint8) = (",
           a.scale, ", ", a.zero_point, "), want (", ra.scale, ", ", ra.zero_point, ")");
    const ScaleZeroPoint s = choose_qparams(lo, hi, s8), rs = ref_qparams(lo, hi, -128, 127, true);
    EXPECT(s.scale == rs.scale && s.zero_point == 0, "choose_qparams(", lo, ", ", hi, ", int8 symmetric) = (",
           s.scale, ", ", s.zero_point, "), want (", rs.scale, ", 0)");
  }
  const QRange r4 = QuantSpec::signed_bits(4).range(), nr = QuantSpec::int8().with_narrow_range().range(),
               rr = QuantSpec::uint8().with_reduce_range().range();
  EXPECT(r4.quant_min == -8 && r4.quant_max == 7 && nr.quant_min == -127 && rr.quant_max == 127,
         "QuantSpec ranges: int4 [", r4.quant_min, ", ", r4.quant_max, "], narrow int8 min ", nr.quant_min,
         ", reduce_range uint8 max ", rr.quant_max);

  // MinMax: the running min / max of every batch, then choose_qparams.
  MinMaxObserver mm(u8);
  const QuantParams q0 = mm.calculate_qparams();
  EXPECT(!mm.initialized() && q0.scale[0] == 1.0f && q0.zero_point[0] == 0, "an empty observer gives (1, 0)");
  mm.observe(b1);
  mm.observe(b2);
  const float lo = std::min(lo1, lo2), hi = std::max(hi1, hi2);
  EXPECT(mm.min_vals()[0] == lo && mm.max_vals()[0] == hi, "MinMax range [", mm.min_vals()[0], ", ",
         mm.max_vals()[0], "], want [", lo, ", ", hi, "]");
  expect_qparams_equal("MinMax", mm.calculate_qparams(), ref_qparams(lo, hi, 0, 255, false));

  // Moving average (c = 0.01): the first batch sets the range, then min += c (batch_min - min).
  const float c = 0.01f;
  MovingAverageMinMaxObserver ma(u8, 0.01);
  ma.observe(b1);
  ma.observe(b2);
  const float ma_lo = lo1 + rounded(c * (lo2 - lo1)), ma_hi = hi1 + rounded(c * (hi2 - hi1));
  EXPECT(ma.min_vals()[0] == ma_lo && ma.max_vals()[0] == ma_hi, "MovingAverage range [", ma.min_vals()[0], ", ",
         ma.max_vals()[0], "], want [", ma_lo, ", ", ma_hi, "]");
  expect_qparams_equal("MovingAverageMinMax", ma.calculate_qparams(), ref_qparams(ma_lo, ma_hi, 0, 255, false));

  // Per channel (axis 0 of a (9, 113) weight), MinMax and moving average.
  {
    const DynTensor<float> w1 = randn<float>(Shape{9, 113}, rng, 0.05), w2 = randn<float>(Shape{9, 113}, rng, 0.08);
    const QuantSpec spec = QuantSpec::int8(true).with_per_channel(0);
    PerChannelMinMaxObserver pc(spec);
    MovingAveragePerChannelMinMaxObserver pm(spec, 0.01);
    pc.observe(w1);
    pc.observe(w2);
    pm.observe(w1);
    pm.observe(w2);
    const QuantParams qc = pc.calculate_qparams(), qm = pm.calculate_qparams();
    EXPECT(qc.per_channel && qc.axis == 0 && qc.channels() == 9 && qm.channels() == 9, "per-channel qparams: ",
           qc.channels(), " channels");
    for (Index ch = 0; ch < 9; ++ch) {
      float l1 = 1e30f, h1 = -1e30f, l2 = 1e30f, h2 = -1e30f;
      for (Index k = 0; k < 113; ++k) {
        l1 = std::min(l1, w1[ch * 113 + k]);
        h1 = std::max(h1, w1[ch * 113 + k]);
        l2 = std::min(l2, w2[ch * 113 + k]);
        h2 = std::max(h2, w2[ch * 113 + k]);
      }
      const std::size_t cc = static_cast<std::size_t>(ch);
      expect_qparams_equal("PerChannelMinMax", qc, ref_qparams(std::min(l1, l2), std::max(h1, h2), -128, 127, true), cc);
      expect_qparams_equal("MovingAveragePerChannel", qm,
                           ref_qparams(l1 + rounded(c * (l2 - l1)), h1 + rounded(c * (h2 - h1)), -128, 127, true), cc);
    }
  }

  // Histogram: a clipping range inside the observed one that keeps most values.
  {
    HistogramObserver h(u8);
    h.observe(b1);
    h.observe(b2);
    const QuantParams q = h.calculate_qparams();
    expect_sane("Histogram", q);
    const float clip_lo = static_cast<float>(q.quant_min - q.zero_point[0]) * q.scale[0];
    const float clip_hi = static_cast<float>(q.quant_max - q.zero_point[0]) * q.scale[0];
    Index inside = 0;
    for (const DynTensor<float>* b : {&b1, &b2})
      for (Index i = 0; i < N; ++i) inside += (*b)[i] >= clip_lo && (*b)[i] <= clip_hi;
    EXPECT(clip_hi - clip_lo <= (std::max(hi, 0.0f) - std::min(lo, 0.0f)) * 1.02f && inside > 2 * N * 9 / 10,
           "Histogram clip [", clip_lo, ", ", clip_hi, "] of data [", lo, ", ", hi, "] keeps ", inside, " of ", 2 * N);
  }

  // Percentile (99%): numpy's linear quantiles per batch, averaged over batches.
  {
    PercentileObserver p(u8, 99.0);
    const double q = 99.0 / 100.0;
    const std::vector<float> v1(b1.begin(), b1.end()), v2(b2.begin(), b2.end());
    p.observe(b1);
    const double l1 = ref_quantile(v1, 1.0 - q), h1 = ref_quantile(v1, q);
    EXPECT(p.min_vals()[0] == static_cast<float>(l1) && p.max_vals()[0] == static_cast<float>(h1), "Percentile [",
           p.min_vals()[0], ", ", p.max_vals()[0], "], want [", l1, ", ", h1, "]");
    p.observe(b2);
    const float ml = static_cast<float>((l1 + ref_quantile(v2, 1.0 - q)) / 2.0);
    const float mh = static_cast<float>((h1 + ref_quantile(v2, q)) / 2.0);
    EXPECT(p.min_vals()[0] == ml && p.max_vals()[0] == mh, "Percentile running mean [", p.min_vals()[0], ", ",
           p.max_vals()[0], "], want [", ml, ", ", mh, "]");
    expect_qparams_equal("Percentile", p.calculate_qparams(), ref_qparams(ml, mh, 0, 255, false));
  }

  // MSE (20 candidates): the candidate range k/K [min, max] with the smallest
  // squared fake-quantization error, searched here with the reference kernel.
  {
    const int K = 20;
    MseObserver m(u8, K);
    m.observe(b2);
    std::vector<double> err;
    int best = 0;
    for (int k = 1; k <= K; ++k) {
      const double frac = static_cast<double>(k) / K;
      const ScaleZeroPoint qp = ref_qparams(static_cast<float>(lo2 * frac), static_cast<float>(hi2 * frac), 0, 255, false);
      double e = 0;
      for (Index i = 0; i < N; ++i) {
        const double d = static_cast<double>(ref_fq(b2[i], qp.scale, qp.zero_point, 0, 255)) - b2[i];
        e = e + rounded(d * d);
      }
      err.push_back(e);
      if (e < err[static_cast<std::size_t>(best)]) best = k - 1;
    }
    const double frac = static_cast<double>(best + 1) / K;
    EXPECT(m.min_vals()[0] == static_cast<float>(lo2 * frac) && m.max_vals()[0] == static_cast<float>(hi2 * frac),
           "Mse range [", m.min_vals()[0], ", ", m.max_vals()[0], "], want candidate ", best + 1, " [", lo2 * frac,
           ", ", hi2 * frac, "]");
    const Index far = first_far(m.last_errors().data(), err, 1e-12, 0.0);
    EXPECT(m.last_errors().size() == err.size() && far < 0, "Mse candidate error ", far, ": ", m.last_errors()[far],
           ", want ", err[far]);
    expect_sane("Mse", m.calculate_qparams());
  }

  // FakeQuantize: observe, fake-quantize with the observed qparams, STE mask;
  // switches; state round trip; learnable mode; every observer kind.
  {
    FakeQuantizeConfig cfg;  // uint8 affine, moving average 0.01
    FakeQuantize<float> fq(cfg);
    const DynTensor<float> y1 = fq.forward(b1);
    const ScaleZeroPoint w1 = ref_qparams(lo1, hi1, 0, 255, false);
    expect_qparams_equal("FakeQuantize after one batch", fq.qparams(), w1);
    check_fq("FakeQuantize forward", b1, y1.data(), expect_fq<float>(b1, {w1.scale}, {w1.zero_point}, -1, 0, 255));
    // On the tape with the second batch: the moving average moves, the mask is the STE's.
    const ScaleZeroPoint w2 = ref_qparams(ma_lo, ma_hi, 0, 255, false);
    const FqExpect<float> e2 = expect_fq<float>(b2, {w2.scale}, {w2.zero_point}, -1, 0, 255);
    check_fq_tape("FakeQuantize tape", b2, e2, SteMode::Clipped, rng,
                  [&](Var<float> v, SteMode) { return fq.forward(v.tape(), v); });
    expect_qparams_equal("FakeQuantize after two batches", fq.qparams(), w2);
    fq.disable_observer();
    fq.forward(b2);
    expect_qparams_equal("FakeQuantize with the observer off", fq.qparams(), w2);
    fq.disable_fake_quant();
    EXPECT(same_bits(fq.forward(b1), b1), "FakeQuantize with fake quant off is not the identity");
    fq.enable_fake_quant();
    FakeQuantize<float> other(cfg);
    other.load_state_dict(fq.state_dict());
    EXPECT(!other.observer_enabled() && same_bits(other.forward(b1), fq.forward(b1)),
           "FakeQuantize state_dict round trip changes the output");

    // Learnable: the observer's estimate goes into the scale Param, which then learns.
    FakeQuantizeConfig lc;
    lc.learnable = true;
    FakeQuantize<float> lf(lc);
    Tape<float> t2;
    const Var<float> xv = t2.leaf(b1);
    const Var<float> yv = lf.forward(t2, xv);
    t2.backward(yv, randn<float>(b1.shape(), rng));
    EXPECT(lf.scale_param().value()[0] == w1.scale && lf.zero_point_param().value()[0] == w1.zero_point,
           "learnable FakeQuantize static estimate ", lf.scale_param().value()[0], " want ", w1.scale);
    EXPECT(all_finite(lf.scale_param().grad()) && any_nonzero(lf.scale_param().grad()),
           "learnable FakeQuantize: no scale gradient");
    lf.enable_param_learning();
    EXPECT(!lf.observer_enabled() && lf.learning_enabled() && lf.fake_quant_enabled(), "enable_param_learning()");

    // Every observer kind through the module: the output is fake-quantized with
    // exactly the qparams the module reports.
    for (ObserverKind kind : {ObserverKind::MinMax, ObserverKind::MovingAverageMinMax, ObserverKind::Histogram,
                              ObserverKind::Percentile, ObserverKind::Mse}) {
      FakeQuantizeConfig kc;
      kc.observer.kind = kind;
      kc.observer.mse_candidates = 20;
      FakeQuantize<float> f(kc);
      const DynTensor<float> y = f.forward(b2);
      const QuantParams q = f.qparams();
      const std::string name = cat("FakeQuantize(", f.observer().name(), ")");
      expect_sane(name, q);
      check_fq(name, b2, y.data(), expect_fq<float>(b2, {q.scale[0]}, {q.zero_point[0]}, -1, q.quant_min, q.quant_max));
    }
    // The per-channel weight configuration of QConfig.
    const DynTensor<float> w = randn<float>(Shape{9, 113}, rng, 0.05);
    FakeQuantize<float> wf(FakeQuantizeConfig::weight());
    const DynTensor<float> yw = wf.forward(w);
    const QuantParams qw = wf.qparams();
    expect_sane("weight FakeQuantize", qw);
    std::vector<float> ws(qw.scale.begin(), qw.scale.end());
    EXPECT(qw.per_channel && qw.channels() == 9, "weight FakeQuantize has ", qw.channels(), " channels");
    if (qw.channels() == 9)
      check_fq("weight FakeQuantize (per channel)", w, yw.data(), expect_fq<float>(w, ws, qw.zero_point, 0, -128, 127));
  }
  return "MinMax, MovingAverage, PerChannel, MovingAveragePerChannel, Histogram, Percentile, Mse, FakeQuantize";
}

// ===========================================================================
// gemm: the INT8 GEMM on every enabled path against the scalar oracle.
// ===========================================================================

struct GemmVariant {
  gemm::Path path;
  gemm::Avx2Format avx2_format;
  bool for_a;       // packed with pack_b_for_a
  std::string name() const {
    std::string s = gemm::path_name(path);
    if (avx2_format == gemm::Avx2Format::kPairs) s += "(pairs)";
    if (avx2_format == gemm::Avx2Format::kQuads) s += "(quads)";
    if (avx2_format == gemm::Avx2Format::kFixA) s += "(fixa)";
    if (for_a) s += "(for_a)";
    return s;
  }
};

std::vector<GemmVariant> gemm_variants() {
  std::vector<GemmVariant> v;
  for (gemm::Path p : gemm::kEachPath) {
    if (!gemm::has(gemm::enabled_paths(), p)) continue;
    v.push_back({p, gemm::Avx2Format::kChoose, false});
    if (p == gemm::Path::kAvx2)
      for (gemm::Avx2Format f : {gemm::Avx2Format::kPairs, gemm::Avx2Format::kQuads, gemm::Avx2Format::kFixA})
        v.push_back({p, f, false});
    v.push_back({p, gemm::Avx2Format::kChoose, true});
  }
  return v;
}

constexpr double kPi = 3.14159265358979323846;

double gelu_d(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

// The output stage of gemm/output.hpp on one accumulator, written out:
// y = fma(float(acc), a_scale * b_scale[n], bias[n]), then the activation.
float ref_stage(std::int32_t acc, Index n, const gemm::Dequantize& dq) {
  const float s = dq.a_scale * dq.b_scales[dq.b_scale_count == 1 ? 0 : n];
  const float y = numerics::dequantize_accumulator(acc, s, dq.bias ? dq.bias[n] : 0.0f);
  switch (dq.activation) {
    case gemm::Activation::kRelu: return y > 0.0f ? y : 0.0f;
    case gemm::Activation::kGelu: {
      // The fused stage must give what the QAT forward's gelu op gives.
      float g = 0.0f;
      ops::gelu_forward(&y, &g, 1, GeluApprox::Erf);
      return g;
    }
    case gemm::Activation::kNone: break;
  }
  return y;
}

template <typename TA>
struct GemmCase {
  Index M, N, K, lda, ldb, ldc;
  gemm::BLayout layout;
  std::int32_t za, zb;
  std::vector<TA> a;
  std::vector<std::int8_t> b;
  std::vector<std::int32_t> acc;  // the oracle's accumulators (M x N)

  GemmCase(Index m, Index n, Index k, gemm::BLayout lay, std::int32_t a_zp, std::int32_t b_zp, Rng& rng)
      : M(m), N(n), K(k), lda(k + 3), ldb((lay == gemm::BLayout::kKxN ? n : k) + 5), ldc(n + 7), layout(lay),
        za(a_zp), zb(b_zp) {
    constexpr bool kSigned = std::is_same_v<TA, std::int8_t>;
    for (Index i = 0; i < M * lda; ++i) a.push_back(static_cast<TA>((kSigned ? -128 : 0) + static_cast<int>(rng.below(256))));
    const Index brows = lay == gemm::BLayout::kKxN ? K : N;
    for (Index i = 0; i < brows * ldb; ++i) b.push_back(static_cast<std::int8_t>(-128 + static_cast<int>(rng.below(256))));
    acc.resize(static_cast<std::size_t>(M * N));
    gemm::reference_gemm_s32(a.data(), M, K, lda, za, b.data(), N, ldb, layout, zb, acc.data(), N);
  }
  std::string str() const {
    return cat(std::is_same_v<TA, std::int8_t> ? "int8" : "uint8", " A, M=", M, " N=", N, " K=", K,
               layout == gemm::BLayout::kKxN ? " KxN" : " NxK", " za=", za, " zb=", zb);
  }
  gemm::PackedMatrix pack(const GemmVariant& v) const {
    if (v.for_a) return gemm::pack_b_for_a(a.data(), M, lda, za, b.data(), K, N, ldb, layout, zb, v.path);
    if (v.avx2_format != gemm::Avx2Format::kChoose) return gemm::detail_pack_b(b.data(), K, N, ldb, layout, zb, v.path, v.avx2_format);
    return gemm::pack_b(b.data(), K, N, ldb, layout, zb, v.path);
  }
};

// An M x ldc output with a guard row, filled with a sentinel: the GEMM must
// write exactly the M x N window.
template <typename T>
struct Guarded {
  Index M, N, ldc;
  T sentinel;
  std::vector<T> buf;
  Guarded(Index m, Index n, Index ld, T s) : M(m), N(n), ldc(ld), sentinel(s), buf(static_cast<std::size_t>((m + 1) * ld), s) {}
  T at(Index m, Index n) const { return buf[static_cast<std::size_t>(m * ldc + n)]; }
  bool outside_untouched() const {
    for (Index i = 0; i < static_cast<Index>(buf.size()); ++i) {
      const Index m = i / ldc, n = i % ldc;
      if ((m >= M || n >= N) && !(buf[static_cast<std::size_t>(i)] == sentinel)) return false;
    }
    return true;
  }
};

template <typename TA>
void gemm_case_checks(const GemmCase<TA>& cs, Rng& rng, long& saturated, long& inside) {
  // The oracle itself against a plain loop here.
  Index obad = -1;
  for (Index m = 0; m < cs.M && obad < 0; ++m)
    for (Index n = 0; n < cs.N && obad < 0; ++n) {
      std::int64_t s = 0;
      for (Index k = 0; k < cs.K; ++k) {
        const int bv = cs.layout == gemm::BLayout::kKxN ? cs.b[static_cast<std::size_t>(k * cs.ldb + n)]
                                                        : cs.b[static_cast<std::size_t>(n * cs.ldb + k)];
        s += (static_cast<std::int64_t>(cs.a[static_cast<std::size_t>(m * cs.lda + k)]) - cs.za) * (bv - cs.zb);
      }
      if (s != cs.acc[static_cast<std::size_t>(m * cs.N + n)]) obad = m * cs.N + n;
    }
  EXPECT(obad < 0, cs.str(), ": reference_gemm_s32 differs from the triple loop at ", obad);

  std::vector<float> b_scales, bias;
  for (Index n = 0; n < cs.N; ++n) {
    b_scales.push_back(static_cast<float>(rng.uniform(0.0005, 0.004)));
    bias.push_back(static_cast<float>(rng.uniform(-3.0, 3.0)));
  }
  const float a_scale = 0.02f;
  for (const GemmVariant& v : gemm_variants()) {
    const std::string tag = cat(cs.str(), " [", v.name(), "]");
    const gemm::PackedMatrix pb = cs.pack(v);
    EXPECT(pb.path() == v.path && pb.depth() == cs.K && pb.cols() == cs.N, tag, ": packed for ",
           gemm::path_name(pb.path()), " K ", pb.depth(), " N ", pb.cols());
    // int32: exact.
    Guarded<std::int32_t> c(cs.M, cs.N, cs.ldc, -123456789);
    gemm::gemm(cs.a.data(), cs.M, cs.K, cs.lda, cs.za, pb, gemm::Output::int32(c.buf.data(), cs.ldc));
    EXPECT(gemm::last_path() == v.path, tag, ": last_path() is ", gemm::path_name(gemm::last_path()));
    Index bad = -1;
    for (Index i = 0; i < cs.M * cs.N && bad < 0; ++i)
      if (c.at(i / cs.N, i % cs.N) != cs.acc[static_cast<std::size_t>(i)]) bad = i;
    EXPECT(bad < 0 && c.outside_untouched(), tag, " int32: element ", bad, " = ", c.at(bad / cs.N, bad % cs.N),
           ", want ", cs.acc[static_cast<std::size_t>(bad)], "; guard intact ", c.outside_untouched());

    // Dequantized float: bit-identical to the stage formula; within the
    // rounding bound of a double evaluation.
    for (bool per_channel : {false, true})
      for (bool with_bias : {false, true})
        for (gemm::Activation act : {gemm::Activation::kNone, gemm::Activation::kRelu, gemm::Activation::kGelu}) {
          gemm::Dequantize dq;
          dq.a_scale = a_scale;
          dq.b_scales = b_scales.data();
          dq.b_scale_count = per_channel ? cs.N : 1;
          dq.bias = with_bias ? bias.data() : nullptr;
          dq.activation = act;
          Guarded<float> out(cs.M, cs.N, cs.ldc, -777.0f);
          gemm::gemm(cs.a.data(), cs.M, cs.K, cs.lda, cs.za, pb, gemm::Output::dequantize(out.buf.data(), cs.ldc, dq));
          Index fb = -1, db = -1;
          for (Index i = 0; i < cs.M * cs.N; ++i) {
            const Index m = i / cs.N, n = i % cs.N;
            const std::int32_t a = cs.acc[static_cast<std::size_t>(i)];
            if (fb < 0 && !(out.at(m, n) == ref_stage(a, n, dq))) fb = i;
            const double s = static_cast<double>(a_scale) * b_scales[static_cast<std::size_t>(per_channel ? n : 0)];
            const double bv = with_bias ? bias[static_cast<std::size_t>(n)] : 0.0;
            const double lin = a * s + bv;
            const double y = act == gemm::Activation::kRelu ? std::max(lin, 0.0) : act == gemm::Activation::kGelu ? gelu_d(lin) : lin;
            const double in_err = 4.0 * 0x1p-24 * (std::fabs(a * s) + std::fabs(bv));
            const double tol = act == gemm::Activation::kGelu ? 1.13 * in_err + 8.0 * 0x1p-24 * std::fabs(y) + 1e-37 : in_err + 1e-37;
            if (db < 0 && !(std::fabs(out.at(m, n) - y) <= tol)) db = i;
          }
          const std::string st = cat(tag, " dequantize (", per_channel ? "per channel" : "per tensor",
                                     with_bias ? ", bias, " : ", no bias, ", gemm::activation_name(act), ")");
          EXPECT(fb < 0 && out.outside_untouched(), st, ": element ", fb, " = ", out.at(fb / cs.N, fb % cs.N),
                 ", want ", ref_stage(cs.acc[static_cast<std::size_t>(fb)], fb % cs.N, dq));
          EXPECT(db < 0, st, ": element ", db, " = ", out.at(db / cs.N, db % cs.N), " is off the double evaluation");
        }

    // Requantized uint8 / int8: quantize_value of the float stage.
    for (bool per_channel : {false, true})
      for (gemm::Activation act : {gemm::Activation::kNone, gemm::Activation::kRelu, gemm::Activation::kGelu}) {
        gemm::Dequantize dq;
        dq.a_scale = a_scale;
        dq.b_scales = b_scales.data();
        dq.b_scale_count = per_channel ? cs.N : 1;
        dq.bias = bias.data();
        dq.activation = act;
        const float out_scale = 0.021f;
        Guarded<std::uint8_t> u(cs.M, cs.N, cs.ldc, 77);
        Guarded<std::int8_t> s(cs.M, cs.N, cs.ldc, 77);
        gemm::gemm(cs.a.data(), cs.M, cs.K, cs.lda, cs.za, pb, gemm::Output::requantize(u.buf.data(), cs.ldc, dq, out_scale, 128));
        gemm::gemm(cs.a.data(), cs.M, cs.K, cs.lda, cs.za, pb, gemm::Output::requantize(s.buf.data(), cs.ldc, dq, out_scale, -3));
        Index ub = -1, sb = -1;
        for (Index i = 0; i < cs.M * cs.N; ++i) {
          const Index m = i / cs.N, n = i % cs.N;
          const float y = ref_stage(cs.acc[static_cast<std::size_t>(i)], n, dq);
          const std::int32_t qu = numerics::quantize(y, 1.0f / out_scale, 128, 0, 255);
          const std::int32_t qs = numerics::quantize(y, 1.0f / out_scale, -3, -128, 127);
          if (ub < 0 && u.at(m, n) != qu) ub = i;
          if (sb < 0 && s.at(m, n) != qs) sb = i;
          if (qs == -128 || qs == 127) ++saturated; else ++inside;
        }
        const std::string st = cat(tag, " requantize (", per_channel ? "per channel, " : "per tensor, ",
                                   gemm::activation_name(act), ")");
        EXPECT(ub < 0 && u.outside_untouched(), st, " uint8: element ", ub, " = ", int(u.at(ub / cs.N, ub % cs.N)));
        EXPECT(sb < 0 && s.outside_untouched(), st, " int8: element ", sb, " = ", int(s.at(sb / cs.N, sb % cs.N)));
      }
  }
}

std::string section_gemm() {
  Rng rng(16);
  long saturated = 0, inside = 0;
  // Awkward shapes: no dimension a multiple of a tile; padded lda / ldb / ldc.
  gemm_case_checks(GemmCase<std::uint8_t>(37, 45, 300, gemm::BLayout::kNxK, 121, 0, rng), rng, saturated, inside);
  gemm_case_checks(GemmCase<std::int8_t>(29, 83, 530, gemm::BLayout::kKxN, -5, 3, rng), rng, saturated, inside);
  gemm_case_checks(GemmCase<std::uint8_t>(3, 2, 5, gemm::BLayout::kKxN, 0, -7, rng), rng, saturated, inside);
  EXPECT(saturated > 0 && inside > 0, "the requantize cases should both saturate and round: ", saturated, " / ", inside);
  std::vector<std::string> ran;
  for (gemm::Path p : gemm::kEachPath)
    if (gemm::has(gemm::paths_run(), p)) ran.push_back(gemm::path_name(p));
  for (gemm::Path p : gemm::kEachPath)
    EXPECT(gemm::has(gemm::paths_run(), p) == gemm::has(gemm::enabled_paths(), p), "path ", gemm::path_name(p),
           " enabled ", gemm::has(gemm::enabled_paths(), p), " but ran ", gemm::has(gemm::paths_run(), p));

  // 1 and 2 threads give identical int32 results (an M-split and an N-split problem).
  const int saved = num_threads();
  for (Index M : {64, 2}) {
    GemmCase<std::uint8_t> cs(M, 200, 96, gemm::BLayout::kNxK, 100, 0, rng);
    const gemm::PackedMatrix pb = gemm::pack_b(cs.b.data(), cs.K, cs.N, cs.ldb, cs.layout, cs.zb);
    std::vector<std::int32_t> c1(static_cast<std::size_t>(M * cs.N)), c2(c1.size());
    set_num_threads(1);
    gemm::gemm(cs.a.data(), M, cs.K, cs.lda, cs.za, pb, gemm::Output::int32(c1.data(), cs.N));
    set_num_threads(2);
    gemm::gemm(cs.a.data(), M, cs.K, cs.lda, cs.za, pb, gemm::Output::int32(c2.data(), cs.N));
    EXPECT(c1 == c2 && c1 == cs.acc, "M = ", M, ": 1 and 2 threads differ, or differ from the oracle");
  }
  set_num_threads(saved);

  // Errors name the mismatch.
  GemmCase<std::uint8_t> small(4, 5, 6, gemm::BLayout::kNxK, 0, 0, rng);
  const gemm::PackedMatrix pb = gemm::pack_b(small.b.data(), 6, 5, small.ldb, small.layout, 0);
  std::vector<std::int32_t> c(20);
  const std::string e1 = error_of([&] { gemm::gemm(small.a.data(), 4, 7, 9, 0, pb, gemm::Output::int32(c.data(), 5)); });
  EXPECT(contains(e1, "K = 7") && contains(e1, "K = 6"), "gemm K mismatch message: '", e1, "'");
  const std::string e2 = error_of([&] { gemm::pack_b(small.b.data(), 6, 5, 3, gemm::BLayout::kNxK, 0); });
  EXPECT(contains(e2, "ldb = 3"), "pack_b ldb message: '", e2, "'");
  return "paths: " + join(ran) + " (compiled " + gemm::paths_string(gemm::compiled_paths()) + ", cpu " +
         gemm::paths_string(gemm::cpu_paths()) + ")";
}

// ===========================================================================
// float_ops: the differentiable ops against double loops, and
// finite-difference gradient checks of composed graphs in double.
// ===========================================================================

// C (M x N) = op(A) op(B) in double, and the magnitudes sum |a b| for the
// error bound. A is (M, K) or (K, M) when ta; B is (K, N) or (N, K) when tb.
void ref_matmul(const float* a, const float* b, bool ta, bool tb, Index M, Index K, Index N, std::vector<double>& c,
                std::vector<double>& mag) {
  c.assign(static_cast<std::size_t>(M * N), 0.0);
  mag = c;
  for (Index m = 0; m < M; ++m)
    for (Index k = 0; k < K; ++k) {
      const double av = ta ? a[k * M + m] : a[m * K + k];
      for (Index n = 0; n < N; ++n) {
        const double p = av * (tb ? b[n * K + k] : b[k * N + n]);
        c[static_cast<std::size_t>(m * N + n)] += p;
        mag[static_cast<std::size_t>(m * N + n)] += std::fabs(p);
      }
    }
}

// Float GEMM bound: |error| <= 2e-5 * sum |a b| (K <= 300 products of float
// rounding 2^-24 each, with room) + a small absolute term.
constexpr double kGemmRtol = 2e-5, kGemmAtol = 1e-6;

void check_matmuls(Rng& rng, const std::string& kernel) {
  const Index M = 70, K = 90, N = 110;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Tape<float> tape;
      const Var<float> a = tape.leaf(randn<float>(ta ? Shape{K, M} : Shape{M, K}, rng));
      const Var<float> b = tape.leaf(randn<float>(tb ? Shape{N, K} : Shape{K, N}, rng));
      const Var<float> y = matmul(a, b, ta, tb);
      std::vector<double> want, mag;
      ref_matmul(a.value().data(), b.value().data(), ta, tb, M, K, N, want, mag);
      const Index bad = first_far(y.value().data(), want, kGemmRtol, kGemmAtol, mag);
      EXPECT(y.shape() == Shape({M, N}) && bad < 0, "[", kernel, "] matmul ", M, "x", K, "x", N, " ta=", ta, " tb=", tb,
             ": element ", bad, " = ", y.value()[bad], ", want ", want[static_cast<std::size_t>(bad)]);
      if (ta || tb) continue;
      // Backward: da = dy B^T, db = A^T dy.
      const DynTensor<float> dy = randn<float>(Shape{M, N}, rng);
      tape.backward(y, dy);
      std::vector<double> da, dam, dbw, dbm;
      ref_matmul(dy.data(), b.value().data(), false, true, M, N, K, da, dam);
      ref_matmul(a.value().data(), dy.data(), true, false, K, M, N, dbw, dbm);
      const Index ba = first_far(a.grad().data(), da, kGemmRtol, kGemmAtol, dam);
      const Index bb = first_far(b.grad().data(), dbw, kGemmRtol, kGemmAtol, dbm);
      EXPECT(ba < 0 && bb < 0, "[", kernel, "] matmul backward: da element ", ba, ", db element ", bb);
    }
  // Batched (2, 70, 90) x (2, 90, 110), a shared rank-2 B, and K = 300 (past one K block).
  {
    Tape<float> tape;
    const Var<float> a = tape.constant(randn<float>(Shape{2, M, K}, rng));
    const Var<float> b = tape.constant(randn<float>(Shape{2, K, N}, rng));
    const Var<float> shared = tape.constant(randn<float>(Shape{K, N}, rng));
    const Var<float> y = matmul(a, b), ys = matmul(a, shared);
    for (Index i = 0; i < 2; ++i) {
      std::vector<double> want, mag, wants, mags;
      ref_matmul(a.value().data() + i * M * K, b.value().data() + i * K * N, false, false, M, K, N, want, mag);
      ref_matmul(a.value().data() + i * M * K, shared.value().data(), false, false, M, K, N, wants, mags);
      const Index bad = first_far(y.value().data() + i * M * N, want, kGemmRtol, kGemmAtol, mag);
      const Index bads = first_far(ys.value().data() + i * M * N, wants, kGemmRtol, kGemmAtol, mags);
      EXPECT(bad < 0 && bads < 0, "[", kernel, "] batched matmul ", i, ": element ", bad, ", shared B element ", bads);
    }
    const Var<float> a3 = tape.constant(randn<float>(Shape{33, 300}, rng)), b3 = tape.constant(randn<float>(Shape{300, 40}, rng));
    std::vector<double> want, mag;
    ref_matmul(a3.value().data(), b3.value().data(), false, false, 33, 300, 40, want, mag);
    const Index bad = first_far(matmul(a3, b3).value().data(), want, kGemmRtol, kGemmAtol, mag);
    EXPECT(bad < 0, "[", kernel, "] matmul 33x300x40: element ", bad);
  }
}

// Row-wise softmax of x + mask in double, masked entries (lowest) exactly 0.
std::vector<double> ref_softmax(const DynTensor<float>& x, Index C, const std::vector<char>& keep) {
  std::vector<double> y(static_cast<std::size_t>(x.numel()));
  for (Index r = 0; r < x.numel() / C; ++r) {
    double mx = -1e300, s = 0;
    for (Index c = 0; c < C; ++c)
      if (keep[static_cast<std::size_t>(r * C + c)]) mx = std::max(mx, static_cast<double>(x[r * C + c]));
    for (Index c = 0; c < C; ++c) {
      const std::size_t i = static_cast<std::size_t>(r * C + c);
      y[i] = keep[i] ? std::exp(x[r * C + c] - mx) : 0.0;
      s += y[i];
    }
    for (Index c = 0; c < C; ++c) y[static_cast<std::size_t>(r * C + c)] /= s;
  }
  return y;
}

std::string section_float_ops() {
  Rng rng(23);
  namespace sg = qaware::gemm::detail::sgemm;
  // matmul on each float GEMM kernel the cap (QAWARE_MAX_ISA) admits on this
  // CPU, and 1 vs 2 threads bit for bit.
  struct Kernel {
    const char* name;
    Isa cap;
    bool ours;
  };
  std::vector<Kernel> kernels;
  if (sg::avx512_enabled()) kernels.push_back({"sgemm avx512", max_isa(), true});
  if (sg::enabled()) kernels.push_back({"sgemm avx2", std::min(max_isa(), Isa::kAvx2Vnni), true});
  kernels.push_back({"eigen", Isa::kScalar, false});
  std::vector<std::string> names;
  const int saved_threads = num_threads();
  for (const Kernel& k : kernels) {
    const ScopedMaxIsa cap(k.cap);
    names.push_back(k.name);
    check_matmuls(rng, k.name);
    EXPECT(std::string(gemm::sgemm_kernel()) == (k.ours ? k.name + 6 : "eigen"), "[", k.name, "] sgemm_kernel() says ",
           gemm::sgemm_kernel());
    // The public float GEMM: every transpose, overwrite and accumulate.
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        const Index M = 23, K = 41, N = 37;
        const DynTensor<float> ga = randn<float>(Shape{M * K}, rng), gb = randn<float>(Shape{K * N}, rng);
        DynTensor<float> gc = randn<float>(Shape{M * N}, rng);
        const DynTensor<float> gc0 = gc;
        std::vector<double> want, mag;
        ref_matmul(ga.data(), gb.data(), ta, tb, M, K, N, want, mag);
        gemm::sgemm(M, N, K, ga.data(), ta ? M : K, ta, gb.data(), tb ? K : N, tb, gc.data(), N, true);
        for (Index i = 0; i < M * N; ++i) {
          want[static_cast<std::size_t>(i)] += gc0[i];
          mag[static_cast<std::size_t>(i)] += std::fabs(gc0[i]);
        }
        const Index bad = first_far(gc.data(), want, kGemmRtol, kGemmAtol, mag);
        EXPECT(bad < 0, "[", k.name, "] gemm::sgemm ta=", ta, " tb=", tb, ": element ", bad);
      }
    Tape<float> tape;
    const Var<float> a = tape.constant(randn<float>(Shape{96, 130}, rng)), b = tape.constant(randn<float>(Shape{130, 150}, rng));
    set_num_threads(1);
    const DynTensor<float> y1 = matmul(a, b).value();
    set_num_threads(2);
    const DynTensor<float> y2 = matmul(a, b).value();
    if (k.ours) EXPECT(same_bits(y1, y2), "[", k.name, "] matmul with 1 and 2 threads differs");
    set_num_threads(saved_threads);
  }
  // softmax with a key-padding mask [B, 1, 1, T]: forward, masked entries 0,
  // backward dx = y (dy - sum(dy y)).
  {
    const Index B = 2, H = 2, T = 8;
    DynTensor<float> mask(Shape{B, 1, 1, T}, 0.0f);
    for (Index t = 5; t < T; ++t) mask[T + t] = std::numeric_limits<float>::lowest();  // batch 1 pads 3 keys
    Tape<float> tape;
    const Var<float> x = tape.leaf(randn<float>(Shape{B, H, T, T}, rng, 2.0));
    const Var<float> y = softmax(x, tape.constant(mask));
    std::vector<char> keep(static_cast<std::size_t>(B * H * T * T));
    for (Index i = 0; i < B * H * T * T; ++i) keep[static_cast<std::size_t>(i)] = mask[(i / (H * T * T)) * T + i % T] == 0.0f;
    const std::vector<double> want = ref_softmax(x.value(), T, keep);
    EXPECT(first_far(y.value().data(), want, 1e-6, 1e-7) < 0, "softmax forward");
    bool zeros = true;
    for (Index i = 0; i < B * H * T * T; ++i) zeros = zeros && (keep[static_cast<std::size_t>(i)] || y.value()[i] == 0.0f);
    EXPECT(zeros, "softmax: a masked key has non-zero probability");
    const DynTensor<float> dy = randn<float>(x.shape(), rng);
    tape.backward(y, dy);
    std::vector<double> dx(want.size());
    for (Index r = 0; r < B * H * T; ++r) {
      double s = 0;
      for (Index c = 0; c < T; ++c) s += dy[r * T + c] * want[static_cast<std::size_t>(r * T + c)];
      for (Index c = 0; c < T; ++c) dx[static_cast<std::size_t>(r * T + c)] = want[static_cast<std::size_t>(r * T + c)] * (dy[r * T + c] - s);
    }
    EXPECT(first_far(x.grad().data(), dx, 1e-5, 1e-6) < 0, "softmax backward");
  }

  // layer_norm: forward and the three gradients against the formulas.
  {
    const Index R = 16, C = 32;
    Tape<float> tape;
    const Var<float> x = tape.leaf(randn<float>(Shape{R, C}, rng, 2.0, 0.5));
    const Var<float> w = tape.leaf(randn<float>(Shape{C}, rng, 0.3, 1.0)), b = tape.leaf(randn<float>(Shape{C}, rng));
    const Var<float> y = layer_norm(x, w, b, 1e-5f);
    const DynTensor<float> dy = randn<float>(Shape{R, C}, rng);
    tape.backward(y, dy);
    std::vector<double> yw(static_cast<std::size_t>(R * C)), dx(yw.size()), dw(static_cast<std::size_t>(C), 0.0), db(dw);
    for (Index r = 0; r < R; ++r) {
      double mean = 0, var = 0;
      for (Index c = 0; c < C; ++c) mean += x.value()[r * C + c] / static_cast<double>(C);
      for (Index c = 0; c < C; ++c) var += std::pow(x.value()[r * C + c] - mean, 2) / static_cast<double>(C);
      const double rstd = 1.0 / std::sqrt(var + 1e-5);
      double mg = 0, mgx = 0;
      for (Index c = 0; c < C; ++c) {
        const std::size_t i = static_cast<std::size_t>(r * C + c);
        const double xh = (x.value()[r * C + c] - mean) * rstd, gg = dy[r * C + c] * static_cast<double>(w.value()[c]);
        yw[i] = xh * w.value()[c] + b.value()[c];
        dw[static_cast<std::size_t>(c)] += dy[r * C + c] * xh;
        db[static_cast<std::size_t>(c)] += dy[r * C + c];
        mg += gg / static_cast<double>(C);
        mgx += gg * xh / static_cast<double>(C);
      }
      for (Index c = 0; c < C; ++c) {
        const double xh = (x.value()[r * C + c] - mean) * rstd;
        dx[static_cast<std::size_t>(r * C + c)] = rstd * (dy[r * C + c] * static_cast<double>(w.value()[c]) - mg - xh * mgx);
      }
    }
    EXPECT(first_far(y.value().data(), yw, 1e-5, 1e-5) < 0, "layer_norm forward");
    EXPECT(first_far(x.grad().data(), dx, 1e-4, 1e-5) < 0 && first_far(w.grad().data(), dw, 1e-5, 1e-5) < 0 &&
               first_far(b.grad().data(), db, 1e-5, 1e-5) < 0,
           "layer_norm backward");
  }

  // GELU (erf and tanh forms) and the erf form's derivative.
  {
    Tape<float> tape;
    const Var<float> x = tape.leaf(randn<float>(Shape{1037}, rng, 2.0));
    const Var<float> y = gelu(x), yt = gelu(x, GeluApprox::Tanh);
    std::vector<double> want, want_t, dwant;
    const DynTensor<float> dy = randn<float>(x.shape(), rng);
    for (Index i = 0; i < 1037; ++i) {
      const double v = x.value()[i];
      want.push_back(gelu_d(v));
      want_t.push_back(0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / kPi) * (v + 0.044715 * v * v * v))));
      dwant.push_back(dy[i] * (0.5 * (1.0 + std::erf(v / std::sqrt(2.0))) + v * std::exp(-0.5 * v * v) / std::sqrt(2.0 * kPi)));
    }
    tape.backward(y, dy);
    EXPECT(first_far(y.value().data(), want, 1e-5, 1e-6) < 0 && first_far(yt.value().data(), want_t, 1e-5, 1e-6) < 0,
           "gelu forward");
    EXPECT(first_far(x.grad().data(), dwant, 1e-4, 1e-5) < 0, "gelu backward");
  }

  // cross_entropy with an ignored row: mean of logsumexp - logit[target];
  // gradient (softmax - onehot) / n, zero on the ignored row.
  {
    const Index R = 10, C = 7;
    Tape<float> tape;
    const Var<float> logits = tape.leaf(randn<float>(Shape{R, C}, rng, 3.0));
    DynTensor<std::int64_t> targets(Shape{R});
    for (Index r = 0; r < R; ++r) targets[r] = static_cast<std::int64_t>(rng.below(C));
    targets[4] = -100;
    const Var<float> loss = cross_entropy(logits, targets);
    tape.backward(loss);
    double want = 0;
    std::vector<double> grad(static_cast<std::size_t>(R * C), 0.0);
    for (Index r = 0; r < R; ++r) {
      if (targets[r] == -100) continue;
      double mx = -1e300, s = 0;
      for (Index c = 0; c < C; ++c) mx = std::max(mx, static_cast<double>(logits.value()[r * C + c]));
      for (Index c = 0; c < C; ++c) s += std::exp(logits.value()[r * C + c] - mx);
      want += (mx + std::log(s) - logits.value()[r * C + targets[r]]) / 9.0;
      for (Index c = 0; c < C; ++c)
        grad[static_cast<std::size_t>(r * C + c)] = (std::exp(logits.value()[r * C + c] - mx) / s - (c == targets[r])) / 9.0;
    }
    EXPECT(std::fabs(loss.item() - want) <= 1e-5 * std::fabs(want) + 1e-6, "cross_entropy ", loss.item(), ", want ", want);
    EXPECT(first_far(logits.grad().data(), grad, 1e-5, 1e-6) < 0, "cross_entropy backward");
  }

  // cross_entropy against class probabilities (a teacher's soft targets),
  // one row all zeros: mean over all R rows of sum_c -p_c log softmax(row)_c;
  // gradient (softmax * sum_c p_c - p) / R.
  {
    const Index R = 9, C = 6;
    Tape<float> tape;
    const Var<float> logits = tape.leaf(randn<float>(Shape{R, C}, rng, 3.0));
    DynTensor<float> p(Shape{R, C});
    for (Index r = 0; r < R; ++r) {
      double s = 0;
      for (Index c = 0; c < C; ++c) s += p[r * C + c] = static_cast<float>(rng.uniform()) + 0.01f;
      for (Index c = 0; c < C; ++c) p[r * C + c] = r == 2 ? 0.0f : static_cast<float>(p[r * C + c] / s);
    }
    const Var<float> loss = cross_entropy(logits, p);
    tape.backward(loss);
    double want = 0;
    std::vector<double> grad(static_cast<std::size_t>(R * C), 0.0);
    for (Index r = 0; r < R; ++r) {
      double mx = -1e300, s = 0, mass = 0;
      for (Index c = 0; c < C; ++c) mx = std::max(mx, static_cast<double>(logits.value()[r * C + c]));
      for (Index c = 0; c < C; ++c) s += std::exp(logits.value()[r * C + c] - mx), mass += p[r * C + c];
      for (Index c = 0; c < C; ++c) {
        want += p[r * C + c] * (mx + std::log(s) - logits.value()[r * C + c]) / R;
        grad[static_cast<std::size_t>(r * C + c)] = (mass * std::exp(logits.value()[r * C + c] - mx) / s - p[r * C + c]) / R;
      }
    }
    EXPECT(std::fabs(loss.item() - want) <= 1e-5 * std::fabs(want) + 1e-6, "soft cross_entropy ", loss.item(), ", want ", want);
    EXPECT(first_far(logits.grad().data(), grad, 1e-5, 1e-6) < 0, "soft cross_entropy backward");
  }

  // dropout: the documented counter-based mask (splitmix64 of one draw from
  // the Rng), y = kept ? x / (1 - p) : 0, the same mask backward; identity in eval.
  {
    const Index N = 1037;
    const float p = 0.25f;
    Rng r(31), copy = r;
    Tape<float> tape;
    const Var<float> x = tape.leaf(randn<float>(Shape{N}, rng));
    const Var<float> y = dropout(x, p, r, true);
    const DynTensor<float> dy = randn<float>(x.shape(), rng);
    tape.backward(y, dy);
    const std::uint64_t seed = copy.next_u64(), thr = static_cast<std::uint64_t>(std::llround(0.25 * 4294967296.0));
    const float s = 1.0f / (1.0f - p);
    Index bad = -1, kept = 0;
    for (Index i = 0; i < N; ++i) {
      std::uint64_t z = seed + (static_cast<std::uint64_t>(i / 2) + 1) * 0x9e3779b97f4a7c15ULL;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      z ^= z >> 31;
      const bool k = ((i & 1) ? z >> 32 : z & 0xffffffffULL) >= thr;
      kept += k;
      if (bad < 0 && (y.value()[i] != (k ? x.value()[i] * s : 0.0f) || x.grad()[i] != (k ? dy[i] * s : 0.0f))) bad = i;
    }
    EXPECT(bad < 0, "dropout element ", bad, " departs from the documented mask");
    EXPECT(kept > N * 70 / 100 && kept < N * 80 / 100, "dropout kept ", kept, " of ", N, " at p = 0.25");
    EXPECT(dropout(x, p, r, false).id() == x.id(), "dropout in eval mode is not the identity");
  }

  // attention_scores / attention_context read heads in place from (B, T, C).
  {
    const Index B = 2, T = 8, C = 32, NH = 2, HS = 16;
    Tape<float> tape;
    const Var<float> q = tape.constant(randn<float>(Shape{B, T, C}, rng)), k = tape.constant(randn<float>(Shape{B, T, C}, rng));
    const Var<float> v = tape.constant(randn<float>(Shape{B, T, C}, rng));
    const Var<float> s = attention_scores(q, k, NH, 0.25f);
    const Var<float> p = softmax(s);
    const Var<float> ctx = attention_context(p, v);
    std::vector<double> ws, wc(static_cast<std::size_t>(B * T * C), 0.0);
    for (Index b = 0; b < B; ++b)
      for (Index h = 0; h < NH; ++h)
        for (Index i = 0; i < T; ++i)
          for (Index j = 0; j < T; ++j) {
            double d = 0;
            for (Index e = 0; e < HS; ++e) d += q.value()[(b * T + i) * C + h * HS + e] * static_cast<double>(k.value()[(b * T + j) * C + h * HS + e]);
            ws.push_back(0.25 * d);
            const double pij = p.value()[((b * NH + h) * T + i) * T + j];
            for (Index e = 0; e < HS; ++e) wc[static_cast<std::size_t>((b * T + i) * C + h * HS + e)] += pij * v.value()[(b * T + j) * C + h * HS + e];
          }
    EXPECT(s.shape() == Shape({B, NH, T, T}) && first_far(s.value().data(), ws, 1e-5, 1e-5) < 0, "attention_scores");
    EXPECT(ctx.shape() == Shape({B, T, C}) && first_far(ctx.value().data(), wc, 1e-5, 1e-5) < 0, "attention_context");
  }

  // embedding: rows copied; backward scatter-adds (repeated ids add up).
  {
    Tape<float> tape;
    const Var<float> table = tape.leaf(randn<float>(Shape{10, 6}, rng));
    DynTensor<std::int64_t> ids(Shape{2, 3});
    const std::int64_t idv[] = {3, 7, 3, 0, 9, 3};
    std::copy(std::begin(idv), std::end(idv), ids.begin());
    const Var<float> y = embedding(table, ids);
    EXPECT(y.shape() == Shape({2, 3, 6}) && std::memcmp(y.value().data() + 6, table.value().data() + 7 * 6, 24) == 0,
           "embedding forward");
    tape.backward(y, DynTensor<float>(y.shape(), 1.0f));
    EXPECT(table.grad()[3 * 6] == 3.0f && table.grad()[7 * 6] == 1.0f && table.grad()[6] == 0.0f,
           "embedding backward: row 3 = ", table.grad()[3 * 6], " (want 3)");
    const std::string e = error_of([&] {
      DynTensor<std::int64_t> badids(Shape{1}, 10);
      embedding(table, badids);
    });
    EXPECT(contains(e, "10"), "embedding: an id out of range must raise an Error naming it: '", e, "'");
  }

  // The fused attention products give the bits of the composed ops they
  // replace (ops/attention_products.hpp), forward and backward:
  //   scores = scale(matmul(split(q), split(k), false, true), alpha)
  //   ctx    = reshape(permute(matmul(p, split(v)), {0, 2, 1, 3}), {B, T, C})
  {
    const Index B = 2, T = 8, C = 32, NH = 2;
    const DynTensor<float> q = randn<float>(Shape{B, T, C}, rng), k = randn<float>(Shape{B, T, C}, rng),
                           v = randn<float>(Shape{B, T, C}, rng), seed = randn<float>(Shape{B, T, C}, rng);
    DynTensor<float> grads[2][3], outs[2];
    for (int fused = 0; fused < 2; ++fused) {
      Tape<float> tape;
      const Var<float> vq = tape.leaf(q), vk = tape.leaf(k), vv = tape.leaf(v);
      auto split = [&](Var<float> x) { return permute(reshape(x, Shape{B, T, NH, C / NH}), {0, 2, 1, 3}); };
      const Var<float> s = fused ? attention_scores(vq, vk, NH, 0.25f) : scale(matmul(split(vq), split(vk), false, true), 0.25f);
      const Var<float> p = softmax(s);
      const Var<float> ctx = fused ? attention_context(p, vv) : reshape(permute(matmul(p, split(vv)), {0, 2, 1, 3}), Shape{B, T, C});
      tape.backward(ctx, seed);
      outs[fused] = ctx.value();
      grads[fused][0] = vq.grad();
      grads[fused][1] = vk.grad();
      grads[fused][2] = vv.grad();
    }
    EXPECT(same_bits(outs[0], outs[1]), "attention_context(softmax(attention_scores)) differs from the composed ops");
    EXPECT(same_bits(grads[0][0], grads[1][0]) && same_bits(grads[0][1], grads[1][1]) && same_bits(grads[0][2], grads[1][2]),
           "the attention products' gradients differ from the composed ops'");
  }

  // A finite-difference gradient check (double) of a graph of the
  // elementwise, reduction and shape ops, embedding and dropout.
  {
    Rng g(3);
    auto report = [](const char* name, const GradCheckResult& r) {
      EXPECT(r.ok, "grad_check ", name, ": max abs error ", r.max_abs_error, "; ", r.report);
    };
    DynTensor<std::int64_t> ids(Shape{3});
    ids[0] = 2;
    ids[1] = 0;
    ids[2] = 2;
    report("mse_loss / sum / mean / permute / transpose / reshape / add / sub / mul / scale / embedding / dropout",
           grad_check(
               [ids](Tape<double>&, const std::vector<Var<double>>& in) {
                 Rng fixed(5);  // the same dropout mask in every evaluation
                 const Var<double> a = permute(reshape(in[0], Shape{2, 3, 2}), {1, 0, 2});  // (3, 2, 2)
                 const Var<double> b = transpose(reshape(embedding(in[1], ids), Shape{3, 2, 2}), 1, 2);
                 const Var<double> c = mul(add(a, b), sub(a, scale(b, 0.5)));
                 const Var<double> d = dropout(c, 0.3, fixed, true);
                 return add(add(mean(sum(d, 1), -1), sum(mean(d, 0))), mse_loss(a, b));
               },
               {randn<double>(Shape{3, 4}, g), randn<double>(Shape{4, 4}, g)}));
  }
  return "matmul on " + join(names) + "; softmax, layer_norm, gelu, cross_entropy (class and soft targets), dropout, attention, embedding, grad_check";
}

// ===========================================================================
// layers: every QAT layer forward and backward, FP32 against double
// references, W8A8 and LSQ against the fake-quantized references.
// ===========================================================================

using Mat = std::vector<double>;  // row-major

Mat to_mat(const DynTensor<float>& t) { return Mat(t.begin(), t.end()); }

// y (R x OUT) = x (R x IN) W^T + b.
Mat ref_linear(const Mat& x, Index R, nn::QATLinear<float>& l) {
  const Index IN = l.in_features(), OUT = l.out_features();
  const DynTensor<float>& W = l.weight().value();
  const DynTensor<float>& b = l.bias().value();
  Mat y(static_cast<std::size_t>(R * OUT));
  for (Index r = 0; r < R; ++r)
    for (Index o = 0; o < OUT; ++o) {
      double s = b[o];
      for (Index i = 0; i < IN; ++i) s += x[static_cast<std::size_t>(r * IN + i)] * W[o * IN + i];
      y[static_cast<std::size_t>(r * OUT + o)] = s;
    }
  return y;
}

Mat ref_layer_norm(const Mat& x, Index R, Index C, nn::QATLayerNorm<float>& ln, double eps) {
  Mat y(x.size());
  for (Index r = 0; r < R; ++r) {
    double mean = 0, var = 0;
    for (Index c = 0; c < C; ++c) mean += x[static_cast<std::size_t>(r * C + c)] / static_cast<double>(C);
    for (Index c = 0; c < C; ++c) var += std::pow(x[static_cast<std::size_t>(r * C + c)] - mean, 2) / static_cast<double>(C);
    for (Index c = 0; c < C; ++c)
      y[static_cast<std::size_t>(r * C + c)] = (x[static_cast<std::size_t>(r * C + c)] - mean) / std::sqrt(var + eps) *
                                                   ln.weight().value()[c] + ln.bias().value()[c];
  }
  return y;
}

Mat mat_add(Mat a, const Mat& b) {
  for (std::size_t i = 0; i < a.size(); ++i) a[i] += b[i];
  return a;
}

// Multi-head self-attention (no dropout): keys where mask == 0 get weight 0.
Mat ref_attention(const Mat& x, Index B, Index T, nn::QATAttention<float>& at, const DynTensor<float>& mask) {
  const Index C = at.hidden(), NH = at.heads(), HS = C / NH, R = B * T;
  const Mat q = ref_linear(x, R, at.query()), k = ref_linear(x, R, at.key()), v = ref_linear(x, R, at.value());
  Mat ctx(static_cast<std::size_t>(R * C), 0.0);
  for (Index b = 0; b < B; ++b)
    for (Index h = 0; h < NH; ++h)
      for (Index i = 0; i < T; ++i) {
        std::vector<double> p(static_cast<std::size_t>(T), 0.0);
        double mx = -1e300, sum = 0;
        for (Index j = 0; j < T; ++j) {
          if (!mask.empty() && mask[b * T + j] == 0.0f) continue;
          double d = 0;
          for (Index e = 0; e < HS; ++e)
            d += q[static_cast<std::size_t>((b * T + i) * C + h * HS + e)] * k[static_cast<std::size_t>((b * T + j) * C + h * HS + e)];
          p[static_cast<std::size_t>(j)] = d / std::sqrt(static_cast<double>(HS));
          mx = std::max(mx, p[static_cast<std::size_t>(j)]);
        }
        for (Index j = 0; j < T; ++j) {
          const bool on = mask.empty() || mask[b * T + j] != 0.0f;
          p[static_cast<std::size_t>(j)] = on ? std::exp(p[static_cast<std::size_t>(j)] - mx) : 0.0;
          sum += p[static_cast<std::size_t>(j)];
        }
        for (Index j = 0; j < T; ++j)
          for (Index e = 0; e < HS; ++e)
            ctx[static_cast<std::size_t>((b * T + i) * C + h * HS + e)] +=
                p[static_cast<std::size_t>(j)] / sum * v[static_cast<std::size_t>((b * T + j) * C + h * HS + e)];
      }
  return ref_linear(ctx, R, at.output_dense());
}

Mat ref_gelu(Mat x) {
  for (double& v : x) v = gelu_d(v);
  return x;
}

// One BERT layer (post-LN, or pre-LN), no dropout.
Mat ref_block(const Mat& x, Index B, Index T, nn::QATTransformerBlock<float>& blk, const DynTensor<float>& mask) {
  const Index C = blk.config().hidden, R = B * T;
  const double eps = blk.config().layer_norm_eps;
  auto ffn = [&](const Mat& h) { return ref_linear(ref_gelu(ref_linear(h, R, blk.intermediate_dense())), R, blk.output_dense()); };
  if (!blk.config().pre_layer_norm) {
    const Mat h = ref_layer_norm(mat_add(ref_attention(x, B, T, blk.attention(), mask), x), R, C, blk.attention_layer_norm(), eps);
    return ref_layer_norm(mat_add(ffn(h), h), R, C, blk.output_layer_norm(), eps);
  }
  const Mat h = mat_add(x, ref_attention(ref_layer_norm(x, R, C, blk.attention_layer_norm(), eps), B, T, blk.attention(), mask));
  return mat_add(h, ffn(ref_layer_norm(h, R, C, blk.output_layer_norm(), eps)));
}

Mat ref_embeddings(nn::QATBertEmbeddings<float>& emb, const DynTensor<std::int64_t>& ids, const DynTensor<std::int64_t>& types) {
  const Index B = ids.dim(0), T = ids.dim(1), C = emb.config().hidden;
  Mat e(static_cast<std::size_t>(B * T * C));
  for (Index b = 0; b < B; ++b)
    for (Index t = 0; t < T; ++t)
      for (Index c = 0; c < C; ++c)
        e[static_cast<std::size_t>((b * T + t) * C + c)] =
            static_cast<double>(emb.word_embeddings().value()[ids[b * T + t] * C + c]) +
            emb.token_type_embeddings().value()[types[b * T + t] * C + c] + emb.position_embeddings().value()[t * C + c];
  return ref_layer_norm(e, B * T, C, emb.layer_norm(), emb.config().layer_norm_eps);
}

Mat ref_pooler(const Mat& h, Index B, Index T, nn::QATBertPooler<float>& pooler) {
  const Index C = pooler.dense().in_features();
  Mat first(static_cast<std::size_t>(B * C));
  for (Index b = 0; b < B; ++b)
    for (Index c = 0; c < C; ++c) first[static_cast<std::size_t>(b * C + c)] = h[static_cast<std::size_t>(b * T * C + c)];
  Mat y = ref_linear(first, B, pooler.dense());
  for (double& v : y) v = std::tanh(v);
  return y;
}

void expect_close(const std::string& what, const DynTensor<float>& got, const Mat& want, double rtol, double atol) {
  const Index bad = static_cast<Index>(want.size()) == got.numel() ? first_far(got.data(), want, rtol, atol) : 0;
  EXPECT(bad < 0, what, ": ", got.numel(), " values for ", want.size(), "; element ", bad, " = ",
         bad < got.numel() ? got[bad] : 0.0f, ", want ", bad < static_cast<Index>(want.size()) ? want[static_cast<std::size_t>(bad)] : 0.0);
}

// Every Param of m that requires a gradient got a finite one of its shape,
// non-zero except for zero points (they only learn from saturated elements).
void expect_grads(const std::string& what, nn::Module<float>& m) {
  int checked = 0;
  for (auto& [name, p] : m.named_parameters()) {
    if (!p->requires_grad()) continue;
    ++checked;
    const DynTensor<float>& g = p->grad();
    const bool zp = name.size() >= 10 && name.compare(name.size() - 10, 10, "zero_point") == 0;
    EXPECT(g.shape() == p->shape() && all_finite(g) && (zp || any_nonzero(g)), what, ": gradient of '", name, "' ",
           g.shape().str(), " finite ", all_finite(g), " non-zero ", any_nonzero(g));
  }
  EXPECT(checked > 0, what, ": no parameters");
}

// A mask whose batch 1 pads its last 3 positions.
DynTensor<float> padding_mask(Index B, Index T) {
  DynTensor<float> m(Shape{B, T}, 1.0f);
  for (Index t = T - 3; t < T; ++t) m[(B - 1) * T + t] = 0.0f;
  return m;
}

// The in-range mask of the STE the point applies: the fake-quant rule, or for
// learnable points LSQ's q = nearbyint(fma(x, 1 / scale, zp)).
bool ste_in_range(float x, float s, std::int32_t zp, std::int64_t qmin, std::int64_t qmax, bool learnable) {
  if (!learnable) {
    bool in = false;
    ref_fq(x, s, zp, qmin, qmax, &in);
    return in;
  }
  const float q = std::nearbyint(std::fma(x, 1.0f / s, static_cast<float>(zp)));
  return q >= static_cast<float>(qmin) && q <= static_cast<float>(qmax);
}

// QATLinear: y = fq_in(x) fq_w(W)^T + b with the qparams its points used, and
// linear's backward through the STE masks; FP32: plain x W^T + b.
void check_qat_linear(const nn::QConfig& qc, const std::string& name, Rng& rng) {
  const Index B = 2, T = 8, IN = 32, OUT = 24, R = B * T;
  nn::QATLinear<float> lin(IN, OUT, rng, qc);
  const DynTensor<float> x = randn<float>(Shape{B, T, IN}, rng), dy = randn<float>(Shape{B, T, OUT}, rng);
  Tape<float> tape;
  const Var<float> xv = tape.leaf(x);
  const Var<float> y = lin.forward(tape, xv);
  tape.backward(y, dy);
  const std::string tag = "QATLinear " + name;
  EXPECT(y.shape() == Shape({B, T, OUT}) && all_finite(y.value()), tag, ": output ", y.shape().str());
  expect_grads(tag, lin);
  const bool quant = qc.enabled();
  EXPECT(lin.last_forward_was_integer() == quant, tag, ": integer GEMM used ",
         lin.last_forward_was_integer());
  // The integer form: present exactly when the forward was integer, with
  // the points' parameters; the ops-level kernel with it gives the forward.
  std::string why;
  const std::optional<IntegerLinearParams> ip = nn::integer_linear_params(lin, &why);
  EXPECT(ip.has_value() == lin.last_forward_was_integer(), tag, ": integer_linear_params ", ip.has_value(), " (", why,
         ")");
  if (ip) {
    const QuantParams qi = lin.input_quant().qparams(), qw = lin.weight_quant().qparams();
    EXPECT(ip->input_scale == qi.scale[0] && ip->input_zero_point == qi.zero_point[0] && ip->weight_scales == qw.scale &&
               ip->problem(OUT).empty(),
           tag, ": integer parameters ", ip->problem(OUT));
    lin.input_quant().fake_quantize().disable_observer();  // the parameters the forward used
    lin.weight_quant().fake_quantize().disable_observer();
    const DynTensor<float> xq = lin.input_quant().fake_quantize().forward(x);
    const DynTensor<float> wq = lin.weight_quant().fake_quantize().forward(lin.weight().value());
    DynTensor<float> yk(Shape{B, T, OUT});
    ops::quantized_linear_forward(xq.data(), wq.data(), lin.bias().value().data(), yk.data(), R, IN, OUT, *ip);
    EXPECT(same_bits(yk, y.value()), tag, ": quantized_linear_forward with integer_linear_params differs from the forward");
  } else {
    EXPECT(!why.empty(), tag, ": no integer form and no reason");
  }
  // The fake-quantized operands and their STE masks, computed here.
  std::vector<float> xq(x.begin(), x.end()), wq(lin.weight().value().begin(), lin.weight().value().end());
  std::vector<char> mx(xq.size(), 1), mw(wq.size(), 1);
  if (quant) {
    const QuantParams qi = lin.input_quant().qparams(), qw = lin.weight_quant().qparams();
    EXPECT(!qi.per_channel && qw.per_channel && qw.channels() == static_cast<std::size_t>(OUT), tag, ": qparams layout");
    for (Index i = 0; i < R * IN; ++i) {
      xq[static_cast<std::size_t>(i)] = ref_fq(x[i], qi.scale[0], qi.zero_point[0], qi.quant_min, qi.quant_max);
      mx[static_cast<std::size_t>(i)] = ste_in_range(x[i], qi.scale[0], qi.zero_point[0], qi.quant_min, qi.quant_max, qc.activation->learnable);
    }
    for (Index o = 0; o < OUT; ++o)
      for (Index i = 0; i < IN; ++i) {
        const float w = lin.weight().value()[o * IN + i];
        const std::size_t k = static_cast<std::size_t>(o * IN + i), c = static_cast<std::size_t>(o);
        wq[k] = ref_fq(w, qw.scale[c], qw.zero_point[c], qw.quant_min, qw.quant_max);
        mw[k] = ste_in_range(w, qw.scale[c], qw.zero_point[c], qw.quant_min, qw.quant_max, qc.weight->learnable);
      }
  }
  Mat yw(static_cast<std::size_t>(R * OUT)), ym(yw.size()), dxw(static_cast<std::size_t>(R * IN), 0.0), dxm(dxw);
  Mat dww(static_cast<std::size_t>(OUT * IN), 0.0), dwm(dww), dbw(static_cast<std::size_t>(OUT), 0.0);
  for (Index r = 0; r < R; ++r)
    for (Index o = 0; o < OUT; ++o) {
      double s = lin.bias().value()[o], m = std::fabs(s);
      const double g = dy[r * OUT + o];
      dbw[static_cast<std::size_t>(o)] += g;
      for (Index i = 0; i < IN; ++i) {
        const double a = xq[static_cast<std::size_t>(r * IN + i)], w = wq[static_cast<std::size_t>(o * IN + i)];
        s += a * w;
        m += std::fabs(a * w);
        dxw[static_cast<std::size_t>(r * IN + i)] += g * w;
        dxm[static_cast<std::size_t>(r * IN + i)] += std::fabs(g * w);
        dww[static_cast<std::size_t>(o * IN + i)] += g * a;
        dwm[static_cast<std::size_t>(o * IN + i)] += std::fabs(g * a);
      }
      yw[static_cast<std::size_t>(r * OUT + o)] = s;
      ym[static_cast<std::size_t>(r * OUT + o)] = m;
    }
  for (std::size_t i = 0; i < dxw.size(); ++i) dxw[i] *= mx[i];
  for (std::size_t i = 0; i < dww.size(); ++i) dww[i] *= mw[i];
  const Index by = first_far(y.value().data(), yw, 1e-5, 1e-6, ym);
  EXPECT(by < 0, tag, " forward: element ", by, " = ", y.value()[by], ", want ", yw[static_cast<std::size_t>(by)]);
  const Index bw = first_far(lin.weight().grad().data(), dww, 1e-5, 1e-6, dwm);
  const Index bx = first_far(xv.grad().data(), dxw, 1e-5, 1e-6, dxm);
  const Index bb = first_far(lin.bias().grad().data(), dbw, 1e-5, 1e-6);
  EXPECT(bw < 0 && bx < 0 && bb < 0, tag, " backward: dW element ", bw, ", dx element ", bx, ", db element ", bb);
  Index masked = -1;
  for (Index i = 0; i < OUT * IN && masked < 0; ++i)
    if (!mw[static_cast<std::size_t>(i)] && lin.weight().grad()[i] != 0.0f) masked = i;
  EXPECT(masked < 0, tag, ": the STE passed a gradient to saturated weight ", masked);
}

std::string section_layers() {
  Rng rng(8);
  const Index B = 2, T = 8, C = 32, NH = 2, FF = 64;
  const nn::QConfig configs[] = {nn::QConfig::fp32(), nn::QConfig{}, nn::QConfig::lsq()};
  const char* names[] = {"fp32", "w8a8", "lsq"};
  const DynTensor<float> mask = padding_mask(B, T);

  // QATLinear in every configuration; W8A8 on the INT8 GEMM vs the float product.
  for (int k = 0; k < 3; ++k) check_qat_linear(configs[k], names[k], rng);
  {
    nn::QConfig qf;
    qf.integer_linear = false;
    Rng r1(77), r2(77);
    nn::QATLinear<float> a(C, 24, r1), b(C, 24, r2, qf);
    const DynTensor<float> x = randn<float>(Shape{B, T, C}, rng), dy = randn<float>(Shape{B, T, 24}, rng);
    Tape<float> ta, tb;
    const Var<float> ya = a.forward(ta, ta.leaf(x)), yb = b.forward(tb, tb.leaf(x));
    ta.backward(ya, dy);
    tb.backward(yb, dy);
    EXPECT(a.last_forward_was_integer() && !b.last_forward_was_integer(), "integer_linear switch");
    Mat want(yb.value().begin(), yb.value().end());
    // Both sum the same fake-quantized products; they differ by float rounding only.
    const Index bad = first_far(ya.value().data(), want, 1e-5, 2e-6);
    EXPECT(bad < 0, "QATLinear integer GEMM vs float product: element ", bad, " ", ya.value()[bad], " vs ", want[static_cast<std::size_t>(bad)]);
    EXPECT(same_bits(a.weight().grad(), b.weight().grad()), "integer and float QATLinear backward differ");
  }

  // QATAttention, QATLayerNorm, QATGelu, QATTransformerBlock.
  for (int k = 0; k < 3; ++k) {
    const nn::QConfig& qc = configs[k];
    const std::string n = names[k];
    const DynTensor<float> x = randn<float>(Shape{B, T, C}, rng);
    const DynTensor<float> seed = randn<float>(Shape{B, T, C}, rng);
    {
      nn::AttentionOptions ao;
      ao.dropout = k == 0 ? 0.0 : 0.1;
      nn::QATAttention<float> at(C, NH, rng, qc, ao);
      Tape<float> tape;
      const Var<float> y = at.forward(tape, tape.leaf(x), mask);
      tape.backward(y, seed);
      EXPECT(y.shape() == Shape({B, T, C}) && all_finite(y.value()), "QATAttention ", n, ": output");
      expect_grads("QATAttention " + n, at);
      if (k == 0) {
        expect_close("QATAttention fp32 vs double", y.value(), ref_attention(to_mat(x), B, T, at, mask), 1e-4, 1e-5);
        // Padded keys get weight 0: changing their inputs leaves the valid rows' outputs unchanged.
        DynTensor<float> x2 = x;
        for (Index t = T - 3; t < T; ++t)
          for (Index c = 0; c < C; ++c) x2[(T + t) * C + c] += 5.0f;
        const DynTensor<float> y1 = at.forward(x, mask), y2 = at.forward(x2, mask);
        EXPECT(std::memcmp(y1.data() + T * C, y2.data() + T * C, sizeof(float) * (T - 3) * C) == 0,
               "QATAttention: padded keys change the valid positions");
      }
    }
    {
      nn::QATLayerNorm<float> ln(C, 1e-12, qc);
      ln.weight().assign(randn<float>(Shape{C}, rng, 0.2, 1.0));
      Tape<float> tape;
      const Var<float> y = ln.forward(tape, tape.leaf(x));
      tape.backward(y, seed);
      expect_close("QATLayerNorm " + n, y.value(), ref_layer_norm(to_mat(x), B * T, C, ln, 1e-12), 1e-5, 1e-5);
      expect_grads("QATLayerNorm " + n, ln);
    }
    {
      nn::QATGelu<float> act(qc);
      Tape<float> tape;
      const Var<float> xv = tape.leaf(x);
      const Var<float> y = act.forward(tape, xv);
      tape.backward(y, seed);
      const Mat want = ref_gelu(to_mat(x));
      if (!qc.enabled()) {
        expect_close("QATGelu fp32", y.value(), want, 1e-5, 1e-6);
      } else {
        // Its output point quantizes GELU(x): values on its grid, within half a step.
        const QuantParams q = act.output_quant().qparams();
        Index bad = -1;
        for (Index i = 0; i < x.numel() && bad < 0; ++i) {
          const double lv = y.value()[i] / q.scale[0] + q.zero_point[0];
          if (std::fabs(lv - std::nearbyint(lv)) > 1e-3 || lv < q.quant_min - 1e-3 || lv > q.quant_max + 1e-3 ||
              std::fabs(y.value()[i] - want[static_cast<std::size_t>(i)]) > 0.5001 * q.scale[0] + 1e-5)
            bad = i;
        }
        EXPECT(bad < 0, "QATGelu ", n, ": element ", bad, " = ", y.value()[bad], " for gelu ", want[static_cast<std::size_t>(bad)]);
        EXPECT(any_nonzero(xv.grad()), "QATGelu ", n, ": no input gradient");
      }
    }
    for (bool pre_ln : {false, true}) {
      nn::BlockConfig bc;
      bc.hidden = C;
      bc.heads = NH;
      bc.intermediate = FF;
      bc.pre_layer_norm = pre_ln;
      bc.quantize_probs = bc.quantize_layer_norm_output = bc.quantize_gelu_output = k == 2;
      if (k == 0) bc.hidden_dropout = bc.attention_dropout = 0.0;
      nn::QATTransformerBlock<float> blk(bc, rng, qc);
      const std::string tag = cat("QATTransformerBlock ", n, pre_ln ? " pre-LN" : " post-LN");
      Tape<float> tape;
      const Var<float> y = blk.forward(tape, tape.leaf(x), mask);
      tape.backward(y, seed);
      EXPECT(y.shape() == Shape({B, T, C}) && all_finite(y.value()), tag, ": output");
      expect_grads(tag, blk);
      if (k == 0) expect_close(tag + " vs double", y.value(), ref_block(to_mat(x), B, T, blk, mask), 1e-4, 1e-4);
      // Eval: the tape-less forward gives the tape forward's bits and leaves
      // the quantization state alone.
      blk.eval();
      const io::TensorDict before = blk.state_dict();
      Tape<float> te;
      const DynTensor<float> yt = blk.forward(te, te.constant(x), mask).value();
      const DynTensor<float> yn = blk.forward(x, mask);
      EXPECT(same_bits(yt, yn), tag, ": eval forward with and without a tape differ");
      bool unchanged = true;
      for (const auto& [key, t] : blk.state_dict()) unchanged = unchanged && t.bytes == before.at(key).bytes;
      EXPECT(unchanged, tag, ": an eval forward changed the state");
    }
  }

  // Embeddings, heads and the whole model.
  nn::BertConfig bc;
  bc.vocab_size = 50;
  bc.block.hidden = C;
  bc.layers = 2;
  bc.block.heads = NH;
  bc.block.intermediate = FF;
  bc.max_positions = 16;
  DynTensor<std::int64_t> ids(Shape{B, T}), types(Shape{B, T});
  for (Index i = 0; i < B * T; ++i) {
    ids[i] = static_cast<std::int64_t>(rng.below(40));  // ids 40..49 unused
    types[i] = i % T >= T / 2;
  }
  for (int k = 0; k < 3; ++k) {
    const nn::QConfig& qc = configs[k];
    const std::string n = names[k];
    nn::BertConfig cfg = bc;
    if (k == 0) cfg.block.hidden_dropout = cfg.block.attention_dropout = 0.0;
    cfg.quantize_embedding_tables = k == 2;
    {
      nn::QATBertEmbeddings<float> emb(cfg.embeddings(), rng, qc);
      Tape<float> tape;
      const Var<float> y = emb.forward(tape, ids, types);
      tape.backward(y, randn<float>(y.shape(), rng));
      EXPECT(y.shape() == Shape({B, T, C}) && all_finite(y.value()), "QATBertEmbeddings ", n, ": output");
      expect_grads("QATBertEmbeddings " + n, emb);
      if (k == 0) expect_close("QATBertEmbeddings fp32 vs double", y.value(), ref_embeddings(emb, ids, types), 1e-5, 1e-5);
      // Only looked-up rows of the word table get a gradient.
      bool rows_ok = true;
      for (Index v = 40; v < 50; ++v)
        for (Index c = 0; c < C; ++c) rows_ok = rows_ok && emb.word_embeddings().grad()[v * C + c] == 0.0f;
      EXPECT(rows_ok, "QATBertEmbeddings ", n, ": an unused word row has a gradient");
    }
    {
      Rng hr(3);
      nn::QATBertPooler<float> pooler(C, hr, qc);
      nn::QATClassifierHead<float> cls(C, 3, hr, qc, k == 0 ? 0.0 : 0.1);
      const DynTensor<float> h = randn<float>(Shape{B, T, C}, rng);
      Tape<float> tape;
      const Var<float> pooled = pooler.forward(tape, tape.leaf(h));
      const Var<float> logits = cls.forward(tape, pooled);
      DynTensor<std::int64_t> labels(Shape{B});
      labels[0] = 2;
      labels[1] = 0;
      tape.backward(cross_entropy(logits, labels));
      EXPECT(pooled.shape() == Shape({B, C}) && logits.shape() == Shape({B, 3}) && all_finite(logits.value()),
             "heads ", n, ": pooled ", pooled.shape().str(), ", logits ", logits.shape().str());
      expect_grads("QATBertPooler " + n, pooler);
      expect_grads("QATClassifierHead " + n, cls);
      if (k == 0) {
        const Mat pw = ref_pooler(to_mat(h), B, T, pooler);
        expect_close("QATBertPooler fp32 vs double", pooled.value(), pw, 1e-5, 1e-6);
        expect_close("QATClassifierHead fp32 vs double", logits.value(), ref_linear(pw, B, cls.linear()), 1e-5, 1e-6);
      }
      // MLM head with tied embeddings: the decoder's gradient reaches every row.
      nn::QATBertEmbeddings<float> emb(cfg.embeddings(), hr, qc);
      nn::QATMLMHead<float> mlm(C, cfg.vocab_size, hr, qc);
      Tape<float> t2;
      const Var<float> e = emb.forward(t2, ids, types);
      const Var<float> ml = mlm.forward(t2, e, t2.param(emb.word_embeddings()));
      EXPECT(ml.shape() == Shape({B, T, cfg.vocab_size}) && all_finite(ml.value()), "QATMLMHead ", n, ": logits ",
             ml.shape().str());
      t2.backward(cross_entropy(ml, ids));
      expect_grads("QATMLMHead " + n, mlm);
      bool all_rows = true;
      for (Index v = 40; v < 50; ++v) {
        bool row = false;
        for (Index c = 0; c < C; ++c) row = row || emb.word_embeddings().grad()[v * C + c] != 0.0f;
        all_rows = all_rows && row;
      }
      EXPECT(all_rows, "QATMLMHead ", n, ": the tied decoder gives no gradient to unused word rows");
    }
    {
      nn::QATBertModel<float> model(cfg, rng, nn::ModelQConfig(qc));
      Tape<float> tape;
      const auto out = model.forward(tape, ids, types, mask);
      EXPECT(out.sequence_output.shape() == Shape({B, T, C}) && out.pooled_output.shape() == Shape({B, C}) &&
                 all_finite(out.sequence_output.value()) && all_finite(out.pooled_output.value()),
             "QATBertModel ", n, ": outputs ", out.sequence_output.shape().str(), ", ", out.pooled_output.shape().str());
      tape.backward(add(sum(mul(out.sequence_output, tape.constant(randn<float>(Shape{B, T, C}, rng)))),
                        sum(out.pooled_output)));
      expect_grads("QATBertModel " + n, model);
      const auto named = model.named_parameters();
      std::vector<std::string> keys;
      for (const auto& kv : named) keys.push_back(kv.first);
      for (const char* want : {"embeddings.word_embeddings.weight", "embeddings.LayerNorm.weight",
                               "encoder.layer.1.attention.self.query.weight", "encoder.layer.0.attention.output.dense.bias",
                               "encoder.layer.0.attention.output.LayerNorm.weight", "encoder.layer.1.intermediate.dense.weight",
                               "encoder.layer.1.output.LayerNorm.bias", "pooler.dense.weight"})
        EXPECT(std::find(keys.begin(), keys.end(), want) != keys.end(), "QATBertModel ", n, " lacks parameter '", want, "'");
      if (k == 2)
        EXPECT(std::find(keys.begin(), keys.end(), "encoder.layer.0.attention.self.query.weight_fake_quant.scale") != keys.end(),
               "QATBertModel lsq lacks the learnable scale of query's weight");
      if (k == 0) {
        Mat h = ref_embeddings(model.embeddings(), ids, types);
        for (std::size_t l = 0; l < model.num_layers(); ++l) h = ref_block(h, B, T, model.layer(l), mask);
        expect_close("QATBertModel fp32 sequence_output vs double", out.sequence_output.value(), h, 2e-4, 2e-4);
        expect_close("QATBertModel fp32 pooled_output vs double", out.pooled_output.value(), ref_pooler(h, B, T, model.pooler()),
                     2e-4, 2e-4);
      }
    }
  }
  return "QATLinear, QATAttention, QATLayerNorm, QATGelu, QATTransformerBlock (post/pre-LN), QATBertEmbeddings, "
         "pooler, classifier, MLM, QATBertModel; fp32, w8a8, lsq";
}

// ===========================================================================
// optim: AdamW and SGD against PyTorch's formulas in double, clipping,
// schedules, and io's training checkpoint.
// ===========================================================================

// One AdamW step of torch.optim.AdamW (decoupled weight decay, bias correction).
void ref_adamw_step(Mat& p, Mat& m, Mat& v, const Mat& g, int t, double lr, double wd, double clamp_min = -1e300) {
  const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  for (std::size_t i = 0; i < p.size(); ++i) {
    p[i] *= 1.0 - lr * wd;
    m[i] = b1 * m[i] + (1 - b1) * g[i];
    v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
    const double denom = std::sqrt(v[i]) / std::sqrt(1 - std::pow(b2, t)) + eps;
    p[i] -= lr / (1 - std::pow(b1, t)) * m[i] / denom;
    p[i] = std::max(p[i], clamp_min);
  }
}

// One SGD step of torch.optim.SGD (coupled weight decay, momentum, dampening, Nesterov).
void ref_sgd_step(Mat& p, Mat& buf, const Mat& g, int t, double lr, double mom, double damp, double wd, bool nesterov) {
  for (std::size_t i = 0; i < p.size(); ++i) {
    double d = g[i] + wd * p[i];
    buf[i] = t == 1 ? d : mom * buf[i] + (1 - damp) * d;
    d = nesterov ? d + mom * buf[i] : buf[i];
    p[i] -= lr * d;
  }
}

template <typename S>
void set_grad(Param<S>& p, const Mat& g) {
  for (Index i = 0; i < p.numel(); ++i) p.grad()[i] = static_cast<S>(g[static_cast<std::size_t>(i)]);
}
template <typename S>
Mat values(const Param<S>& p) {
  return Mat(p.value().begin(), p.value().end());
}
Mat random_mat(Index n, Rng& rng, double sd = 1.0) {
  Mat m;
  for (Index i = 0; i < n; ++i) m.push_back(rng.normal(0.0, sd));
  return m;
}

template <typename S>
void check_adamw(Rng& rng) {
  const double tol = std::is_same_v<S, float> ? 2e-6 : 1e-13;
  // Group 0: weights with decay; group 1: a scale-like Param clamped at 0.05,
  // no decay, plus a frozen Param that must not move.
  Param<S> w1(randn<S>(Shape{37}, rng)), w2(randn<S>(Shape{5, 7}, rng)), sc(randu<S>(Shape{11}, rng, 0.04, 0.2)),
      frozen(randn<S>(Shape{3}, rng));
  frozen.set_requires_grad(false);
  ParamGroup<S> g0, g1;
  g0.params = {&w1, &w2};
  g0.lr = 1e-2;
  g0.weight_decay = 0.1;
  g1.params = {&sc, &frozen};
  g1.lr = 3e-2;
  g1.weight_decay = 0.0;
  g1.clamp_min = static_cast<S>(0.05);
  AdamW<S> opt({g0, g1});
  Param<S>* ps[] = {&w1, &w2, &sc};
  Mat p[3], m[3], v[3];
  for (int k = 0; k < 3; ++k) {
    p[k] = values(*ps[k]);
    m[k].assign(p[k].size(), 0.0);
    v[k] = m[k];
  }
  const Mat frozen0 = values(frozen);
  for (int t = 1; t <= 3; ++t) {
    for (int k = 0; k < 3; ++k) {
      // Float parameters: the reference continues from the library's values,
      // so each step's comparison bounds one step's rounding.
      p[k] = values(*ps[k]);
      const Mat g = random_mat(ps[k]->numel(), rng, k == 2 ? 0.5 : 1.0);
      set_grad(*ps[k], g);
      ref_adamw_step(p[k], m[k], v[k], g, t, k == 2 ? 3e-2 : 1e-2, k == 2 ? 0.0 : 0.1, k == 2 ? 0.05 : -1e300);
    }
    opt.step();
    for (int k = 0; k < 3; ++k) {
      const Index bad = first_far(ps[k]->value().data(), p[k], tol, tol);
      EXPECT(bad < 0, "AdamW<", scalar_name<S>(), "> step ", t, " param ", k, " element ", bad, ": ",
             ps[k]->value()[bad], ", want ", p[k][static_cast<std::size_t>(bad)]);
    }
  }
  EXPECT(values(frozen) == frozen0, "AdamW moved a Param that requires no gradient");
  bool clamped = false, above = true;
  for (Index i = 0; i < sc.numel(); ++i) {
    clamped = clamped || sc.value()[i] == static_cast<S>(0.05);
    above = above && sc.value()[i] >= static_cast<S>(0.05);
  }
  EXPECT(above && clamped, "AdamW group clamp_min: some value below 0.05 or none clamped");
  const ParamState<S>* st = opt.state(w2);
  EXPECT(st && st->step == 3 && st->buffers.count("exp_avg") && st->buffers.count("exp_avg_sq"), "AdamW state of w2");
}

template <typename S>
void check_sgd(Rng& rng, bool nesterov) {
  const double tol = std::is_same_v<S, float> ? 2e-6 : 1e-13;
  const double mom = 0.9, damp = nesterov ? 0.0 : 0.1, wd = 0.01, lr = 0.05;
  Param<S> w(randn<S>(Shape{53}, rng));
  SGDOptions o;
  o.lr = lr;
  o.momentum = mom;
  o.dampening = damp;
  o.weight_decay = wd;
  o.nesterov = nesterov;
  SGD<S> opt(std::vector<Param<S>*>{&w}, o);
  Mat buf(53, 0.0);
  for (int t = 1; t <= 3; ++t) {
    Mat p = values(w);
    const Mat g = random_mat(53, rng);
    set_grad(w, g);
    ref_sgd_step(p, buf, g, t, lr, mom, damp, wd, nesterov);
    opt.step();
    // The momentum buffer continues from the library's (float) one.
    const auto& lb = opt.state(w)->buffers.at("momentum_buffer");
    const Index bad = first_far(w.value().data(), p, tol, tol), bb = first_far(lb.data(), buf, tol, tol);
    EXPECT(bad < 0 && bb < 0, "SGD<", scalar_name<S>(), ">", nesterov ? " nesterov" : "", " step ", t, ": param element ",
           bad, ", momentum buffer element ", bb);
    buf.assign(lb.begin(), lb.end());
  }
}

std::string section_optim() {
  Rng rng(12);
  check_adamw<float>(rng);
  check_adamw<double>(rng);
  check_sgd<float>(rng, false);
  check_sgd<float>(rng, true);
  check_sgd<double>(rng, false);

  // clip_grad_norm: the global L2 norm; above max_norm every gradient is
  // scaled by max_norm / (norm + 1e-6), below it nothing changes.
  {
    Param<float> a(Shape{40}), b(Shape{3, 9});
    const Mat ga = random_mat(40, rng), gb = random_mat(27, rng, 3.0);
    double sq = 0;
    for (double v : ga) sq += v * v;
    for (double v : gb) sq += v * v;
    const double norm = std::sqrt(sq);
    for (double max_norm : {0.5 * norm, 2.0 * norm}) {
      set_grad(a, ga);
      set_grad(b, gb);
      Mat fa(a.grad().begin(), a.grad().end()), fb(b.grad().begin(), b.grad().end());  // the float gradients
      const float total = clip_grad_norm<float>({&a, &b}, max_norm);
      EXPECT(std::fabs(total - norm) <= 1e-6 * norm, "clip_grad_norm returned ", total, ", want ", norm);
      const double coef = max_norm < norm ? max_norm / (norm + 1e-6) : 1.0;
      for (double& v : fa) v *= coef;
      for (double& v : fb) v *= coef;
      EXPECT(first_far(a.grad().data(), fa, 1e-6, 0.0) < 0 && first_far(b.grad().data(), fb, 1e-6, 0.0) < 0,
             "clip_grad_norm(max_norm ", max_norm, ") scaled the gradients wrongly (coef ", coef, ")");
      if (coef == 1.0)
        EXPECT(a.grad()[0] == static_cast<float>(ga[0]), "clip_grad_norm changed gradients below max_norm");
    }
    set_grad(a, ga);
    a.grad()[3] = std::numeric_limits<float>::infinity();
    const std::string e = error_of([&] { clip_grad_norm<float>({&a, &b}, 1.0, NonFinite::Error); });
    EXPECT(contains(e, "inf"), "clip_grad_norm(NonFinite::Error) on an inf gradient: '", e, "'");
  }

  // Schedules: lr = initial_lr * factor(step), the transformers factors.
  {
    Param<float> w(Shape{2});
    for (int kind = 0; kind < 3; ++kind) {
      AdamW<float> opt(std::vector<Param<float>*>{&w}, AdamWOptions{});
      LrSchedule s = kind == 0 ? constant_schedule(opt)
                     : kind == 1 ? constant_schedule_with_warmup(opt, 3)
                                 : linear_schedule_with_warmup(opt, 2, 10);
      for (int t = 0; t <= 12; ++t) {
        const double f = kind == 0 ? 1.0
                         : kind == 1 ? (t < 3 ? t / 3.0 : 1.0)
                                     : (t < 2 ? t / 2.0 : std::max(0.0, (10.0 - t) / 8.0));
        EXPECT(std::fabs(opt.lr(0) - 1e-3 * f) <= 1e-15, s.name(), " step ", t, ": lr ", opt.lr(0), ", want ", 1e-3 * f);
        s.step();
      }
    }
  }

  // optim::save_checkpoint / load_checkpoint: Params, SGD momentum, the schedule
  // and an RNG; the resumed step is bit-identical.
  {
    struct Run {
      Param<float> a, b;
      SGD<float> opt;
      LrSchedule sched;
      Rng data;
      explicit Run(std::uint64_t seed)
          : a(DynTensor<float>(Shape{17}, static_cast<float>(seed))), b(DynTensor<float>(Shape{2, 5}, 1.0f)),
            opt(std::vector<Param<float>*>{&a, &b}, sgd_options()), sched(constant_schedule_with_warmup(opt, 4)), data(seed) {}
      static SGDOptions sgd_options() {
        SGDOptions o;
        o.lr = 0.1;
        o.momentum = 0.9;
        return o;
      }
      void step() {
        for (Param<float>* p : {&a, &b}) init::normal(p->grad(), data, 0.0, 1.0);
        opt.step();
        sched.step();
        opt.zero_grad();
      }
      optim::TrainingState<float> state() {
        optim::TrainingState<float> s;
        s.params = {{"a", &a}, {"b", &b}};
        s.optimizer = &opt;
        s.schedule = &sched;
        s.rngs = {{"data", &data}};
        return s;
      }
    };
    const std::string path = g_tmp->file("io_checkpoint.safetensors");
    Run first(1);
    first.step();
    first.step();
    optim::TrainingState<float> s = first.state();
    s.step = 2;
    optim::save_checkpoint(path, s);
    first.step();
    Run resumed(99);
    optim::TrainingState<float> r = resumed.state();
    optim::load_checkpoint(path, r);
    resumed.step();
    EXPECT(r.step == 2 && resumed.sched.last_step() == 3, "io checkpoint: step ", r.step, ", schedule ", resumed.sched.last_step());
    EXPECT(same_bits(first.a.value(), resumed.a.value()) && same_bits(first.b.value(), resumed.b.value()),
           "io checkpoint: the resumed step differs");
    const std::string e = error_of([&] {
      Param<float> c(Shape{1});
      optim::TrainingState<float> t = resumed.state();
      t.params.emplace_back("c", &c);
      optim::load_checkpoint(path, t);
    });
    EXPECT(contains(e, "'c'"), "io checkpoint: a missing tensor must be named: '", e, "'");
  }
  return "AdamW (param groups, clamp, frozen), SGD (momentum, Nesterov), clip_grad_norm, schedules, io checkpoint";
}

// ===========================================================================
// io: safetensors with every dtype, its header, JSON, module state dicts.
// ===========================================================================

std::vector<std::uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// F16 / BF16 encoders round to nearest, ties to even: no other code decodes
// closer to x, and on a tie the chosen code is even. decode: bits -> float.
template <typename Decode>
bool nearest_even(float x, std::uint16_t code, Decode decode) {
  const double d = std::fabs(static_cast<double>(decode(code)) - x);
  for (int delta : {-1, 1}) {
    const std::uint16_t other = static_cast<std::uint16_t>(code + delta);
    if (((other ^ code) & 0x8000) != 0) continue;  // the other sign
    const float o = decode(other);
    if (!std::isfinite(o)) continue;
    const double od = std::fabs(static_cast<double>(o) - x);
    if (od < d || (od == d && (code & 1))) return false;
  }
  return true;
}

std::string section_io() {
  Rng rng(19);
  // Every dtype, with metadata, through a file and through memory.
  io::TensorDict d;
  const DynTensor<float> f32 = randn<float>(Shape{3, 5}, rng);
  d["f32"] = io::TensorData::from(f32);
  d["f64"] = io::TensorData::from(randn<double>(Shape{4}, rng));
  DynTensor<float> halves = randn<float>(Shape{64}, rng, 100.0);
  const float exact[] = {0.5f, -2.25f, 1024.0f, 65504.0f, 0.0f, -0.0f, 6.103515625e-05f, 3.0517578125e-05f};
  std::copy(std::begin(exact), std::end(exact), halves.begin());
  d["f16"] = io::TensorData::from_float(halves, io::DType::F16);
  d["bf16"] = io::TensorData::from_float(halves, io::DType::BF16);
  DynTensor<std::int8_t> i8(Shape{7});
  DynTensor<std::uint8_t> u8(Shape{2, 3});
  DynTensor<std::int32_t> i32(Shape{2, 3});
  DynTensor<std::int64_t> i64(Shape{3});
  for (Index i = 0; i < 7; ++i) i8[i] = static_cast<std::int8_t>(-128 + 41 * i);
  for (Index i = 0; i < 6; ++i) {
    u8[i] = static_cast<std::uint8_t>(250 - 50 * i);
    i32[i] = static_cast<std::int32_t>(-2000000000 + 777777777 * i);
  }
  for (Index i = 0; i < 3; ++i) i64[i] = (std::int64_t(1) << 40) * (i - 1);
  d["i8"] = io::TensorData::from(i8);
  d["u8"] = io::TensorData::from(u8);
  d["i32"] = io::TensorData::from(i32);
  d["i64"] = io::TensorData::from(i64);
  d["scalar"] = io::TensorData::from(DynTensor<float>(Shape{}, 3.5f));
  const io::Metadata md{{"model", "api_coverage"}, {"note", "quote \" backslash \\ e\xc3\xa9"}};
  const std::string path = g_tmp->file("all_dtypes.safetensors");
  io::save_safetensors(path, d, md);
  const io::Safetensors f = io::load_safetensors(path);
  EXPECT(f.metadata == md, "safetensors metadata did not round-trip");
  EXPECT(f.tensors.size() == d.size(), "safetensors: ", f.tensors.size(), " tensors read, ", d.size(), " written");
  for (const auto& [name, t] : d) {
    auto it = f.tensors.find(name);
    EXPECT(it != f.tensors.end() && it->second.dtype == t.dtype && it->second.shape == t.shape && it->second.bytes == t.bytes,
           "safetensors tensor '", name, "' did not round-trip");
  }
  EXPECT(same_bits(f.tensors.at("f32").as<float>(), f32) && f.tensors.at("i32").as<std::int32_t>()[5] == i32[5] &&
             f.tensors.at("i64").as<std::int64_t>()[2] == i64[2] && f.tensors.at("i8").as<std::int8_t>()[6] == i8[6],
         "safetensors typed reads");
  // F16 / BF16: representable values exact, others rounded to nearest even.
  const DynTensor<float> h = f.tensors.at("f16").to_float(), bh = f.tensors.at("bf16").to_float();
  for (Index i = 0; i < 6; ++i)
    EXPECT(h[i] == exact[i] && bh[i] == (i == 3 ? 65536.0f : exact[i]), "F16/BF16 of ", exact[i], ": ", h[i], " / ", bh[i]);
  Index bad16 = -1, badbf = -1;
  for (Index i = 0; i < 64; ++i) {
    if (!nearest_even(halves[i], io::float_to_half_bits(halves[i]), io::half_bits_to_float)) bad16 = i;
    if (!nearest_even(halves[i], io::float_to_bfloat16_bits(halves[i]), io::bfloat16_bits_to_float)) badbf = i;
    if (std::fabs(h[i] - halves[i]) > std::ldexp(std::fabs(halves[i]), -11) + 3e-8) bad16 = i;
  }
  EXPECT(bad16 < 0 && badbf < 0, "F16 rounding wrong at ", bad16, ", BF16 at ", badbf);
  EXPECT(error_of([&] { f.tensors.at("i8").as<float>(); }) != "", "TensorData::as<float> on I8 must throw");

  // The file layout: 8-byte little-endian header length N (a multiple of 8),
  // N bytes of JSON naming each tensor's dtype, shape and contiguous offsets.
  const std::vector<std::uint8_t> bytes = read_file(path);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[static_cast<std::size_t>(i)];
  EXPECT(n % 8 == 0 && 8 + n <= bytes.size(), "safetensors header length ", n, " of a ", bytes.size(), "-byte file");
  if (n % 8 == 0 && 8 + n <= bytes.size()) {
    const io::json::Value root = io::json::parse(std::string(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n)));
    const io::json::Value* meta = root.find("__metadata__");
    EXPECT(meta && meta->find("model") && meta->find("model")->as_string() == "api_coverage" &&
               meta->find("note")->as_string() == md.at("note"),
           "safetensors __metadata__");
    std::vector<std::pair<std::uint64_t, std::uint64_t>> spans;
    for (const auto& [name, entry] : root.members()) {
      if (name == "__metadata__") continue;
      const io::TensorData& t = d.at(name);
      const auto& shape = entry.find("shape")->items();
      const auto& off = entry.find("data_offsets")->items();
      bool shape_ok = static_cast<int>(shape.size()) == t.shape.rank();
      for (std::size_t i = 0; shape_ok && i < shape.size(); ++i) shape_ok = shape[i].as_uint64() == static_cast<std::uint64_t>(t.shape[static_cast<int>(i)]);
      const std::uint64_t b = off[0].as_uint64(), e = off[1].as_uint64();
      EXPECT(entry.find("dtype")->as_string() == io::dtype_name(t.dtype) && shape_ok && e - b == t.bytes.size() &&
                 std::memcmp(bytes.data() + 8 + n + b, t.bytes.data(), t.bytes.size()) == 0,
             "safetensors header entry '", name, "'");
      spans.emplace_back(b, e);
    }
    std::sort(spans.begin(), spans.end());
    bool contiguous = !spans.empty() && spans.front().first == 0 && spans.back().second == bytes.size() - 8 - n;
    for (std::size_t i = 1; i < spans.size(); ++i) contiguous = contiguous && spans[i].first == spans[i - 1].second;
    EXPECT(contiguous, "safetensors data offsets do not tile the buffer");
  }
  const std::vector<std::uint8_t> mem = io::serialize_safetensors(d, md);
  EXPECT(mem == bytes, "serialize_safetensors differs from the file save_safetensors wrote");
  EXPECT(io::parse_safetensors(mem.data(), mem.size()).tensors.at("u8").bytes == d.at("u8").bytes, "parse_safetensors");
  const std::string trunc = error_of([&] { io::parse_safetensors(mem.data(), mem.size() - 1); });
  EXPECT(!trunc.empty(), "a truncated safetensors buffer must raise qaware::Error");

  // JSON: values, escapes and UTF-8; dump is a fixed point; strict errors.
  {
    const std::string text = R"({"a":[1,2.5e3,-0.0,true,false,null],"s":"tab\t quote\" \u00e9 \ud83d\ude00","o":{"k":{}}})";
    const io::json::Value v = io::json::parse(text);
    const auto& a = v.find("a")->items();
    EXPECT(a.size() == 6 && a[0].as_uint64() == 1 && a[1].number_text() == "2.5e3" && a[3].as_bool() && !a[4].as_bool() &&
               a[5].is_null(),
           "json array values");
    EXPECT(v.find("s")->as_string() == "tab\t quote\" \xc3\xa9 \xf0\x9f\x98\x80", "json string unescaping: '",
           v.find("s")->as_string(), "'");
    const std::string dumped = io::json::dump(v);
    EXPECT(io::json::dump(io::json::parse(dumped)) == dumped && v.find("o")->find("k")->is_object(), "json dump round trip: ",
           dumped);
    for (const char* bad : {R"({"a":1,})", R"({"a":1,"a":2})", R"(["\ud800"])", R"([01])", "[NaN]"})
      EXPECT(!error_of([&] { io::json::parse(bad); }).empty(), "json should reject ", bad);
    // The value cap: [1,[2]] holds 4 values.
    EXPECT(io::json::parse("[1,[2]]", 64, SIZE_MAX, 4).items().size() == 2 &&
               error_of([&] { io::json::parse("[1,[2]]", 64, SIZE_MAX, 3); }).find("more than 3 values") != std::string::npos,
           "json max_values");
  }

  // A module state dict (F32 params, F64 quantization buffers) saved and
  // loaded into another instance: identical forwards.
  {
    nn::BlockConfig bc;
    bc.hidden = 32;
    bc.heads = 2;
    bc.intermediate = 64;
    nn::QConfig qc;
    qc.weight->learnable = true;
    nn::QATTransformerBlock<float> a(bc, qc, 1), b(bc, qc, 2);
    const DynTensor<float> x = randn<float>(Shape{2, 8, 32}, rng);
    {
      Tape<float> t;
      a.forward(t, t.constant(x));  // training: the observers see data
    }
    const io::TensorDict sd = a.state_dict();
    EXPECT(sd.at("attention.self.query.weight").dtype == io::DType::F32 &&
               sd.at("attention.self.query.input_fake_quant.activation_post_process.min_val").dtype == io::DType::F64,
           "state_dict dtypes");
    const std::string sp = g_tmp->file("block.safetensors");
    io::save_safetensors(sp, sd);
    const io::TensorDict loaded = io::load_safetensors(sp).tensors;
    const nn::LoadResult res = b.load_state_dict(loaded);
    a.eval();
    b.eval();
    EXPECT(res.complete() && same_bits(a.forward(x), b.forward(x)), "a loaded state dict gives another forward");
    io::TensorDict missing = loaded;
    missing.erase("output.dense.bias");
    const std::string e = error_of([&] { b.load_state_dict(missing); });
    EXPECT(contains(e, "output.dense.bias"), "strict load_state_dict must name the missing tensor: '", e, "'");
    io::TensorDict wrong = loaded;
    wrong["output.dense.bias"] = io::TensorData::from(DynTensor<float>(Shape{31}, 0.0f));
    const std::string e2 = error_of([&] { b.load_state_dict(wrong); });
    EXPECT(contains(e2, "[31]") && contains(e2, "[32]"), "a shape mismatch must name both shapes: '", e2, "'");
  }
  return "safetensors F32 F64 F16 BF16 I8 U8 I32 I64 + metadata, header layout, JSON, state dict round trip";
}

// ===========================================================================
// training: a tiny BERT classifier (W8A8, LSQ weight scales, dropout),
// cross-entropy, clipping, AdamW with parameter groups, a warmup/decay
// schedule; a checkpoint after step k resumes step k + 1 bit for bit.
// ===========================================================================

struct BertClassifier : nn::Module<float> {
  Rng init;
  nn::QATBertModel<float> bert;
  nn::QATClassifierHead<float> head;
  BertClassifier(const nn::BertConfig& bc, const nn::QConfig& qc, std::uint64_t seed)
      : init(seed), bert(bc, init, nn::ModelQConfig(qc)), head(bc.block.hidden, 2, init, qc, 0.1) {}
  void visit(nn::Visitor<float>& v) override {
    v.child("bert", bert);
    v.child("classifier", head);
  }
};

struct TrainingRun {
  static constexpr int kSteps = 20;
  BertClassifier model;
  AdamW<float> opt;
  LrSchedule schedule;
  Rng data;
  float last_norm = 0;

  static nn::BertConfig config() {
    nn::BertConfig bc;
    bc.vocab_size = 20;
    bc.block.hidden = 32;
    bc.layers = 1;
    bc.block.heads = 2;
    bc.block.intermediate = 64;
    bc.max_positions = 8;
    bc.seed = 4;
    return bc;
  }
  static nn::QConfig qconfig() {
    nn::QConfig qc;
    qc.weight->learnable = true;  // LSQ weight scales; activations keep their observers
    return qc;
  }
  static nn::ParamGroupOptions groups() {
    nn::ParamGroupOptions o;
    o.lr = 3e-3;
    o.quant_lr = 1e-4;
    return o;
  }
  explicit TrainingRun(std::uint64_t seed)
      : model(config(), qconfig(), seed), opt(nn::make_param_groups<float>(model, groups())),
        schedule(linear_schedule_with_warmup(opt, 2, kSteps)), data(7) {}

  float step() {
    const Index B = 2, T = 8;
    DynTensor<std::int64_t> ids(Shape{B, T}), labels(Shape{B});
    for (Index i = 0; i < B * T; ++i) ids[i] = static_cast<std::int64_t>(data.below(20));
    for (Index b = 0; b < B; ++b) labels[b] = static_cast<std::int64_t>(data.below(2));
    Tape<float> tape;
    const auto out = model.bert.forward(tape, ids, DynTensor<std::int64_t>(), padding_mask(B, T));
    const Var<float> loss = cross_entropy(model.head.forward(tape, out.pooled_output), labels);
    tape.backward(loss);
    last_norm = clip_grad_norm(opt, 1.0);
    opt.step();
    schedule.step();
    opt.zero_grad();
    return loss.item();
  }
};

std::string section_training() {
  const std::string path = g_tmp->file("training_checkpoint.safetensors");
  TrainingRun run(1);
  std::vector<std::string> gnames;
  for (const auto& g : run.opt.groups()) gnames.push_back(g.name);
  // Symmetric weight points have frozen zero points; the group is listed all the same.
  EXPECT(join(gnames) == "decay, no_decay, quant_scale, quant_zero_point", "parameter groups: ", join(gnames));
  const auto& qs = run.opt.groups()[2];
  // The warmup schedule starts every lr at 0 (factor(0) = 0); initial_lr keeps the group's.
  EXPECT(qs.clamp_min && qs.initial_lr == 1e-4 && *qs.lr == 0.0 && *qs.weight_decay == 0.0 &&
             *run.opt.groups()[0].weight_decay == 0.01,
         "quant_scale group: initial lr ", qs.initial_lr, ", lr ", *qs.lr, ", weight decay ", *qs.weight_decay);
  const int k = 3;
  std::vector<float> losses;
  for (int s = 0; s < k; ++s) {
    losses.push_back(run.step());
    EXPECT(std::isfinite(losses.back()) && std::isfinite(run.last_norm), "step ", s, ": loss ", losses.back(), ", norm ",
           run.last_norm);
    // The schedule's lr after s + 1 steps: warmup over 2 steps, then linear decay.
    const double t = s + 1, f = t < 2 ? t / 2 : (TrainingRun::kSteps - t) / (TrainingRun::kSteps - 2);
    EXPECT(std::fabs(run.opt.lr(0) - 3e-3 * f) < 1e-15 && std::fabs(run.opt.lr(2) - 1e-4 * f) < 1e-15, "lr after step ",
           s + 1, ": ", run.opt.lr(0));
  }
  // Near-zero initial logits (init_std 0.02): the first loss is about ln 2.
  EXPECT(std::fabs(losses[0] - std::log(2.0f)) < 0.15, "first loss ", losses[0], " is far from ln 2");

  nn::save_checkpoint<float>(path, run.model, &run.opt, &run.schedule, k, {{"data", &run.data}});
  const float next = run.step();
  TrainingRun resumed(12345);  // other initial weights: everything must come from the file
  const std::int64_t step = nn::load_checkpoint<float>(path, resumed.model, &resumed.opt, &resumed.schedule, {{"data", &resumed.data}});
  const float again = resumed.step();
  EXPECT(step == k, "load_checkpoint returned step ", step);
  {
    // LoadOptions::validate_only checks a state dict and loads nothing; a bad
    // quantization value is refused with the point's name.
    TrainingRun other(777);
    const io::TensorDict before = other.model.state_dict();
    nn::LoadOptions check;
    check.validate_only = true;
    other.model.load_state_dict(run.model.state_dict(), check);
    bool untouched = true;
    for (const auto& [name, t] : other.model.state_dict()) untouched = untouched && before.at(name).bytes == t.bytes;
    EXPECT(untouched, "validate_only changed the model");
    io::TensorDict bad = run.model.state_dict();
    std::string point;
    for (const auto& [name, t] : bad)
      if (point.empty() && name.size() > 17 && name.compare(name.size() - 17, 17, "_quant.zero_point") == 0 &&
          t.dtype == io::DType::F64)
        point = name;
    EXPECT(!point.empty(), "no fixed zero point in the state dict");
    if (!point.empty()) {
      DynTensor<double> z = nn::detail::tensor_to_double(bad.at(point));
      z[0] = 1e20;
      bad[point] = io::TensorData::from(z);
      const std::string e = error_of([&] { other.model.load_state_dict(bad); });
      EXPECT(e.find("quantization point") != std::string::npos && e.find("zero_point[0] is 1e+20") != std::string::npos,
             "bad zero point: '", e, "'");
    }
  }
  EXPECT(std::memcmp(&next, &again, sizeof(float)) == 0, "resumed step ", k + 1, ": loss ", again, " vs ", next);
  bool params_same = true;
  const io::TensorDict s1 = run.model.state_dict(), s2 = resumed.model.state_dict();
  for (const auto& [name, t] : s1) params_same = params_same && s2.count(name) && s2.at(name).bytes == t.bytes;
  EXPECT(params_same && s1.size() == s2.size(), "after the resumed step the model state differs");
  for (int s = 0; s < 4; ++s) {
    const float a = run.step(), b = resumed.step();
    EXPECT(std::isfinite(a) && std::memcmp(&a, &b, sizeof(float)) == 0, "step ", k + 2 + s, ": ", a, " vs ", b);
  }
  return cat("losses ", losses[0], " ", losses[1], " ", losses[2], " ", next, "; checkpoint at step ", k, " resumes bit for bit");
}

// ===========================================================================
// deploy: the trained classifier exported (deploy::convert), saved, loaded
// and run; the outputs equal the QAT eval forward's bit for bit, and one
// integer linear equals the exact integer product dequantized here.
// ===========================================================================

std::string section_deploy() {
  TrainingRun run(2);
  for (int s = 0; s < 3; ++s) run.step();
  run.model.eval();
  const Index B = 2, T = 8;
  DynTensor<std::int64_t> ids(Shape{B, T});
  for (Index i = 0; i < B * T; ++i) ids[i] = (i * 5) % 20;
  const DynTensor<float> mask = padding_mask(B, T);
  Tape<float> tape;
  tape.set_grad_enabled(false);
  const auto out = run.model.bert.forward(tape, ids, DynTensor<std::int64_t>(), mask);
  const DynTensor<float> want = run.model.head.forward(tape, out.pooled_output).value();

  const deploy::BertModel d = deploy::convert(run.model.bert, &run.model.head);
  const std::string path = g_tmp->file("model.int8.safetensors");
  deploy::save(d, path);
  const deploy::BertModel loaded = deploy::load(path);
  Index differ = 0;
  for (const deploy::BertModel* m : {&d, &loaded}) {
    const DynTensor<float> got = m->forward(ids, DynTensor<std::int64_t>(), mask).logits;
    EXPECT(got.shape() == want.shape(), "deploy logits ", got.shape().str());
    for (Index i = 0; i < want.numel() && got.shape() == want.shape(); ++i)
      differ += std::memcmp(&got[i], &want[i], sizeof(float)) != 0;
  }
  EXPECT(differ == 0, differ, " deploy logits differ from the QAT eval forward");

  // One integer linear against the exact integer product written out here.
  const deploy::Linear& q = loaded.layers()[0].attention.query;
  EXPECT(q.is_integer(), "the query layer was not exported as an integer layer");
  const IntegerLinearParams& p = q.params();
  const std::vector<std::int8_t> codes = q.weight_codes();
  const Index IN = q.in_features(), OUT = q.out_features();
  DynTensor<float> x(Shape{3, IN});
  Rng rng(5);
  for (Index i = 0; i < x.numel(); ++i) x[i] = static_cast<float>(rng.normal(0.0, 1.0));
  const DynTensor<float> y = q.forward(x);
  Index bad = 0;
  for (Index r = 0; r < 3; ++r)
    for (Index o = 0; o < OUT; ++o) {
      std::int64_t acc = 0;
      for (Index i = 0; i < IN; ++i) {
        const float t = std::nearbyint(x[r * IN + i] * (1.0f / p.input_scale)) + static_cast<float>(p.input_zero_point);
        const auto c = static_cast<std::int64_t>(std::min(std::max(t, static_cast<float>(p.input_min)),
                                                          static_cast<float>(p.input_max)));
        acc += (c - p.input_zero_point) * codes[static_cast<std::size_t>(o * IN + i)];
      }
      const float sw = p.weight_scales[static_cast<std::size_t>(p.weight_scales.size() == 1 ? 0 : o)];
      const float want_y = std::fma(static_cast<float>(acc), p.input_scale * sw, q.bias()[static_cast<std::size_t>(o)]);
      bad += std::memcmp(&want_y, &y[r * OUT + o], sizeof(float)) != 0;
    }
  EXPECT(bad == 0, bad, " of ", 3 * OUT, " outputs of the exported query layer differ from the integer product");

  // A truncated file is refused with an Error.
  {
    std::ifstream in(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string cut = g_tmp->file("cut.safetensors");
    std::ofstream(cut, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
    bool refused = false;
    try {
      deploy::load(cut);
    } catch (const Error&) {
      refused = true;
    }
    EXPECT(refused, "a truncated INT8 model file loaded");
  }
  return cat("convert, save, load: logits equal the QAT forward's; ", OUT, " x ", IN,
             " integer linear equals the integer product; ", std::filesystem::file_size(path), " bytes");
}

}  // namespace

int main() {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  TempDir tmp;
  g_tmp = &tmp;
  struct Section {
    const char* name;
    std::string (*run)();
  };
  const Section sections[] = {{"core", section_core},         {"fake_quant", section_fake_quant},
                              {"observers", section_observers}, {"gemm", section_gemm},
                              {"float_ops", section_float_ops}, {"layers", section_layers},
                              {"optim", section_optim},       {"io", section_io},
                              {"training", section_training}, {"deploy", section_deploy}};
  int failed_sections = 0;
  for (const Section& s : sections) {
    g_tally.section_failures = 0;
    const auto t0 = Clock::now();
    std::string detail;
    try {
      detail = s.run();
    } catch (const std::exception& e) {
      report_failure(0, "unexpected exception", e.what());
    }
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (g_tally.section_failures == 0) {
      std::printf("%s: ok (%s) [%.0f ms]\n", s.name, detail.c_str(), ms);
    } else {
      ++failed_sections;
      std::printf("%s: FAILED (%ld failed checks) [%.0f ms]\n", s.name, g_tally.section_failures, ms);
    }
    std::fflush(stdout);
  }
  const double total = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("api_coverage: %ld checks, %ld failed, %d of %zu sections failed, %.2f s\n", g_tally.checks,
              g_tally.failures, failed_sections, std::size(sections), total);
  return g_tally.failures == 0 ? 0 : 1;
}
