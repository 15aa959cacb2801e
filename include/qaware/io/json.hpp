#pragma once
// A small, strict JSON reader and writer (RFC 8259) for file headers.
//
// parse() accepts exactly the JSON grammar: no comments, no trailing commas,
// no NaN, whitespace limited to space, tab, CR and LF. Strings must be valid
// UTF-8 (no overlong forms, no encoded surrogates, nothing above U+10FFFF);
// escapes include \uXXXX with surrogate pairs, and a lone surrogate is an
// error. Nesting deeper than `max_depth`, arrays longer than
// `max_array_items`, more than `max_values` values in the whole document
// (a bound on the tree's memory, which is about 100 bytes a value however
// short its text) and duplicate object keys are errors. Numbers keep their text; as_uint64() reads an exact non-negative
// integer. Every error is a qaware::Error naming the byte offset.
//
// dump() writes compact JSON, escaping as serde_json does (the writer of the
// reference safetensors implementation): \" \\ \b \f \n \r \t, other
// control characters as \u00xx, everything else (including non-ASCII UTF-8
// and '/') verbatim.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "qaware/core/error.hpp"

namespace qaware {
namespace io {
namespace json {

class Value {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };
  using Members = std::vector<std::pair<std::string, Value>>;

  Value() = default;
  static Value null() { return Value(); }
  static Value boolean(bool b) {
    Value v;
    v.type_ = Type::Bool;
    v.bool_ = b;
    return v;
  }
  // `text` must be a JSON number (checked by dump()).
  static Value number_text(std::string text) {
    Value v;
    v.type_ = Type::Number;
    v.text_ = std::move(text);
    return v;
  }
  static Value number(std::uint64_t n) { return number_text(std::to_string(n)); }
  static Value string(std::string s) {
    Value v;
    v.type_ = Type::String;
    v.text_ = std::move(s);
    return v;
  }
  static Value array(std::vector<Value> items = {}) {
    Value v;
    v.type_ = Type::Array;
    v.items_ = std::move(items);
    return v;
  }
  static Value object(Members members = {}) {
    Value v;
    v.type_ = Type::Object;
    v.members_ = std::move(members);
    return v;
  }

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_number() const { return type_ == Type::Number; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  bool as_bool() const {
    QAWARE_CHECK(is_bool(), "json: expected a boolean, got ", type_name(type_));
    return bool_;
  }
  const std::string& as_string() const {
    QAWARE_CHECK(is_string(), "json: expected a string, got ", type_name(type_));
    return text_;
  }
  const std::string& number_text() const {
    QAWARE_CHECK(is_number(), "json: expected a number, got ", type_name(type_));
    return text_;
  }
  // The number as an exact non-negative integer (no sign, fraction or
  // exponent; at most 2^64 - 1).
  std::uint64_t as_uint64() const {
    QAWARE_CHECK(is_number(), "json: expected a non-negative integer, got ", type_name(type_));
    QAWARE_CHECK(!text_.empty() && text_[0] != '-', "json: expected a non-negative integer, got ", text_);
    std::uint64_t n = 0;
    for (char c : text_) {
      QAWARE_CHECK(c >= '0' && c <= '9', "json: expected an integer, got ", text_);
      const std::uint64_t d = static_cast<std::uint64_t>(c - '0');
      QAWARE_CHECK(n <= (UINT64_MAX - d) / 10, "json: integer ", text_, " does not fit in 64 bits");
      n = n * 10 + d;
    }
    return n;
  }
  const std::vector<Value>& items() const {
    QAWARE_CHECK(is_array(), "json: expected an array, got ", type_name(type_));
    return items_;
  }
  std::vector<Value>& items() {
    QAWARE_CHECK(is_array(), "json: expected an array, got ", type_name(type_));
    return items_;
  }
  const Members& members() const {
    QAWARE_CHECK(is_object(), "json: expected an object, got ", type_name(type_));
    return members_;
  }
  Members& members() {
    QAWARE_CHECK(is_object(), "json: expected an object, got ", type_name(type_));
    return members_;
  }
  // The member named `key`, or nullptr.
  const Value* find(std::string_view key) const {
    for (const auto& kv : members())
      if (kv.first == key) return &kv.second;
    return nullptr;
  }

  static const char* type_name(Type t) {
    switch (t) {
      case Type::Null: return "null";
      case Type::Bool: return "a boolean";
      case Type::Number: return "a number";
      case Type::String: return "a string";
      case Type::Array: return "an array";
      case Type::Object: return "an object";
    }
    return "?";
  }

 private:
  Type type_ = Type::Null;
  bool bool_ = false;
  std::string text_;  // number text or string contents
  std::vector<Value> items_;
  Members members_;
};

namespace detail {

// Length of the valid UTF-8 sequence starting at s[i] (1..4), or 0 when the
// bytes there are not valid UTF-8 (RFC 3629 table).
inline std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  const std::size_t left = s.size() - i;
  auto cont = [&](std::size_t k) { return k < s.size() && (b(k) & 0xC0) == 0x80; };
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return left >= 2 && cont(i + 1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (left < 3 || !cont(i + 1) || !cont(i + 2)) return 0;
    const unsigned char c1 = b(i + 1);
    if (c == 0xE0 && c1 < 0xA0) return 0;  // overlong
    if (c == 0xED && c1 > 0x9F) return 0;  // UTF-16 surrogates
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (left < 4 || !cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    const unsigned char c1 = b(i + 1);
    if (c == 0xF0 && c1 < 0x90) return 0;  // overlong
    if (c == 0xF4 && c1 > 0x8F) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

inline void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Parser {
 public:
  Parser(std::string_view text, int max_depth, std::size_t max_array_items, std::size_t max_values = SIZE_MAX)
      : s_(text), max_depth_(max_depth), max_array_items_(max_array_items), max_values_(max_values) {}

  Value parse_document() {
    skip_ws();
    Value v = parse_value(0);
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected data after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    ::qaware::detail::fail(::qaware::detail::concat("json: ", what, " at byte ", pos_));
  }
  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return s_[pos_]; }
  void skip_ws() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) ++pos_;
  }
  void expect_literal(std::string_view lit) {
    if (s_.substr(pos_, lit.size()) != lit) fail("invalid literal");
    pos_ += lit.size();
  }

  Value parse_value(int depth) {
    if (at_end()) fail("unexpected end of input");
    if (++values_ > max_values_) fail(::qaware::detail::concat("more than ", max_values_, " values"));
    switch (peek()) {
      case '{': return parse_object(depth + 1);
      case '[': return parse_array(depth + 1);
      case '"': return Value::string(parse_string());
      case 't': expect_literal("true"); return Value::boolean(true);
      case 'f': expect_literal("false"); return Value::boolean(false);
      case 'n': expect_literal("null"); return Value::null();
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return parse_number();
        fail(::qaware::detail::concat("unexpected character 0x", hex2(static_cast<unsigned char>(peek()))));
    }
  }

  static std::string hex2(unsigned char c) {
    const char* d = "0123456789abcdef";
    return std::string{d[c >> 4], d[c & 15]};
  }

  Value parse_object(int depth) {
    if (depth > max_depth_) fail(::qaware::detail::concat("nesting deeper than ", max_depth_));
    ++pos_;  // {
    Value::Members members;
    std::unordered_set<std::string> keys;  // duplicate detection in O(1) per key
    skip_ws();
    if (!at_end() && peek() == '}') {
      ++pos_;
      return Value::object(std::move(members));
    }
    for (;;) {
      skip_ws();
      if (at_end() || peek() != '"') fail("expected a string key");
      const std::size_t key_pos = pos_;
      std::string key = parse_string();
      if (!keys.insert(key).second) {
        pos_ = key_pos;
        fail("duplicate key \"" + key + "\"");
      }
      skip_ws();
      if (at_end() || peek() != ':') fail("expected ':'");
      ++pos_;
      skip_ws();
      Value v = parse_value(depth);
      members.emplace_back(std::move(key), std::move(v));
      skip_ws();
      if (at_end()) fail("unterminated object");
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        return Value::object(std::move(members));
      }
      fail("expected ',' or '}'");
    }
  }

  Value parse_array(int depth) {
    if (depth > max_depth_) fail(::qaware::detail::concat("nesting deeper than ", max_depth_));
    ++pos_;  // [
    std::vector<Value> items;
    skip_ws();
    if (!at_end() && peek() == ']') {
      ++pos_;
      return Value::array(std::move(items));
    }
    for (;;) {
      skip_ws();
      if (items.size() == max_array_items_) fail(::qaware::detail::concat("array longer than ", max_array_items_, " items"));
      items.push_back(parse_value(depth));
      skip_ws();
      if (at_end()) fail("unterminated array");
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        return Value::array(std::move(items));
      }
      fail("expected ',' or ']'");
    }
  }

  Value parse_number() {
    const std::size_t start = pos_;
    auto digits = [&]() {
      const std::size_t b = pos_;
      while (!at_end() && peek() >= '0' && peek() <= '9') ++pos_;
      return pos_ - b;
    };
    if (peek() == '-') ++pos_;
    if (at_end()) fail("truncated number");
    if (peek() == '0') {
      ++pos_;
    } else if (digits() == 0) {
      fail("invalid number");
    }
    if (!at_end() && peek() == '.') {
      ++pos_;
      if (digits() == 0) fail("expected digits after '.'");
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      ++pos_;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++pos_;
      if (digits() == 0) fail("expected exponent digits");
    }
    return Value::number_text(std::string(s_.substr(start, pos_ - start)));
  }

  std::uint32_t parse_hex4() {
    if (s_.size() - pos_ < 4) fail("truncated \\u escape");
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<std::uint32_t>(c - 'A' + 10);
      else {
        --pos_;
        fail("invalid hex digit in \\u escape");
      }
    }
    return v;
  }

  std::string parse_string() {
    ++pos_;  // opening quote
    std::string out;
    for (;;) {
      if (at_end()) fail("unterminated string");
      const unsigned char c = static_cast<unsigned char>(peek());
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) fail("unescaped control character in string");
      if (c == '\\') {
        ++pos_;
        if (at_end()) fail("unterminated escape");
        const char e = s_[pos_++];
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            std::uint32_t cp = parse_hex4();
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              if (s_.substr(pos_, 2) != "\\u") fail("lone high surrogate in \\u escape");
              pos_ += 2;
              const std::uint32_t lo = parse_hex4();
              if (lo < 0xDC00 || lo > 0xDFFF) fail("invalid low surrogate in \\u escape");
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
              fail("lone low surrogate in \\u escape");
            }
            append_utf8(out, cp);
            break;
          }
          default: --pos_; fail("invalid escape");
        }
        continue;
      }
      const std::size_t n = utf8_sequence_length(s_, pos_);
      if (n == 0) fail("invalid UTF-8 in string");
      out.append(s_.substr(pos_, n));
      pos_ += n;
    }
  }

  std::string_view s_;
  std::size_t pos_ = 0;
  int max_depth_;
  std::size_t max_array_items_;
  std::size_t max_values_;
  std::size_t values_ = 0;
};

inline bool valid_number_text(std::string_view t) {
  std::size_t i = 0;
  auto digit = [&](std::size_t k) { return k < t.size() && t[k] >= '0' && t[k] <= '9'; };
  if (i < t.size() && t[i] == '-') ++i;
  if (!digit(i)) return false;
  if (t[i] == '0') ++i;
  else while (digit(i)) ++i;
  if (i < t.size() && t[i] == '.') {
    ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  return i == t.size();
}

}  // namespace detail

// True when s is valid UTF-8.
inline bool is_valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = detail::utf8_sequence_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

inline Value parse(std::string_view text, int max_depth = 64, std::size_t max_array_items = SIZE_MAX,
                   std::size_t max_values = SIZE_MAX) {
  return detail::Parser(text, max_depth, max_array_items, max_values).parse_document();
}

// Appends s as a JSON string literal. s must be valid UTF-8.
inline void append_string(std::string& out, std::string_view s) {
  QAWARE_CHECK(is_valid_utf8(s), "json: string is not valid UTF-8");
  out += '"';
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          const char* d = "0123456789abcdef";
          out += "\\u00";
          out += d[c >> 4];
          out += d[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

inline void dump_to(std::string& out, const Value& v) {
  switch (v.type()) {
    case Value::Type::Null: out += "null"; break;
    case Value::Type::Bool: out += v.as_bool() ? "true" : "false"; break;
    case Value::Type::Number:
      QAWARE_CHECK(detail::valid_number_text(v.number_text()), "json: '", v.number_text(), "' is not a JSON number");
      out += v.number_text();
      break;
    case Value::Type::String: append_string(out, v.as_string()); break;
    case Value::Type::Array: {
      out += '[';
      bool first = true;
      for (const Value& item : v.items()) {
        if (!first) out += ',';
        first = false;
        dump_to(out, item);
      }
      out += ']';
      break;
    }
    case Value::Type::Object: {
      out += '{';
      bool first = true;
      for (const auto& kv : v.members()) {
        if (!first) out += ',';
        first = false;
        append_string(out, kv.first);
        out += ':';
        dump_to(out, kv.second);
      }
      out += '}';
      break;
    }
  }
}

inline std::string dump(const Value& v) {
  std::string out;
  dump_to(out, v);
  return out;
}

}  // namespace json
}  // namespace io
}  // namespace qaware
