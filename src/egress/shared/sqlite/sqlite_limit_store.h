// Shared egress limits in SQLite, for the processes of one host (docs/egress.md "Shared
// limits"). A sibling file of the queue's, `<queue.path>.limits`, so a limit check never
// waits behind the queue writer's group commit and fsync; WAL with synchronous = NORMAL
// (no fsync per commit: losing the last moments of limit state to a power cut is harmless,
// leases expire anyway). Tables:
//   leases(integration, token, expires_ms)             one row per permit held
//   rate(integration, tat_us)                          GCRA theoretical arrival time
//   breaker(integration, state, open_until_ms, probe_until_ms, buckets)
//                                                      buckets: "start,calls,failures;" x10
// Each operation is one BEGIN IMMEDIATE transaction; times are the host's wall clock.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/sqlite_db.h"
#include "egress/shared/limit_store.h"

namespace firebreak::egress {

class SqliteLimitStore final : public LimitStore {
 public:
  // Opens (creating) `path` on the first operation. `timeout` is the busy timeout.
  // `now_us` (wall clock, µs) is injectable for tests.
  SqliteLimitStore(std::string path, std::chrono::milliseconds timeout,
                   std::function<int64_t()> now_us = {});
  ~SqliteLimitStore() override;

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
  const char* backend() const override { return "sqlite"; }

 private:
  struct Statements;
  Status Open();
  // Runs `body` in one BEGIN IMMEDIATE transaction (rolled back when it fails).
  Status Transaction(const std::function<Status()>& body);
  Result<int> LiveLeases(const std::string& integration, int64_t now_ms);
  Result<SharedBreakerRow> LoadBreaker(const std::string& integration);
  Status SaveBreaker(const std::string& integration, const SharedBreakerRow& row);

  const std::string path_;
  const std::chrono::milliseconds timeout_;
  const std::function<int64_t()> now_us_;
  std::unique_ptr<sqlite::Connection> db_;
  std::unique_ptr<Statements> statements_;
  std::chrono::steady_clock::time_point retry_at_{};
  Status last_error_;
};

// The breaker row's bucket column, both ways (exposed for the unit tests).
std::string EncodeBuckets(const SharedBreakerRow& row);
void DecodeBuckets(const std::string& text, SharedBreakerRow& row);

}  // namespace firebreak::egress
