#include "ingress/form.h"

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "ingress/json_body.h"

namespace firebreak {
namespace {

using nlohmann::json;

json FormJson(std::string_view body, std::string_view json_field = {}) {
  Result<std::string> object = FormToJsonObject(body, json_field);
  EXPECT_TRUE(object.ok()) << object.status().ToString();
  if (!object.ok()) return json();
  return json::parse(*object);  // throws (fails the test) if we produced invalid JSON
}

TEST(FormTest, DecodesFieldsInOrder) {
  Result<std::string> object = FormToJsonObject("a=1&b=two&c=3");
  ASSERT_TRUE(object.ok());
  EXPECT_EQ(*object, R"({"a":"1","b":"two","c":"3"})");
}

TEST(FormTest, PlusIsSpaceAndPercentEscapesAreBytes) {
  json j = FormJson("text=hello+world&sum=1%2B1%3D2&path=%2Fweather&mixed=%2f%2F");
  EXPECT_EQ(j["text"], "hello world");
  EXPECT_EQ(j["sum"], "1+1=2");
  EXPECT_EQ(j["path"], "/weather");
  EXPECT_EQ(j["mixed"], "//");
}

TEST(FormTest, InvalidPercentEscapesAreErrors) {
  for (std::string_view body : {"a=%zz", "a=%4", "a=%", "a=%g1", "%zz=1", "a=1&b=%%41"}) {
    Result<std::string> object = FormToJsonObject(body);
    ASSERT_FALSE(object.ok()) << body;
    EXPECT_EQ(object.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(FormTest, EmptyValuesAndMissingEquals) {
  json j = FormJson("text=&flag&empty=");
  EXPECT_EQ(j, json({{"text", ""}, {"flag", ""}, {"empty", ""}}));
}

TEST(FormTest, EmptySegmentsAndEmptyBodyAreSkipped) {
  EXPECT_EQ(*FormToJsonObject(""), "{}");
  EXPECT_EQ(*FormToJsonObject("&&"), "{}");
  EXPECT_EQ(*FormToJsonObject("a=1&&b=2&"), R"({"a":"1","b":"2"})");
}

TEST(FormTest, RepeatedKeyLastWinsAtItsLastPosition) {
  EXPECT_EQ(*FormToJsonObject("a=1&b=2&a=3"), R"({"b":"2","a":"3"})");
  EXPECT_EQ(*FormToJsonObject("a=1&a=2&a="), R"({"a":""})");
  // Keys compare after decoding.
  EXPECT_EQ(*FormToJsonObject("a+b=1&a%20b=2"), R"({"a b":"2"})");
}

TEST(FormTest, ManyRepeatedKeysStayFast) {
  std::string body;
  for (int i = 0; i < 100'000; ++i)
    body += "k" + std::to_string(i % 1000) + "=" + std::to_string(i) + "&";
  auto start = std::chrono::steady_clock::now();
  json j = FormJson(body);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(j.size(), 1000u);
  EXPECT_EQ(j["k7"], "99007");
  EXPECT_LT(elapsed, std::chrono::seconds(2));
}

TEST(FormTest, Utf8IsKeptAndInvalidUtf8Rejected) {
  json j = FormJson("name=%C3%A9t%C3%A9&raw=\xC3\xA9&emoji=%F0%9F%98%80");
  EXPECT_EQ(j["name"], "\xC3\xA9t\xC3\xA9");
  EXPECT_EQ(j["raw"], "\xC3\xA9");
  EXPECT_EQ(j["emoji"], "\xF0\x9F\x98\x80");

  for (std::string_view body : {"a=%FF", "a=%C3", "%C3=%A9", "a=\xFF", "a=%ED%A0%80"}) {
    Result<std::string> object = FormToJsonObject(body);
    ASSERT_FALSE(object.ok()) << body;
    EXPECT_EQ(object.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(FormTest, SpecialCharactersAreEscapedIntoValidJson) {
  Result<std::string> object =
      FormToJsonObject("q=%22quoted%22%5C&nl=a%0Ab&nul=%00&tab=%09&bell=%07");
  ASSERT_TRUE(object.ok());
  EXPECT_EQ(*object,
            R"({"q":"\"quoted\"\\","nl":"a\nb","nul":"\u0000","tab":"\t","bell":"\u0007"})");
  json j = json::parse(*object);
  EXPECT_EQ(j["nul"].get<std::string>(), std::string(1, '\0'));
}

TEST(FormTest, JsonFieldIsEmbeddedAsAValue) {
  json j = FormJson("payload=%7B%22type%22%3A%22block_actions%22%2C%22n%22%3A1%7D&x=1", "payload");
  ASSERT_TRUE(j["payload"].is_object());
  EXPECT_EQ(j["payload"]["type"], "block_actions");
  EXPECT_EQ(j["payload"]["n"], 1);
  EXPECT_EQ(j["x"], "1");
  // Without naming the field it stays a string.
  json plain = FormJson("payload=%7B%7D");
  EXPECT_EQ(plain["payload"], "{}");
}

TEST(FormTest, MalformedJsonFieldIsAnError) {
  for (std::string_view body : {"payload=%7Bnope", "payload=", "payload=%7B%7D%7B%7D"}) {
    Result<std::string> object = FormToJsonObject(body, "payload");
    ASSERT_FALSE(object.ok()) << body;
    EXPECT_EQ(object.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(FormTest, MediaTypeIgnoresCaseBlanksAndParameters) {
  EXPECT_TRUE(IsFormContentType("application/x-www-form-urlencoded"));
  EXPECT_TRUE(IsFormContentType(" Application/X-WWW-Form-Urlencoded ; charset=utf-8"));
  EXPECT_FALSE(IsFormContentType("application/json"));
  EXPECT_FALSE(IsFormContentType(""));
  EXPECT_TRUE(MediaTypeIs("application/json; charset=utf-8", "application/json"));
  EXPECT_FALSE(MediaTypeIs("application/jsonx", "application/json"));
  EXPECT_FALSE(MediaTypeIs("text/plain", "application/json"));
}

TEST(JsonBodyTest, AcceptsOneValueAndRejectsEverythingElse) {
  EXPECT_TRUE(ParseJsonBody(R"({"a":[1,2,{"b":null}]})").ok());
  EXPECT_TRUE(ParseJsonBody(" 42 ").ok());
  for (std::string_view text : {"", "{", "{}x", "{}{}", "{'a':1}", "[1,]", "\"\xFF\""}) {
    Result<JsonBody> parsed = ParseJsonBody(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
  }
  std::string deep(5000, '[');
  EXPECT_FALSE(ParseJsonBody(deep + std::string(5000, ']')).ok());
}

TEST(JsonBodyTest, LooksUpStringsAndKeyText) {
  Result<JsonBody> parsed =
      ParseJsonBody(R"({"id":"abc","n":42,"big":18446744073709551615,"neg":-7,"f":1.5,)"
                    R"("o":{"a/b":"slash","t~":"tilde"},"list":["x"]})");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->StringAt("/id"), "abc");
  EXPECT_EQ(parsed->StringAt("/n"), std::nullopt);
  EXPECT_EQ(parsed->StringAt("/missing"), std::nullopt);
  EXPECT_EQ(parsed->StringAt("/o/a~1b"), "slash");
  EXPECT_EQ(parsed->StringAt("/o/t~0"), "tilde");
  EXPECT_EQ(parsed->StringAt("/list/0"), "x");
  EXPECT_EQ(*parsed->KeyTextAt("/id"), "abc");
  EXPECT_EQ(*parsed->KeyTextAt("/n"), "42");
  EXPECT_EQ(*parsed->KeyTextAt("/big"), "18446744073709551615");
  EXPECT_EQ(*parsed->KeyTextAt("/neg"), "-7");
  EXPECT_EQ(parsed->KeyTextAt("/f").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed->KeyTextAt("/o").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed->KeyTextAt("/nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(parsed->KeyTextAt("/id/deeper").status().code(), StatusCode::kNotFound);
}

TEST(JsonBodyTest, ValidatesPointers) {
  EXPECT_TRUE(IsValidJsonPointer(""));
  EXPECT_TRUE(IsValidJsonPointer("/a/0/~0~1"));
  EXPECT_FALSE(IsValidJsonPointer("a"));
  EXPECT_FALSE(IsValidJsonPointer("/a~"));
  EXPECT_FALSE(IsValidJsonPointer("/a~2"));
}

TEST(JsonBodyTest, EscapesStrings) {
  std::string out;
  AppendJsonString(out, "a\"b\\c\n\x01\xC3\xA9");
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\n\\u0001\xC3\xA9\"");
  EXPECT_EQ(json::parse(out).get<std::string>(), "a\"b\\c\n\x01\xC3\xA9");
}

TEST(JsonBodyTest, ThreadsParseIndependently) {
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &failures] {
      for (int i = 0; i < 2000; ++i) {
        std::string id = std::to_string(t) + "-" + std::to_string(i);
        std::string text = R"({"id":")" + id + R"(","pad":")" + std::string(i % 300, 'x') + "\"}";
        Result<JsonBody> parsed = ParseJsonBody(text);
        if (!parsed.ok() || parsed->StringAt("/id") != id) ++failures[t];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

}  // namespace
}  // namespace firebreak
