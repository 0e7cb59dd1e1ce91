#pragma once

// Records acknowledged rows as published on a thread and a database connection of its own,
// so the relay's loop goes on publishing while PostgreSQL updates the rows: it marks them
// (published_at, kept for retention), or deletes them when nothing is to be retained.
//
// Nothing waits for a record: a stream's order rests on the PubAck alone, and a row that is
// acknowledged but not yet recorded is only published again (and dropped by JetStream's
// duplicate check) if the relay dies first. Until a row is recorded it is still pending in
// the table, so the relay's fetch must skip it: pending_ids() says which rows those are.
//
// A failed UPDATE is retried with backoff (the ids stay pending and in pending_ids()); an
// error retrying cannot fix is kept for the relay's loop to stop on. Thread-safe.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "deedkit/core/error.hpp"
#include "internal/backoff.hpp"
#include "internal/relay_database.hpp"

namespace deedkit::internal {

class MarkRecorder {
 public:
  // `recorded` runs on the recorder's thread after each batch it recorded (the relay wakes
  // its loop with it).
  enum class Record { kMark, kDelete };

  MarkRecorder(std::string database_uri, Record how, std::chrono::milliseconds backoff_initial,
               std::chrono::milliseconds backoff_max, std::function<void()> recorded);
  ~MarkRecorder();  // stops the thread; what is still pending is left to the next relay

  MarkRecorder(const MarkRecorder&) = delete;
  MarkRecorder& operator=(const MarkRecorder&) = delete;

  // Queues rows to be recorded. Never blocks on the database.
  void record(const std::vector<std::int64_t>& ids);

  // Rows queued or being recorded: still pending in the table.
  std::vector<std::int64_t> pending_ids() const;
  std::size_t pending_count() const;

  // Rows recorded since the last call.
  std::uint64_t take_recorded();

  // An error that retrying cannot fix, once one happened; the recorder then stops recording.
  std::optional<Error> fatal() const;

  // Waits until nothing is pending, an unfixable error, or `deadline`; true when empty.
  bool wait_until_idle(std::chrono::steady_clock::time_point deadline);

 private:
  void run();

  RelayDatabase database_;
  Record how_;
  Backoff backoff_;
  std::function<void()> recorded_callback_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::int64_t> queued_;     // guarded by mutex_
  std::vector<std::int64_t> recording_;  // guarded by mutex_: in the UPDATE now
  std::uint64_t recorded_ = 0;           // guarded by mutex_
  std::optional<Error> fatal_;           // guarded by mutex_
  bool stopping_ = false;                // guarded by mutex_
  std::thread thread_;
};

}  // namespace deedkit::internal
