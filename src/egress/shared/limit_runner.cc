#include "egress/shared/limit_runner.h"

#include "common/crypto.h"

namespace firebreak::egress {

LimitRunner::LimitRunner(std::unique_ptr<LimitStore> store)
    : store_(std::move(store)), backend_(store_->backend()), instance_(RandomHex(8)) {
  thread_ = std::thread([this] { Loop(); });
}

LimitRunner::~LimitRunner() { Stop(); }

void LimitRunner::Post(Task task) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void LimitRunner::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void LimitRunner::Loop() {
  for (;;) {
    Task task;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping, and everything queued has run
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task(*store_);
  }
}

}  // namespace firebreak::egress
