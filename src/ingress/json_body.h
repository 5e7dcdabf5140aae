// Request bodies as JSON: validation and a few lookups with simdjson's DOM parser.
// Each thread parses with its own parser and padded buffer, so ingress threads never
// share state and a steady request stream allocates nothing here once warmed up.
#pragma once

#include <simdjson.h>

#include <optional>
#include <string>
#include <string_view>

#include "common/json_string.h"
#include "common/status.h"

namespace firebreak {

// A parsed JSON document. It lives in the calling thread's parser: it and every
// string_view taken from it are valid only on this thread and only until the next
// ParseJsonBody call on it.
class JsonBody {
 public:
  explicit JsonBody(simdjson::dom::element root) : root_(root) {}

  simdjson::dom::element root() const { return root_; }
  bool IsObject() const { return root_.type() == simdjson::dom::element_type::OBJECT; }

  // The string at RFC 6901 `pointer`, or nullopt when it is missing or not a string.
  std::optional<std::string_view> StringAt(std::string_view pointer) const;

  // The value at `pointer` as key text: a string as it is, an integer in decimal.
  // kNotFound when missing; kInvalidArgument for any other type.
  Result<std::string> KeyTextAt(std::string_view pointer) const;

 private:
  simdjson::dom::element root_;
};

// Parses `text` (any JSON value; UTF-8 is validated). kInvalidArgument naming the
// parser's error when it is not exactly one well-formed JSON value. Never throws.
Result<JsonBody> ParseJsonBody(std::string_view text);

// True for "" and for pointers simdjson accepts: "/" segments whose '~' escapes are
// "~0" or "~1".
bool IsValidJsonPointer(std::string_view pointer);


}  // namespace firebreak
