// Runs LimitStore operations on one thread of their own, so the egress thread never
// blocks on Redis or SQLite: the egress posts a task, the task runs the (blocking) store
// call here and posts its answer back to the egress io_context.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "egress/shared/limit_store.h"

namespace firebreak::egress {

class LimitRunner {
 public:
  using Task = std::function<void(LimitStore&)>;

  // Owns `store`; starts the thread.
  explicit LimitRunner(std::unique_ptr<LimitStore> store);
  ~LimitRunner();  // Stop()
  LimitRunner(const LimitRunner&) = delete;
  LimitRunner& operator=(const LimitRunner&) = delete;

  // Thread-safe. Tasks run in the order posted, one at a time. After Stop, dropped.
  void Post(Task task);
  // Runs what is queued (releases of a stopping process), then joins. Idempotent.
  void Stop();

  // Names this process's lease holders: random, so tokens of processes on other hosts
  // never collide.
  const std::string& instance() const { return instance_; }
  const char* backend() const { return backend_; }

 private:
  void Loop();

  std::unique_ptr<LimitStore> store_;  // used by the thread only
  const char* backend_;
  const std::string instance_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> tasks_;  // guarded by mu_
  bool stopping_ = false;   // guarded by mu_
  std::thread thread_;
};

}  // namespace firebreak::egress
