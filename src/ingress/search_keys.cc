#include "ingress/search_keys.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <utility>

#include "ingress/form.h"

namespace firebreak {
namespace {

// `segment` of a JSON pointer with "~1" and "~0" read as '/' and '~'.
void AppendUnescaped(std::string_view segment, std::string& out) {
  for (size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] == '~' && i + 1 < segment.size()) {
      out.push_back(segment[i + 1] == '1' ? '/' : '~');
      ++i;
    } else {
      out.push_back(segment[i]);
    }
  }
}

template <typename Integer>
void AddInteger(SearchKeys& keys, std::string_view name, Integer number) {
  char digits[24];
  auto [end, error] = std::to_chars(digits, digits + sizeof digits, number);
  if (error == std::errc()) keys.Add(name, std::string_view(digits, end - digits));
}

}  // namespace

void SearchKeys::Add(std::string_view name, std::string_view value) {
  if (value.empty() || value.size() > kMaxValueBytes || keys_.size() >= kMaxKeys) return;
  const size_t size = name.size() + 1 + value.size();
  const bool present = std::any_of(keys_.begin(), keys_.end(), [&](const std::string& key) {
    return key.size() == size && std::string_view(key).substr(0, name.size()) == name &&
           key[name.size()] == ':' && std::string_view(key).substr(name.size() + 1) == value;
  });
  if (present) return;
  if (keys_.empty()) keys_.reserve(4);
  std::string& key = keys_.emplace_back();
  key.reserve(size);
  key.append(name).push_back(':');
  key.append(value);
}

void SearchKeys::Add(std::string_view name, simdjson::dom::element value) {
  switch (value.type()) {
    case simdjson::dom::element_type::STRING: {
      std::string_view text;
      if (value.get(text) == simdjson::SUCCESS) Add(name, text);
      return;
    }
    case simdjson::dom::element_type::INT64: {
      int64_t number = 0;
      if (value.get(number) == simdjson::SUCCESS) AddInteger(*this, name, number);
      return;
    }
    case simdjson::dom::element_type::UINT64: {
      uint64_t number = 0;
      if (value.get(number) == simdjson::SUCCESS) AddInteger(*this, name, number);
      return;
    }
    default:
      return;
  }
}

void SearchKeys::AddAt(std::string_view name, simdjson::dom::element root, std::string_view pointer,
                       bool or_id) {
  simdjson::dom::element value;
  if (root.at_pointer(pointer).get(value) != simdjson::SUCCESS) return;
  if (or_id && value.type() == simdjson::dom::element_type::OBJECT &&
      value.at_key("id").get(value) != simdjson::SUCCESS) {
    return;
  }
  Add(name, value);
}

std::string SearchKeyName(std::string_view pointer) {
  if (!pointer.empty() && pointer.front() == '/') pointer.remove_prefix(1);
  std::string name;
  name.reserve(pointer.size());
  while (true) {
    const size_t slash = pointer.find('/');
    AppendUnescaped(pointer.substr(0, slash), name);
    if (slash == std::string_view::npos) break;
    name.push_back('.');
    pointer.remove_prefix(slash + 1);
  }
  return name;
}

SearchKeyPointers::SearchKeyPointers(const std::vector<std::string>& pointers) {
  entries_.reserve(pointers.size());
  for (const std::string& pointer : pointers) Prepare(SearchKeyName(pointer), pointer, false);
}

SearchKeyPointers::SearchKeyPointers(std::initializer_list<NamedPointer> named) {
  entries_.reserve(named.size());
  for (const NamedPointer& entry : named)
    Prepare(std::string(entry.name), entry.pointer, entry.or_id);
}

void SearchKeyPointers::Prepare(std::string name, std::string_view pointer, bool or_id) {
  if (pointer.empty() || pointer.front() != '/') return;  // the config accepts no other
  Entry entry;
  entry.pointer = pointer;
  entry.name = std::move(name);
  entry.or_id = or_id;
  const std::string_view below_root = pointer.substr(1);
  const size_t slash = below_root.find('/');
  AppendUnescaped(below_root.substr(0, slash), entry.field);
  if (slash != std::string_view::npos) entry.rest = below_root.substr(slash);
  entries_.push_back(std::move(entry));
}

void SearchKeyPointers::AddFrom(simdjson::dom::element root, SearchKeys& keys) const {
  for (const Entry& entry : entries_) keys.AddAt(entry.name, root, entry.pointer, entry.or_id);
}

void SearchKeyPointers::AddFrom(const DecodedForm& form, SearchKeys& keys,
                                std::string_view json_field,
                                const simdjson::dom::element* json_document) const {
  for (const Entry& entry : entries_) {
    if (!entry.rest.empty()) {
      if (json_document != nullptr && entry.field == json_field) {
        keys.AddAt(entry.name, *json_document, entry.rest, entry.or_id);
      }
      continue;
    }
    // The last occurrence: the one the payload's object keeps.
    for (size_t i = form.size(); i-- > 0;) {
      if (form.key(i) != entry.field) continue;
      keys.Add(entry.name, form.value(i));
      break;
    }
  }
}

}  // namespace firebreak
