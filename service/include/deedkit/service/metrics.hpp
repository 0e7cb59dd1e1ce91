#pragma once

// In-process counters for the service's /metrics endpoint (Prometheus text format).
//
// Thread-safety: every member function may be called from any thread.

#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace deedkit::service {

class ServiceMetrics {
 public:
  void count_request(const std::string& route, int status);
  void observe_command(double seconds, bool replayed);

  // The service's own series; gauges read from the database are appended by the caller.
  std::string render() const;

 private:
  static constexpr std::array<double, 10> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,  0.1,    0.25,  0.5,  1.0};
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, long long> requests_;  // guarded by mutex_
  std::array<long long, kBuckets.size()> bucket_counts_{};     // guarded by mutex_
  long long command_count_ = 0;                                // guarded by mutex_
  double command_seconds_ = 0;                                 // guarded by mutex_
  long long replays_ = 0;                                      // guarded by mutex_
};

}  // namespace deedkit::service
