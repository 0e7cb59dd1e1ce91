#pragma once

// Decides when the relay should fetch pending rows again, from a check that costs almost
// nothing: the last value of the outbox's identity sequence and the server's current
// snapshot (pg_current_snapshot()). No NOTIFY is involved: a NOTIFY in the writers' commits
// would serialise every writer on one global lock at commit time.
//
// Rows become visible at commit, not when their ids are drawn. So besides "the sequence
// moved", the relay also fetches when a transaction that was running at its last fetch has
// ended since: such a transaction may have drawn ids below the sequence value already seen
// and committed its rows just now.
//
// One more gap: PostgreSQL gives a transaction its id lazily, at its first row write, which
// comes just after the INSERT drew the outbox id. A check that lands in between sees the new
// sequence value but not the writer among the running transactions. Hence a second look:
// after a fetch caused by a moved sequence, the next check fetches once more, and by then the
// writer has committed (its rows are fetched) or holds a transaction id (it is tracked). A
// writer stalled inside that gap for longer than a poll interval is still caught by the
// relay's periodic full fetch (RelayOptions::fetch_interval). Correctness never depends on
// this class, only latency does.

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace deedkit::internal {

// A parsed pg_snapshot: "xmin:xmax:xip,xip,...".
struct Snapshot {
  std::uint64_t xmin = 0;
  std::uint64_t xmax = 0;
  std::vector<std::uint64_t> running;  // sorted

  static std::optional<Snapshot> parse(std::string_view text);

  // True when `xid` was running when this snapshot was taken (or started after it).
  bool still_running(std::uint64_t xid) const;
};

struct OutboxPoll {
  std::int64_t sequence_value = 0;  // 0 before the first row ever
  Snapshot snapshot;
};

class WakeSignal {
 public:
  // Records the poll taken just before a fetch began.
  void fetched(const OutboxPoll& before_fetch);

  // True when rows may have become visible since the last fetch: the sequence moved, the
  // second look after a move is due, or a transaction running at that fetch has ended. True
  // before the first fetch.
  bool moved(const OutboxPoll& now) const;

 private:
  bool fetched_once_ = false;
  bool second_look_ = false;  // the last fetch followed a move of the sequence
  std::int64_t sequence_value_ = 0;
  std::vector<std::uint64_t> running_at_fetch_;
};

}  // namespace deedkit::internal
