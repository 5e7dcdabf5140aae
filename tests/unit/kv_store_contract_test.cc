// One contract for every store backend (DESIGN §5 sessions and state): sqlite, redis and
// postgres run the same test bodies against real servers started by the tests.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "config/config.h"
#include "store/kv_store.h"
#include "support/postgres_server.h"
#include "support/process.h"
#include "support/redis_server.h"
#include "queue_test_util.h"

namespace firebreak {
namespace {

using std::chrono::milliseconds;

class KvStoreContractTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    config_.queue.path = dir_.path() + "/firebreak.db";
    if (GetParam() == "redis") {
      ASSERT_TRUE(redis_.Start()) << redis_.Log();
      config_.store.sessions = "redis";
      config_.store.sessions_url = redis_.Url(1);
    } else if (GetParam() == "postgres") {
      ASSERT_TRUE(postgres_.Start()) << postgres_.Log();
      config_.store.state = "postgres";
      config_.store.state_url = postgres_.Url();
    }
    ASSERT_NO_FATAL_FAILURE(Open());
  }

  // Sessions go to redis on the redis backend, state to postgres on postgres; the
  // other store stays on sqlite, so `store_` is the one under test.
  void Open() {
    store_.reset();
    auto opened = GetParam() == "postgres" ? OpenStateStore(config_, SystemClock::Instance())
                                           : OpenSessionStore(config_, SystemClock::Instance());
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(opened).value();
  }

  queue_test::TempDir dir_;
  testing::RedisServer redis_;
  testing::PostgresServer postgres_;
  Config config_;
  std::unique_ptr<KvStore> store_;
};

TEST_P(KvStoreContractTest, PutGetDeleteKeepBytesContentTypeAndVersions) {
  const std::string bytes("bin\0ary \xff value", 15);
  auto missing = store_->Get("conv:C1");
  ASSERT_TRUE(missing.ok()) << missing.status().ToString();
  EXPECT_FALSE(missing->has_value());

  auto v1 = store_->Put("conv:C1", bytes, "application/octet-stream", {});
  ASSERT_TRUE(v1.ok()) << v1.status().ToString();
  EXPECT_EQ(*v1, 1);
  auto got = store_->Get("conv:C1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->value, bytes);
  EXPECT_EQ((*got)->content_type, "application/octet-stream");
  EXPECT_EQ((*got)->version, 1);
  EXPECT_EQ((*got)->expires_at_ms, 0);

  auto v2 = store_->Put("conv:C1", "{\"step\":2}", "application/json", {});
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(*v2, 2);
  EXPECT_EQ((*store_->Get("conv:C1"))->value, "{\"step\":2}");

  auto deleted = store_->Delete("conv:C1", std::nullopt);
  ASSERT_TRUE(deleted.ok());
  EXPECT_TRUE(*deleted);
  EXPECT_FALSE(*store_->Delete("conv:C1", std::nullopt));
  EXPECT_FALSE(store_->Get("conv:C1")->has_value());
  // A key written again after a delete starts over.
  EXPECT_EQ(*store_->Put("conv:C1", "x", "text/plain", {}), 1);
}

TEST_P(KvStoreContractTest, KeysExpireAfterTheirTtl) {
  PutOptions ttl;
  ttl.ttl = milliseconds(400);
  ASSERT_TRUE(store_->Put("session:U1", "ctx", "text/plain", ttl).ok());
  ASSERT_TRUE(store_->Put("forever", "v", "text/plain", {}).ok());
  auto live = store_->Get("session:U1");
  ASSERT_TRUE(live.ok() && live->has_value());
  EXPECT_GT((*live)->expires_at_ms, SystemClock::Instance().NowMs());
  std::this_thread::sleep_for(milliseconds(700));
  EXPECT_FALSE(store_->Get("session:U1")->has_value());
  EXPECT_FALSE(*store_->Delete("session:U1", std::nullopt));  // expired = absent
  EXPECT_TRUE(store_->Get("forever")->has_value());
  // Re-created after expiry: a fresh key at version 1, and create-only succeeds.
  PutOptions create;
  create.if_version = 0;
  auto again = store_->Put("session:U1", "new", "text/plain", create);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, 1);
  // A put without ttl makes a key permanent again.
  ASSERT_TRUE(store_->Put("session:U1", "kept", "text/plain", {}).ok());
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_TRUE(store_->Get("session:U1")->has_value());
}

TEST_P(KvStoreContractTest, CompareAndSetRefusesStaleVersions) {
  PutOptions create;
  create.if_version = 0;
  ASSERT_EQ(*store_->Put("counter", "1", "text/plain", create), 1);
  auto exists = store_->Put("counter", "1", "text/plain", create);
  EXPECT_EQ(exists.status().code(), StatusCode::kFailedPrecondition);

  PutOptions at1;
  at1.if_version = 1;
  ASSERT_EQ(*store_->Put("counter", "2", "text/plain", at1), 2);
  auto stale = store_->Put("counter", "3", "text/plain", at1);  // someone else won
  EXPECT_EQ(stale.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*store_->Get("counter"))->value, "2");

  EXPECT_EQ(store_->Delete("counter", 1).status().code(), StatusCode::kFailedPrecondition);
  auto deleted = store_->Delete("counter", 2);
  ASSERT_TRUE(deleted.ok());
  EXPECT_TRUE(*deleted);
  // A versioned write to a key that does not exist fails too.
  EXPECT_EQ(store_->Put("counter", "x", "text/plain", at1).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_P(KvStoreContractTest, ValuesSurviveReopeningTheStore) {
  ASSERT_TRUE(store_->Put("state:team", "{\"plan\":\"pro\"}", "application/json", {}).ok());
  ASSERT_NO_FATAL_FAILURE(Open());
  auto got = store_->Get("state:team");
  ASSERT_TRUE(got.ok() && got->has_value()) << got.status().ToString();
  EXPECT_EQ((*got)->value, "{\"plan\":\"pro\"}");
  EXPECT_EQ((*got)->version, 1);
  EXPECT_TRUE(store_->Ping().ok());
}

TEST_P(KvStoreContractTest, RefusesKeysAndValuesOverTheLimits) {
  EXPECT_EQ(store_->Put(std::string(kMaxStoreKeyBytes + 1, 'k'), "v", "", {}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Put("k", std::string(kMaxStoreValueBytes + 1, 'v'), "", {}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Get("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Get("a\nb").status().code(), StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Backends, KvStoreContractTest,
                         ::testing::Values("sqlite", "redis", "postgres"),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           return param.param;
                         });

// Workers started together on one SQLite file take the write lock in turn for their
// schema checks; one waited past store.timeout (2 s) under load and exited at start.
// Opening now waits out a longer lock; a call still gives up at store.timeout.
TEST(KvStoreSqliteTest, OpeningWaitsOutAnotherProcessesWriteLockLongerThanTheCallTimeout) {
  queue_test::TempDir dir;
  Config config;
  config.queue.path = dir.path() + "/firebreak.db";
  config.store.timeout = milliseconds(300);
  {
    auto first = OpenStateStore(config, SystemClock::Instance());  // creates the file
    ASSERT_TRUE(first.ok()) << first.status().ToString();
  }
  const std::string marker = dir.path() + "/locked";
  pid_t locker = testing::Spawn(
      {"/usr/bin/python3", "-c",
       "import sqlite3, sys, time\n"
       "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
       "c.execute('BEGIN IMMEDIATE')\n"
       "open(sys.argv[2], 'w').write('1')\n"
       "time.sleep(1.5)\n"
       "c.execute('COMMIT')\n",
       config.queue.path, marker},
      dir.path() + "/locker.log", "");
  ASSERT_GT(locker, 0);
  for (int i = 0; i < 500 && !std::filesystem::exists(marker); ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_TRUE(std::filesystem::exists(marker));
  auto opened = OpenSessionStore(config, SystemClock::Instance());
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_TRUE(testing::WaitExit(locker, std::chrono::seconds(10)));
  EXPECT_TRUE((*opened)->Put("k", "v", "text/plain", {}).ok());
}

TEST(KvStorePostgresTest, MigratesOnceAndRefusesANewerSchema) {
  testing::PostgresServer postgres;
  ASSERT_TRUE(postgres.Start()) << postgres.Log();
  Config config;
  config.store.state = "postgres";
  config.store.state_url = postgres.Url();
  // Several processes starting at once: every one migrates under the advisory lock.
  std::vector<std::thread> starters;
  std::atomic<int> opened{0};
  for (int i = 0; i < 4; ++i) {
    starters.emplace_back([&] {
      if (OpenStateStore(config, SystemClock::Instance()).ok()) ++opened;
    });
  }
  for (auto& t : starters) t.join();
  EXPECT_EQ(opened.load(), 4);
  EXPECT_EQ(postgres.Query("SELECT count(*) FROM firebreak_schema_migrations"), "1\n");
  ASSERT_NE(postgres.Query("INSERT INTO firebreak_schema_migrations (version) VALUES (99)"), "x");
  auto refused = OpenStateStore(config, SystemClock::Instance());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("newer than this build"), std::string::npos)
      << refused.status().ToString();
}

TEST(KvStorePostgresTest, AnUnreachableServerIsUnavailableAndABadUrlSaysSo) {
  Config config;
  config.store.state = "postgres";
  config.store.state_url = "postgresql://firebreak@127.0.0.1:" +
                           std::to_string(testing::PickFreePort()) + "/firebreak";
  auto refused = OpenStateStore(config, SystemClock::Instance());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(refused.status().message().find("password"), std::string::npos);
}

}  // namespace
}  // namespace firebreak
