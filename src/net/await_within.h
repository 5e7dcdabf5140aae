// Awaiting a value another thread delivers — a queue's callback, a store call on a
// thread pool — with a deadline, so an I/O coroutine never waits on a hung store longer
// than its timeout (issue 13: webhooks get 503 + Retry-After within queue.timeout).
//
// The coroutine resumes exactly once, on its own executor: with the delivered value, or
// with `fallback()` when `timeout` passes first. A value delivered after that is
// dropped (the work itself is not cancelled: a store call that returns late has still
// happened). Both outcomes are serialized on a strand of the caller's executor, so the
// race between them needs no locks.
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <memory>
#include <utility>

namespace firebreak::net {

namespace detail {

// The state both outcomes of AwaitWithin share; only touched on `Strand`.
template <typename Handler, typename Strand>
struct DeadlineRace {
  DeadlineRace(Handler h, const Strand& strand, std::chrono::milliseconds timeout)
      : handler(std::move(h)), timer(strand, timeout) {}
  Handler handler;
  boost::asio::steady_timer timer;
  bool finished = false;
};

}  // namespace detail

// `start(deliver)` begins the work; `deliver(T)` (copyable, callable from any thread,
// at most once) hands the value over. `fallback()` makes the value for a timeout.
//
// A plain function returning the awaitable, like Offload: await a named local
// (`auto pending = AwaitWithin<T>(...); T v = co_await std::move(pending);`).
template <typename T, typename Start, typename Fallback>
boost::asio::awaitable<T> AwaitWithin(std::chrono::milliseconds timeout, Start start,
                                      Fallback fallback) {
  namespace asio = boost::asio;
  return asio::async_initiate<decltype(asio::use_awaitable), void(T)>(
      [timeout](auto handler, Start begin, Fallback make_fallback) {
        using Handler = decltype(handler);
        using Strand = asio::strand<asio::associated_executor_t<Handler>>;
        Strand strand = asio::make_strand(asio::get_associated_executor(handler));
        auto race = std::make_shared<detail::DeadlineRace<Handler, Strand>>(std::move(handler),
                                                                            strand, timeout);
        // Runs on the strand: the first outcome resumes the coroutine (on its own
        // executor), the second finds `finished` and is dropped.
        auto finish = [race](T value) {
          if (race->finished) return;
          race->finished = true;
          race->timer.cancel();
          auto executor = asio::get_associated_executor(race->handler);
          asio::post(executor, [race, value = std::move(value)]() mutable {
            std::move(race->handler)(std::move(value));
          });
        };
        race->timer.async_wait([finish, make_fallback](const boost::system::error_code& ec) {
          if (!ec) finish(make_fallback());
        });
        begin([strand, finish](T value) {
          asio::post(strand, [finish, value = std::move(value)]() mutable {
            finish(std::move(value));
          });
        });
      },
      asio::use_awaitable, std::move(start), std::move(fallback));
}

// Runs the blocking `fn` (returning T) on `pool`, awaited with a deadline: the caller
// resumes with fn's value or with `fallback()` after `timeout`, whichever comes first.
// `fn` that has not started by then never runs (its caller has had its answer); once
// started it runs to its end on the pool, so it should bound itself too.
template <typename T, typename Fn, typename Fallback>
boost::asio::awaitable<T> OffloadWithin(boost::asio::thread_pool& pool,
                                        std::chrono::milliseconds timeout, Fn fn,
                                        Fallback fallback) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  return AwaitWithin<T>(
      timeout,
      [&pool, deadline, fn = std::move(fn)](auto deliver) mutable {
        boost::asio::post(pool, [deadline, fn = std::move(fn), deliver]() mutable {
          if (std::chrono::steady_clock::now() >= deadline) return;
          deliver(fn());
        });
      },
      std::move(fallback));
}

}  // namespace firebreak::net
