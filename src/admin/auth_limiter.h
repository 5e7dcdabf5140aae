// The admin API's brake on token guessing: per client address, more than
// `max_failures` failed authentications within `window` refuse every admin request
// from that address (a right token too) until the window ends.
//
// Pure: no clock, no I/O, no lock (the owner serializes calls). The window is fixed,
// starting at an address's first failure; memory is bounded by `max_tracked`
// addresses, the one whose window started first is forgotten to make room.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace firebreak {

class FailedAuthLimiter {
 public:
  struct Options {
    int max_failures = 10;
    std::chrono::milliseconds window{60'000};
    size_t max_tracked = 4096;
  };

  FailedAuthLimiter() : FailedAuthLimiter(Options{}) {}
  explicit FailedAuthLimiter(Options options);

  // How long `client` is still refused at `now_ms`; nullopt when it is not.
  std::optional<std::chrono::milliseconds> Refused(std::string_view client, int64_t now_ms);
  // Counts one failed authentication; returns what Refused would now say.
  std::optional<std::chrono::milliseconds> RecordFailure(std::string_view client, int64_t now_ms);

  size_t tracked() const { return by_client_.size(); }

  // The key an address is counted under: an IPv6 address by its /64 (one host usually
  // holds a whole /64, so single addresses would be free to rotate through), anything
  // else as it is.
  static std::string ClientKey(std::string_view peer);

 private:
  struct Entry {
    std::string client;
    int64_t window_start_ms = 0;
    int failures = 0;
  };
  using Order = std::list<Entry>;  // by window start, oldest first

  // Drops the entries whose window ended (they are at the front).
  void Expire(int64_t now_ms);
  std::optional<std::chrono::milliseconds> RefusedFor(const Entry& entry, int64_t now_ms) const;

  const Options options_;
  Order order_;
  std::unordered_map<std::string, Order::iterator> by_client_;
};

}  // namespace firebreak
