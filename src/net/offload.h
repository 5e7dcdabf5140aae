// Runs a blocking call (a store read) on a thread pool and resumes the awaiting
// coroutine on its own executor, so a server's I/O threads never block on it.
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <utility>

namespace firebreak::net {

// Runs `fn` (returning T) on `pool`; the awaiting coroutine resumes on its executor
// with the value. `pool` must outlive the call; if the pool is stopped first, the
// coroutine is never resumed (its frame is destroyed with its executor).
//
// A plain function, not a coroutine, returning the awaitable: g++ 12 mishandles
// non-trivial temporaries that live across a co_await inside a coroutine's arguments.
// Await a named local: `auto pending = Offload<T>(pool, fn); T v = co_await std::move(pending);`
template <typename T, typename Fn>
boost::asio::awaitable<T> Offload(boost::asio::thread_pool& pool, Fn fn) {
  namespace asio = boost::asio;
  return asio::async_initiate<decltype(asio::use_awaitable), void(T)>(
      [&pool](auto handler, Fn work) {
        // Counted as outstanding work of the caller's executor meanwhile: its run()
        // must not return while the value is on its way.
        auto guard = asio::make_work_guard(asio::get_associated_executor(handler));
        asio::post(pool, [handler = std::move(handler), work = std::move(work),
                          guard = std::move(guard)]() mutable {
          T value = work();
          auto executor = guard.get_executor();
          asio::post(executor, [handler = std::move(handler), value = std::move(value)]() mutable {
            handler(std::move(value));
          });
          guard.reset();
        });
      },
      asio::use_awaitable, std::move(fn));
}

}  // namespace firebreak::net
