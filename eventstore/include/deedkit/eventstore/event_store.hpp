#pragma once

// The append-only event log in PostgreSQL (table deedkit.events, docs/schema.md).
//
// Appends are optimistic: the caller states the version it expects the stream to be at, and
// the append is one statement that checks and inserts together (no lock, no extra round trip).
// Every operation exists in two forms: one that joins a UnitOfWork the caller owns, so other
// writes commit atomically with the events, and one that runs in a transaction of its own.
//
// Thread-safety: an EventStore is stateless beyond its pool reference and is safe to share.
// The pool must outlive it.

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "deedkit/core/error.hpp"
#include "deedkit/eventstore/connection_pool.hpp"
#include "deedkit/eventstore/types.hpp"
#include "deedkit/eventstore/unit_of_work.hpp"

namespace deedkit {

// One read of the global log.
struct GlobalLogBatch {
  std::vector<RecordedEvent> events;
  // Where the next read continues: the last event's position, or `after` when empty.
  LogPosition next;
  // True when committed events exist beyond what this read could return, because an older
  // transaction is still running and may yet commit events that come before them. The reader
  // waits for it rather than skip; GlobalLogReader turns a long wait into a warning.
  bool held_back = false;
};

class EventStore {
 public:
  explicit EventStore(ConnectionPool& pool) : pool_(pool) {}

  // Appends `events` to `stream_id` atomically if the stream matches `expected`.
  // Returns the versions written. Fails with:
  //  - kConflict: the stream's version did not match; the message names the stream, the
  //    expected and the actual version. If a racing writer took only some of the versions,
  //    part of the batch may be written: the caller's unit is then poisoned and must be
  //    rolled back; otherwise the unit stays usable and the caller may reload and retry.
  //  - kInvalidArgument: no events, an empty or over-long stream id or event type, or an
  //    event id already used elsewhere in the log.
  //  - kUnavailable / kOutcomeUnknown / kInternal as UnitOfWork maps them.
  // Appending events whose ids are already stored in this stream at exactly these positions
  // succeeds with `duplicate = true` and writes nothing: a retried append is not a conflict.
  [[nodiscard]] Result<AppendResult> append(UnitOfWork& unit, const std::string& stream_id,
                                            ExpectedVersion expected,
                                            std::span<const NewEvent> events) const;
  [[nodiscard]] Result<AppendResult> append(const std::string& stream_id,
                                            ExpectedVersion expected,
                                            std::span<const NewEvent> events) const;

  // The stream's current version, 0 when it has no events.
  [[nodiscard]] Result<std::int64_t> stream_version(UnitOfWork& unit,
                                                    const std::string& stream_id) const;

  // Up to `max_count` events of the stream with version >= `from_version`, ascending.
  // An unknown stream gives an empty vector (callers decide whether that is "not found").
  [[nodiscard]] Result<std::vector<RecordedEvent>> read_stream_forward(
      UnitOfWork& unit, const std::string& stream_id, std::int64_t from_version,
      int max_count) const;
  [[nodiscard]] Result<std::vector<RecordedEvent>> read_stream_forward(
      const std::string& stream_id, std::int64_t from_version, int max_count) const;

  // Up to `max_count` events with version <= `from_version` (nullopt: from the end),
  // descending.
  [[nodiscard]] Result<std::vector<RecordedEvent>> read_stream_backward(
      const std::string& stream_id, std::optional<std::int64_t> from_version,
      int max_count) const;

  // Reads for folding a stream into an aggregate's state. Their events carry only what a
  // fold needs: stream_id, stream_version, event_type, schema_version and payload (ids,
  // metadata, positions and times are left empty), which makes them the cheapest reads.
  //
  // The first: a stream's snapshot row (deedkit.snapshots, written by deedkit::commands) of
  // the given state schema version, if there is one, and the first `max_count` events after
  // it (after version 0 without one), ascending, in one round trip.
  struct SnapshotAndEvents {
    std::optional<std::int64_t> snapshot_version;
    std::string snapshot_state;  // the stored bytes; meaningless without snapshot_version
    std::vector<RecordedEvent> events;
  };
  [[nodiscard]] Result<SnapshotAndEvents> read_stream_after_snapshot(
      UnitOfWork& unit, const std::string& stream_id, int state_schema_version,
      int max_count) const;
  // The rest: like for_each_in_stream, with the fold's columns only.
  [[nodiscard]] Result<void> fold_stream(
      UnitOfWork& unit, const std::string& stream_id, std::int64_t from_version,
      int batch_size, const std::function<Result<void>(const RecordedEvent&)>& visit) const;

  // Calls `visit` for each event of the stream from `from_version` on, fetching `batch_size`
  // rows at a time, so memory stays flat however long the stream is. Stops early and returns
  // the visitor's error if it returns one.
  [[nodiscard]] Result<void> for_each_in_stream(
      UnitOfWork& unit, const std::string& stream_id, std::int64_t from_version,
      int batch_size, const std::function<Result<void>(const RecordedEvent&)>& visit) const;

  // Up to `max_count` events after `after` in commit-safe order, optionally only those of
  // `category`. Never returns an event while an older transaction that might still commit an
  // earlier one is running (see GlobalLogBatch::held_back and docs/ordering.md).
  [[nodiscard]] Result<GlobalLogBatch> read_all(LogPosition after, int max_count,
                                                const std::string& category = "") const;

  ConnectionPool& pool() const { return pool_; }

 private:
  ConnectionPool& pool_;
};

}  // namespace deedkit
