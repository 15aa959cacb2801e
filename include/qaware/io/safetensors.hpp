#pragma once
// Reader and writer of the safetensors format (Hugging Face).
//
// Layout: an 8-byte little-endian header length N, N bytes of JSON header,
// then the data buffer. The header is an object
//   {"__metadata__": {"key": "value", ...},            (optional, strings only)
//    "<tensor name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
// with offsets relative to the start of the data buffer. Tensors are stored
// row-major, little-endian, contiguous and non-overlapping, and together
// cover the buffer exactly.
//
// Reading never trusts a length field. Everything is validated before any
// tensor is allocated, and every malformed input raises qaware::Error naming
// the source, the tensor and the numbers involved:
//   N is at most 100,000,000 bytes (the reference implementation's limit) and
//   fits the file; the header is valid UTF-8 JSON (json.hpp: strict grammar,
//   nesting limit, no duplicate keys, arrays of at most 1024 items, i.e.
//   rank <= 1024); every entry has exactly the keys
//   dtype / shape / data_offsets; dtype is one of F32 F16 BF16 F64 I8 U8 I32
//   I64; dimensions are non-negative integers whose product, times the dtype
//   size, does not overflow; end - begin equals that size; sorted by begin,
//   the tensors start at 0, follow each other without gap or overlap, and end
//   where the file ends.
//
// Writing follows the reference writer byte for byte: tensors ordered by
// dtype alignment (descending, the reference's dtype order) then by name,
// "__metadata__" first with its keys sorted (the reference writes a hash map
// in arbitrary order), compact JSON, the header padded with spaces to a
// multiple of 8 bytes. Files are written to a temporary and renamed into
// place (atomic_file.hpp).
//
// Float dtypes convert to DynTensor<float> (to_float); F16 and BF16 round to
// nearest even when written from float (float16.hpp). The host must be
// little-endian (checked at compile time where the compiler says).

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "qaware/core/error.hpp"
#include "qaware/core/shape.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/io/atomic_file.hpp"
#include "qaware/io/float16.hpp"
#include "qaware/io/json.hpp"

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "qaware's safetensors IO assumes a little-endian host");
#endif

namespace qaware {
namespace io {

enum class DType : std::uint8_t { U8, I8, F16, BF16, I32, F32, F64, I64 };

// The reference implementation's order (its Dtype enum), used to sort
// tensors when writing: larger alignment first.
inline int dtype_order(DType d) { return static_cast<int>(d); }

inline std::size_t dtype_size(DType d) {
  switch (d) {
    case DType::U8:
    case DType::I8: return 1;
    case DType::F16:
    case DType::BF16: return 2;
    case DType::I32:
    case DType::F32: return 4;
    case DType::F64:
    case DType::I64: return 8;
  }
  return 0;
}

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::U8: return "U8";
    case DType::I8: return "I8";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::I64: return "I64";
  }
  return "?";
}

// Parses a dtype name; false when it is not one qaware supports.
inline bool dtype_from_name(std::string_view s, DType& out) {
  static const std::pair<const char*, DType> table[] = {{"U8", DType::U8},   {"I8", DType::I8},   {"F16", DType::F16},
                                                        {"BF16", DType::BF16}, {"I32", DType::I32}, {"F32", DType::F32},
                                                        {"F64", DType::F64}, {"I64", DType::I64}};
  for (const auto& [name, d] : table)
    if (s == name) {
      out = d;
      return true;
    }
  return false;
}

inline bool is_float_dtype(DType d) { return d == DType::F16 || d == DType::BF16 || d == DType::F32 || d == DType::F64; }

// The dtype that stores a C++ element type exactly.
template <typename T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>) return DType::F32;
  else if constexpr (std::is_same_v<T, double>) return DType::F64;
  else if constexpr (std::is_same_v<T, std::int32_t>) return DType::I32;
  else if constexpr (std::is_same_v<T, std::int64_t>) return DType::I64;
  else if constexpr (std::is_same_v<T, std::int8_t>) return DType::I8;
  else {
    static_assert(std::is_same_v<T, std::uint8_t>, "no safetensors dtype for this element type");
    return DType::U8;
  }
}

// One stored tensor: dtype, shape and its little-endian bytes.
struct TensorData {
  DType dtype = DType::F32;
  Shape shape;
  std::vector<std::uint8_t> bytes;  // numel * dtype_size(dtype)

  Index numel() const { return shape.numel(); }

  // A copy with element type T; T must be the stored type exactly.
  template <typename T>
  DynTensor<T> as() const {
    QAWARE_CHECK(dtype == dtype_of<T>(), "TensorData::as: stored dtype is ", dtype_name(dtype), ", requested ",
                 dtype_name(dtype_of<T>()), " (shape ", shape.str(), ")");
    check_size("as");
    DynTensor<T> out(shape);
    if (!bytes.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
    return out;
  }

  // The values as float: exact for F32, F16 and BF16, rounded to nearest
  // for F64. Integer dtypes are rejected (use as<T>()).
  DynTensor<float> to_float() const {
    QAWARE_CHECK(is_float_dtype(dtype), "TensorData::to_float: dtype ", dtype_name(dtype),
                 " is not a floating-point type (shape ", shape.str(), ")");
    check_size("to_float");
    DynTensor<float> out(shape);
    const Index n = numel();
    const std::uint8_t* b = bytes.data();
    switch (dtype) {
      case DType::F32:
        if (n) std::memcpy(out.data(), b, bytes.size());
        break;
      case DType::F64:
        for (Index i = 0; i < n; ++i) {
          double v;
          std::memcpy(&v, b + 8 * i, 8);
          out[i] = static_cast<float>(v);
        }
        break;
      case DType::F16:
      case DType::BF16:
        for (Index i = 0; i < n; ++i) {
          std::uint16_t h;
          std::memcpy(&h, b + 2 * i, 2);
          out[i] = dtype == DType::F16 ? half_bits_to_float(h) : bfloat16_bits_to_float(h);
        }
        break;
      default: break;
    }
    return out;
  }

  // Stores t exactly (dtype from T).
  template <typename T>
  static TensorData from(const DynTensor<T>& t) {
    TensorData d;
    d.dtype = dtype_of<T>();
    d.shape = t.shape();
    d.bytes.resize(t.bytes());
    if (!d.bytes.empty()) std::memcpy(d.bytes.data(), t.data(), t.bytes());
    return d;
  }
  template <typename T>
  static TensorData from(Shape shape, const T* data) {
    return from(DynTensor<T>::from(std::move(shape), data));
  }

  // Stores float values as F32, F64, F16 or BF16 (the last two round to
  // nearest even; see float16.hpp).
  static TensorData from_float(const DynTensor<float>& t, DType target) {
    QAWARE_CHECK(is_float_dtype(target), "TensorData::from_float: target dtype ", dtype_name(target),
                 " is not a floating-point type");
    if (target == DType::F32) return from(t);
    TensorData d;
    d.dtype = target;
    d.shape = t.shape();
    const Index n = t.numel();
    d.bytes.resize(static_cast<std::size_t>(n) * dtype_size(target));
    std::uint8_t* b = d.bytes.data();
    for (Index i = 0; i < n; ++i) {
      if (target == DType::F64) {
        const double v = t[i];
        std::memcpy(b + 8 * i, &v, 8);
      } else {
        const std::uint16_t h = target == DType::F16 ? float_to_half_bits(t[i]) : float_to_bfloat16_bits(t[i]);
        std::memcpy(b + 2 * i, &h, 2);
      }
    }
    return d;
  }

  void check_size(const char* what) const {
    QAWARE_CHECK(bytes.size() == static_cast<std::size_t>(numel()) * dtype_size(dtype), "TensorData::", what, ": ",
                 bytes.size(), " bytes for a ", dtype_name(dtype), " tensor of shape ", shape.str(), " (expected ",
                 static_cast<std::size_t>(numel()) * dtype_size(dtype), ")");
  }
};

using TensorDict = std::map<std::string, TensorData>;
using Metadata = std::map<std::string, std::string>;

// One header entry: where a tensor lives in the data buffer.
struct TensorInfo {
  DType dtype = DType::F32;
  Shape shape;
  std::uint64_t begin = 0;  // data_offsets, relative to the data buffer
  std::uint64_t end = 0;
};

struct SafetensorsHeader {
  Metadata metadata;
  std::map<std::string, TensorInfo> tensors;
  std::uint64_t header_length = 0;  // N
  std::uint64_t data_size = 0;      // bytes of the data buffer
  std::uint64_t data_start() const { return 8 + header_length; }
};

struct Safetensors {
  Metadata metadata;
  TensorDict tensors;
};

// The reference implementation's limit on N.
constexpr std::uint64_t kMaxSafetensorsHeader = 100000000;
// Largest tensor rank accepted when reading (the format sets none).
constexpr std::size_t kMaxSafetensorsRank = 1024;
// JSON values in one header: about 7 per tensor, so 2^20 allows some 150,000
// tensors (large language models have a few thousand) and bounds the parsed
// tree to about 100 MiB, whatever the header's 100 MB of text holds.
constexpr std::size_t kMaxSafetensorsHeaderValues = std::size_t(1) << 20;

namespace detail {

inline std::uint64_t read_le_u64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Validates the 8-byte length field against the total size.
inline std::uint64_t check_header_length(const std::uint8_t* first8, std::uint64_t total, const std::string& src) {
  QAWARE_CHECK(total >= 8, "safetensors ", src, ": ", total, " bytes is too short for the 8-byte header length");
  const std::uint64_t n = read_le_u64(first8);
  QAWARE_CHECK(n <= kMaxSafetensorsHeader, "safetensors ", src, ": header length ", n, " exceeds the limit of ",
               kMaxSafetensorsHeader, " bytes");
  QAWARE_CHECK(n <= total - 8, "safetensors ", src, ": header length ", n, " exceeds the ", total - 8,
               " bytes after the length field");
  QAWARE_CHECK(n >= 2, "safetensors ", src, ": header length ", n, " is too short for a JSON object");
  return n;
}

// Parses and validates the JSON header; data_size is the size of the data
// buffer (total - 8 - N), which the tensors must cover exactly.
inline SafetensorsHeader parse_header(std::string_view text, std::uint64_t data_size, const std::string& src) {
  SafetensorsHeader h;
  h.header_length = text.size();
  h.data_size = data_size;
  json::Value root;
  try {
    // Arrays in a header are shapes and offset pairs: capping their length
    // (rank <= kMaxSafetensorsRank) and the number of values bounds the
    // memory a hostile header of tiny values could make the JSON tree take.
    root = json::parse(text, 64, kMaxSafetensorsRank, kMaxSafetensorsHeaderValues);
  } catch (const Error& e) {
    ::qaware::detail::fail(::qaware::detail::concat("safetensors ", src, ": malformed header: ", e.what()));
  }
  QAWARE_CHECK(root.is_object(), "safetensors ", src, ": the header is ", json::Value::type_name(root.type()),
               ", not an object");
  struct Span {
    std::uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Span> spans;
  for (const auto& [name, entry] : root.members()) {
    if (name == "__metadata__") {
      if (entry.is_null()) continue;  // as the reference reader: an absent map
      QAWARE_CHECK(entry.is_object(), "safetensors ", src, ": __metadata__ is ", json::Value::type_name(entry.type()),
                   ", not an object of strings");
      for (const auto& [k, v] : entry.members()) {
        QAWARE_CHECK(v.is_string(), "safetensors ", src, ": __metadata__ value of '", k, "' is ",
                     json::Value::type_name(v.type()), ", not a string");
        h.metadata.emplace(k, v.as_string());
      }
      continue;
    }
    QAWARE_CHECK(entry.is_object(), "safetensors ", src, ": entry of tensor '", name, "' is ",
                 json::Value::type_name(entry.type()), ", not an object");
    const json::Value *dt = nullptr, *sh = nullptr, *off = nullptr;
    for (const auto& [k, v] : entry.members()) {
      if (k == "dtype") dt = &v;
      else if (k == "shape") sh = &v;
      else if (k == "data_offsets") off = &v;
      else ::qaware::detail::fail(::qaware::detail::concat("safetensors ", src, ": tensor '", name, "' has unknown key '", k, "'"));
    }
    QAWARE_CHECK(dt && sh && off, "safetensors ", src, ": tensor '", name, "' lacks ",
                 !dt ? "dtype" : !sh ? "shape" : "data_offsets");
    TensorInfo info;
    QAWARE_CHECK(dt->is_string() && dtype_from_name(dt->as_string(), info.dtype), "safetensors ", src, ": tensor '",
                 name, "' has unsupported dtype ", dt->is_string() ? "'" + dt->as_string() + "'" : json::dump(*dt),
                 " (supported: F32 F16 BF16 F64 I8 U8 I32 I64)");
    QAWARE_CHECK(sh->is_array(), "safetensors ", src, ": shape of tensor '", name, "' is not an array");
    std::vector<Index> dims;
    std::uint64_t numel = 1;
    for (const json::Value& d : sh->items()) {
      QAWARE_CHECK(d.is_number(), "safetensors ", src, ": shape of tensor '", name, "' holds ",
                   json::Value::type_name(d.type()));
      const std::string& t = d.number_text();
      QAWARE_CHECK(t[0] != '-', "safetensors ", src, ": tensor '", name, "' has negative dimension ", t);
      std::uint64_t v = 0;
      try {
        v = d.as_uint64();
      } catch (const Error&) {
        ::qaware::detail::fail(::qaware::detail::concat("safetensors ", src, ": tensor '", name, "' has dimension ", t,
                                                        ", not an integer that fits in 64 bits"));
      }
      QAWARE_CHECK(v <= static_cast<std::uint64_t>(std::numeric_limits<Index>::max()), "safetensors ", src,
                   ": tensor '", name, "' has dimension ", v, ", too large");
      QAWARE_CHECK(v == 0 || numel <= static_cast<std::uint64_t>(std::numeric_limits<Index>::max()) / v,
                   "safetensors ", src, ": the shape of tensor '", name, "' overflows (", json::dump(*sh), ")");
      numel *= v;
      dims.push_back(static_cast<Index>(v));
    }
    const std::uint64_t esize = dtype_size(info.dtype);
    QAWARE_CHECK(numel <= std::numeric_limits<std::uint64_t>::max() / esize, "safetensors ", src, ": tensor '", name,
                 "' of shape ", json::dump(*sh), " is too large");
    info.shape = Shape(std::move(dims));
    QAWARE_CHECK(off->is_array() && off->items().size() == 2, "safetensors ", src, ": data_offsets of tensor '", name,
                 "' must be an array [begin, end], got ", json::dump(*off));
    try {
      info.begin = off->items()[0].as_uint64();
      info.end = off->items()[1].as_uint64();
    } catch (const Error&) {
      ::qaware::detail::fail(::qaware::detail::concat("safetensors ", src, ": data_offsets of tensor '", name,
                                                      "' are not non-negative integers: ", json::dump(*off)));
    }
    QAWARE_CHECK(info.begin <= info.end, "safetensors ", src, ": tensor '", name, "' has data_offsets [", info.begin,
                 ", ", info.end, "] with begin > end");
    const std::uint64_t want = numel * esize;
    QAWARE_CHECK(info.end - info.begin == want, "safetensors ", src, ": tensor '", name, "' (", dtype_name(info.dtype),
                 " ", info.shape.str(), ") needs ", want, " bytes but data_offsets [", info.begin, ", ", info.end,
                 "] span ", info.end - info.begin);
    QAWARE_CHECK(info.end <= data_size, "safetensors ", src, ": tensor '", name, "' has data_offsets [", info.begin,
                 ", ", info.end, "] beyond the ", data_size, "-byte data buffer");
    auto [it, fresh] = h.tensors.emplace(name, std::move(info));
    QAWARE_CHECK(fresh, "safetensors ", src, ": duplicate tensor '", name, "'");  // json::parse rejects these first
    spans.push_back({it->second.begin, it->second.end, &it->first});
  }
  // Contiguous, non-overlapping, covering [0, data_size). Zero-size tensors
  // may sit anywhere a boundary is.
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::uint64_t cursor = 0;
  for (const Span& s : spans) {
    QAWARE_CHECK(s.begin >= cursor, "safetensors ", src, ": tensor '", *s.name, "' at data_offsets [", s.begin, ", ",
                 s.end, "] overlaps the previous tensor, which ends at ", cursor);
    QAWARE_CHECK(s.begin == cursor, "safetensors ", src, ": gap of ", s.begin - cursor, " bytes before tensor '",
                 *s.name, "' at data_offsets [", s.begin, ", ", s.end, "]");
    cursor = s.end;
  }
  QAWARE_CHECK(cursor == data_size, "safetensors ", src, ": the tensors cover ", cursor, " bytes but the data buffer has ",
               data_size, " (", data_size - cursor, " trailing bytes)");
  return h;
}

}  // namespace detail

// Parses a whole safetensors file held in memory.
inline Safetensors parse_safetensors(const void* data, std::size_t size, const std::string& source = "<memory>") {
  const auto* p = static_cast<const std::uint8_t*>(data);
  QAWARE_CHECK(p != nullptr || size == 0, "parse_safetensors: null data");
  const std::uint64_t n = detail::check_header_length(p, size, source);
  const SafetensorsHeader h = detail::parse_header(
      std::string_view(reinterpret_cast<const char*>(p + 8), static_cast<std::size_t>(n)), size - 8 - n, source);
  Safetensors out;
  out.metadata = h.metadata;
  const std::uint8_t* buf = p + 8 + n;
  for (const auto& [name, info] : h.tensors) {
    TensorData t;
    t.dtype = info.dtype;
    t.shape = info.shape;
    t.bytes.assign(buf + info.begin, buf + info.end);
    out.tensors.emplace(name, std::move(t));
  }
  return out;
}

namespace detail {

struct InFile {
  std::ifstream in;
  std::uint64_t size = 0;
  std::string path;

  explicit InFile(const std::string& p) : in(p, std::ios::binary), path(p) {
    QAWARE_CHECK(in.good(), "safetensors: cannot open ", p);
    in.seekg(0, std::ios::end);
    const auto end = in.tellg();
    QAWARE_CHECK(end >= 0, "safetensors: cannot determine the size of ", p);
    size = static_cast<std::uint64_t>(end);
    in.seekg(0, std::ios::beg);
  }
  void read(void* dst, std::uint64_t n, const char* what) {
    if (n == 0) return;
    in.read(static_cast<char*>(dst), static_cast<std::streamsize>(n));
    QAWARE_CHECK(in.good() && static_cast<std::uint64_t>(in.gcount()) == n, "safetensors ", path, ": short read of ",
                 what, " (", n, " bytes)");
  }
};

inline SafetensorsHeader read_header(InFile& f) {
  std::uint8_t len[8] = {0};
  QAWARE_CHECK(f.size >= 8, "safetensors ", f.path, ": ", f.size, " bytes is too short for the 8-byte header length");
  f.read(len, 8, "the header length");
  const std::uint64_t n = check_header_length(len, f.size, f.path);
  std::string text(static_cast<std::size_t>(n), '\0');
  f.read(text.data(), n, "the header");
  return parse_header(text, f.size - 8 - n, f.path);
}

}  // namespace detail

// Reads and validates only the header (8 + N bytes) of a file.
inline SafetensorsHeader read_safetensors_header(const std::string& path) {
  detail::InFile f(path);
  return detail::read_header(f);
}

inline Metadata read_safetensors_metadata(const std::string& path) { return read_safetensors_header(path).metadata; }

// Loads every tensor of a file. The header is validated against the file
// size before any tensor is allocated.
inline Safetensors load_safetensors(const std::string& path) {
  detail::InFile f(path);
  const SafetensorsHeader h = detail::read_header(f);
  std::vector<std::pair<const std::string*, const TensorInfo*>> order;
  for (const auto& kv : h.tensors) order.emplace_back(&kv.first, &kv.second);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.second->begin < b.second->begin; });
  Safetensors out;
  out.metadata = h.metadata;
  for (const auto& [name, info] : order) {
    TensorData t;
    t.dtype = info->dtype;
    t.shape = info->shape;
    t.bytes.resize(static_cast<std::size_t>(info->end - info->begin));
    f.read(t.bytes.data(), t.bytes.size(), name->c_str());
    out.tensors.emplace(*name, std::move(t));
  }
  return out;
}

namespace detail {

// Validates a dict for writing and returns the names in file order.
inline std::vector<const TensorDict::value_type*> write_order(const TensorDict& tensors, const Metadata& metadata,
                                                              const char* fn) {
  for (const auto& [k, v] : metadata) {
    QAWARE_CHECK(json::is_valid_utf8(k) && json::is_valid_utf8(v), fn, ": metadata entry '", k,
                 "' is not valid UTF-8");
  }
  std::vector<const TensorDict::value_type*> order;
  for (const auto& kv : tensors) {
    QAWARE_CHECK(kv.first != "__metadata__", fn, ": a tensor may not be named __metadata__");
    QAWARE_CHECK(json::is_valid_utf8(kv.first), fn, ": tensor name '", kv.first, "' is not valid UTF-8");
    kv.second.check_size(fn);
    order.push_back(&kv);
  }
  std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    const int da = dtype_order(a->second.dtype), db = dtype_order(b->second.dtype);
    return da != db ? da > db : a->first < b->first;
  });
  return order;
}

// The header JSON, padded with spaces to a multiple of 8.
inline std::string header_json(const std::vector<const TensorDict::value_type*>& order, const Metadata& metadata) {
  std::string out = "{";
  bool first = true;
  if (!metadata.empty()) {
    out += "\"__metadata__\":{";
    bool f2 = true;
    for (const auto& [k, v] : metadata) {
      if (!f2) out += ',';
      f2 = false;
      json::append_string(out, k);
      out += ':';
      json::append_string(out, v);
    }
    out += '}';
    first = false;
  }
  std::uint64_t offset = 0;
  for (const auto* kv : order) {
    if (!first) out += ',';
    first = false;
    json::append_string(out, kv->first);
    out += ":{\"dtype\":\"";
    out += dtype_name(kv->second.dtype);
    out += "\",\"shape\":[";
    for (int i = 0; i < kv->second.shape.rank(); ++i) {
      if (i) out += ',';
      out += std::to_string(kv->second.shape[i]);
    }
    const std::uint64_t end = offset + kv->second.bytes.size();
    out += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(end) + "]}";
    offset = end;
  }
  out += '}';
  out.resize((out.size() + 7) / 8 * 8, ' ');
  QAWARE_CHECK(out.size() <= kMaxSafetensorsHeader, "safetensors: the header would take ", out.size(),
               " bytes, above the limit of ", kMaxSafetensorsHeader);
  return out;
}

inline void put_le_u64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

}  // namespace detail

// The bytes of a safetensors file holding `tensors` and `metadata`.
inline std::vector<std::uint8_t> serialize_safetensors(const TensorDict& tensors, const Metadata& metadata = {}) {
  const auto order = detail::write_order(tensors, metadata, "serialize_safetensors");
  const std::string header = detail::header_json(order, metadata);
  std::size_t total = 8 + header.size();
  for (const auto* kv : order) total += kv->second.bytes.size();
  std::vector<std::uint8_t> out(total);
  detail::put_le_u64(out.data(), header.size());
  std::memcpy(out.data() + 8, header.data(), header.size());
  std::size_t pos = 8 + header.size();
  for (const auto* kv : order) {
    if (!kv->second.bytes.empty()) std::memcpy(out.data() + pos, kv->second.bytes.data(), kv->second.bytes.size());
    pos += kv->second.bytes.size();
  }
  return out;
}

// Writes `tensors` and `metadata` to `path` (atomically: temporary + rename).
inline void save_safetensors(const std::string& path, const TensorDict& tensors, const Metadata& metadata = {}) {
  const auto order = detail::write_order(tensors, metadata, "save_safetensors");
  const std::string header = detail::header_json(order, metadata);
  write_file_atomic(path, [&](std::FILE* f, const std::string& tmp) {
    std::uint8_t len[8];
    detail::put_le_u64(len, header.size());
    write_bytes(f, len, 8, tmp);
    write_bytes(f, header.data(), header.size(), tmp);
    for (const auto* kv : order) write_bytes(f, kv->second.bytes.data(), kv->second.bytes.size(), tmp);
  });
}

}  // namespace io
}  // namespace qaware
