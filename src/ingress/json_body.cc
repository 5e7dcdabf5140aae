#include "ingress/json_body.h"

#include <cstring>

namespace firebreak {
namespace {

// One parser and one padded copy buffer per thread: simdjson needs SIMDJSON_PADDING
// readable bytes past the input, which a request body does not promise. Both keep the
// capacity of the largest body seen on the thread (bounded by server.max_body).
struct ThreadParser {
  simdjson::dom::parser parser;
  std::string padded;
};

ThreadParser& LocalParser() {
  thread_local ThreadParser local;
  return local;
}

}  // namespace

Result<JsonBody> ParseJsonBody(std::string_view text) {
  ThreadParser& local = LocalParser();
  const size_t needed = text.size() + simdjson::SIMDJSON_PADDING;
  if (local.padded.size() < needed) local.padded.resize(needed);
  if (!text.empty()) std::memcpy(local.padded.data(), text.data(), text.size());
  std::memset(local.padded.data() + text.size(), 0, simdjson::SIMDJSON_PADDING);

  simdjson::dom::element root;
  simdjson::error_code error =
      local.parser.parse(local.padded.data(), text.size(), /*realloc_if_needed=*/false).get(root);
  if (error != simdjson::SUCCESS) {
    return InvalidArgument(std::string("malformed JSON: ") + simdjson::error_message(error));
  }
  return JsonBody(root);
}

std::optional<std::string_view> JsonBody::StringAt(std::string_view pointer) const {
  std::string_view value;
  if (root_.at_pointer(pointer).get(value) != simdjson::SUCCESS) return std::nullopt;
  return value;
}

Result<std::string> JsonBody::KeyTextAt(std::string_view pointer) const {
  simdjson::dom::element value;
  if (root_.at_pointer(pointer).get(value) != simdjson::SUCCESS) {
    return NotFound("no value at " + std::string(pointer));
  }
  switch (value.type()) {
    case simdjson::dom::element_type::STRING: {
      std::string_view text;
      if (value.get(text) == simdjson::SUCCESS) return std::string(text);
      break;
    }
    case simdjson::dom::element_type::INT64: {
      int64_t number = 0;
      if (value.get(number) == simdjson::SUCCESS) return std::to_string(number);
      break;
    }
    case simdjson::dom::element_type::UINT64: {
      uint64_t number = 0;
      if (value.get(number) == simdjson::SUCCESS) return std::to_string(number);
      break;
    }
    default:
      break;
  }
  return InvalidArgument("value at " + std::string(pointer) + " is not a string or integer");
}

bool IsValidJsonPointer(std::string_view pointer) {
  if (pointer.empty()) return true;
  if (pointer.front() != '/') return false;
  for (size_t i = 0; i < pointer.size(); ++i) {
    if (pointer[i] != '~') continue;
    if (i + 1 >= pointer.size() || (pointer[i + 1] != '0' && pointer[i + 1] != '1')) return false;
  }
  return true;
}

}  // namespace firebreak
