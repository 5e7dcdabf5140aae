// Helpers shared by the queue tests (contract tests over every backend and the
// SQLite-specific ones): a temp dir, a job to enqueue and the timeout for bursts.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "queue/job.h"

namespace firebreak::queue_test {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "queue_test.XXXXXX").string();
    char* made = mkdtemp(pattern.data());
    if (made == nullptr) std::abort();
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// For tests that submit thousands of enqueues at once: the last waits for the whole
// burst, and queue.timeout (2 s by default) refuses an enqueue the store has not taken in
// time, as it would a webhook's. Under ASan with neighbour tests a burst of thousands
// takes longer than that. Tests of the timeout itself set their own.
constexpr std::chrono::milliseconds kBurstTimeout{30'000};

inline std::string JobId(int n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "job-%07d", n);
  return buf;
}

inline NewJob MakeJob(const std::string& id, const std::string& type = "test.event",
                      std::vector<std::string> keys = {}) {
  NewJob job;
  job.id = id;
  job.type = type;
  job.source = "hmac";
  job.dedupe_keys = std::move(keys);
  job.payload_json = R"({"n":")" + id + R"("})";
  job.headers_json = R"({"x-test":"1"})";
  job.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  job.max_attempts = 3;
  return job;
}

}  // namespace firebreak::queue_test
