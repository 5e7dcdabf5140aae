// Shared egress limits in Redis (docs/egress.md "Shared limits"). Per integration, with
// the name as a hash tag so a cluster keeps them on one node:
//   fb:lim:{<name>}:leases  ZSET  holder token → lease expiry (ms, the server's clock)
//   fb:lim:{<name>}:rate    STRING  GCRA theoretical arrival time (µs)
//   fb:lim:{<name>}:br      HASH  st, ou (open until), pu (probe until), s<i>/c<i>/f<i>
//                                 (bucket start, calls, failures) for the 10 buckets
// Every operation is one Lua script that reads the server's TIME, so clocks of the
// worker hosts do not matter. Keys expire on their own when nobody uses them.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/redis_client.h"
#include "egress/shared/limit_store.h"

namespace firebreak::egress {

class RedisLimitStore final : public LimitStore {
 public:
  // Connects on the first operation. `timeout` bounds the connect and every command.
  RedisLimitStore(std::string url, std::chrono::milliseconds timeout);
  ~RedisLimitStore() override;

  Result<LeaseGrant> Acquire(const std::string& integration, int max, int64_t lease_ms,
                             const std::vector<std::string>& tokens) override;
  Result<int> Release(const std::string& integration,
                      const std::vector<std::string>& tokens) override;
  Result<int> Renew(const std::string& integration, int64_t lease_ms,
                    const std::vector<std::string>& tokens) override;
  Result<TokenReservation> Reserve(const std::string& integration, const GcraParams& params,
                                   int64_t max_wait_us) override;
  Result<SharedBreakerView> Record(const std::string& integration,
                                   const CircuitBreakerConfig& config, CallVerdict verdict,
                                   bool probe) override;
  Result<SharedBreakerView> ClaimProbe(const std::string& integration,
                                       int64_t probe_lease_ms) override;
  Result<SharedLimitsView> Read(const std::string& integration, const CircuitBreakerConfig& config,
                                const GcraParams* gcra) override;
  const char* backend() const override { return "redis"; }

  enum class Script { kAcquire, kRelease, kRenew, kReserve, kRecord, kClaimProbe, kRead };
  static const std::string& Source(Script script);

 private:
  // Runs a script whose reply is a flat list of integers (or one integer).
  Result<std::vector<int64_t>> Run(Script script, const std::vector<std::string>& keys,
                                   const std::vector<std::string>& args);
  Status Connect();

  const std::string url_;
  const std::chrono::milliseconds timeout_;
  std::unique_ptr<redis::Connection> connection_;
  std::vector<std::string> shas_;
  std::chrono::steady_clock::time_point retry_at_{};  // fail fast until then after an error
  Status last_error_;
};

// The integer list of a script reply: an integer, or an array of integers (a nil or
// non-integer element is an error: the script and this code disagree).
Result<std::vector<int64_t>> ParseIntegerReply(const redisReply* reply);

}  // namespace firebreak::egress
