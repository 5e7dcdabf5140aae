// Dispatch by job type, the answer object, and command mode (NDJSON on stdin/stdout).
#include <condition_variable>
#include <deque>
#include <iostream>
#include <thread>

#include "firebreak/sdk.h"

namespace firebreak {
namespace {

Json Failed(const std::string& error, bool retry, std::optional<double> after) {
  Json out = {{"ok", false}, {"error", error.empty() ? "handler failed" : error}, {"retry", retry}};
  if (after) out["retry_after"] = std::max(0.0, *after);
  return out;
}

std::string IdOf(const Json& json) {
  if (json.is_object()) {
    auto it = json.find("id");
    if (it != json.end() && it->is_string()) return it->get<std::string>();
  }
  return "";
}

}  // namespace

Bot::Bot(std::string sidecar_url) : sidecar_(std::move(sidecar_url)) {}

Bot& Bot::on(const std::string& type, Handler fn) {
  handlers_[type] = std::move(fn);
  return *this;
}

Json Bot::handle(const Json& envelope) const {
  if (envelope.is_object()) {
    auto batch = envelope.find("batch");
    if (batch != envelope.end() && batch->is_array()) {
      Json results = Json::array();
      for (const Json& job : *batch) {
        Json result = outcome(job);
        result["id"] = IdOf(job);
        results.push_back(std::move(result));
      }
      return {{"id", IdOf(envelope)}, {"ok", true}, {"results", std::move(results)}};
    }
  }
  Json answer = outcome(envelope);
  answer["id"] = IdOf(envelope);
  return answer;
}

Json Bot::outcome(const Json& json) const {
  Envelope envelope;
  try {
    envelope = Envelope::from_json(json);
  } catch (const std::exception& error) {
    return Failed(std::string("bad envelope: ") + error.what(), false, std::nullopt);
  }
  auto it = handlers_.find(envelope.type);
  if (it == handlers_.end()) it = handlers_.find("*");
  if (it == handlers_.end()) {
    return Failed("no handler for job type '" + envelope.type + "'", false, std::nullopt);
  }
  Context ctx(std::move(envelope), sidecar_);
  try {
    it->second(ctx);
  } catch (const Retry& retry) {
    return Failed(retry.what(), true, retry.after());
  } catch (const Reject& reject) {
    return Failed(reject.what(), false, std::nullopt);
  } catch (const SidecarError& error) {
    return Failed(error.what(), true, error.retry_after());
  } catch (const DeadlineNear& error) {
    return Failed(std::string("DeadlineNear: ") + error.what(), true, std::nullopt);
  } catch (const std::exception& error) {  // a bug or an upstream error: retried with backoff
    ctx.log.error("handler threw", {{"error", error.what()}});
    return Failed(error.what(), true, std::nullopt);
  } catch (...) {
    ctx.log.error("handler threw a non-exception");
    return Failed("handler threw a non-exception", true, std::nullopt);
  }
  Json answer = {{"ok", true}};
  if (!ctx.actions().empty()) answer["actions"] = ctx.actions();
  if (!ctx.enqueued().empty()) answer["enqueue"] = ctx.enqueued();
  return answer;
}

int Bot::run(int concurrency) {
  std::ios::sync_with_stdio(false);
  return run(std::cin, std::cout, concurrency);
}

int Bot::run(std::istream& in, std::ostream& out, int concurrency) {
  std::mutex out_mutex;
  auto answer = [&](const std::string& line) {
    Json envelope = Json::parse(line, nullptr, false);
    if (envelope.is_discarded()) {
      // No id to answer to: firebreak only writes JSON, so say so and carry on.
      std::lock_guard lock(out_mutex);
      std::cerr << "firebreak sdk: not an envelope: " << line.substr(0, 200) << "\n";
      return;
    }
    const std::string text = handle(envelope).dump(-1, ' ', false, Json::error_handler_t::replace);
    std::lock_guard lock(out_mutex);
    out << text << '\n' << std::flush;
  };
  auto blank = [](const std::string& line) {
    return line.find_first_not_of(" \t\r") == std::string::npos;
  };

  std::string line;
  if (concurrency <= 1) {
    while (std::getline(in, line)) {
      if (!blank(line)) answer(line);
    }
    return 0;
  }
  // Lines wait here for one of `concurrency` threads; the reader stops taking more
  // once that many are waiting, so a slow handler holds back stdin, not memory.
  std::mutex mutex;
  std::condition_variable ready, room;
  std::deque<std::string> lines;
  bool closed = false;
  std::vector<std::thread> threads;
  for (int i = 0; i < concurrency; ++i) {
    threads.emplace_back([&] {
      for (;;) {
        std::string next;
        {
          std::unique_lock lock(mutex);
          ready.wait(lock, [&] { return closed || !lines.empty(); });
          if (lines.empty()) return;
          next = std::move(lines.front());
          lines.pop_front();
        }
        room.notify_one();
        answer(next);
      }
    });
  }
  while (std::getline(in, line)) {
    if (blank(line)) continue;
    std::unique_lock lock(mutex);
    room.wait(lock, [&] { return lines.size() < static_cast<size_t>(concurrency); });
    lines.push_back(std::move(line));
    ready.notify_one();
  }
  {
    std::lock_guard lock(mutex);
    closed = true;
  }
  ready.notify_all();
  for (std::thread& thread : threads) thread.join();
  return 0;
}

}  // namespace firebreak
