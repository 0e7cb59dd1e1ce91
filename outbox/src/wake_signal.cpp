#include "internal/wake_signal.hpp"

#include <algorithm>
#include <charconv>

namespace deedkit::internal {

namespace {

bool parse_number(std::string_view text, std::uint64_t& value) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::optional<Snapshot> Snapshot::parse(std::string_view text) {
  const std::size_t first = text.find(':');
  const std::size_t second = first == std::string_view::npos ? first : text.find(':', first + 1);
  if (second == std::string_view::npos) return std::nullopt;

  Snapshot snapshot;
  if (!parse_number(text.substr(0, first), snapshot.xmin) ||
      !parse_number(text.substr(first + 1, second - first - 1), snapshot.xmax)) {
    return std::nullopt;
  }

  std::string_view list = text.substr(second + 1);
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    std::uint64_t xid = 0;
    if (!parse_number(list.substr(0, comma), xid)) return std::nullopt;
    snapshot.running.push_back(xid);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
  }
  std::sort(snapshot.running.begin(), snapshot.running.end());
  return snapshot;
}

bool Snapshot::still_running(std::uint64_t xid) const {
  if (xid < xmin) return false;
  if (xid >= xmax) return true;
  return std::binary_search(running.begin(), running.end(), xid);
}

void WakeSignal::fetched(const OutboxPoll& before_fetch, std::int64_t settled) {
  second_look_ = fetched_once_ && before_fetch.sequence_value != sequence_value_;
  complete_ = settled >= before_fetch.sequence_value;
  fetched_once_ = true;
  sequence_value_ = before_fetch.sequence_value;
  running_at_fetch_ = before_fetch.snapshot.running;
}

bool WakeSignal::moved(const OutboxPoll& now) const {
  if (!fetched_once_ || now.sequence_value != sequence_value_) return true;
  if (complete_) return false;
  if (second_look_) return true;
  return std::any_of(running_at_fetch_.begin(), running_at_fetch_.end(),
                     [&](std::uint64_t xid) { return !now.snapshot.still_running(xid); });
}

void CommitHorizon::propose(std::int64_t sequence_value, std::uint64_t proposer_xid) {
  if (pending_) return;
  pending_ = Proposal{sequence_value, proposer_xid};
}

std::int64_t CommitHorizon::observe(const Snapshot& snapshot) {
  // xmin above the proposer means every transaction id up to it has ended.
  if (pending_ && snapshot.xmin > pending_->proposer_xid) {
    settled_ = std::max(settled_, pending_->sequence_value);
    pending_.reset();
  }
  return settled_;
}

}  // namespace deedkit::internal
