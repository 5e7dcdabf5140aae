// The JSON envelope a handler receives for one attempt (DESIGN §4).
#pragma once

#include <string>

#include "queue/job.h"

namespace firebreak {

// One line of JSON (no newline): id, type, source, dedupe_key, attempt, max_attempts,
// enqueued_at, deadline, traceparent, ordering_key (when set), headers, payload. The
// stored payload and headers are already JSON and are spliced in as they are.
// `deadline_ms` (Unix ms) is when the attempt's timeout kills it: a handler (the SDKs)
// can give up cleanly before that instead of being killed.
std::string BuildEnvelope(const Job& job, int64_t deadline_ms);

}  // namespace firebreak
