// Fills a SQLite queue store with retained history through the queue API, the way a
// busy Slack bot leaves it: for the web console's render-time check with a million jobs
// (tests/browser, issue 16).
//
//   seed_history <queue.db> [jobs=1000000]
//
// Jobs are Slack events (type slack.event, source slack, keys slack.team/channel/user,
// 97 channels, 5,000 users) enqueued over the last 20 hours by a hand-set clock; each is
// claimed and finished: 1 in 100 goes dead with one of three errors, the rest succeed
// (kept by the 24 h retention). Prints what it stored and how long it took.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <future>
#include <iostream>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/crypto.h"
#include "config/config.h"
#include "queue/queue.h"

namespace firebreak {
namespace {

constexpr int kUsers = 5000;
constexpr int kChannels = 97;
constexpr int64_t kChunk = 20'000;
constexpr int64_t kSpanMs = 20LL * 3600 * 1000;

NewJob SlackJob(int64_t n, int64_t now_ms) {
  NewJob job;
  job.id = NewJobId(now_ms);
  job.type = "slack.event";
  job.source = "slack";
  const std::string event_id = "EvSeed" + std::to_string(n);
  job.dedupe_keys = {"slack:" + event_id};
  const std::string user = "U" + std::to_string(n % kUsers);
  const std::string channel = "C" + std::to_string(n % kChannels);
  job.search_keys = {"slack.team:T0001", "slack.channel:" + channel, "slack.user:" + user};
  job.payload_json = R"({"type":"event_callback","team_id":"T0001","event_id":")" + event_id +
                     R"(","event":{"type":"message","user":")" + user + R"(","channel":")" +
                     channel + R"(","text":"message )" + std::to_string(n) + R"("}})";
  job.headers_json = R"({"x-slack-request-timestamp":"1700000000"})";
  job.traceparent = NewTraceparent();
  return job;
}

bool EnqueueChunk(Queue& queue, FakeClock& clock, int64_t first, int64_t count, int64_t start_ms,
                  int64_t total) {
  std::atomic<int64_t> remaining{count};
  std::atomic<bool> ok{true};
  std::promise<void> done;
  for (int64_t i = first; i < first + count; ++i) {
    clock.Set(start_ms + kSpanMs * i / total);
    queue.Enqueue(SlackJob(i, clock.NowMs()), [&](EnqueueResult r) {
      if (!r.status.ok() || r.outcome != EnqueueOutcome::kAccepted) ok = false;
      if (remaining.fetch_sub(1) == 1) done.set_value();
    });
  }
  done.get_future().wait();
  return ok.load();
}

// Claims and finishes every ready job; returns how many went dead.
int64_t DrainChunk(Queue& queue, FakeClock& clock) {
  static const char* const kErrors[] = {
      "upstream 502 from crm for record cus_1234",
      "handler timed out after 10s",
      "slack chat.postMessage: channel_not_found (C042)",
  };
  static int64_t finished = 0;
  int64_t dead = 0;
  for (;;) {
    std::promise<Result<std::vector<Job>>> claimed;
    queue.Claim({{"slack.event", 256, 60'000}},
                [&](Result<std::vector<Job>> jobs) { claimed.set_value(std::move(jobs)); });
    Result<std::vector<Job>> jobs = claimed.get_future().get();
    if (!jobs.ok() || jobs->empty()) return dead;
    std::atomic<int64_t> remaining{static_cast<int64_t>(jobs->size())};
    std::promise<void> done;
    for (const Job& job : *jobs) {
      JobFinish finish;
      finish.job_id = job.id;
      finish.attempt = job.attempt;
      finish.record.attempt = job.attempt;
      finish.record.started_at_ms = clock.NowMs();
      const int64_t n = finished++;
      finish.record.duration_ms = 3 + n % 40;
      if (n % 100 == 0) {
        finish.disposition = Disposition::kDead;
        finish.record.outcome = "failed";
        finish.record.error = kErrors[(n / 100) % 3];
        ++dead;
      } else {
        finish.record.outcome = "succeeded";
      }
      queue.Finish(std::move(finish), [&](Status) {
        if (remaining.fetch_sub(1) == 1) done.set_value();
      });
    }
    done.get_future().wait();
  }
}

int Main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::cerr << "usage: seed_history <queue.db> [jobs=1000000]\n";
    return 2;
  }
  const int64_t total = argc == 3 ? std::atoll(argv[2]) : 1'000'000;
  if (total <= 0) {
    std::cerr << "seed_history: jobs must be a positive number\n";
    return 2;
  }
  QueueConfig config;
  config.backend = "sqlite";
  config.path = argv[1];
  config.durability = Durability::kProcess;
  config.max_depth = 0;
  config.retention = std::chrono::hours(24);
  config.timeout = std::chrono::milliseconds(60'000);
  FakeClock clock(SystemClock::Instance().NowMs() - kSpanMs);
  const int64_t start_ms = clock.NowMs();
  const auto began = std::chrono::steady_clock::now();
  Result<std::unique_ptr<Queue>> opened = OpenQueue(config, clock);
  if (!opened.ok()) {
    std::cerr << "seed_history: " << opened.status().ToString() << "\n";
    return 1;
  }
  std::unique_ptr<Queue> queue = std::move(opened).value();
  int64_t dead = 0;
  for (int64_t at = 0; at < total; at += kChunk) {
    if (!EnqueueChunk(*queue, clock, at, std::min(kChunk, total - at), start_ms, total)) {
      std::cerr << "seed_history: an enqueue failed at job " << at << "\n";
      return 1;
    }
    dead += DrainChunk(*queue, clock);
  }
  queue->Close();
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - began);
  std::cout << "seed_history: " << total << " jobs (" << dead << " dead) in " << argv[1] << ", "
            << took.count() << " ms\n";
  return 0;
}

}  // namespace
}  // namespace firebreak

int main(int argc, char** argv) { return firebreak::Main(argc, argv); }
