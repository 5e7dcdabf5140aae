// Shared by the queue benchmarks that run on either backend (history_bench.cc,
// flow_bench.cc): a temp dir, a bench QueueConfig, and burst enqueue / drain loops that
// wait for every callback, so a number includes the commits.
#pragma once

#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "config/config.h"
#include "queue/queue.h"

namespace firebreak::bench {

inline std::string TempPath(const char* name) {
  std::string pattern =
      (std::filesystem::temp_directory_path() / (std::string(name) + ".XXXXXX")).string();
  return mkdtemp(pattern.data()) != nullptr ? pattern : std::string();
}

// sqlite in `dir`, or the Redis named by FIREBREAK_BENCH_REDIS_URL; no depth limit.
inline QueueConfig BenchConfig(const std::string& backend, bool retention, const std::string& dir) {
  QueueConfig config;
  config.backend = backend;
  config.path = dir + "/queue.db";
  if (const char* url = getenv("FIREBREAK_BENCH_REDIS_URL")) config.url = url;
  config.durability = Durability::kProcess;
  config.max_depth = 0;
  config.retention = std::chrono::milliseconds(retention ? 24 * 3600 * 1000 : 0);
  config.timeout = std::chrono::milliseconds(30'000);
  return config;
}

// Enqueues make(first) .. make(first + count - 1) at once; true when all were accepted.
inline bool EnqueueAll(Queue& queue, int64_t first, int64_t count,
                       const std::function<NewJob(int64_t)>& make) {
  std::atomic<int64_t> remaining{count};
  std::atomic<bool> ok{true};
  std::promise<void> done;
  for (int64_t i = first; i < first + count; ++i) {
    queue.Enqueue(make(i), [&](EnqueueResult r) {
      if (!r.status.ok() || r.outcome != EnqueueOutcome::kAccepted) ok = false;
      if (remaining.fetch_sub(1) == 1) done.set_value();
    });
  }
  done.get_future().wait();
  return ok.load();
}

// Claims `slots` jobs of `type` at a time and succeeds each, until a claim comes back
// empty; returns how many ran. Adds the time spent waiting for claims to *claim_time.
inline int64_t DrainAll(Queue& queue, const std::string& type, int slots,
                        std::chrono::nanoseconds* claim_time = nullptr) {
  int64_t total = 0;
  for (;;) {
    std::promise<Result<std::vector<Job>>> claimed;
    const auto asked = std::chrono::steady_clock::now();
    queue.Claim({{type, slots, 60'000}},
                [&](Result<std::vector<Job>> jobs) { claimed.set_value(std::move(jobs)); });
    Result<std::vector<Job>> jobs = claimed.get_future().get();
    if (claim_time != nullptr) *claim_time += std::chrono::steady_clock::now() - asked;
    if (!jobs.ok() || jobs->empty()) return total;
    std::atomic<int64_t> remaining{static_cast<int64_t>(jobs->size())};
    std::promise<void> done;
    for (const Job& job : *jobs) {
      JobFinish finish;
      finish.job_id = job.id;
      finish.attempt = job.attempt;
      finish.record.duration_ms = 3;
      queue.Finish(std::move(finish), [&](Status) {
        if (remaining.fetch_sub(1) == 1) done.set_value();
      });
    }
    done.get_future().wait();
    total += static_cast<int64_t>(jobs->size());
  }
}

// The body of an ingest + drain benchmark: each iteration enqueues `burst` jobs from
// make(n) (ids unique across runs, which may share one Redis) and drains them `slots` at
// a time. The store is fresh for each run: sqlite in a temp dir, or the bench Redis
// (skipped when FIREBREAK_BENCH_REDIS_URL is not set).
inline void RunIngestDrain(benchmark::State& state, const std::string& backend, bool retention,
                           int64_t burst, const std::string& type, int slots,
                           const std::function<NewJob(int64_t)>& make) {
  if (backend == "redis" && getenv("FIREBREAK_BENCH_REDIS_URL") == nullptr) {
    state.SkipWithError("FIREBREAK_BENCH_REDIS_URL is not set");
    return;
  }
  const std::string dir = TempPath("queue_bench");
  std::unique_ptr<Queue> queue;
  {
    Result<std::unique_ptr<Queue>> opened =
        OpenQueue(BenchConfig(backend, retention, dir), SystemClock::Instance());
    if (!opened.ok()) {
      state.SkipWithError(opened.status().message().c_str());
      return;
    }
    queue = std::move(opened).value();
  }
  static std::atomic<int64_t> next{0};
  int64_t processed = 0;
  std::chrono::nanoseconds enqueue_time{0};
  std::chrono::nanoseconds drain_time{0};
  std::chrono::nanoseconds claim_time{0};
  for (auto _ : state) {
    const int64_t first = next.fetch_add(burst);
    const auto t0 = std::chrono::steady_clock::now();
    if (!EnqueueAll(*queue, first, burst, make)) {
      state.SkipWithError("an enqueue was not accepted");
      break;
    }
    const auto t1 = std::chrono::steady_clock::now();
    processed += DrainAll(*queue, type, slots, &claim_time);
    enqueue_time += t1 - t0;
    drain_time += std::chrono::steady_clock::now() - t1;
  }
  queue->Close();
  // The two halves apart, in µs per job: storing, and claiming + finishing (of which
  // claiming alone).
  const double jobs = static_cast<double>(std::max<int64_t>(1, processed));
  state.counters["enqueue_us"] =
      std::chrono::duration<double, std::micro>(enqueue_time).count() / jobs;
  state.counters["drain_us"] = std::chrono::duration<double, std::micro>(drain_time).count() / jobs;
  state.counters["claim_us"] = std::chrono::duration<double, std::micro>(claim_time).count() / jobs;
  if (processed != static_cast<int64_t>(state.iterations()) * burst) {
    state.SkipWithError("not every job was drained");
  }
  state.SetItemsProcessed(processed);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace firebreak::bench
