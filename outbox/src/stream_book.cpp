#include "internal/stream_book.hpp"

#include <algorithm>

namespace deedkit::internal {

void StreamBook::set_owned(int partition, bool owned) {
  owned_[static_cast<std::size_t>(partition)] = owned;
  if (owned) return;

  for (auto it = streams_.begin(); it != streams_.end();) {
    const auto next = std::next(it);
    if (it->second.partition == partition && it->second.state == State::kIdle) forget(it);
    it = next;
  }
}

StreamBook::Added StreamBook::add(OutboxRow row) {
  if (!owns(row.partition)) return Added::kNotOwned;
  auto& partition_ids = ids_[static_cast<std::size_t>(row.partition)];
  if (partition_ids.contains(row.outbox_id)) return Added::kAlreadyHeld;

  const std::string stream_id = row.stream_id;
  Stream& stream = streams_[stream_id];
  stream.partition = row.partition;
  // Settling and counting attempts act on the head; a lower version put before the row in
  // flight would be marked published in its place.
  const bool behind = stream.state != State::kIdle && !stream.rows.empty() &&
                      row.stream_version < stream.rows.begin()->first;
  if (behind) return Added::kBehindInFlight;

  partition_ids.insert(row.outbox_id);
  ++row_count_;
  ++rows_per_partition_[static_cast<std::size_t>(row.partition)];
  stream.rows.emplace(row.stream_version, std::move(row));
  queue_if_ready(stream_id, stream);
  return Added::kAdded;
}

std::vector<const OutboxRow*> StreamBook::start_ready(Clock::time_point now, std::size_t limit) {
  while (!retries_.empty() && retries_.begin()->first <= now) {
    const std::string stream_id = retries_.begin()->second;
    retries_.erase(retries_.begin());
    if (auto it = streams_.find(stream_id); it != streams_.end() && it->second.waiting) {
      it->second.waiting = false;
      queue_if_ready(stream_id, it->second);
    }
  }

  std::vector<const OutboxRow*> rows;
  while (rows.size() < limit && !ready_.empty()) {
    const std::string stream_id = std::move(ready_.front());
    ready_.pop_front();
    const auto it = streams_.find(stream_id);
    if (it == streams_.end() || !it->second.queued) continue;

    Stream& stream = it->second;
    stream.queued = false;
    if (stream.state != State::kIdle || stream.waiting || stream.rows.empty()) continue;
    const OutboxRow& head = stream.rows.begin()->second;
    // An event written to the outbox twice gives two rows one message id: one of them at a
    // time, or an acknowledgement would settle the other's stream.
    if (in_flight_.contains(head.event_id)) {
      blocked_.emplace(head.event_id, stream_id);
      continue;
    }
    stream.state = State::kInFlight;
    in_flight_[head.event_id] = stream_id;
    rows.push_back(&head);
  }
  return rows;
}

const OutboxRow* StreamBook::in_flight(const std::string& message_id) const {
  const auto flight = in_flight_.find(message_id);
  if (flight == in_flight_.end()) return nullptr;
  const auto stream = streams_.find(flight->second);
  if (stream == streams_.end() || stream->second.rows.empty()) return nullptr;
  return &stream->second.rows.begin()->second;
}

void StreamBook::published(const std::string& message_id) {
  settle(message_id, State::kIdle, true);
}

void StreamBook::retry_later(const std::string& message_id, Clock::time_point retry_at) {
  const auto flight = in_flight_.find(message_id);
  if (flight == in_flight_.end()) return;
  const std::string stream_id = flight->second;

  // Waiting first, so that settling does not queue the stream for an immediate retry.
  if (auto it = streams_.find(stream_id); it != streams_.end()) it->second.waiting = true;
  retries_.emplace(retry_at, stream_id);
  settle(message_id, State::kIdle, false);
}

int StreamBook::count_attempt(const std::string& message_id) {
  const auto flight = in_flight_.find(message_id);
  if (flight == in_flight_.end()) return 0;
  const auto it = streams_.find(flight->second);
  if (it == streams_.end() || it->second.rows.empty()) return 0;
  return ++it->second.rows.begin()->second.attempts;
}

bool StreamBook::busy(int partition) const {
  for (const auto& [stream_id, stream] : streams_) {
    if (stream.partition == partition && stream.state != State::kIdle) return true;
  }
  return false;
}

void StreamBook::hold(const std::string& message_id) { settle(message_id, State::kHeld, false); }

void StreamBook::park(const std::string& stream_id) {
  if (auto it = streams_.find(stream_id); it != streams_.end()) forget(it);
}

void StreamBook::release_held(const std::string& stream_id, Clock::time_point retry_at) {
  const auto it = streams_.find(stream_id);
  if (it == streams_.end() || it->second.state != State::kHeld) return;
  it->second.state = State::kIdle;
  if (!owns(it->second.partition)) {
    forget(it);
    return;
  }
  it->second.waiting = true;
  retries_.emplace(retry_at, stream_id);
}

std::size_t StreamBook::abandon_in_flight() {
  // Back in line oldest row first, as they were fetched.
  std::vector<std::pair<std::int64_t, std::string>> flights;
  for (const auto& [message_id, stream_id] : in_flight_) {
    const OutboxRow* row = in_flight(message_id);
    flights.emplace_back(row ? row->outbox_id : 0, message_id);
  }
  std::sort(flights.begin(), flights.end());
  for (const auto& [outbox_id, message_id] : flights) settle(message_id, State::kIdle, false);
  return flights.size();
}

std::optional<StreamBook::Clock::time_point> StreamBook::next_retry() const {
  if (retries_.empty()) return std::nullopt;
  return retries_.begin()->first;
}

void StreamBook::queue_if_ready(const std::string& stream_id, Stream& stream) {
  if (stream.state != State::kIdle || stream.waiting || stream.queued || stream.rows.empty()) {
    return;
  }
  stream.queued = true;
  ready_.push_back(stream_id);
}

void StreamBook::release_blocked(const std::string& message_id) {
  const auto [first, last] = blocked_.equal_range(message_id);
  std::vector<std::string> waiting;
  for (auto entry = first; entry != last; ++entry) waiting.push_back(entry->second);
  blocked_.erase(first, last);
  for (const std::string& stream_id : waiting) {
    if (auto it = streams_.find(stream_id); it != streams_.end()) {
      queue_if_ready(stream_id, it->second);
    }
  }
}

std::vector<std::int64_t> StreamBook::held_ids() const {
  std::vector<std::int64_t> held;
  held.reserve(row_count_);
  for (const auto& partition_ids : ids_) held.insert(held.end(), partition_ids.begin(),
                                                     partition_ids.end());
  return held;
}

std::vector<std::int64_t> StreamBook::held_ids_above(
    const std::array<std::int64_t, kOutboxPartitions>& bounds) const {
  std::vector<std::int64_t> held;
  for (std::size_t partition = 0; partition < ids_.size(); ++partition) {
    const auto& partition_ids = ids_[partition];
    held.insert(held.end(), partition_ids.upper_bound(bounds[partition]), partition_ids.end());
  }
  return held;
}

void StreamBook::erase_head(Stream& stream) {
  const auto head = stream.rows.begin();
  ids_[static_cast<std::size_t>(stream.partition)].erase(head->second.outbox_id);
  --row_count_;
  --rows_per_partition_[static_cast<std::size_t>(stream.partition)];
  stream.rows.erase(head);
}

void StreamBook::forget(std::unordered_map<std::string, Stream>::iterator stream) {
  while (!stream->second.rows.empty()) erase_head(stream->second);
  streams_.erase(stream);
}

void StreamBook::settle(const std::string& message_id, State next, bool pop_head) {
  const auto flight = in_flight_.find(message_id);
  if (flight == in_flight_.end()) return;
  const auto it = streams_.find(flight->second);
  in_flight_.erase(flight);
  release_blocked(message_id);
  if (it == streams_.end()) return;

  Stream& stream = it->second;
  stream.state = next;
  if (pop_head && !stream.rows.empty()) erase_head(stream);
  if (next == State::kIdle && (!owns(stream.partition) || stream.rows.empty())) {
    forget(it);
    return;
  }
  queue_if_ready(it->first, stream);
}

}  // namespace deedkit::internal
