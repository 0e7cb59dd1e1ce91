#include "deedkit/service/metrics.hpp"

#include <cstdio>

namespace deedkit::service {

void ServiceMetrics::count_request(const std::string& route, int status) {
  std::lock_guard lock(mutex_);
  ++requests_[{route, status}];
}

void ServiceMetrics::observe_command(double seconds, bool replayed) {
  std::lock_guard lock(mutex_);
  ++command_count_;
  command_seconds_ += seconds;
  if (replayed) ++replays_;
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++bucket_counts_[i];
  }
}

std::string ServiceMetrics::render() const {
  std::lock_guard lock(mutex_);
  std::string text =
      "# HELP deedkit_http_requests_total HTTP requests by route and status.\n"
      "# TYPE deedkit_http_requests_total counter\n";
  for (const auto& [key, count] : requests_) {
    text += "deedkit_http_requests_total{route=\"" + key.first + "\",status=\"" +
            std::to_string(key.second) + "\"} " + std::to_string(count) + "\n";
  }

  text +=
      "# HELP deedkit_command_duration_seconds Command latency, replays and failures included.\n"
      "# TYPE deedkit_command_duration_seconds histogram\n";
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    char bound[32];
    std::snprintf(bound, sizeof bound, "%g", kBuckets[i]);
    text += "deedkit_command_duration_seconds_bucket{le=\"" + std::string(bound) + "\"} " +
            std::to_string(bucket_counts_[i]) + "\n";
  }
  text += "deedkit_command_duration_seconds_bucket{le=\"+Inf\"} " +
          std::to_string(command_count_) + "\n";
  text += "deedkit_command_duration_seconds_sum " + std::to_string(command_seconds_) + "\n";
  text += "deedkit_command_duration_seconds_count " + std::to_string(command_count_) + "\n";

  text +=
      "# HELP deedkit_idempotent_replays_total Responses replayed from an idempotency key.\n"
      "# TYPE deedkit_idempotent_replays_total counter\n"
      "deedkit_idempotent_replays_total " + std::to_string(replays_) + "\n";
  return text;
}

}  // namespace deedkit::service
