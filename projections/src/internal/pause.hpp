#pragma once

// A wait that a stop request ends at once: the runner's and the workers' pauses between
// rounds, so that stop() never waits out an interval.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>

namespace deedkit::internal {

inline void pause_unless_stopped(std::chrono::milliseconds duration,
                                 const std::stop_token& stop) {
  // Nothing else ever locks or notifies these: the wait ends at `duration`, or when the
  // stop token's callback (which condition_variable_any registers) wakes it.
  std::mutex mutex;
  std::condition_variable_any never_notified;
  // cppcheck-suppress localMutex
  std::unique_lock lock(mutex);
  never_notified.wait_for(lock, stop, duration, [] { return false; });
}

}  // namespace deedkit::internal
