// The JSON envelope a handler receives for one attempt (DESIGN §4).
#pragma once

#include <string>
#include <string_view>

#include "queue/job.h"

namespace firebreak {

// One line of JSON (no newline): id, type, source, dedupe_key, attempt, max_attempts,
// enqueued_at, traceparent, ordering_key (when set), headers, payload. The stored
// payload and headers are already JSON and are spliced in as they are.
std::string BuildEnvelope(const Job& job);

// The traceparent field of an envelope made by BuildEnvelope ("" if absent or invalid),
// found without parsing: BuildEnvelope writes it before headers and payload, so the
// first match is ours. Url handlers send it as the request's traceparent header.
std::string_view EnvelopeTraceparent(std::string_view envelope_json);

}  // namespace firebreak
