// application/x-www-form-urlencoded bodies (Slack slash commands and interactivity,
// generic form webhooks) turned into the JSON object the job envelope carries.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "ingress/json_body.h"

namespace firebreak {

// Appends the decoded form component `encoded` to `out`: '+' is a space and %XX a
// byte (either hex case). kInvalidArgument for a '%' not followed by two hex digits;
// `out` is then partly appended. Does not check UTF-8.
Status AppendDecodedFormComponent(std::string_view encoded, std::string& out);

// A form body decoded once: each field's key and value, in body order, as views into one
// buffer (a couple of allocations however many fields). Empty segments ("a=1&&b=2", a
// trailing '&') are skipped; a segment without '=' is a field with an empty value.
class DecodedForm {
 public:
  // kInvalidArgument for a bad %-escape, or a decoded key or value that is not UTF-8.
  static Result<DecodedForm> Decode(std::string_view body);

  size_t size() const { return fields_.size(); }
  std::string_view key(size_t i) const {
    return std::string_view(decoded_).substr(fields_[i].key_begin,
                                             fields_[i].value_begin - fields_[i].key_begin);
  }
  std::string_view value(size_t i) const {
    return std::string_view(decoded_).substr(fields_[i].value_begin,
                                             fields_[i].value_end - fields_[i].value_begin);
  }

 private:
  struct Field {
    size_t key_begin = 0;
    size_t value_begin = 0;  // also where the key ends
    size_t value_end = 0;
  };
  std::string decoded_;
  std::vector<Field> fields_;
};

// The form as a JSON object (as FormToJsonObject below, from fields already decoded).
// With `json_field_document`, the `json_field` value's parsed document is left there
// (nullopt when the form has no such field): it lives in the calling thread's parser,
// valid until the thread's next ParseJsonBody (json_body.h).
Result<std::string> FormToJsonObject(const DecodedForm& form, std::string_view json_field = {},
                                     std::optional<JsonBody>* json_field_document = nullptr);

// Decodes a form body into a JSON object string of its fields, e.g. "a=1&b=x+y" →
// {"a":"1","b":"x y"}. Empty segments ("a=1&&b=2", a trailing '&') are skipped, a
// segment without '=' is a field with an empty value, and a repeated key keeps its
// last value at the place of its last occurrence. If `json_field` is not empty and the
// form has a field of that name, its value must itself be JSON and is embedded as a
// JSON value rather than a string (Slack's interactivity `payload`).
// kInvalidArgument for a bad %-escape, a decoded key or value that is not UTF-8, or a
// `json_field` value that is not JSON. The message never quotes field values.
// Uses the calling thread's JSON parser (see json_body.h) when `json_field` is given.
Result<std::string> FormToJsonObject(std::string_view body, std::string_view json_field = {});

// True if the media type of `content_type` (the part before any ';' parameters, without
// surrounding blanks) equals `media_type`, ignoring ASCII case.
bool MediaTypeIs(std::string_view content_type, std::string_view media_type);

inline bool IsFormContentType(std::string_view content_type) {
  return MediaTypeIs(content_type, "application/x-www-form-urlencoded");
}

}  // namespace firebreak
