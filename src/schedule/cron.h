// Cron expressions of [[schedules]] (issue 17, docs/schedules.md), evaluated in a time
// zone from the system's tz database.
//
// Six fields, "second minute hour day-of-month month day-of-week", or the classic five
// (then second = 0). A field is `*`, a number, a range `a-b`, a step `*/n` or `a-b/n`, or
// a comma list of those; months and weekdays also by name (JAN..DEC, SUN..SAT), weekday 7
// is Sunday too. As in Vixie cron, when both day fields are restricted a day matching
// either one runs.
//
// Daylight-saving changes, in local time: a time the clocks skip (02:30 on a spring-forward
// night) does not run that day; a time that happens twice (01:30 when the clocks go back)
// runs once, the first time.
#pragma once

#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace date {
class time_zone;
}

namespace firebreak {

class CronSchedule {
 public:
  // kInvalidArgument naming the field and what is wrong, an unknown time zone, or an
  // expression that never matches (e.g. February 30).
  static Result<CronSchedule> Parse(std::string_view expression, std::string_view time_zone);

  // The first tick strictly after `after_ms` (UTC epoch ms; ticks are whole seconds);
  // nullopt when none comes within 5 years.
  std::optional<int64_t> NextAfter(int64_t after_ms) const;

  const std::string& expression() const { return expression_; }
  const std::string& time_zone() const { return time_zone_; }

 private:
  CronSchedule() = default;

  std::string expression_;
  std::string time_zone_;
  const date::time_zone* zone_ = nullptr;
  std::bitset<60> seconds_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;      // 1..31
  std::bitset<13> months_;    // 1..12
  std::bitset<7> weekdays_;   // 0 = Sunday
  bool any_day_ = true;       // day-of-month is `*`
  bool any_weekday_ = true;   // day-of-week is `*`
};

}  // namespace firebreak
