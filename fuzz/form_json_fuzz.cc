// Form bodies to JSON objects, JSON validation, and dedupe-key lookups by JSON pointer:
// must never crash, and whatever FormToJsonObject produces must be valid JSON.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ingress/form.h"
#include "ingress/json_body.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace firebreak;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // The first line is a JSON pointer to look up; the rest is the body.
  size_t newline = input.find('\n');
  std::string_view pointer = newline == std::string_view::npos ? "" : input.substr(0, newline);
  std::string_view body = newline == std::string_view::npos ? input : input.substr(newline + 1);

  Result<std::string> form = FormToJsonObject(body, "payload");
  if (form.ok() && !ParseJsonBody(*form).ok()) std::abort();  // produced invalid JSON
  Result<std::string> plain = FormToJsonObject(body);
  if (plain.ok() && !ParseJsonBody(*plain).ok()) std::abort();

  Result<JsonBody> json = ParseJsonBody(body);
  if (json.ok() && IsValidJsonPointer(pointer)) {
    (void)json->KeyTextAt(pointer);
    (void)json->StringAt(pointer);
  }
  return 0;
}
