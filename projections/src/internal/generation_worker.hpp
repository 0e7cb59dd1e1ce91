#pragma once

// Applies one generation of one projection to the global log, batch by batch, on one
// thread: the heart of the runner.
//
// Each batch is one transaction that first moves the generation's checkpoint (a
// compare-and-set that also locks the row), then lets the projection write, then commits:
// the writes and the checkpoint take effect together or not at all. After a crash, the next
// leader starts from the committed checkpoint, so each event takes effect exactly once.
//
// A batch that fails for a reason that retrying cannot fix is rolled back and applied again
// one event at a time, so the events before the culprit commit and the generation stops at
// exactly the event that fails. Failures of the database itself (connection lost, outcome
// unknown, deadlock) are retried with backoff from the checkpoint the database holds.
//
// A building generation that has caught up switches itself live (see attempt_switch).
//
// Lifecycle: constructed by the runner, run() on a thread of its own until the generation
// is retired or the runner stops it. Thread-safety: only finished() is for other threads.

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <unordered_set>
#include <vector>

#include "deedkit/eventstore/event_store.hpp"
#include "deedkit/eventstore/global_log_reader.hpp"
#include "deedkit/projections/projection.hpp"
#include "deedkit/projections/runner.hpp"
#include "internal/log_wake.hpp"

namespace deedkit::internal {

struct WorkerEnvironment {
  ConnectionPool& pool;
  const EventStore& store;
  LogWake& wake;
  const RunnerOptions& options;
};

class GenerationWorker {
 public:
  GenerationWorker(const WorkerEnvironment& environment, const Projection& projection,
                   int generation);
  GenerationWorker(const GenerationWorker&) = delete;
  GenerationWorker& operator=(const GenerationWorker&) = delete;

  // The thread body. Returns when `stop` is requested or the generation no longer exists
  // or was retired.
  void run(const std::stop_token& stop);

  bool finished() const { return finished_.load(); }

 private:
  enum class Outcome { kCommitted, kLost, kTransient, kFailed };
  struct SliceResult {
    Outcome outcome = Outcome::kCommitted;
    Error error{ErrorCode::kInternal, ""};
  };
  using Prepared = Result<std::unique_ptr<PreparedBatch>>;
  // A batch read ahead on another thread, and what the projection prepared from it there.
  struct ReadAhead {
    Result<GlobalLogBatch> batch;
    Prepared prepared;
  };

  bool reload(const std::stop_token& stop);
  Result<GlobalLogBatch> next_batch();
  void prefetch();
  void drop_prefetch();

  void handle_batch(const GlobalLogBatch& batch, const std::stop_token& stop);
  // `prepared`, when given, is the projection's prepare() of exactly these events.
  SliceResult commit_slice(std::span<const RecordedEvent> events, LogPosition to,
                           Prepared* prepared = nullptr);
  SliceResult write_slice(UnitOfWork& unit, std::span<const RecordedEvent> events,
                          LogPosition to, Prepared* prepared);
  void isolate_failure(const GlobalLogBatch& batch, const std::stop_token& stop);
  void record_failure(const RecordedEvent& event, const Error& error);
  void after_setback(const SliceResult& result, const std::stop_token& stop);

  bool attempt_switch(const std::stop_token& stop);
  void log_progress();

  bool applies(const RecordedEvent& event) const;
  std::vector<const RecordedEvent*> handled_events(std::span<const RecordedEvent> events) const;
  Prepared prepare(EventBatch handled) const;

  WorkerEnvironment environment_;
  const Projection& projection_;
  const std::string name_;
  const int generation_;
  const std::vector<ProjectionTable> table_specs_;
  const GenerationTables tables_;
  const std::string statement_prefix_;
  std::unordered_set<std::string> handled_types_;

  std::string role_;
  LogPosition position_;  // the committed checkpoint, as this worker last knew it
  bool failed_ = false;
  bool loaded_ = false;
  // A building generation has its read indexes once it caught up (create_read_indexes).
  bool read_indexes_ready_ = false;
  std::unordered_set<std::string> skipped_event_ids_;
  std::optional<GlobalLogReader> reader_;
  std::future<ReadAhead> prefetched_;
  // What was prepared for the batch next_batch() last returned, if it was read ahead.
  std::optional<Prepared> prepared_ahead_;

  std::chrono::milliseconds backoff_{0};
  std::chrono::steady_clock::time_point last_setback_warning_{};
  std::chrono::steady_clock::time_point last_progress_log_{};
  std::int64_t events_read_since_log_ = 0;
  std::atomic<bool> finished_{false};
};

}  // namespace deedkit::internal
