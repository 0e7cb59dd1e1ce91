#pragma once

// Time in deedkit is UTC, kept as microseconds since the Unix epoch: PostgreSQL's timestamptz
// has microsecond resolution, so nothing is lost on a round trip.

#include <chrono>
#include <cstdint>
#include <string>

namespace deedkit {

using Timestamp = std::chrono::sys_time<std::chrono::microseconds>;

inline Timestamp now_utc() {
  return std::chrono::time_point_cast<std::chrono::microseconds>(
      std::chrono::system_clock::now());
}

// RFC 3339 in UTC with microseconds: 2026-12-03T19:30:35.123456Z
std::string format_rfc3339(Timestamp time);

}  // namespace deedkit
