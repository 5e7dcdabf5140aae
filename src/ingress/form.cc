#include "ingress/form.h"

#include <simdjson.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ingress/json_body.h"

namespace firebreak {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

Status AppendDecodedFormComponent(std::string_view encoded, std::string& out) {
  size_t plain_start = 0;
  for (size_t i = 0; i < encoded.size(); ++i) {
    const char c = encoded[i];
    if (c != '+' && c != '%') continue;
    out.append(encoded.substr(plain_start, i - plain_start));
    if (c == '+') {
      out.push_back(' ');
      plain_start = i + 1;
      continue;
    }
    const int high = i + 2 < encoded.size() ? HexValue(encoded[i + 1]) : -1;
    const int low = i + 2 < encoded.size() ? HexValue(encoded[i + 2]) : -1;
    if (high < 0 || low < 0) return InvalidArgument("invalid percent-encoding in form body");
    out.push_back(static_cast<char>((high << 4) | low));
    i += 2;
    plain_start = i + 1;
  }
  out.append(encoded.substr(plain_start));
  return Status::Ok();
}

Result<DecodedForm> DecodedForm::Decode(std::string_view body) {
  DecodedForm form;
  form.decoded_.reserve(body.size());  // decoding never lengthens a component
  size_t segment_start = 0;
  while (segment_start <= body.size()) {
    size_t segment_end = body.find('&', segment_start);
    if (segment_end == std::string_view::npos) segment_end = body.size();
    std::string_view segment = body.substr(segment_start, segment_end - segment_start);
    segment_start = segment_end + 1;
    if (segment.empty()) continue;

    const size_t equals = segment.find('=');
    std::string_view key = segment.substr(0, equals);
    std::string_view value =
        equals == std::string_view::npos ? std::string_view() : segment.substr(equals + 1);
    Field field;
    field.key_begin = form.decoded_.size();
    if (Status status = AppendDecodedFormComponent(key, form.decoded_); !status.ok()) {
      return status;
    }
    field.value_begin = form.decoded_.size();
    if (Status status = AppendDecodedFormComponent(value, form.decoded_); !status.ok()) {
      return status;
    }
    field.value_end = form.decoded_.size();
    // Each part on its own: two invalid halves can join into valid UTF-8.
    const char* data = form.decoded_.data();
    if (!simdjson::validate_utf8(data + field.key_begin, field.value_begin - field.key_begin) ||
        !simdjson::validate_utf8(data + field.value_begin, field.value_end - field.value_begin)) {
      return InvalidArgument("form body is not UTF-8");
    }
    form.fields_.push_back(field);
  }
  return form;
}

Result<std::string> FormToJsonObject(const DecodedForm& form, std::string_view json_field,
                                     std::optional<JsonBody>* json_field_document) {
  // Last wins: sort positions by key (stable, so equal keys stay in body order) and mark
  // every field of a run but the last. O(n log n) so that a body of many repeated or
  // distinct keys cannot make this quadratic.
  std::vector<bool> superseded(form.size(), false);
  if (form.size() > 1) {
    std::vector<uint32_t> order(form.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<uint32_t>(i);
    std::stable_sort(order.begin(), order.end(),
                     [&](uint32_t a, uint32_t b) { return form.key(a) < form.key(b); });
    for (size_t i = 0; i + 1 < order.size(); ++i) {
      if (form.key(order[i]) == form.key(order[i + 1])) superseded[order[i]] = true;
    }
  }

  std::string json;
  size_t decoded_size = 0;
  for (size_t i = 0; i < form.size(); ++i) decoded_size += form.key(i).size() + form.value(i).size();
  json.reserve(decoded_size + form.size() * 6 + 2);
  json.push_back('{');
  bool first = true;
  for (size_t i = 0; i < form.size(); ++i) {
    if (superseded[i]) continue;
    if (!first) json.push_back(',');
    first = false;
    std::string_view key = form.key(i);
    std::string_view value = form.value(i);
    AppendJsonString(json, key);
    json.push_back(':');
    if (!json_field.empty() && key == json_field) {
      Result<JsonBody> parsed = ParseJsonBody(value);
      if (!parsed.ok()) {
        return InvalidArgument("form field \"" + std::string(json_field) + "\" is not JSON");
      }
      if (json_field_document != nullptr) *json_field_document = *parsed;
      json.append(value);
    } else {
      AppendJsonString(json, value);
    }
  }
  json.push_back('}');
  return json;
}

Result<std::string> FormToJsonObject(std::string_view body, std::string_view json_field) {
  Result<DecodedForm> form = DecodedForm::Decode(body);
  if (!form.ok()) return form.status();
  return FormToJsonObject(*form, json_field);
}

bool MediaTypeIs(std::string_view content_type, std::string_view media_type) {
  std::string_view type = content_type.substr(0, content_type.find(';'));
  constexpr std::string_view kBlanks = " \t";
  const size_t begin = type.find_first_not_of(kBlanks);
  if (begin == std::string_view::npos) return media_type.empty();
  type = type.substr(begin, type.find_last_not_of(kBlanks) - begin + 1);
  if (type.size() != media_type.size()) return false;
  for (size_t i = 0; i < type.size(); ++i) {
    if (AsciiLower(type[i]) != AsciiLower(media_type[i])) return false;
  }
  return true;
}

}  // namespace firebreak
