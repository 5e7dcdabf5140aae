// What per-key concurrency costs the queue (issue 17): ingest + drain of a backlog whose
// jobs carry a key (50 chats, concurrency_per_key = 2, the acceptance scenario) against
// the same jobs without one, on sqlite and on Redis. A keyed enqueue counts its key's
// line; a keyed success moves the next job of its key up. Each iteration enqueues 2,000
// jobs (the keys round-robin) and drains them 64 at a time, as a worker with 64 slots
// would. bench/flow_bench.sh runs it with a Redis of its own and prints the ratio.
#include <benchmark/benchmark.h>

#include <string>

#include "queue/queue.h"
#include "queue_bench_util.h"

namespace firebreak {
namespace {

constexpr int kBurst = 2000;
constexpr int kSlots = 64;

NewJob ChatJob(int64_t n, int keys) {
  NewJob job;
  job.id = "flow-" + std::to_string(n);
  job.type = "chat.reply";
  job.source = "telegram";
  job.dedupe_keys = {"tg:" + std::to_string(n)};
  const std::string chat = std::to_string(-100000 - n % std::max(keys, 50));
  job.search_keys = {"telegram.chat:" + chat};
  job.payload_json = R"({"update_id":)" + std::to_string(n) + R"(,"message":{"chat":{"id":)" +
                     chat + R"(},"text":")" + std::string(300, 'x') + R"("}})";
  job.headers_json = "{}";
  job.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  if (keys > 0) {
    job.ordering_key = std::to_string(n % keys);
    job.key_limit = 2;
  }
  return job;
}

void BM_KeyedIngestDrain(benchmark::State& state, const std::string& backend) {
  const int keys = static_cast<int>(state.range(0));
  bench::RunIngestDrain(state, backend, /*retention=*/false, kBurst, "chat.reply", kSlots,
                        [keys](int64_t n) { return ChatJob(n, keys); });
}
// keys: 0 = no key; 50 = 50 keys, two of a key at once (40 jobs of each key per burst:
// most of them wait parked and move up one by one); 2000 = a key per job in a burst
// (what carrying a key costs when keys do not collide, as with many quiet chats).
BENCHMARK_CAPTURE(BM_KeyedIngestDrain, sqlite, std::string("sqlite"))
    ->ArgName("keys")
    ->Arg(0)
    ->Arg(50)
    ->Arg(2000)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_KeyedIngestDrain, redis, std::string("redis"))
    ->ArgName("keys")
    ->Arg(0)
    ->Arg(50)
    ->Arg(2000)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace firebreak
