// net::AwaitWithin / OffloadWithin: an I/O coroutine resumes exactly once, with the value
// another thread delivers or with the fallback at its deadline, and never waits longer.
#include "net/await_within.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <thread>

namespace firebreak {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

struct Outcome {
  std::optional<int> value;
  milliseconds took{0};
  int resumed = 0;
};

// Runs `make()` (an awaitable<int>) as a coroutine on an io_context with two threads, like
// the ingress, until everything it started is done; `before_teardown` runs after that and
// before the io_context goes (a late delivery must find it still there, as in firebreak,
// where servers stop before the queue is closed).
template <typename Make>
Outcome RunCoroutine(Make make, const std::function<void()>& before_teardown = {}) {
  asio::io_context io;
  Outcome outcome;
  const auto start = Steady::now();
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto pending = make();
        int value = co_await std::move(pending);
        outcome.value = value;
        outcome.took = std::chrono::duration_cast<milliseconds>(Steady::now() - start);
        ++outcome.resumed;
      },
      asio::detached);
  std::thread second([&io] { io.run(); });
  io.run();
  second.join();
  if (before_teardown) before_teardown();
  return outcome;
}

TEST(AwaitWithinTest, ResumesWithAValueDeliveredFromAnotherThread) {
  std::thread worker;
  Outcome outcome = RunCoroutine(
      [&] {
        return net::AwaitWithin<int>(
            milliseconds(2'000),
            [&](auto deliver) {
              worker = std::thread([deliver] {
                std::this_thread::sleep_for(milliseconds(20));
                deliver(7);
              });
            },
            [] { return -1; });
      },
      [&] { worker.join(); });
  EXPECT_EQ(outcome.resumed, 1);
  EXPECT_EQ(outcome.value, 7);
  EXPECT_LT(outcome.took, milliseconds(1'000));  // not held until the deadline
}

TEST(AwaitWithinTest, ResumesWithTheFallbackAtTheDeadlineAndDropsALateValue) {
  std::thread late;
  std::atomic<bool> delivered{false};
  Outcome outcome = RunCoroutine(
      [&] {
        return net::AwaitWithin<int>(
            milliseconds(100),
            [&](auto deliver) {
              late = std::thread([deliver, &delivered] {
                std::this_thread::sleep_for(milliseconds(400));
                deliver(7);  // after the deadline: dropped, and harmless
                delivered = true;
              });
            },
            [] { return -1; });
      },
      [&] { late.join(); });
  EXPECT_EQ(outcome.resumed, 1);
  EXPECT_EQ(outcome.value, -1);
  EXPECT_GE(outcome.took, milliseconds(90));
  EXPECT_LT(outcome.took, milliseconds(350));  // did not wait for the late value
  EXPECT_TRUE(delivered);
}

TEST(AwaitWithinTest, AValueDeliveredInlineByTheStartIsFine) {
  Outcome outcome = RunCoroutine([] {
    return net::AwaitWithin<int>(
        milliseconds(1'000), [](auto deliver) { deliver(3); }, [] { return -1; });
  });
  EXPECT_EQ(outcome.resumed, 1);
  EXPECT_EQ(outcome.value, 3);
}

TEST(AwaitWithinTest, OffloadWithinSkipsWorkThatCouldNotStartBeforeTheDeadline) {
  asio::thread_pool pool(1);
  std::atomic<int> ran{0};
  // The pool's only thread is busy for 300 ms: work queued behind it misses its 100 ms.
  asio::post(pool, [] { std::this_thread::sleep_for(milliseconds(300)); });
  Outcome outcome = RunCoroutine(
      [&] {
        return net::OffloadWithin<int>(
            pool, milliseconds(100),
            [&ran] {
              ++ran;
              return 5;
            },
            [] { return -1; });
      },
      [&] { pool.join(); });
  EXPECT_EQ(outcome.value, -1);
  EXPECT_EQ(ran.load(), 0);
}

TEST(AwaitWithinTest, OffloadWithinReturnsTheValueOfQuickWork) {
  asio::thread_pool pool(2);
  Outcome outcome = RunCoroutine(
      [&] {
        return net::OffloadWithin<int>(
            pool, milliseconds(1'000), [] { return 5; }, [] { return -1; });
      },
      [&] { pool.join(); });
  EXPECT_EQ(outcome.value, 5);
}

}  // namespace
}  // namespace firebreak
