#pragma once

// The outbox module's logger, "relay". It writes to the default logger's sinks and follows
// spdlog::set_level like every registered logger.

#include <spdlog/spdlog.h>

namespace deedkit::internal {

spdlog::logger& relay_log();

// Lets a repeated warning through at most once per `interval`, counting what it held back,
// so a long outage yields a few lines with numbers instead of a flood.
class WarnLimiter {
 public:
  explicit WarnLimiter(std::chrono::milliseconds interval = std::chrono::seconds(10))
      : interval_(interval) {}

  // True when a warning may be logged now; suppressed() is then the count held back since.
  bool allow(std::chrono::steady_clock::time_point now) {
    if (last_ != std::chrono::steady_clock::time_point{} && now - last_ < interval_) {
      ++held_back_;
      return false;
    }
    last_ = now;
    reported_held_back_ = held_back_;
    held_back_ = 0;
    return true;
  }
  int suppressed() const { return reported_held_back_; }
  void reset() { last_ = {}; held_back_ = 0; }

 private:
  std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point last_{};
  int held_back_ = 0;
  int reported_held_back_ = 0;
};

}  // namespace deedkit::internal
