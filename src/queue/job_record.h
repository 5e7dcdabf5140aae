// What a backend does to a job on its way into the store, the same for every backend:
// queue.redact blanks payload values, and the search keys it indexes are completed with
// the links every job has (trace, parent, replay).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "queue/job.h"
#include "queue/queue.h"

namespace firebreak {

// What every backend's Enqueue and Finish do before handing a job to their writer
// thread (on the caller's thread): queue.redact on payloads, and a success's follow-ups
// (its actions) linked to it by parent_id.
void PrepareNewJob(NewJob& job, const std::vector<std::string>& redact);
void PrepareFinish(JobFinish& finish, const std::vector<std::string>& redact);

// The value that replaces a redacted one.
inline constexpr std::string_view kRedacted = "\"[redacted]\"";

// `payload` with the value at each JSON pointer in `pointers` replaced by "[redacted]"
// (objects and arrays as a whole). Pointers that match nothing are skipped; a payload
// that is not JSON is returned unchanged (ingress only stores JSON).
std::string RedactPayload(std::string_view payload, const std::vector<std::string>& pointers);

// Most keys one job is indexed under (ingress's kMaxSearchKeys and the three links),
// and the longest key; longer ones are cut.
inline constexpr size_t kMaxIndexedKeys = kMaxSearchKeys + 3;
inline constexpr size_t kMaxIndexedKeyBytes = 256;

// The keys a backend indexes `job` under: its search_keys, then "trace:<trace id>",
// "parent:<parent_id>" and "replay_of:<replay_of>" when present; no duplicates, no
// newlines (the stored form joins them with '\n'), at most kMaxIndexedKeys.
std::vector<std::string> IndexedSearchKeys(const NewJob& job);

// The keys of a stored job that came from ingress (IndexedSearchKeys without the link
// keys it added): what a rerun of the job carries over.
std::vector<std::string> IngressSearchKeys(const std::vector<std::string>& indexed);

// '\n'-joined, as stored in one column or hash field, and back.
std::string JoinSearchKeys(const std::vector<std::string>& keys);
std::vector<std::string> SplitSearchKeys(std::string_view joined);

}  // namespace firebreak
