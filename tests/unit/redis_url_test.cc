#include <gtest/gtest.h>

#include "common/redis_client.h"

namespace firebreak::redis {
namespace {

TEST(RedisUrlTest, HostPortDbAndCredentials) {
  Result<Address> a = ParseRedisUrl("redis://user:p%40ss@10.0.0.5:6380/3");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->host, "10.0.0.5");
  EXPECT_EQ(a->port, 6380);
  EXPECT_EQ(a->db, 3);
  EXPECT_EQ(a->username, "user");
  EXPECT_EQ(a->password, "p@ss");
  EXPECT_EQ(a->ToString(), "10.0.0.5:6380/3");  // never the password
}

TEST(RedisUrlTest, DefaultsAndPasswordOnly) {
  Result<Address> a = ParseRedisUrl("redis://redis.internal");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "redis.internal");
  EXPECT_EQ(a->port, 6379);
  EXPECT_EQ(a->db, 0);
  Result<Address> b = ParseRedisUrl("redis://:secret@127.0.0.1/");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->username, "");
  EXPECT_EQ(b->password, "secret");
  EXPECT_EQ(b->db, 0);
}

TEST(RedisUrlTest, RejectsWhatItCannotHonour) {
  for (const char* url : {"rediss://127.0.0.1:6379/0", "http://127.0.0.1/", "redis://h/x",
                          "redis://h:0/0", "redis://h/-1", "redis://h/0?timeout=1", "not a url"}) {
    Result<Address> a = ParseRedisUrl(url);
    EXPECT_FALSE(a.ok()) << url;
    if (!a.ok()) {
      EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument) << url;
      EXPECT_NE(a.status().message().find(url), std::string::npos) << a.status().message();
    }
  }
}

}  // namespace
}  // namespace firebreak::redis
