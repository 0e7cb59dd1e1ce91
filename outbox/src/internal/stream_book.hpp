#pragma once

// The relay's memory of pending rows, per stream, between fetching them and seeing them
// acknowledged. It decides what may be published next, and that decision carries the
// ordering guarantee: at most one row per stream is in flight, and it is always the stream's
// lowest pending version. A stream's next row becomes ready only when its predecessor was
// acknowledged; a failed row stays at the head of its stream and blocks it until it succeeds
// or is parked as a dead letter.
//
// Pure bookkeeping: no I/O, no clock of its own. Not thread-safe (the relay's loop owns it).

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "internal/outbox_row.hpp"

namespace deedkit::internal {

class StreamBook {
 public:
  using Clock = std::chrono::steady_clock;

  enum class Added {
    kAdded,
    kAlreadyHeld,
    kNotOwned,
    // The row is older than the stream's row in flight: the outbox's own order was broken
    // (a lower version committed after a higher one). Not taken: the in-flight row must stay
    // the stream's head until it settles, so the row stays pending in the outbox for a later
    // fetch. The caller logs it.
    kBehindInFlight,
  };

  // Partitions start not owned. Giving one up forgets its streams at once, except a stream
  // with a row in flight or held, which is forgotten when that row settles.
  void set_owned(int partition, bool owned);
  bool owns(int partition) const { return owned_[static_cast<std::size_t>(partition)]; }

  Added add(OutboxRow row);

  // Up to `limit` rows to publish now, at most one per stream, streams that became ready
  // first; each is marked in flight. The pointers stay valid until that row settles.
  std::vector<const OutboxRow*> start_ready(Clock::time_point now, std::size_t limit);

  // The row in flight under `message_id`, or nullptr.
  const OutboxRow* in_flight(const std::string& message_id) const;

  // Settling a row in flight (each is a no-op for an unknown message id):
  // it was stored; the stream's next row becomes ready.
  void published(const std::string& message_id);
  // it failed; it stays first in its stream, which waits until `retry_at`.
  void retry_later(const std::string& message_id, Clock::time_point retry_at);
  // it is about to become a dead letter; the stream stays blocked until park() or
  // release_held() names it.
  void hold(const std::string& message_id);

  // Counts one more failed attempt of the row in flight under `message_id`; returns the new
  // count (0 for an unknown id).
  int count_attempt(const std::string& message_id);

  // True when a row of `partition` is in flight or held: giving the partition up now would
  // let another relay publish the stream while an acknowledgement is still owed here.
  bool busy(int partition) const;

  // Forgets every row of the stream (its head became a dead letter; the database now
  // excludes the stream until an operator acts).
  void park(const std::string& stream_id);
  // A held stream may try its head again at `retry_at` (the dead letter was not recorded).
  void release_held(const std::string& stream_id, Clock::time_point retry_at);

  // Every row in flight goes back to ready (the broker connection was lost: no
  // acknowledgement can come any more). Returns how many there were.
  std::size_t abandon_in_flight();

  std::size_t in_flight_count() const { return in_flight_.size(); }
  std::size_t row_count() const { return row_count_; }
  int rows_in_partition(int partition) const {
    return rows_per_partition_[static_cast<std::size_t>(partition)];
  }
  // Every outbox id held, so a fetch can skip them.
  std::vector<std::int64_t> held_ids() const;
  // The outbox ids held above each partition's bound: a fetch that starts above the bound
  // needs to skip only these.
  std::vector<std::int64_t> held_ids_above(
      const std::array<std::int64_t, kOutboxPartitions>& bounds) const;
  // The earliest scheduled retry, if any.
  std::optional<Clock::time_point> next_retry() const;

 private:
  enum class State { kIdle, kInFlight, kHeld };
  struct Stream {
    std::map<std::int64_t, OutboxRow> rows;  // by stream_version; the head is published next
    int partition = 0;
    State state = State::kIdle;
    bool waiting = false;  // idle until a scheduled retry
    bool queued = false;   // listed in ready_
  };

  void queue_if_ready(const std::string& stream_id, Stream& stream);
  void erase_head(Stream& stream);
  // Queues the streams whose head waited for `message_id` to leave flight.
  void release_blocked(const std::string& message_id);
  void forget(std::unordered_map<std::string, Stream>::iterator stream);
  void settle(const std::string& message_id, State next, bool pop_head);

  std::unordered_map<std::string, Stream> streams_;
  std::unordered_map<std::string, std::string> in_flight_;  // message id -> stream id
  std::deque<std::string> ready_;                            // may name settled streams
  std::multimap<Clock::time_point, std::string> retries_;    // may name forgotten streams
  // Streams whose head shares its message id with a row in flight, by that id.
  std::unordered_multimap<std::string, std::string> blocked_;  // may name forgotten streams
  std::array<std::set<std::int64_t>, kOutboxPartitions> ids_;  // by partition, ordered
  std::size_t row_count_ = 0;
  std::array<int, kOutboxPartitions> rows_per_partition_{};
  std::array<bool, kOutboxPartitions> owned_{};
};

}  // namespace deedkit::internal
