#pragma once

// The relay's loop (relay.cpp: lifecycle, broker, leases, shutdown; relay_flow.cpp: rows
// from the database to the broker and back). One thread runs everything except nats.c's
// callbacks, which only push outcomes into the inbox, and two helpers with database
// connections of their own: the AsyncFetcher reads pending rows and the MarkRecorder records
// acknowledged ones, while the loop goes on publishing.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "deedkit/outbox/relay.hpp"
#include "internal/async_fetcher.hpp"
#include "internal/backoff.hpp"
#include "internal/mark_recorder.hpp"
#include "internal/message_builder.hpp"
#include "internal/partition_leases.hpp"
#include "internal/publisher.hpp"
#include "internal/relay_database.hpp"
#include "internal/relay_log.hpp"
#include "internal/stream_book.hpp"
#include "internal/wake_signal.hpp"

namespace deedkit {

// Counts events per second over the last ten seconds.
class RateWindow {
 public:
  void add(std::chrono::steady_clock::time_point now, std::uint64_t count);
  double per_second(std::chrono::steady_clock::time_point now) const;

 private:
  static constexpr int kSeconds = 10;
  std::int64_t second_of(std::chrono::steady_clock::time_point now) const;
  std::array<std::uint64_t, kSeconds> counts_{};
  std::array<std::int64_t, kSeconds> seconds_{};
};

// Latencies in buckets that grow by a fifth, from 100 µs to about 13 minutes: a quantile
// comes back as its bucket's upper bound, at most a fifth above the true value, in constant
// memory however many rows pass. Longer latencies count in the last bucket, so a quantile
// that lands there reads "13 minutes or more".
class LatencyHistogram {
 public:
  void add(std::chrono::microseconds latency);
  std::uint64_t count() const { return count_; }
  // The upper bound of the bucket that holds quantile `q` (0..1); zero when empty.
  std::chrono::microseconds quantile(double q) const;

 private:
  static constexpr int kBuckets = 88;
  static std::int64_t upper_bound_micros(int bucket);
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t count_ = 0;
};

class Relay::Impl {
 public:
  explicit Impl(RelayOptions options);
  ~Impl();

  Result<void> run();
  void stop();
  RelayMetrics metrics() const;

 private:
  using Clock = std::chrono::steady_clock;

  // A database write the relay owes; kept in order until PostgreSQL takes it.
  struct FailureWrite {
    std::int64_t outbox_id = 0;
    std::string stream_id;
    int attempts = 0;
    std::string reason;
    bool dead_letter = false;
  };

  // relay.cpp
  Result<void> start();
  void step_leases(Clock::time_point now);
  void step_broker(Clock::time_point now);
  Clock::time_point next_wake(Clock::time_point now) const;
  void shut_down();
  bool database_ok(Clock::time_point now, const Result<void>& result);
  void fail_fatally(Error error);
  void update_metrics(Clock::time_point now);

  // relay_flow.cpp
  void step_fetch(Clock::time_point now);
  void absorb_fetch(internal::AsyncFetcher::Finished finished, Clock::time_point now);
  void step_publish(Clock::time_point now);
  void settle(std::vector<internal::PublishOutcome> outcomes, Clock::time_point now);
  void step_database_writes(Clock::time_point now, bool flush_now);
  void step_retention(Clock::time_point now);
  void step_backlog(Clock::time_point now);
  void refuse(const std::string& message_id, const std::string& reason, bool permanent,
              Clock::time_point now);
  void retry_lost(const std::string& message_id, const std::string& reason,
                  Clock::time_point now);
  std::vector<internal::PartitionRoom> room() const;
  void forget_fetched_through();

  const RelayOptions options_;
  // Declared before publisher_ so that it outlives nats.c's callbacks into it.
  internal::OutcomeInbox inbox_;
  std::optional<internal::MessageBuilder> builder_;
  std::unique_ptr<internal::Publisher> publisher_;
  internal::RelayDatabase database_;
  // Records acknowledged rows on its own thread; wakes the loop through inbox_.
  std::unique_ptr<internal::MarkRecorder> recorder_;
  // Fetches pending rows on its own thread; wakes the loop through inbox_.
  std::unique_ptr<internal::AsyncFetcher> fetcher_;
  internal::PartitionLeases leases_;
  internal::StreamBook book_;
  internal::WakeSignal wake_;
  std::atomic<bool> stopping_{false};
  bool started_ = false;
  std::optional<Error> fatal_;

  bool broker_ready_ = false;
  internal::Backoff broker_backoff_;
  internal::Backoff database_backoff_;
  bool database_refused_ = false;  // a statement failed in a way retrying cannot fix
  int lease_failures_ = 0;
  // Consecutive failures per message id, for the backoff of a single row.
  std::unordered_map<std::string, int> row_failures_;

  std::vector<std::int64_t> to_mark_;
  Clock::time_point mark_due_{};
  std::deque<FailureWrite> failure_writes_;

  bool fetch_requested_ = true;
  // Set when a stream is parked or partitions change hands: the fetch running then is
  // dropped when it lands, as its rows were read before the change.
  bool fetch_overtaken_ = false;
  std::array<bool, internal::kOutboxPartitions> more_waiting_{};
  // Per partition, an outbox id up to which every pending row is held here or recorded; the
  // next fetch starts above it. Only CommitHorizon's settled bound moves it up; anything that
  // may put a row below it back into play (partitions changing hands, a parked stream, a
  // database error, a row the book refused, the sequence set back) sets it back to 0.
  std::array<std::int64_t, internal::kOutboxPartitions> fetched_through_{};
  internal::CommitHorizon horizon_;
  bool horizon_unsupported_ = false;  // the schema predates migration 9
  std::int64_t last_sequence_value_ = 0;  // from the last poll
  std::int64_t last_sequence_file_ = 0;   // from the last poll
  Clock::time_point next_horizon_proposal_{};
  Clock::time_point next_poll_{};
  Clock::time_point next_full_fetch_{};
  Clock::time_point next_lease_{};
  Clock::time_point next_retention_{};
  Clock::time_point next_backlog_{};
  std::int64_t retention_round_deleted_ = 0;

  internal::WarnLimiter broker_warnings_;
  internal::WarnLimiter database_warnings_;
  internal::WarnLimiter row_warnings_;
  internal::WarnLimiter order_errors_;

  RateWindow rate_;
  LatencyHistogram commit_to_ack_;
  mutable std::mutex metrics_mutex_;
  RelayMetrics metrics_;  // guarded by metrics_mutex_
  RelayMetrics counters_;  // the loop's own copy, published into metrics_ each iteration
};

}  // namespace deedkit
