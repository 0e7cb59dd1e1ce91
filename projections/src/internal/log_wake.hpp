#pragma once

// How the runner's tip watch tells waiting generation workers that the log may have moved.
//
// An epoch counter: a worker notes the epoch before it reads, and after an empty read waits
// for the epoch to differ. A change between the two is therefore never lost.
//
// Thread-safety: all members may be called from any thread.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stop_token>

namespace deedkit::internal {

class LogWake {
 public:
  std::uint64_t epoch() const {
    std::lock_guard lock(mutex_);
    return epoch_;
  }

  void notify() {
    {
      std::lock_guard lock(mutex_);
      ++epoch_;
    }
    changed_.notify_all();
  }

  // Waits until the epoch differs from `seen`, `timeout` passes, or `stop` is requested.
  // Returns whether the epoch moved.
  bool wait_past(std::uint64_t seen, std::chrono::milliseconds timeout,
                 const std::stop_token& stop) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, stop, timeout, [&] { return epoch_ != seen; });
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable_any changed_;
  std::uint64_t epoch_ = 0;  // guarded by mutex_
};

}  // namespace deedkit::internal
