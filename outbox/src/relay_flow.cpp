// Rows on their way through the relay: fetched from the outbox, published one per stream at a
// time, settled by their acknowledgements, and recorded back in the database.

#include "internal/relay_impl.hpp"

#include <algorithm>
#include <limits>

namespace deedkit {

namespace {

using Clock = std::chrono::steady_clock;

// Acknowledged rows go to the recorder in batches: one UPDATE for up to this many rows, or
// after this delay, whichever comes first. Nothing waits for the record (ordering rests on
// the PubAck alone), so batching costs no latency on the way to JetStream.
constexpr std::size_t kMarkBatch = 256;
constexpr auto kMarkDelay = std::chrono::milliseconds(5);
constexpr auto kBacklogInterval = std::chrono::seconds(5);
// Bounds the memory of per-row failure counts for rows this relay gave up (lost leases).
constexpr std::size_t kMaxRememberedFailures = 10000;
// Each CommitHorizon proposal takes a transaction id (and writes a commit record): only when
// a fetch is due, so an idle relay takes none, and at most this often unless the relay is
// working through a backlog, where a horizon that lags lets the skip lists grow.
constexpr auto kHorizonProposalInterval = std::chrono::milliseconds(50);

template <typename T>
Result<void> status_of(const Result<T>& result) {
  if (result) return {};
  return std::unexpected(result.error());
}

}  // namespace

std::vector<internal::PartitionRoom> Relay::Impl::room() const {
  std::vector<internal::PartitionRoom> rooms;
  for (const int partition : leases_.owned()) {
    const int free = options_.rows_per_partition - book_.rows_in_partition(partition);
    if (free > 0) rooms.push_back({partition, free});
  }
  return rooms;
}

void Relay::Impl::forget_fetched_through() {
  fetched_through_.fill(0);
  // A proposal made before may rest on a server that has since restarted or been restored.
  horizon_ = internal::CommitHorizon();
  // A fetch under way could otherwise move the bounds up again when it lands.
  fetch_overtaken_ = true;
  fetch_requested_ = true;
}

void Relay::Impl::step_fetch(Clock::time_point now) {
  if (auto finished = fetcher_->take()) absorb_fetch(std::move(*finished), now);
  if (fetcher_->busy()) return;
  if (leases_.owned().empty() || !database_backoff_.due(now)) return;
  const auto rooms = room();
  if (rooms.empty()) return;

  // A partition that filled its share last time may hold more; go back once an eighth is
  // free, early enough that the fetch (on its own thread) lands before the book runs dry.
  bool refill = false;
  for (const auto& entry : rooms) {
    refill = refill || (more_waiting_[static_cast<std::size_t>(entry.partition)] &&
                        entry.rows * 8 >= options_.rows_per_partition);
  }
  const bool due = fetch_requested_ || refill || now >= next_full_fetch_;
  if (!due && now < next_poll_) return;
  next_poll_ = now + options_.poll_interval;

  const auto poll = database_.poll();
  if (!database_ok(now, status_of(poll))) return;
  const bool restarted = last_sequence_file_ != 0 && poll->sequence_file != last_sequence_file_;
  if (restarted || poll->sequence_value < last_sequence_value_) {
    // The sequence was set back (a restore, TRUNCATE ... RESTART IDENTITY): new rows may get
    // ids below every bound.
    internal::relay_log().warn("the outbox id sequence was set back (from {} to {}); fetching "
                               "every partition from its start",
                               last_sequence_value_, poll->sequence_value);
    forget_fetched_through();
  }
  last_sequence_value_ = poll->sequence_value;
  last_sequence_file_ = poll->sequence_file;
  const std::int64_t settled = horizon_.observe(poll->snapshot);
  if (!due && !wake_.moved(*poll)) return;

  if (!horizon_unsupported_ && horizon_.wants_proposal() &&
      (refill || now >= next_horizon_proposal_)) {
    next_horizon_proposal_ = now + kHorizonProposalInterval;
    const auto proposal = database_.propose_horizon();
    if (!database_ok(now, status_of(proposal))) return;
    if (proposal->schema_supports_it) {
      horizon_.propose(proposal->sequence_value, proposal->proposer_xid);
    } else {
      horizon_unsupported_ = true;
      internal::relay_log().warn(
          "the database schema predates migration 9 (outbox ids drawn after transaction ids): "
          "every fetch scans its partitions from the start, which costs more under a large "
          "backlog; run `deedkit migrate`, then restart the relay");
    }
  }

  // A partition with a parked stream is scanned from its start, so that rows of the stream
  // become visible again when an operator retries or discards its dead letter.
  std::vector<internal::PartitionRoom> scans = rooms;
  // Held rows at or below where their partition's scan starts, or of partitions not
  // scanned, cannot come back: only the others are sent to be skipped.
  std::array<std::int64_t, internal::kOutboxPartitions> scan_starts;
  scan_starts.fill(std::numeric_limits<std::int64_t>::max());
  for (internal::PartitionRoom& scan : scans) {
    const auto partition = static_cast<std::size_t>(scan.partition);
    if (std::binary_search(poll->dead_letter_partitions.begin(),
                           poll->dead_letter_partitions.end(), scan.partition)) {
      fetched_through_[partition] = 0;
    }
    // Read here, after the poll, which may have set the bounds back.
    scan.after = fetched_through_[partition];
    scan_starts[partition] = scan.after;
  }
  // Rows acknowledged but not recorded yet are still pending in the table: skip them too, or
  // they would come back and be published a second time behind their successors. They are
  // few (a mark batch or two), and their partitions are not known here, so all are sent.
  std::vector<std::int64_t> skip = book_.held_ids_above(scan_starts);
  skip.insert(skip.end(), to_mark_.begin(), to_mark_.end());
  const std::vector<std::int64_t> recording = recorder_->pending_ids();
  skip.insert(skip.end(), recording.begin(), recording.end());

  fetch_overtaken_ = false;
  fetcher_->start(std::move(scans), std::move(skip), *poll, settled);
}

void Relay::Impl::absorb_fetch(internal::AsyncFetcher::Finished finished,
                               Clock::time_point now) {
  if (!database_ok(now, status_of(finished.rows))) return;
  if (fetch_overtaken_) {
    // A stream was parked, or a partition changed hands, while the fetch ran: its rows may
    // belong to a stream that must now wait behind a dead letter, or to another relay.
    internal::relay_log().debug("dropping a fetch of {} rows overtaken while it ran; "
                                "fetching again",
                                finished.rows->size());
    fetch_requested_ = true;
    return;
  }
  wake_.fetched(finished.poll, finished.settled);
  fetch_requested_ = false;
  next_full_fetch_ = now + options_.fetch_interval;

  std::array<int, internal::kOutboxPartitions> fetched{};
  std::array<std::int64_t, internal::kOutboxPartitions> highest{};
  std::array<bool, internal::kOutboxPartitions> refused{};
  std::size_t added = 0;
  for (internal::OutboxRow& row : *finished.rows) {
    // A partition given up while the fetch ran is another relay's now.
    if (!book_.owns(row.partition)) continue;
    const auto partition = static_cast<std::size_t>(row.partition);
    ++fetched[partition];
    highest[partition] = std::max(highest[partition], row.outbox_id);
    ++added;
    const std::string stream_id = row.stream_id;
    const std::int64_t version = row.stream_version;
    if (book_.add(std::move(row)) == internal::StreamBook::Added::kBehindInFlight) {
      // Left pending for a later fetch, which must not start above it.
      refused[partition] = true;
      if (order_errors_.allow(now)) {
        internal::relay_log().error(
            "stream {} version {} became visible while a later version was in flight: a "
            "lower version committed after a higher one, so JetStream receives them out of "
            "order",
            stream_id, version);
      }
    }
  }
  for (const auto& entry : finished.rooms) {
    const auto partition = static_cast<std::size_t>(entry.partition);
    more_waiting_[partition] = fetched[partition] >= entry.rows;
    if (refused[partition] || !book_.owns(entry.partition) ||
        std::binary_search(finished.poll.dead_letter_partitions.begin(),
                           finished.poll.dead_letter_partitions.end(), entry.partition)) {
      fetched_through_[partition] = 0;
      continue;
    }
    // Every row up to the settled bound was visible to this fetch. It returned them all
    // (or skipped them as held) unless it stopped at the room limit, after `highest`.
    std::int64_t through = finished.settled;
    if (more_waiting_[partition]) through = std::min(through, highest[partition]);
    fetched_through_[partition] = std::max(fetched_through_[partition], through);
  }
  internal::relay_log().trace("fetch after poll {} ({} running): {} rows",
                              finished.poll.sequence_value,
                              finished.poll.snapshot.running.size(), added);
  if (added > 0) {
    internal::relay_log().debug("fetched {} rows; {} held, {} in flight", added,
                                book_.row_count(), book_.in_flight_count());
  }
}

void Relay::Impl::step_publish(Clock::time_point now) {
  const auto limit = static_cast<std::size_t>(options_.max_in_flight);
  if (!broker_ready_ || book_.in_flight_count() >= limit) return;

  const auto rows = book_.start_ready(now, limit - book_.in_flight_count());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const std::string message_id = rows[i]->event_id;
    auto message = builder_->build(*rows[i]);
    if (!message) {
      fail_fatally(message.error());
      for (std::size_t j = i; j < rows.size(); ++j) book_.retry_later(rows[j]->event_id, now);
      return;
    }

    if (message->wire_size() > publisher_->max_message_size()) {
      refuse(message_id,
             "message of " + std::to_string(message->wire_size()) +
                 " bytes exceeds the broker's limit of " +
                 std::to_string(publisher_->max_message_size()) + " bytes",
             true, now);
      continue;
    }

    auto published = publisher_->publish(*message);
    if (published) continue;
    if (published.error().code == ErrorCode::kInvalidArgument) {
      refuse(message_id, published.error().message, true, now);
      continue;
    }

    // Not handed over (the connection is going away): this row and the rest of the batch
    // wait; step_broker notices the lost connection on the next turn.
    for (std::size_t j = i; j < rows.size(); ++j) {
      retry_lost(rows[j]->event_id, published.error().message, now);
    }
    return;
  }
}

void Relay::Impl::settle(std::vector<internal::PublishOutcome> outcomes,
                         Clock::time_point now) {
  using Kind = internal::PublishOutcome::Kind;
  for (internal::PublishOutcome& outcome : outcomes) {
    // No row: an outcome from an earlier connection, or for a row given up since.
    const internal::OutboxRow* row = book_.in_flight(outcome.message_id);
    if (!row) continue;

    switch (outcome.kind) {
      case Kind::kStored:
      case Kind::kDuplicate:
        if (outcome.kind == Kind::kStored) {
          const auto acked_at = std::chrono::duration_cast<std::chrono::microseconds>(
              std::chrono::system_clock::now().time_since_epoch());
          commit_to_ack_.add(acked_at - std::chrono::microseconds(row->recorded_at_micros));
        }
        if (to_mark_.empty()) mark_due_ = now + kMarkDelay;
        to_mark_.push_back(row->outbox_id);
        row_failures_.erase(outcome.message_id);
        book_.published(outcome.message_id);
        ++counters_.published;
        if (outcome.kind == Kind::kDuplicate) ++counters_.duplicates;
        rate_.add(now, 1);
        break;
      case Kind::kTooLarge:
      case Kind::kRejected:
        refuse(outcome.message_id, outcome.reason, true, now);
        break;
      case Kind::kBrokerDown:
        refuse(outcome.message_id, outcome.reason, false, now);
        break;
      case Kind::kLost:
        retry_lost(outcome.message_id, outcome.reason, now);
        break;
    }
  }
}

void Relay::Impl::refuse(const std::string& message_id, const std::string& reason,
                         bool permanent, Clock::time_point now) {
  const internal::OutboxRow* row = book_.in_flight(message_id);
  if (!row) return;
  const int attempts = book_.count_attempt(message_id);
  FailureWrite write{row->outbox_id, row->stream_id, attempts, reason,
                     permanent && attempts >= options_.max_attempts};

  if (write.dead_letter) {
    internal::relay_log().error(
        "event {} (stream {}, version {}) was refused {} times, last: {}; it becomes dead "
        "letter {} and the stream's later rows wait behind it until `deedkit outbox retry {}` "
        "or `deedkit outbox discard {}`",
        message_id, row->stream_id, row->stream_version, attempts, reason, row->outbox_id,
        row->outbox_id, row->outbox_id);
    row_failures_.erase(message_id);
    book_.hold(message_id);
  } else {
    ++counters_.retries;
    const auto delay =
        internal::backoff_delay(attempts, options_.backoff_initial, options_.backoff_max);
    if (row_warnings_.allow(now)) {
      internal::relay_log().warn(
          "event {} (stream {}, version {}) refused (attempt {}{}; {} similar warnings held "
          "back), retrying in {} ms; the stream waits: {}",
          message_id, row->stream_id, row->stream_version, attempts,
          permanent ? " of " + std::to_string(options_.max_attempts) : std::string(),
          row_warnings_.suppressed(), delay.count(), reason);
    }
    book_.retry_later(message_id, now + delay);
  }
  failure_writes_.push_back(std::move(write));
}

void Relay::Impl::retry_lost(const std::string& message_id, const std::string& reason,
                             Clock::time_point now) {
  const internal::OutboxRow* row = book_.in_flight(message_id);
  if (!row) return;
  if (row_failures_.size() > kMaxRememberedFailures) row_failures_.clear();
  const int failures = ++row_failures_[message_id];
  ++counters_.retries;
  const auto delay =
      internal::backoff_delay(failures, options_.backoff_initial, options_.backoff_max);
  if (row_warnings_.allow(now)) {
    internal::relay_log().warn(
        "no acknowledgement for event {} (stream {}, version {}; {} similar warnings held "
        "back), publishing it again in {} ms; the stream waits: {}",
        message_id, row->stream_id, row->stream_version, row_warnings_.suppressed(),
        delay.count(), reason);
  }
  book_.retry_later(message_id, now + delay);
}

void Relay::Impl::step_database_writes(Clock::time_point now, bool flush_now) {
  if (!database_backoff_.due(now)) return;

  if (options_.retain_published.count() == 0) {
    counters_.rows_deleted += recorder_->take_recorded();
  }
  if (auto fatal = recorder_->fatal()) {
    database_refused_ = true;
    fail_fatally(*fatal);
    return;
  }
  if (!to_mark_.empty() &&
      (flush_now || to_mark_.size() >= kMarkBatch || now >= mark_due_)) {
    internal::relay_log().debug("handing {} rows to the recorder", to_mark_.size());
    recorder_->record(to_mark_);
    to_mark_.clear();
  }

  while (!failure_writes_.empty()) {
    const FailureWrite& write = failure_writes_.front();
    const auto written =
        write.dead_letter ? database_.dead_letter(write.outbox_id, write.attempts, write.reason)
                          : database_.record_failure(write.outbox_id, write.attempts,
                                                     write.reason);
    if (!database_ok(now, written)) return;
    if (write.dead_letter) {
      book_.park(write.stream_id);
      // The stream's later rows left the book: fetches must find them again once the dead
      // letter is retried or discarded.
      forget_fetched_through();
      ++counters_.dead_letters;
    }
    failure_writes_.pop_front();
  }
}

void Relay::Impl::step_retention(Clock::time_point now) {
  if (options_.retention_interval.count() == 0 || now < next_retention_ ||
      !database_backoff_.due(now)) {
    return;
  }

  // One bounded batch per turn of the loop, so retention never holds publishing up and never
  // holds many row locks; a full batch means more are due, and the next turn takes them.
  const auto deleted =
      database_.delete_published(options_.retain_published, options_.retention_batch);
  if (!database_ok(now, status_of(deleted))) return;
  retention_round_deleted_ += *deleted;
  counters_.rows_deleted += static_cast<std::uint64_t>(*deleted);
  if (*deleted >= options_.retention_batch) {
    next_retention_ = now;
    return;
  }

  if (retention_round_deleted_ > 0) {
    internal::relay_log().info("retention: deleted {} rows published more than {} s ago",
                               retention_round_deleted_, options_.retain_published.count());
  }
  retention_round_deleted_ = 0;
  next_retention_ = now + options_.retention_interval;
}

void Relay::Impl::step_backlog(Clock::time_point now) {
  if (now < next_backlog_ || !database_backoff_.due(now)) return;
  next_backlog_ = now + kBacklogInterval;

  const std::vector<int> owned(leases_.owned().begin(), leases_.owned().end());
  if (owned.empty()) {
    counters_.rows_waiting = 0;
    counters_.oldest_waiting_age = std::chrono::milliseconds(0);
    return;
  }
  const auto backlog = database_.backlog(owned);
  if (!database_ok(now, status_of(backlog))) return;
  counters_.rows_waiting = backlog->rows;
  counters_.oldest_waiting_age = backlog->oldest_age;
  internal::relay_log().debug("backlog: {} rows waiting in {} partitions, oldest {} ms",
                              backlog->rows, owned.size(), backlog->oldest_age.count());
}

}  // namespace deedkit
