// schedule/cron.h: parsing (with the field and what is wrong), next ticks in UTC and in
// zones, and the daylight-saving rule: a skipped local time does not run that day, a
// repeated one runs once, the first time.
#include "schedule/cron.h"

#include <gtest/gtest.h>

#include <date/date.h>

#include <chrono>
#include <string>

#include "common/units.h"

namespace firebreak {
namespace {

// "2027-03-14T07:30:00Z" → epoch ms.
int64_t At(const std::string& rfc3339) {
  std::istringstream in(rfc3339);
  date::sys_time<std::chrono::milliseconds> t;
  in >> date::parse("%FT%TZ", t);
  EXPECT_FALSE(in.fail()) << rfc3339;
  return t.time_since_epoch().count();
}

std::string Next(const std::string& expression, const std::string& zone, const std::string& after) {
  Result<CronSchedule> cron = CronSchedule::Parse(expression, zone);
  EXPECT_TRUE(cron.ok()) << cron.status().ToString();
  if (!cron.ok()) return "";
  std::optional<int64_t> next = cron->NextAfter(At(after));
  return next ? FormatTimestampMs(*next) : "never";
}

TEST(CronTest, BadExpressionsSayWhichFieldAndWhy) {
  auto error = [](const std::string& expression, const std::string& zone = "UTC") {
    Result<CronSchedule> cron = CronSchedule::Parse(expression, zone);
    EXPECT_FALSE(cron.ok()) << expression;
    return cron.ok() ? std::string() : cron.status().message();
  };
  EXPECT_EQ(error("* * * *"), "expected 5 fields (minute hour day month weekday) or 6 (with "
                              "seconds first), got 4");
  EXPECT_EQ(error("61 * * * *"), "minute field \"61\": values must be 0..59, not \"61\"");
  EXPECT_EQ(error("0 0 * * * 8"), "day of week field \"8\": values must be 0..7, not \"8\"");
  EXPECT_EQ(error("0 5-2 * * *"), "hour field \"5-2\": range \"5-2\" goes backwards");
  EXPECT_EQ(error("*/0 * * * *"), "minute field \"*/0\": bad step \"0\"");
  EXPECT_EQ(error("0 0 * FOO *"), "month field \"FOO\": \"FOO\" is not a value");
  EXPECT_EQ(error("0 0 1,,2 * *"), "day of month field \"1,,2\": an empty list entry");
  EXPECT_EQ(error("0 0 30 2 *"), "\"0 0 30 2 *\" never runs");
  EXPECT_NE(error("* * * * *", "Mars/Olympus").find("unknown time zone \"Mars/Olympus\""),
            std::string::npos);
}

TEST(CronTest, NextTicksInUtc) {
  EXPECT_EQ(Next("*/15 * * * *", "UTC", "2027-01-01T00:00:00Z"), "2027-01-01T00:15:00.000Z");
  EXPECT_EQ(Next("*/15 * * * *", "", "2027-01-01T00:14:59Z"), "2027-01-01T00:15:00.000Z");
  // Six fields: seconds first.
  EXPECT_EQ(Next("*/1 * * * * *", "UTC", "2027-01-01T00:00:00Z"), "2027-01-01T00:00:01.000Z");
  EXPECT_EQ(Next("30 */5 * * * *", "UTC", "2027-01-01T00:04:00Z"), "2027-01-01T00:05:30.000Z");
  // Weekdays by name, across a weekend (2027-01-01 is a Friday); 7 is Sunday too.
  EXPECT_EQ(Next("0 9 * * MON-FRI", "UTC", "2027-01-01T09:00:00Z"), "2027-01-04T09:00:00.000Z");
  EXPECT_EQ(Next("0 9 * * 7", "UTC", "2027-01-01T00:00:00Z"), "2027-01-03T09:00:00.000Z");
  // Both day fields restricted: either one matches (Vixie cron).
  EXPECT_EQ(Next("0 0 13 * FRI", "UTC", "2027-01-02T00:00:00Z"), "2027-01-08T00:00:00.000Z");
  EXPECT_EQ(Next("0 0 13 * FRI", "UTC", "2027-01-09T00:00:00Z"), "2027-01-13T00:00:00.000Z");
  // Month names, a step from a start, the year's turn, leap day.
  EXPECT_EQ(Next("0 0 1 jan,jul *", "UTC", "2027-02-01T00:00:00Z"), "2027-07-01T00:00:00.000Z");
  EXPECT_EQ(Next("0 0 1 jan,jul *", "UTC", "2027-07-01T00:00:00Z"), "2028-01-01T00:00:00.000Z");
  EXPECT_EQ(Next("5/20 0 * * *", "UTC", "2027-01-01T00:06:00Z"), "2027-01-01T00:25:00.000Z");
  EXPECT_EQ(Next("0 12 29 2 *", "UTC", "2027-03-01T00:00:00Z"), "2028-02-29T12:00:00.000Z");
}

TEST(CronTest, ATimeZoneShiftsTheTicks) {
  // 09:00 in Berlin is 08:00 UTC in winter (CET) and 07:00 in summer (CEST).
  EXPECT_EQ(Next("0 9 * * *", "Europe/Berlin", "2027-01-10T00:00:00Z"), "2027-01-10T08:00:00.000Z");
  EXPECT_EQ(Next("0 9 * * *", "Europe/Berlin", "2027-07-10T00:00:00Z"), "2027-07-10T07:00:00.000Z");
  // Midnight in Tokyo is the previous day 15:00 UTC.
  EXPECT_EQ(Next("0 0 * * *", "Asia/Tokyo", "2027-01-01T00:00:00Z"), "2027-01-01T15:00:00.000Z");
}

TEST(CronTest, ASkippedLocalTimeDoesNotRunThatDay) {
  // New York springs forward on 2027-03-14: 02:00 EST becomes 03:00 EDT, 02:30 never is.
  EXPECT_EQ(Next("30 2 * * *", "America/New_York", "2027-03-13T08:00:00Z"),
            "2027-03-15T06:30:00.000Z");  // the next 02:30 is the 15th's (EDT, UTC-4)
  EXPECT_EQ(Next("30 2 * * *", "America/New_York", "2027-03-12T08:00:00Z"),
            "2027-03-13T07:30:00.000Z");  // the day before, EST (UTC-5)
  // Hourly in Berlin across its spring-forward (2027-03-28, 02:00 CET → 03:00 CEST): the
  // tick after 01:00 CET (00:00 UTC) is 03:00 CEST (01:00 UTC), one real hour later.
  EXPECT_EQ(Next("0 * * * *", "Europe/Berlin", "2027-03-28T00:00:00Z"), "2027-03-28T01:00:00.000Z");
}

TEST(CronTest, ARepeatedLocalTimeRunsOnceTheFirstTime) {
  // New York falls back on 2027-11-07: 01:00-01:59 happens twice (EDT, then EST).
  EXPECT_EQ(Next("30 1 * * *", "America/New_York", "2027-11-07T04:00:00Z"),
            "2027-11-07T05:30:00.000Z");  // 01:30 EDT
  EXPECT_EQ(Next("30 1 * * *", "America/New_York", "2027-11-07T05:30:00Z"),
            "2027-11-08T06:30:00.000Z");  // not 01:30 EST on the 7th (06:30 UTC)
  // Every 20 minutes through the repeated hour: 01:00, 01:20, 01:40 EDT, then 02:00 EST.
  EXPECT_EQ(Next("*/20 * * * *", "America/New_York", "2027-11-07T05:40:00Z"),
            "2027-11-07T07:00:00.000Z");
  // Started during the repeat (01:10 EST): waits for 02:00 EST.
  EXPECT_EQ(Next("*/20 * * * *", "America/New_York", "2027-11-07T06:10:00Z"),
            "2027-11-07T07:00:00.000Z");
}

}  // namespace
}  // namespace firebreak
