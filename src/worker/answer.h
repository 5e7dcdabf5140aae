// How a handler's answer is read (DESIGN §5): a command handler's answer line, and the
// per-job "results" of a batch answer (issue 17). Both share one reading of an outcome
// object: "ok", then "error", "retry", "retry_after" when it failed, or "actions" and
// "enqueue" when it succeeded.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "worker/handler.h"

namespace firebreak {

// The attempt record keeps errors up to this long (cut at a UTF-8 boundary).
inline constexpr size_t kMaxAnswerErrorBytes = 1000;

// `text` as a JSON string, cut to 80 bytes: for error messages about an answer.
std::string QuoteForError(std::string_view text);

// The parsed answer line of a command handler. A well-formed answer with a mismatched
// id, a non-boolean "ok", a non-array "actions" or "enqueue" or no JSON object at all
// is an error (a protocol violation: the caller kills the process). A "results" value
// (batch answers) is kept as JSON text, unchecked, in results_json.
Result<HandlerResult> ParseCommandAnswer(std::string_view line, std::string_view job_id);

// One outcome per job of a batch run, in the order of `job_ids` (the batch's jobs), from
// the handler's answer to the whole run:
// - kTimedOut and kDeferred answers apply to every job (a timeout kills the whole run);
// - otherwise a job listed in "results" gets its entry's outcome
//     {"id":"<job id>","ok":true,"actions":[...],"enqueue":[...]}
//     {"id":"<job id>","ok":false,"error":"...","retry":false,"retry_after":2}
//   and every other job gets the answer's own ok/error/retry/retry_after.
// kInvalidArgument, naming the problem, when "results" is not an array, an entry is not
// an object, has no string "id" naming a job of the batch, names one twice, has no
// boolean "ok", or has a bad "retry", "retry_after", "actions" or "enqueue"; and when the
// answer itself carries "actions" or "enqueue" (they belong to one job: put them in its
// entry). The caller fails every job of the batch then: nothing is dropped.
Result<std::vector<HandlerResult>> SplitBatchAnswer(const HandlerResult& answer,
                                                    const std::vector<std::string>& job_ids);

}  // namespace firebreak
