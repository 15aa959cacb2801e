// The strict JSON reader/writer used for safetensors headers.

#include <gtest/gtest.h>

#include <string>

#include "qaware/io/json.hpp"

namespace qaware::io::json {
namespace {

void expect_parse_error(const std::string& text, const std::string& needle) {
  try {
    parse(text);
    FAIL() << "expected an Error for: " << text;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "input: " << text << "\nmessage: " << e.what();
  }
}

void expect_parse_error_limit(const std::string& text, std::size_t max_values) {
  try {
    parse(text, 64, SIZE_MAX, max_values);
    ADD_FAILURE() << text << " parsed with max_values " << max_values;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("more than " + std::to_string(max_values) + " values"), std::string::npos)
        << e.what();
  }
}

TEST(JsonTest, ParsesEveryValueKind) {
  const Value v = parse(R"( {"a": [1, -2.5e+3, 0, true, false, null], "b": {"c": "d"}, "e": []} )");
  ASSERT_TRUE(v.is_object());
  ASSERT_EQ(v.members().size(), 3u);
  const auto& a = v.find("a")->items();
  ASSERT_EQ(a.size(), 6u);
  EXPECT_EQ(a[0].as_uint64(), 1u);
  EXPECT_EQ(a[1].number_text(), "-2.5e+3");
  EXPECT_EQ(a[2].as_uint64(), 0u);
  EXPECT_TRUE(a[3].as_bool());
  EXPECT_FALSE(a[4].as_bool());
  EXPECT_TRUE(a[5].is_null());
  EXPECT_EQ(v.find("b")->find("c")->as_string(), "d");
  EXPECT_TRUE(v.find("e")->items().empty());
  EXPECT_EQ(v.find("zzz"), nullptr);
  // Member order is kept.
  EXPECT_EQ(v.members()[0].first, "a");
  EXPECT_EQ(v.members()[2].first, "e");
}

TEST(JsonTest, DecodesEscapesAndUnicode) {
  const Value v = parse(R"("q\"b\\s\/n\nr\rt\tb\bf\f \u00e9\u4E2D\ud83d\ude00 é")");
  EXPECT_EQ(v.as_string(), "q\"b\\s/n\nr\rt\tb\bf\f \xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80 \xC3\xA9");
  EXPECT_EQ(parse(R"("\u0000")").as_string(), std::string(1, '\0'));
}

TEST(JsonTest, RejectsMalformedInput) {
  expect_parse_error("", "unexpected end");
  expect_parse_error("{", "expected a string key");
  expect_parse_error("{\"a\":1,}", "expected a string key");
  expect_parse_error("[1,]", "unexpected character");
  expect_parse_error("[1 2]", "expected ',' or ']'");
  expect_parse_error("{\"a\" 1}", "expected ':'");
  expect_parse_error("{\"a\":1 \"b\":2}", "expected ',' or '}'");
  expect_parse_error("{} x", "unexpected data after");
  expect_parse_error("01", "unexpected data after");
  expect_parse_error("-", "truncated number");
  expect_parse_error("1.", "expected digits after '.'");
  expect_parse_error("1e", "expected exponent digits");
  expect_parse_error("+1", "unexpected character");
  expect_parse_error("NaN", "unexpected character");
  expect_parse_error("tru", "invalid literal");
  expect_parse_error("\"abc", "unterminated string");
  expect_parse_error("\"a\nb\"", "unescaped control character");
  expect_parse_error("\"\\x\"", "invalid escape");
  expect_parse_error("\"\\u12G4\"", "invalid hex digit");
  expect_parse_error("\"\\u12\"", "truncated \\u escape");
  expect_parse_error("\"\\u12\"  ", "invalid hex digit");
  expect_parse_error("\"\\ud83d\"", "lone high surrogate");
  expect_parse_error("\"\\ud83d\\u0041\"", "invalid low surrogate");
  expect_parse_error("\"\\ude00\"", "lone low surrogate");
  expect_parse_error("{\"a\":1,\"a\":2}", "duplicate key \"a\"");
  expect_parse_error("/* c */ {}", "unexpected character");
  expect_parse_error("\xEF\xBB\xBF{}", "unexpected character");  // a byte-order mark is not JSON
}

TEST(JsonTest, RejectsInvalidUtf8) {
  expect_parse_error("\"\xC0\xAF\"", "invalid UTF-8");          // overlong '/'
  expect_parse_error("\"\xE0\x80\xAF\"", "invalid UTF-8");      // overlong
  expect_parse_error("\"\xED\xA0\x80\"", "invalid UTF-8");      // encoded surrogate
  expect_parse_error("\"\xF4\x90\x80\x80\"", "invalid UTF-8");  // above U+10FFFF
  expect_parse_error("\"\xC3\"", "invalid UTF-8");              // truncated
  expect_parse_error("\"\x80\"", "invalid UTF-8");              // stray continuation
  expect_parse_error("\"\xFF\"", "invalid UTF-8");
  EXPECT_FALSE(is_valid_utf8("\xC3"));
  EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));
}

TEST(JsonTest, NestingLimit) {
  std::string deep(64, '[');
  deep += std::string(64, ']');
  EXPECT_NO_THROW(parse(deep));
  std::string deeper(65, '[');
  deeper += std::string(65, ']');
  expect_parse_error(deeper, "nesting deeper than 64");
  // Far beyond the limit must fail cleanly, not overflow the stack.
  expect_parse_error(std::string(1000000, '['), "nesting deeper than 64");
  expect_parse_error(std::string(100000, '{') , "expected a string key");
}

TEST(JsonTest, ArrayLengthLimit) {
  EXPECT_EQ(parse("[1,2,3]", 64, 3).items().size(), 3u);
  EXPECT_THROW(parse("[1,2,3,4]", 64, 3), Error);
  EXPECT_EQ(parse("[]", 64, 0).items().size(), 0u);
  EXPECT_THROW(parse("[[]]", 64, 0), Error);
}

TEST(JsonTest, ValueCountLimit) {
  // Every value counts, containers and members included: [1,[2]] has 4.
  EXPECT_EQ(parse("[1,[2]]", 64, SIZE_MAX, 4).items().size(), 2u);
  expect_parse_error_limit("[1,[2]]", 3);
  expect_parse_error_limit("{\"a\":1,\"b\":2}", 2);
  EXPECT_NO_THROW(parse("{\"a\":1,\"b\":2}", 64, SIZE_MAX, 3));
}

TEST(JsonTest, IntegerAccess) {
  EXPECT_EQ(parse("18446744073709551615").as_uint64(), 18446744073709551615ull);
  EXPECT_THROW(parse("18446744073709551616").as_uint64(), Error);
  EXPECT_THROW(parse("-1").as_uint64(), Error);
  EXPECT_THROW(parse("1.0").as_uint64(), Error);
  EXPECT_THROW(parse("1e3").as_uint64(), Error);
  EXPECT_THROW(parse("\"1\"").as_uint64(), Error);
}

TEST(JsonTest, DumpEscapesLikeSerdeJsonAndRoundTrips) {
  Value::Members m;
  m.emplace_back("k\"\\\n\r\t\b\f\x01\x1f/\x7f\xC3\xA9", Value::string("v"));
  m.emplace_back("arr", Value::array({Value::number(0), Value::number(18446744073709551615ull), Value::null(),
                                      Value::boolean(true), Value::number_text("-1.5e-3")}));
  const Value v = Value::object(std::move(m));
  const std::string text = dump(v);
  EXPECT_EQ(text,
            "{\"k\\\"\\\\\\n\\r\\t\\b\\f\\u0001\\u001f/\x7f\xC3\xA9\":\"v\","
            "\"arr\":[0,18446744073709551615,null,true,-1.5e-3]}");
  EXPECT_EQ(dump(parse(text)), text);
  EXPECT_THROW(dump(Value::number_text("01")), Error);
  EXPECT_THROW(dump(Value::string("\xC3")), Error);
}

}  // namespace
}  // namespace qaware::io::json
