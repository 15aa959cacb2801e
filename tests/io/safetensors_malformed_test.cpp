// Malformed safetensors input: hand-made cases, each checked for the right
// message, and sweeps that mutate a valid file byte by byte and truncate it
// at every length. Nothing but qaware::Error may escape, and nothing may
// crash (the suite also runs under ASan/UBSan).

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "io/io_test_util.hpp"
#include "qaware/io/safetensors.hpp"

namespace qaware::io {
namespace {

// A file from a header text and a data buffer of `data_size` bytes.
std::vector<std::uint8_t> make_file(const std::string& header, std::size_t data_size) {
  std::vector<std::uint8_t> b(8 + header.size() + data_size, 0xAB);
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
  std::memcpy(b.data() + 8, header.data(), header.size());
  return b;
}

void expect_error(const std::vector<std::uint8_t>& file, const std::string& needle) {
  try {
    parse_safetensors(file.data(), file.size(), "case");
    FAIL() << "expected an Error containing: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}
void expect_error(const std::string& header, std::size_t data_size, const std::string& needle) {
  SCOPED_TRACE(header);
  expect_error(make_file(header, data_size), needle);
}

TEST(SafetensorsMalformedTest, LengthField) {
  expect_error(std::vector<std::uint8_t>{}, "too short for the 8-byte header length");
  expect_error(std::vector<std::uint8_t>{1, 0, 0}, "too short");
  auto f = make_file("{}", 0);
  f[0] = 200;
  expect_error(f, "header length 200 exceeds the 2 bytes");
  std::vector<std::uint8_t> huge(16, 0);
  huge[7] = 0x80;  // 2^63
  expect_error(huge, "exceeds the limit of 100000000");
  std::vector<std::uint8_t> over(16, 0);
  const std::uint64_t n = 100000001;
  std::memcpy(over.data(), &n, 8);
  expect_error(over, "header length 100000001 exceeds the limit");
  expect_error(make_file("", 0), "too short for a JSON object");
  EXPECT_NO_THROW(parse_safetensors(make_file("{}", 0).data(), 10));
  EXPECT_NO_THROW(parse_safetensors(make_file("{}      ", 0).data(), 16));
}

TEST(SafetensorsMalformedTest, HeaderJson) {
  expect_error("{\"a\":", 0, "malformed header");
  expect_error("[]", 0, "not an object");
  expect_error("{} {}", 0, "unexpected data after");
  expect_error(std::string("{\"a\xff\":1}"), 0, "invalid UTF-8");
  expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, "duplicate key \"t\"");
  expect_error(std::string(200, '[') + std::string(200, ']'), 0, "nesting deeper");
}

TEST(SafetensorsMalformedTest, Entries) {
  expect_error("{\"t\":5}", 0, "entry of tensor 't' is a number");
  expect_error("{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 't' lacks dtype");
  expect_error("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "lacks shape");
  expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "lacks data_offsets");
  expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "unknown key 'x'");
  expect_error("{\"t\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "unsupported dtype 'F8_E4M3'");
  expect_error("{\"t\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unsupported dtype 'f32'");
  expect_error("{\"t\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unsupported dtype 7");
  expect_error("{\"__metadata__\":{\"a\":1}}", 0, "__metadata__ value of 'a' is a number");
  expect_error("{\"__metadata__\":[]}", 0, "__metadata__ is an array");
  const auto null_md = make_file("{\"__metadata__\":null}", 0);
  EXPECT_NO_THROW(parse_safetensors(null_md.data(), null_md.size()));
}

TEST(SafetensorsMalformedTest, Shapes) {
  expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "negative dimension -1");
  expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "dimension 1.5");
  expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, "shape of tensor 't' holds a string");
  expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":3,\"data_offsets\":[0,12]}}", 12, "is not an array");
  expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}", 4,
               "not an integer that fits in 64 bits");
  expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[18446744073709551615],\"data_offsets\":[0,4]}}", 4, "too large");
  expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, "overflows");
  expect_error("{\"t\":{\"dtype\":\"I64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4]}}", 4, "too large");
  std::string rank1025 = "{\"t\":{\"dtype\":\"F32\",\"shape\":[1";
  for (int i = 0; i < 1024; ++i) rank1025 += ",1";
  expect_error(rank1025 + "],\"data_offsets\":[0,4]}}", 4, "array longer than 1024 items");
  // A zero dimension makes the product 0 whatever follows.
  const auto zero = make_file("{\"t\":{\"dtype\":\"F32\",\"shape\":[0,9223372036854775807],\"data_offsets\":[0,0]}}", 0);
  EXPECT_NO_THROW(parse_safetensors(zero.data(), zero.size()));
}

TEST(SafetensorsMalformedTest, Offsets) {
  const std::string a = "\"a\":{\"dtype\":\"F32\",\"shape\":[2],";
  const std::string b = "\"b\":{\"dtype\":\"I8\",\"shape\":[3],";
  expect_error("{" + a + "\"data_offsets\":[0,4]}}", 8, "tensor 'a' (F32 [2]) needs 8 bytes but data_offsets [0, 4] span 4");
  expect_error("{" + a + "\"data_offsets\":[8,0]}}", 8, "begin > end");
  expect_error("{" + a + "\"data_offsets\":[0]}}", 8, "must be an array [begin, end]");
  expect_error("{" + a + "\"data_offsets\":[0,-8]}}", 8, "not non-negative integers");
  expect_error("{" + a + "\"data_offsets\":[8,16]}}", 8, "beyond the 8-byte data buffer");
  expect_error("{" + a + "\"data_offsets\":[4,12]}}", 12, "gap of 4 bytes before tensor 'a'");
  expect_error("{" + a + "\"data_offsets\":[0,8]}}", 9, "1 trailing bytes");
  expect_error("{" + a + "\"data_offsets\":[0,8]}," + b + "\"data_offsets\":[6,9]}}", 9,
               "tensor 'b' at data_offsets [6, 9] overlaps the previous tensor, which ends at 8");
  expect_error("{" + a + "\"data_offsets\":[0,8]}," + b + "\"data_offsets\":[0,3]}}", 11, "overlaps");
  expect_error("{" + a + "\"data_offsets\":[0,18446744073709551615]}}", 8, "needs 8 bytes");
  // In any order, contiguous: fine.
  const auto ok = make_file("{" + b + "\"data_offsets\":[8,11]}," + a + "\"data_offsets\":[0,8]}}", 11);
  const auto st = parse_safetensors(ok.data(), ok.size());
  EXPECT_EQ(st.tensors.at("b").bytes.size(), 3u);
}

TEST(SafetensorsMalformedTest, FilesOnDisk) {
  test::ScratchDir dir;
  EXPECT_THROW(load_safetensors(dir.file("missing.safetensors")), Error);
  test::write_bytes_to(dir.file("short"), {1, 2, 3});
  EXPECT_THROW(load_safetensors(dir.file("short")), Error);
  EXPECT_THROW(read_safetensors_header(dir.file("short")), Error);
  auto f = make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
  test::write_bytes_to(dir.file("ok"), f);
  EXPECT_NO_THROW(load_safetensors(dir.file("ok")));
  f.pop_back();
  test::write_bytes_to(dir.file("truncated"), f);
  try {
    load_safetensors(dir.file("truncated"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << "names the file: " << e.what();
    EXPECT_NE(std::string(e.what()).find("7-byte data buffer"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_safetensors(dir.file("")), Error);  // a directory
}

// ---------------------------------------------------------------------------
// Sweeps.

// A small valid file with several dtypes, metadata, a scalar, an empty
// tensor and a name with escapes.
std::vector<std::uint8_t> sample_file() {
  TensorDict d;
  d["w"] = TensorData::from(DynTensor<float>({2, 2}, 1.5f));
  d["h"] = TensorData::from_float(DynTensor<float>({3}, -2.0f), DType::F16);
  d["q"] = TensorData::from(DynTensor<std::int8_t>({5}, std::int8_t(-3)));
  d["s"] = TensorData::from(DynTensor<double>(Shape{}, 0.25));
  d["e"] = TensorData::from(DynTensor<std::int32_t>(Shape{0}));
  d["n\"\\\u00e9"] = TensorData::from(DynTensor<std::int64_t>({1}, std::int64_t(7)));
  return serialize_safetensors(d, {{"format", "pt"}, {"x", "\n"}});
}

// Parses and, when that succeeds, checks the result is self-consistent: it
// serialises and parses back to the same tensors.
void parse_must_not_crash(const std::vector<std::uint8_t>& b, std::size_t& accepted) {
  try {
    const Safetensors st = parse_safetensors(b.data(), b.size());
    ++accepted;
    for (const auto& [name, t] : st.tensors) ASSERT_EQ(t.bytes.size(), static_cast<std::size_t>(t.numel()) * dtype_size(t.dtype)) << name;
    const auto again = serialize_safetensors(st.tensors, st.metadata);
    const Safetensors st2 = parse_safetensors(again.data(), again.size());
    ASSERT_EQ(st2.tensors.size(), st.tensors.size());
    ASSERT_EQ(st2.metadata, st.metadata);
  } catch (const Error&) {
    // expected for most mutations
  }
  // Anything else propagates and fails the test.
}

TEST(SafetensorsMalformedTest, EveryByteMutationRaisesOnlyError) {
  const auto good = sample_file();
  ASSERT_LT(good.size(), 1024u);
  std::size_t accepted = 0, tried = 0;
  const std::uint8_t values[] = {0x00, 0xFF, '"', '\\', '{', '}', '[', ']', ',', ':', '-', '0', '9', ' ', 'u', 0x80, 0xC3};
  for (std::size_t i = 0; i < good.size(); ++i) {
    for (std::uint8_t v : values) {
      if (good[i] == v) continue;
      auto b = good;
      b[i] = v;
      parse_must_not_crash(b, accepted);
      ++tried;
    }
    for (int bit = 0; bit < 8; ++bit) {
      auto b = good;
      b[i] ^= static_cast<std::uint8_t>(1u << bit);
      parse_must_not_crash(b, accepted);
      ++tried;
    }
  }
  // Sanity: the sweep did reach both outcomes (data-buffer bytes and header
  // padding are free to change; most header bytes are not).
  EXPECT_GT(accepted, 0u);
  EXPECT_LT(accepted, tried);
}

TEST(SafetensorsMalformedTest, EveryTruncationRaisesError) {
  const auto good = sample_file();
  for (std::size_t len = 0; len < good.size(); ++len) {
    std::vector<std::uint8_t> b(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(len));
    EXPECT_THROW(parse_safetensors(b.data(), b.size()), Error) << "length " << len;
  }
  // And appending bytes is caught too (the buffer must be covered exactly).
  auto longer = good;
  longer.push_back(0);
  EXPECT_THROW(parse_safetensors(longer.data(), longer.size()), Error);
}

TEST(SafetensorsMalformedTest, LengthFieldSweep) {
  // Every plausible header length value against the same bytes.
  const auto good = sample_file();
  std::size_t accepted = 0;
  for (std::uint64_t n = 0; n < good.size() + 16; ++n) {
    auto b = good;
    for (int i = 0; i < 8; ++i) b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
    parse_must_not_crash(b, accepted);
  }
  EXPECT_GE(accepted, 1u);
}

}  // namespace
}  // namespace qaware::io
