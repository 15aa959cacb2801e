#pragma once
// Reader for the QAWFIX test fixtures written by tools/qaware_fixture.py (see
// that file for the layout). Every length field is checked against the bytes
// that remain, so a truncated or corrupt fixture fails with qaware::Error.

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "qaware/core/error.hpp"
#include "qaware/core/tensor.hpp"

#ifndef QAWARE_TEST_DATA_DIR
#error "QAWARE_TEST_DATA_DIR must name tests/data (set by tests/CMakeLists.txt)"
#endif

namespace qaware::test {

enum class FixtureDType : std::uint8_t { F32 = 1, F64 = 2, I64 = 3, I32 = 4, U8 = 5, I8 = 6 };

struct FixtureRecord {
  FixtureDType dtype;
  Shape shape;
  std::vector<unsigned char> bytes;
};

class Fixture {
 public:
  // Loads tests/data/<name>. The environment variable QAWARE_TEST_DATA_DIR,
  // when set, replaces the compiled-in folder (for test binaries copied to
  // another machine, e.g. scripts/gemm-device-bundle.sh).
  static Fixture load(const std::string& file) {
    const char* env = std::getenv("QAWARE_TEST_DATA_DIR");
    const std::string dir = env && *env ? env : QAWARE_TEST_DATA_DIR;
    return Fixture(dir + "/" + file);
  }

  explicit Fixture(const std::string& path) : path_(path) {
    std::ifstream in(path, std::ios::binary);
    QAWARE_CHECK(in.good(), "fixture: cannot open ", path,
                 " (regenerate it with the script in tools/ named in tests/data/README.md)");
    std::vector<unsigned char> buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    parse(buf);
  }

  bool has(const std::string& name) const { return records_.count(name) != 0; }
  const FixtureRecord& record(const std::string& name) const {
    auto it = records_.find(name);
    QAWARE_CHECK(it != records_.end(), "fixture ", path_, ": no record named '", name, "'");
    return it->second;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> n;
    for (const auto& kv : records_) n.push_back(kv.first);
    return n;
  }

  // The record as a DynTensor of T; T must match the stored dtype exactly.
  template <typename T>
  DynTensor<T> get(const std::string& name) const {
    const FixtureRecord& r = record(name);
    QAWARE_CHECK(r.dtype == dtype_of<T>(), "fixture ", path_, ": record '", name, "' has dtype code ",
                 static_cast<int>(r.dtype), ", requested ", static_cast<int>(dtype_of<T>()));
    DynTensor<T> t(r.shape);
    if (t.numel()) std::memcpy(t.data(), r.bytes.data(), r.bytes.size());
    return t;
  }
  // A float record converted to double (for double-precision references).
  DynTensor<double> get_as_double(const std::string& name) const {
    const FixtureRecord& r = record(name);
    if (r.dtype == FixtureDType::F64) return get<double>(name);
    if (r.dtype == FixtureDType::F32) return get<float>(name).cast<double>();
    QAWARE_CHECK(false, "fixture ", path_, ": record '", name, "' is not floating point");
    return {};
  }
  template <typename T>
  T scalar(const std::string& name) const {
    DynTensor<T> t = get<T>(name);
    QAWARE_CHECK(t.numel() == 1, "fixture ", path_, ": record '", name, "' is not a scalar: ", t.shape().str());
    return t[0];
  }

 private:
  template <typename T>
  static constexpr FixtureDType dtype_of() {
    if constexpr (std::is_same_v<T, float>) return FixtureDType::F32;
    else if constexpr (std::is_same_v<T, double>) return FixtureDType::F64;
    else if constexpr (std::is_same_v<T, std::int64_t>) return FixtureDType::I64;
    else if constexpr (std::is_same_v<T, std::int32_t>) return FixtureDType::I32;
    else if constexpr (std::is_same_v<T, std::uint8_t>) return FixtureDType::U8;
    else {
      static_assert(std::is_same_v<T, std::int8_t>, "unsupported fixture element type");
      return FixtureDType::I8;
    }
  }
  static std::size_t item_size(std::uint8_t code) {
    switch (code) {
      case 1: return 4;
      case 2: return 8;
      case 3: return 8;
      case 4: return 4;
      case 5: return 1;
      case 6: return 1;
      default: return 0;
    }
  }

  void parse(const std::vector<unsigned char>& b) {
    std::size_t pos = 0;
    auto need = [&](std::size_t n, const char* what) {
      QAWARE_CHECK(n <= b.size() - pos, "fixture ", path_, ": truncated while reading ", what, " at byte ", pos,
                   " (", b.size(), " bytes in file)");
    };
    auto read = [&](void* dst, std::size_t n, const char* what) {
      need(n, what);
      std::memcpy(dst, b.data() + pos, n);
      pos += n;
    };
    char magic[6];
    read(magic, 6, "magic");
    QAWARE_CHECK(std::memcmp(magic, "QAWFIX", 6) == 0, "fixture ", path_, ": bad magic (not a QAWFIX file)");
    std::uint16_t version = 0;
    std::uint32_t count = 0;
    read(&version, 2, "version");
    QAWARE_CHECK(version == 1, "fixture ", path_, ": unsupported version ", version, " (this reader knows 1)");
    read(&count, 4, "record count");
    for (std::uint32_t i = 0; i < count; ++i) {
      std::uint16_t name_len = 0;
      read(&name_len, 2, "name length");
      need(name_len, "name");
      std::string name(reinterpret_cast<const char*>(b.data() + pos), name_len);
      pos += name_len;
      std::uint8_t code = 0, rank = 0;
      read(&code, 1, "dtype");
      read(&rank, 1, "rank");
      const std::size_t isz = item_size(code);
      QAWARE_CHECK(isz != 0, "fixture ", path_, ": record '", name, "' has unknown dtype code ", int(code));
      QAWARE_CHECK(rank <= 8, "fixture ", path_, ": record '", name, "' has rank ", int(rank), " > 8");
      std::vector<Index> dims(rank);
      std::size_t numel = 1;
      for (auto& d : dims) {
        std::int64_t v = 0;
        read(&v, 8, "dims");
        QAWARE_CHECK(v >= 0 && v < (std::int64_t(1) << 40), "fixture ", path_, ": record '", name,
                     "' has dimension ", v);
        d = static_cast<Index>(v);
        numel *= static_cast<std::size_t>(v);
        QAWARE_CHECK(numel < (std::size_t(1) << 40), "fixture ", path_, ": record '", name, "' is too large");
      }
      FixtureRecord rec{static_cast<FixtureDType>(code), Shape(dims), {}};
      const std::size_t n = numel * isz;
      need(n, "data");
      rec.bytes.assign(b.begin() + static_cast<std::ptrdiff_t>(pos), b.begin() + static_cast<std::ptrdiff_t>(pos + n));
      pos += n;
      QAWARE_CHECK(records_.emplace(name, std::move(rec)).second, "fixture ", path_, ": duplicate record '", name, "'");
    }
    QAWARE_CHECK(pos == b.size(), "fixture ", path_, ": ", b.size() - pos, " trailing bytes after ", count, " records");
  }

  std::string path_;
  std::map<std::string, FixtureRecord> records_;
};

}  // namespace qaware::test
