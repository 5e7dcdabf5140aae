// Bot state behind the sidecar (DESIGN §5): sessions (conversation context that expires
// after a TTL) and state (durable key/value). One interface, three backends — the
// embedded SQLite file (default for both), Redis (sessions, native TTL) and PostgreSQL
// (state; schema created and migrated at start) — each in its own folder.
//
// Values are opaque bytes with a content type. Every write bumps the key's version
// (1 on creation), so concurrent handlers can update a key safely with compare-and-set
// (the sidecar maps it to ETag / If-Match / If-None-Match).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "config/config.h"

namespace firebreak {

struct StoredValue {
  std::string value;
  std::string content_type;
  int64_t version = 0;
  int64_t expires_at_ms = 0;  // wall-clock ms; 0 = never
};

struct PutOptions {
  std::optional<std::chrono::milliseconds> ttl;  // none: the key never expires
  // Compare-and-set: 0 = only if the key does not exist; N = only if it is at version N.
  std::optional<int64_t> if_version;
};

// Limits every backend enforces (the sidecar checks them first for clear 4xx answers).
inline constexpr size_t kMaxStoreKeyBytes = 512;
inline constexpr size_t kMaxStoreValueBytes = 1024 * 1024;

// Thread-safe; every method may block on I/O (callers run them off their event loop),
// for at most about store.timeout where the backend allows it (PostgreSQL, Redis; a
// SQLite file only bounds its lock waits). An expired key is absent for every method.
// Errors: kUnavailable when the backend is unreachable or busy (retry later),
// kDeadlineExceeded when it did not answer in time, kFailedPrecondition when
// `if_version` does not match, kInvalidArgument for a key or value over the limits.
class KvStore {
 public:
  virtual ~KvStore() = default;
  virtual Result<std::optional<StoredValue>> Get(const std::string& key) = 0;
  // Returns the key's new version.
  virtual Result<int64_t> Put(const std::string& key, const std::string& value,
                              const std::string& content_type, const PutOptions& options) = 0;
  // True when a live key was deleted.
  virtual Result<bool> Delete(const std::string& key, std::optional<int64_t> if_version) = 0;
  // Cheap reachability check.
  virtual Status Ping() = 0;
  // "sqlite var/firebreak.db", "redis 127.0.0.1:6379/1", "postgres host:port/db" (no password).
  virtual std::string Describe() const = 0;
};

// The stores [store] configures. kInvalidArgument for a bad URL; kUnavailable when the
// backend cannot be reached at start.
Result<std::unique_ptr<KvStore>> OpenSessionStore(const Config& config, Clock& clock);
Result<std::unique_ptr<KvStore>> OpenStateStore(const Config& config, Clock& clock);

// When a value put now with `options` expires (wall-clock ms; 0 = never).
int64_t ExpiresAt(const PutOptions& options, int64_t now_ms);

// Checks key and value against the limits (kInvalidArgument naming the problem).
Status CheckStoreKey(const std::string& key);
Status CheckStoreValue(const std::string& value);

}  // namespace firebreak
