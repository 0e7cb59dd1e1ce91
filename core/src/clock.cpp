#include "deedkit/core/clock.hpp"

#include <cstdio>

namespace deedkit {

std::string format_rfc3339(Timestamp time) {
  const auto seconds = std::chrono::floor<std::chrono::seconds>(time);
  const auto micros = (time - seconds).count();
  const std::chrono::year_month_day date{std::chrono::floor<std::chrono::days>(seconds)};
  const std::chrono::hh_mm_ss clock{seconds - std::chrono::floor<std::chrono::days>(seconds)};

  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02uT%02ld:%02ld:%02lldZ",
                static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                static_cast<unsigned>(date.day()), static_cast<long>(clock.hours().count()),
                static_cast<long>(clock.minutes().count()),
                static_cast<long long>(clock.seconds().count()));
  std::string text(buffer);
  text.insert(text.size() - 1, std::to_string(1000000 + micros).replace(0, 1, "."));
  return text;
}

}  // namespace deedkit
