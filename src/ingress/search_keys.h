// Search keys: what an operator finds a job by (NewJob::search_keys, "name:value"), taken
// by each source from the payload it already parsed, so finding them costs a few lookups
// in a document that is there anyway. docs/search-keys.md lists the keys per kind.
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "queue/job.h"

namespace firebreak {

class DecodedForm;

// The keys of one job, bounded whatever the payload holds. Not thread-safe (one per
// request).
class SearchKeys {
 public:
  static constexpr size_t kMaxKeys = kMaxSearchKeys;
  // A longer value is not an id an operator would type; it is left out, not cut (a cut
  // value matches nothing and could make two values one).
  static constexpr size_t kMaxValueBytes = kMaxSearchKeyValueBytes;

  SearchKeys() = default;
  // Goes on from keys already taken (kept as they are).
  explicit SearchKeys(std::vector<std::string> keys) : keys_(std::move(keys)) {}

  // Adds "name:value". An empty or over-long value, a key already present and any key
  // past kMaxKeys are ignored.
  void Add(std::string_view name, std::string_view value);
  // A string as it is, an integer in decimal (exact for the whole int64 and uint64
  // range: Telegram's negative chat ids); any other type is ignored.
  void Add(std::string_view name, simdjson::dom::element value);
  // The value at RFC 6901 `pointer` under `root`, as above; nothing when it is missing.
  // With `or_id`, an object there gives its "id" member (Slack's event.user is an id, or
  // a user object in user_change).
  void AddAt(std::string_view name, simdjson::dom::element root, std::string_view pointer,
             bool or_id = false);

  const std::vector<std::string>& keys() const { return keys_; }
  std::vector<std::string> Take() { return std::move(keys_); }

 private:
  std::vector<std::string> keys_;
};

// "/data/object/customer" → "data.object.customer": the pointer without its leading '/',
// each further '/' a '.', and "~1" / "~0" read as '/' and '~'.
std::string SearchKeyName(std::string_view pointer);

// JSON pointers into a job's payload and the key name each gives, prepared once (a
// source's configured search_keys, or a kind's own keys): each pointer's first segment is
// kept apart for form bodies. Immutable once made: safe to share between threads.
class SearchKeyPointers {
 public:
  // A kind's own keys: each pointer with the key name it gives.
  struct NamedPointer {
    std::string_view name;
    std::string_view pointer;
    bool or_id = false;  // an object there gives its "id" (SearchKeys::AddAt)
  };

  // Configured pointers, each named by SearchKeyName. A pointer not starting with '/' (or
  // "") is skipped: the config refuses them.
  explicit SearchKeyPointers(const std::vector<std::string>& pointers);
  SearchKeyPointers(std::initializer_list<NamedPointer> named);
  bool empty() const { return entries_.empty(); }

  // The values at each pointer under `root` (the payload's parsed document).
  void AddFrom(simdjson::dom::element root, SearchKeys& keys) const;
  // A form body's payload (an object of its fields): a one-segment pointer names a field
  // (its last occurrence). A longer pointer reads below `json_field` when the form has
  // one and `json_document` is its value parsed (Slack's interactivity `payload`), and
  // matches nothing otherwise (every other field is a string).
  void AddFrom(const DecodedForm& form, SearchKeys& keys, std::string_view json_field = {},
               const simdjson::dom::element* json_document = nullptr) const;

 private:
  void Prepare(std::string name, std::string_view pointer, bool or_id);

  struct Entry {
    std::string pointer;
    std::string name;
    std::string field;  // the first segment, unescaped
    std::string rest;   // the pointer below the first segment ("" for one segment)
    bool or_id = false;
  };
  std::vector<Entry> entries_;
};

}  // namespace firebreak
