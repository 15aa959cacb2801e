// safetensors: round trips of every dtype, metadata, the golden file written
// by tools/gen_safetensors_golden.py (a spec-following writer with the
// reference's conventions, values and F16/BF16 from PyTorch), header-only
// reads and atomic writes.

#include <gtest/gtest.h>

#include <csignal>
#include <cstring>
#include <string>
#include <vector>

#include "common/fixture.hpp"
#include "io/io_test_util.hpp"
#include "qaware/core/rng.hpp"
#include "qaware/io/safetensors.hpp"

#if defined(__unix__)
#include <sys/resource.h>
#endif

namespace qaware::io {
namespace {

using test::ScratchDir;

template <typename T>
DynTensor<T> iota(Shape s, double start, double step) {
  DynTensor<T> t(std::move(s));
  for (Index i = 0; i < t.numel(); ++i) t[i] = static_cast<T>(start + step * static_cast<double>(i));
  return t;
}

TensorDict every_dtype() {
  TensorDict d;
  d["f32"] = TensorData::from(iota<float>({2, 3}, -1.5, 0.75));
  d["f64"] = TensorData::from(iota<double>({3}, 1.0 / 3.0, 1e100));
  d["i8"] = TensorData::from(iota<std::int8_t>({2, 2, 2}, -128, 36));
  d["u8"] = TensorData::from(iota<std::uint8_t>({5}, 0, 63));
  d["i32"] = TensorData::from(iota<std::int32_t>({4}, -2147483648.0, 1e9));
  d["i64"] = TensorData::from(iota<std::int64_t>({2}, -9e18, 1.8e19 / 2));
  d["f16"] = TensorData::from_float(iota<float>({3, 1}, -2.0, 1.5), DType::F16);
  d["bf16"] = TensorData::from_float(iota<float>({2}, 0.5, 256.0), DType::BF16);
  d["scalar"] = TensorData::from(DynTensor<float>(Shape{}, 42.0f));
  d["empty"] = TensorData::from(DynTensor<float>(Shape{0, 7}));
  d["empty_i8"] = TensorData::from(DynTensor<std::int8_t>(Shape{3, 0}));
  return d;
}

void expect_same(const TensorDict& a, const TensorDict& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    ASSERT_NE(it, b.end()) << name;
    EXPECT_EQ(t.dtype, it->second.dtype) << name;
    EXPECT_EQ(t.shape, it->second.shape) << name;
    EXPECT_EQ(t.bytes, it->second.bytes) << name;
  }
}

TEST(SafetensorsTest, RoundTripsEveryDtypeInMemoryAndOnDisk) {
  const TensorDict d = every_dtype();
  const Metadata md{{"format", "pt"}, {"k\n\"", "v\xC3\xA9"}};
  const auto bytes = serialize_safetensors(d, md);
  const Safetensors back = parse_safetensors(bytes.data(), bytes.size());
  expect_same(d, back.tensors);
  EXPECT_EQ(back.metadata, md);

  ScratchDir dir;
  save_safetensors(dir.file("m.safetensors"), d, md);
  EXPECT_EQ(test::read_bytes(dir.file("m.safetensors")), bytes);
  const Safetensors disk = load_safetensors(dir.file("m.safetensors"));
  expect_same(d, disk.tensors);
  EXPECT_EQ(disk.metadata, md);
  EXPECT_EQ(read_safetensors_metadata(dir.file("m.safetensors")), md);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"m.safetensors"});  // no temporary left
}

TEST(SafetensorsTest, TypedAccessAndConversions) {
  const TensorDict d = every_dtype();
  EXPECT_EQ(d.at("i32").as<std::int32_t>()[0], -2147483647 - 1);
  EXPECT_EQ(d.at("u8").as<std::uint8_t>()[4], 252);
  EXPECT_THROW(d.at("i32").as<float>(), Error);
  EXPECT_THROW(d.at("i8").to_float(), Error);
  const auto f16 = d.at("f16").to_float();
  EXPECT_EQ(f16.shape(), Shape({3, 1}));
  EXPECT_EQ(f16[0], -2.0f);
  EXPECT_EQ(f16[1], -0.5f);
  EXPECT_EQ(f16[2], 1.0f);
  EXPECT_EQ(d.at("bf16").to_float()[0], 0.5f);
  EXPECT_EQ(d.at("bf16").to_float()[1], 256.0f);  // 256.5 needs 10 significant bits; BF16 keeps 8
  EXPECT_EQ(d.at("f64").to_float()[0], static_cast<float>(1.0 / 3.0));
  // from_float rounds to nearest even: 1 + 2^-11 (a tie) -> 1 in F16.
  const auto tie = TensorData::from_float(DynTensor<float>({1}, 1.0f + 0x1p-11f), DType::F16);
  EXPECT_EQ(tie.to_float()[0], 1.0f);
  EXPECT_THROW(TensorData::from_float(DynTensor<float>({1}, 1.0f), DType::I32), Error);
  TensorData bad = d.at("f32");
  bad.bytes.pop_back();
  EXPECT_THROW(bad.to_float(), Error);
  TensorDict with_bad{{"x", bad}};
  EXPECT_THROW(serialize_safetensors(with_bad), Error);
}

TEST(SafetensorsTest, WriterValidatesNames) {
  TensorDict d{{"__metadata__", TensorData::from(DynTensor<float>({1}, 0.0f))}};
  EXPECT_THROW(serialize_safetensors(d), Error);
  TensorDict e{{"bad\xC3", TensorData::from(DynTensor<float>({1}, 0.0f))}};
  EXPECT_THROW(serialize_safetensors(e), Error);
  EXPECT_THROW(serialize_safetensors({}, {{"k", "\xFF"}}), Error);
  EXPECT_NO_THROW(serialize_safetensors({}));
}

TEST(SafetensorsTest, AHeaderOfManyTinyValuesIsRefusedBeforeItsTreeGrows) {
  // A flat object of 2^20 + 1 integers (14 MB of header text, within the
  // 100 MB limit): parsed whole, its tree took gigabytes (issue 22); the
  // value cap stops it after 2^20 values.
  std::string header = "{";
  for (std::size_t i = 0; i <= kMaxSafetensorsHeaderValues; ++i) header += (i ? ",\"" : "\"") + std::to_string(i) + "\":0";
  header += "}";
  std::string file(8, '\0');
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) file[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  file += header;
  try {
    parse_safetensors(file.data(), file.size());
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("more than 1048576 values"), std::string::npos) << e.what();
  }
}

TEST(SafetensorsTest, HeaderIsPaddedAndOrderedLikeTheReference) {
  const auto bytes = serialize_safetensors(every_dtype());
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  const std::string header(reinterpret_cast<const char*>(bytes.data() + 8), n);
  EXPECT_EQ(header.find_last_not_of(' '), header.rfind('}'));
  // Descending dtype order (I64, F64, F32, I32, BF16, F16, I8, U8), names ascending within one.
  std::vector<std::string> order;
  const auto root = json::parse(header);
  for (const auto& kv : root.members()) order.push_back(kv.first);
  EXPECT_EQ(order, (std::vector<std::string>{"i64", "f64", "empty", "f32", "scalar", "i32", "bf16", "f16", "empty_i8",
                                             "i8", "u8"}));
  // Data start is 8-byte aligned; every tensor starts at a multiple of its size.
  const auto h = parse_safetensors(bytes.data(), bytes.size());
  (void)h;
  for (const auto& kv : root.members()) {
    const auto off = kv.second.find("data_offsets")->items()[0].as_uint64();
    DType dt;
    ASSERT_TRUE(dtype_from_name(kv.second.find("dtype")->as_string(), dt));
    EXPECT_EQ(off % dtype_size(dt), 0u) << kv.first;
  }
}

// ---------------------------------------------------------------------------
// The golden file.

struct GoldenEntry {
  std::string name, dtype;
  std::vector<Index> shape;
  std::string record;
};

std::vector<GoldenEntry> golden_entries(const test::Fixture& fx) {
  std::vector<GoldenEntry> out;
  const auto count = fx.scalar<std::int64_t>("count");
  for (std::int64_t i = 0; i < count; ++i) {
    const std::string r = "t" + std::to_string(i);
    const auto nm = fx.get<std::uint8_t>(r + ".name");
    const auto dt = fx.get<std::uint8_t>(r + ".dtype");
    const auto sh = fx.get<std::int64_t>(r + ".shape");
    GoldenEntry e;
    e.name.assign(nm.begin(), nm.end());
    e.dtype.assign(dt.begin(), dt.end());
    e.shape.assign(sh.begin(), sh.end());
    e.record = r;
    out.push_back(e);
  }
  return out;
}

const std::string kGolden = std::string(QAWARE_TEST_DATA_DIR) + "/golden.safetensors";

TEST(SafetensorsGoldenTest, ReadsTheGoldenFile) {
  const auto fx = test::Fixture::load("safetensors_golden.qawfix");
  const Safetensors st = load_safetensors(kGolden);
  const auto entries = golden_entries(fx);
  ASSERT_EQ(st.tensors.size(), entries.size());
  EXPECT_EQ(st.metadata.at("format"), "pt");
  EXPECT_EQ(st.metadata.at("note"), "unicod\xC3\xA9 \"quoted\"\nline\\");
  EXPECT_EQ(st.metadata.at("\xC3\xBC" "ber"), "\x1f");
  for (const auto& e : entries) {
    SCOPED_TRACE(e.name);
    auto it = st.tensors.find(e.name);
    ASSERT_NE(it, st.tensors.end());
    const TensorData& t = it->second;
    EXPECT_EQ(dtype_name(t.dtype), e.dtype);
    EXPECT_EQ(t.shape, Shape(e.shape));
    const std::string v = e.record + ".value";
    switch (t.dtype) {
      case DType::F32: EXPECT_TRUE(t.bytes == TensorData::from(fx.get<float>(v)).bytes); break;
      case DType::F64: EXPECT_TRUE(t.bytes == TensorData::from(fx.get<double>(v)).bytes); break;
      case DType::I64: EXPECT_TRUE(t.bytes == TensorData::from(fx.get<std::int64_t>(v)).bytes); break;
      case DType::I32: EXPECT_TRUE(t.bytes == TensorData::from(fx.get<std::int32_t>(v)).bytes); break;
      case DType::I8: EXPECT_TRUE(t.bytes == TensorData::from(fx.get<std::int8_t>(v)).bytes); break;
      case DType::U8: EXPECT_TRUE(t.bytes == TensorData::from(fx.get<std::uint8_t>(v)).bytes); break;
      case DType::F16:
      case DType::BF16: {
        // Widening matches PyTorch's exactly; the stored bits are PyTorch's.
        const auto want = fx.get<float>(v);
        const auto got = t.to_float();
        for (Index i = 0; i < want.numel(); ++i) EXPECT_EQ(got[i], want[i]) << i;
        const auto bits = fx.get<std::int32_t>(e.record + ".bits");
        for (Index i = 0; i < bits.numel(); ++i) {
          std::uint16_t b;
          std::memcpy(&b, t.bytes.data() + 2 * i, 2);
          EXPECT_EQ(b, static_cast<std::uint16_t>(bits[i])) << i;
        }
        break;
      }
    }
  }
}

TEST(SafetensorsGoldenTest, WriterReproducesTheGoldenFileByteForByte) {
  // Rebuild the tensors from the fixture (F16/BF16 from their float values,
  // converted by our rounding) and serialise: the bytes must equal the
  // golden file, which follows the reference writer's conventions.
  const auto fx = test::Fixture::load("safetensors_golden.qawfix");
  TensorDict d;
  for (const auto& e : golden_entries(fx)) {
    const std::string v = e.record + ".value";
    TensorData t;
    if (e.dtype == "F32") t = TensorData::from(fx.get<float>(v));
    else if (e.dtype == "F64") t = TensorData::from(fx.get<double>(v));
    else if (e.dtype == "I64") t = TensorData::from(fx.get<std::int64_t>(v));
    else if (e.dtype == "I32") t = TensorData::from(fx.get<std::int32_t>(v));
    else if (e.dtype == "I8") t = TensorData::from(fx.get<std::int8_t>(v));
    else if (e.dtype == "U8") t = TensorData::from(fx.get<std::uint8_t>(v));
    else if (e.dtype == "F16") t = TensorData::from_float(fx.get<float>(v), DType::F16);
    else if (e.dtype == "BF16") t = TensorData::from_float(fx.get<float>(v), DType::BF16);
    else FAIL() << e.dtype;
    // The fixture format stores rank-0 values as [1] (numpy's
    // ascontiguousarray); the recorded shape is authoritative.
    ASSERT_EQ(t.numel(), Shape(e.shape).numel());
    t.shape = Shape(e.shape);
    d.emplace(e.name, std::move(t));
  }
  const Metadata md = load_safetensors(kGolden).metadata;
  const auto ours = serialize_safetensors(d, md);
  EXPECT_EQ(ours, test::read_bytes(kGolden));
  // Optional: write it out for tools/gen_safetensors_golden.py --check.
  if (const char* out = std::getenv("QAWARE_WRITE_GOLDEN_COPY")) save_safetensors(out, d, md);
}

TEST(SafetensorsGoldenTest, HeaderOnlyRead) {
  const SafetensorsHeader h = read_safetensors_header(kGolden);
  EXPECT_EQ(h.tensors.size(), 12u);
  const auto& q = h.tensors.at("encoder.layer.0.attention.self.query.weight");
  EXPECT_EQ(q.dtype, DType::F32);
  EXPECT_EQ(q.shape, Shape({4, 3}));
  EXPECT_EQ(q.end - q.begin, 48u);
  EXPECT_EQ(h.data_start() + h.data_size, test::read_bytes(kGolden).size());
}

// ---------------------------------------------------------------------------
// Atomic writes.

TEST(SafetensorsAtomicTest, ReplacesAnExistingFile) {
  ScratchDir dir;
  const std::string p = dir.file("w.safetensors");
  save_safetensors(p, {{"a", TensorData::from(DynTensor<float>({2}, 1.0f))}});
  save_safetensors(p, {{"b", TensorData::from(DynTensor<float>({3}, 2.0f))}});
  const auto st = load_safetensors(p);
  EXPECT_EQ(st.tensors.count("a"), 0u);
  EXPECT_EQ(st.tensors.at("b").numel(), 3);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"w.safetensors"});
}

TEST(SafetensorsAtomicTest, FailedRenameLeavesNoTemporary) {
  // The target is a non-empty directory: the temporary is written, the rename
  // fails; the directory must be intact and the temporary gone.
  ScratchDir dir;
  const std::string target = dir.file("target");
  std::filesystem::create_directories(target + "/inner");
  EXPECT_THROW(save_safetensors(target, {{"a", TensorData::from(DynTensor<float>({2}, 1.0f))}}), Error);
  EXPECT_TRUE(std::filesystem::is_directory(target + "/inner"));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"target"});
}

TEST(SafetensorsAtomicTest, MissingDirectoryIsAnError) {
  ScratchDir dir;
  try {
    save_safetensors(dir.file("no/such/dir/x.safetensors"), {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot create temporary file"), std::string::npos) << e.what();
  }
}

#if defined(__unix__)
TEST(SafetensorsAtomicTest, FailingWriteLeavesTheOldFileIntact) {
  // A real short write: the process may not grow files beyond 4 KiB
  // (RLIMIT_FSIZE, SIGXFSZ ignored so write() fails with EFBIG).
  ScratchDir dir;
  const std::string p = dir.file("model.safetensors");
  save_safetensors(p, {{"old", TensorData::from(DynTensor<float>({4}, 3.0f))}});
  const auto old_bytes = test::read_bytes(p);

  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto* old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = saved;
  small.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  bool threw = false;
  std::string message;
  try {
    save_safetensors(p, {{"new", TensorData::from(DynTensor<float>({100000}, 1.0f))}});
  } catch (const Error& e) {
    threw = true;
    message = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, old_handler);

  EXPECT_TRUE(threw);
  EXPECT_NE(message.find("model.safetensors.tmp."), std::string::npos) << message;
  EXPECT_EQ(test::read_bytes(p), old_bytes);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"model.safetensors"});
  EXPECT_EQ(load_safetensors(p).tensors.at("old").to_float()[3], 3.0f);
}
#endif

TEST(SafetensorsTest, LargeRandomTensorsRoundTrip) {
  Rng rng(3);
  DynTensor<float> big({300, 257});
  init::normal(big, rng, 0.0, 1.0);
  ScratchDir dir;
  save_safetensors(dir.file("big.safetensors"), {{"w", TensorData::from(big)}});
  const auto back = load_safetensors(dir.file("big.safetensors")).tensors.at("w").as<float>();
  ASSERT_EQ(back.shape(), big.shape());
  EXPECT_EQ(std::memcmp(back.data(), big.data(), big.bytes()), 0);
}

}  // namespace
}  // namespace qaware::io
