#pragma once

// Exponential backoff with jitter, capped: the waits between retries of something that keeps
// failing (the broker, the database, one message).

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace deedkit::internal {

// The wait before retry number `failures` (1 for the first retry): the capped exponential
// step `initial * 2^(failures-1)`, of which the upper half is random. Keeping the lower half
// fixed means a retry never comes sooner than half the step, so a failing peer is never
// polled in a tight loop; the random half spreads relays that failed together.
inline std::chrono::milliseconds backoff_delay(int failures, std::chrono::milliseconds initial,
                                               std::chrono::milliseconds cap) {
  const int doublings = std::clamp(failures - 1, 0, 30);
  const std::int64_t step =
      std::min<std::int64_t>(cap.count(), initial.count() * (std::int64_t{1} << doublings));
  const std::int64_t half = std::max<std::int64_t>(step / 2, 1);
  thread_local std::minstd_rand random(std::random_device{}());
  std::uniform_int_distribution<std::int64_t> jitter(0, half);
  return std::chrono::milliseconds(half + jitter(random));
}

// Counts consecutive failures of one thing and says when to try it again.
class Backoff {
 public:
  using Clock = std::chrono::steady_clock;

  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds cap)
      : initial_(initial), cap_(cap) {}

  // Records a failure at `now`; returns the wait chosen.
  std::chrono::milliseconds failed(Clock::time_point now) {
    ++failures_;
    const auto delay = backoff_delay(failures_, initial_, cap_);
    retry_at_ = now + delay;
    return delay;
  }

  void succeeded() {
    failures_ = 0;
    retry_at_ = {};
  }

  bool due(Clock::time_point now) const { return now >= retry_at_; }
  Clock::time_point retry_at() const { return retry_at_; }
  int failures() const { return failures_; }

 private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds cap_;
  int failures_ = 0;
  Clock::time_point retry_at_{};
};

}  // namespace deedkit::internal
