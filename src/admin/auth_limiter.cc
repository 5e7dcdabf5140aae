#include "admin/auth_limiter.h"

#include <boost/asio/ip/address.hpp>

namespace firebreak {

FailedAuthLimiter::FailedAuthLimiter(Options options) : options_(options) {}

void FailedAuthLimiter::Expire(int64_t now_ms) {
  while (!order_.empty() && now_ms - order_.front().window_start_ms >= options_.window.count()) {
    by_client_.erase(order_.front().client);
    order_.pop_front();
  }
}

std::optional<std::chrono::milliseconds> FailedAuthLimiter::RefusedFor(const Entry& entry,
                                                                       int64_t now_ms) const {
  if (entry.failures <= options_.max_failures) return std::nullopt;
  return std::chrono::milliseconds(entry.window_start_ms + options_.window.count() - now_ms);
}

std::optional<std::chrono::milliseconds> FailedAuthLimiter::Refused(std::string_view client,
                                                                    int64_t now_ms) {
  Expire(now_ms);
  auto it = by_client_.find(std::string(client));
  if (it == by_client_.end()) return std::nullopt;
  return RefusedFor(*it->second, now_ms);
}

std::optional<std::chrono::milliseconds> FailedAuthLimiter::RecordFailure(std::string_view client,
                                                                          int64_t now_ms) {
  Expire(now_ms);
  std::string key(client);
  auto it = by_client_.find(key);
  if (it == by_client_.end()) {
    if (options_.max_tracked == 0) return std::nullopt;
    if (by_client_.size() >= options_.max_tracked) {
      by_client_.erase(order_.front().client);
      order_.pop_front();
    }
    // Windows start in time order, so a new one goes at the back.
    order_.push_back(Entry{key, now_ms, 0});
    it = by_client_.emplace(std::move(key), std::prev(order_.end())).first;
  }
  Entry& entry = *it->second;
  ++entry.failures;
  return RefusedFor(entry, now_ms);
}

std::string FailedAuthLimiter::ClientKey(std::string_view peer) {
  boost::system::error_code ec;
  boost::asio::ip::address address = boost::asio::ip::make_address(std::string(peer), ec);
  if (ec || !address.is_v6() || address.to_v6().is_v4_mapped()) return std::string(peer);
  boost::asio::ip::address_v6::bytes_type bytes = address.to_v6().to_bytes();
  for (size_t i = 8; i < bytes.size(); ++i) bytes[i] = 0;
  return boost::asio::ip::address_v6(bytes).to_string() + "/64";
}

}  // namespace firebreak
