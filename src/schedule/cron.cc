#include "schedule/cron.h"

#include <date/date.h>
#include <date/tz.h>

#include <array>
#include <charconv>
#include <chrono>
#include <exception>
#include <vector>

#include "common/http_util.h"

namespace firebreak {
namespace {

using std::chrono::seconds;

struct FieldSpec {
  const char* name;
  int min;
  int max;
  const char* const* names;  // [min..max] by index - min, or nullptr
};

constexpr const char* kMonthNames[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                       "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr const char* kWeekdayNames[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"};

constexpr std::array<FieldSpec, 6> kFields = {{
    {"second", 0, 59, nullptr},
    {"minute", 0, 59, nullptr},
    {"hour", 0, 23, nullptr},
    {"day of month", 1, 31, nullptr},
    {"month", 1, 12, kMonthNames},
    {"day of week", 0, 7, kWeekdayNames},
}};

std::vector<std::string_view> Split(std::string_view text, char by) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t end = text.find(by, start);
    out.push_back(text.substr(start, end - start));
    if (end == std::string_view::npos) return out;
    start = end + 1;
  }
}

// A number or (for months and weekdays) a name.
std::optional<int> Value(std::string_view text, const FieldSpec& spec) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc() && end == text.data() + text.size()) return value;
  if (spec.names != nullptr) {
    const std::string lower = AsciiLower(text);
    for (int i = 0; i <= spec.max - spec.min; ++i) {
      if (lower == spec.names[i]) return spec.min + i;
    }
  }
  return std::nullopt;
}

// Sets the field's bits; "" on success, else what is wrong.
std::string ParseField(std::string_view text, const FieldSpec& spec, std::vector<bool>& bits,
                       bool& star) {
  bits.assign(static_cast<size_t>(spec.max + 1), false);
  star = text == "*" || text == "?";
  for (std::string_view part : Split(text, ',')) {
    if (part.empty()) return "an empty list entry";
    int step = 1;
    if (size_t slash = part.find('/'); slash != std::string_view::npos) {
      std::string_view step_text = part.substr(slash + 1);
      auto [end, ec] = std::from_chars(step_text.data(), step_text.data() + step_text.size(), step);
      if (ec != std::errc() || end != step_text.data() + step_text.size() || step < 1) {
        return "bad step \"" + std::string(step_text) + "\"";
      }
      part = part.substr(0, slash);
    }
    int low = spec.min;
    int high = spec.max;
    if (spec.max == 7) high = 6;  // weekdays: `*` is Sunday..Saturday once
    if (part != "*" && part != "?") {
      size_t dash = part.find('-');
      std::optional<int> a = Value(part.substr(0, dash), spec);
      std::optional<int> b = dash == std::string_view::npos ? a : Value(part.substr(dash + 1), spec);
      if (!a || !b) return "\"" + std::string(part) + "\" is not a value";
      if (*a < spec.min || *a > spec.max || *b < spec.min || *b > spec.max) {
        return std::string("values must be ") + std::to_string(spec.min) + ".." +
               std::to_string(spec.max) + ", not \"" + std::string(part) + "\"";
      }
      if (*a > *b) return "range \"" + std::string(part) + "\" goes backwards";
      low = *a;
      high = (dash == std::string_view::npos && step > 1) ? spec.max : *b;  // "5/15" = 5-max/15
    }
    for (int v = low; v <= high; v += step) bits[static_cast<size_t>(v)] = true;
  }
  return "";
}

}  // namespace

Result<CronSchedule> CronSchedule::Parse(std::string_view expression, std::string_view time_zone) {
  CronSchedule out;
  out.expression_ = std::string(expression);
  out.time_zone_ = std::string(time_zone.empty() ? "UTC" : time_zone);
  try {
    out.zone_ = date::locate_zone(out.time_zone_);
  } catch (const std::exception&) {
    return InvalidArgument("unknown time zone \"" + out.time_zone_ +
                           "\" (an IANA name such as \"UTC\", \"Europe/Berlin\", "
                           "\"America/New_York\")");
  }
  std::vector<std::string_view> fields;
  for (std::string_view f : Split(TrimBlanks(expression), ' ')) {
    if (!f.empty()) fields.push_back(f);
  }
  if (fields.size() == 5) fields.insert(fields.begin(), "0");
  if (fields.size() != 6) {
    return InvalidArgument("expected 5 fields (minute hour day month weekday) or 6 (with "
                           "seconds first), got " +
                           std::to_string(fields.size()));
  }
  std::vector<bool> bits;
  for (size_t i = 0; i < 6; ++i) {
    bool star = false;
    std::string problem = ParseField(fields[i], kFields[i], bits, star);
    if (!problem.empty()) {
      return InvalidArgument(std::string(kFields[i].name) + " field \"" + std::string(fields[i]) +
                             "\": " + problem);
    }
    for (size_t v = 0; v < bits.size(); ++v) {
      if (!bits[v]) continue;
      switch (i) {
        case 0: out.seconds_.set(v); break;
        case 1: out.minutes_.set(v); break;
        case 2: out.hours_.set(v); break;
        case 3: out.days_.set(v); break;
        case 4: out.months_.set(v); break;
        default: out.weekdays_.set(v % 7); break;  // 7 is Sunday
      }
    }
    if (i == 3) out.any_day_ = star;
    if (i == 5) out.any_weekday_ = star;
  }
  // February 30 and the like: nothing ever matches.
  if (!out.NextAfter(std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count())) {
    return InvalidArgument("\"" + out.expression_ + "\" never runs");
  }
  return out;
}

std::optional<int64_t> CronSchedule::NextAfter(int64_t after_ms) const {
  using namespace date;
  const sys_seconds after{seconds(after_ms >= 0 ? after_ms / 1000 : -((-after_ms + 999) / 1000))};
  local_seconds t = zone_->to_local(after) + seconds(1);
  const local_seconds give_up = t + days(5 * 366);
  while (t < give_up) {
    const local_days day = floor<days>(t);
    const year_month_day ymd{day};
    const hh_mm_ss<seconds> time{t - day};
    const unsigned month = static_cast<unsigned>(ymd.month());
    if (!months_[month]) {
      const year_month next = year_month{ymd.year(), ymd.month()} + months(1);
      t = local_days{next / 1};
      continue;
    }
    const bool day_ok = days_[static_cast<unsigned>(ymd.day())];
    const bool weekday_ok = weekdays_[weekday{day}.c_encoding()];
    const bool matches = any_day_ && any_weekday_ ? true
                         : any_day_               ? weekday_ok
                         : any_weekday_           ? day_ok
                                                  : (day_ok || weekday_ok);
    if (!matches) {
      t = day + days(1);
      continue;
    }
    const auto hour = static_cast<size_t>(time.hours().count());
    const auto minute = static_cast<size_t>(time.minutes().count());
    const auto second = static_cast<size_t>(time.seconds().count());
    if (!hours_[hour]) {
      t = floor<std::chrono::hours>(t) + std::chrono::hours(1);
      continue;
    }
    if (!minutes_[minute]) {
      t = floor<std::chrono::minutes>(t) + std::chrono::minutes(1);
      continue;
    }
    if (!seconds_[second]) {
      t += seconds(1);
      continue;
    }
    const local_info info = zone_->get_info(t);
    if (info.result == local_info::nonexistent) {  // the clocks skip it today
      t += seconds(1);
      continue;
    }
    // Unique, or the first of the two instants a repeated local time names.
    const sys_seconds at = sys_seconds{t.time_since_epoch()} - info.first.offset;
    if (at <= after) {  // the repeat of a local time that already ran
      t += seconds(1);
      continue;
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
  }
  return std::nullopt;
}

}  // namespace firebreak
