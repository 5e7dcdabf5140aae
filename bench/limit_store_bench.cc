// What one shared-limit operation costs (docs/egress.md "Shared limits"): a lease
// acquire + release and a rate-limit reservation, on the SQLite limits file and, when
// FIREBREAK_BENCH_REDIS_URL is set (e.g. redis://127.0.0.1:6379/0), on Redis. Against
// the per-process Bulkhead (no store at all) as the baseline.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "egress/limits.h"
#include "egress/shared/limit_store.h"

namespace firebreak::egress {
namespace {

std::unique_ptr<LimitStore> Store(bool redis) {
  QueueConfig queue;
  if (redis) {
    queue.backend = "redis";
    queue.url = std::getenv("FIREBREAK_BENCH_REDIS_URL");
  } else {
    queue.path = (std::filesystem::temp_directory_path() /
                  ("limit_bench." + std::to_string(getpid()) + ".db"))
                     .string();
  }
  return MakeLimitStore(queue, std::chrono::milliseconds(500));
}

void BM_ProcessBulkheadAcquireRelease(benchmark::State& state) {
  Bulkhead bulkhead(40, 1000);
  uint64_t ticket = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(bulkhead.Acquire(++ticket));
    benchmark::DoNotOptimize(bulkhead.Release());
  }
}
BENCHMARK(BM_ProcessBulkheadAcquireRelease);

void SharedAcquireRelease(benchmark::State& state, bool redis) {
  if (redis && std::getenv("FIREBREAK_BENCH_REDIS_URL") == nullptr) {
    state.SkipWithError("FIREBREAK_BENCH_REDIS_URL not set");
    return;
  }
  std::unique_ptr<LimitStore> store = Store(redis);
  int64_t i = 0;
  for (auto _ : state) {
    const std::string token = "bench:" + std::to_string(++i);
    auto grant = store->Acquire("bench", 40, 5'000, {token});
    if (!grant.ok() || grant->granted != 1) {
      state.SkipWithError("acquire failed");
      break;
    }
    (void)store->Release("bench", {token});
  }
  state.SetLabel(store->backend());
}

void BM_SharedAcquireReleaseSqlite(benchmark::State& state) { SharedAcquireRelease(state, false); }
BENCHMARK(BM_SharedAcquireReleaseSqlite)->UseRealTime();
void BM_SharedAcquireReleaseRedis(benchmark::State& state) { SharedAcquireRelease(state, true); }
BENCHMARK(BM_SharedAcquireReleaseRedis)->UseRealTime();

void BM_SharedReserveSqlite(benchmark::State& state) {
  std::unique_ptr<LimitStore> store = Store(false);
  GcraParams params = GcraFor(RateLimitConfig{"1000000/s", 1e6, 1'000'000});
  for (auto _ : state) benchmark::DoNotOptimize(store->Reserve("bench", params, 1'000'000).ok());
}
BENCHMARK(BM_SharedReserveSqlite)->UseRealTime();

}  // namespace
}  // namespace firebreak::egress
