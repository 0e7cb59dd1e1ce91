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
// One more gap: a snapshot lists only the running transactions older than the newest one
// that has ended; a writer whose transaction id is newer than that (common when few write)
// is running but not listed, so a check can see the new sequence value but not the writer
// among the running transactions. Hence a second look:
// after a fetch caused by a moved sequence, the next check fetches once more, and by then the
// writer has committed (its rows are fetched) or holds a transaction id (it is tracked). A
// writer stalled inside that gap for longer than a poll interval is still caught by the
// relay's periodic full fetch (RelayOptions::fetch_interval). Correctness never depends on
// this class, only latency does.
//
// Both of those rules wake the relay for any transaction in the cluster, outbox writer or
// not. Once a fetch started with the commit horizon (below) at or past the sequence value it
// followed, it saw every row that can exist up to that value: until the sequence moves,
// transactions ending no longer matter, and the relay stays idle beside other writers.

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
  std::vector<int> dead_letter_partitions;  // sorted; the partitions of parked streams
  std::int64_t sequence_file = 0;           // the sequence's relfilenode
};

// The highest outbox id up to which every row that will ever commit is committed already, so
// that a fetch whose snapshot is taken later sees all of them. The relay skips, per
// partition, rows it has dealt with up to that bound instead of walking past them again.
//
// It rests on how outbox ids are drawn (sql/0009): a writer's transaction holds a
// transaction id before it draws an outbox id. A proposal reads the sequence's last value N
// and only then takes a transaction id X of its own; every writer that drew an id up to N
// held a transaction id below X by then. Once a snapshot's xmin is above X, all of them have
// ended, committed or not, and N is settled. A transaction that stays open (a writer stuck
// in an open transaction, a long migration) holds xmin back and with it this bound: fetches
// then cost more, but skip nothing.
class CommitHorizon {
 public:
  // True when no proposal is waiting; proposals take a transaction id, so one at a time.
  bool wants_proposal() const { return !pending_.has_value(); }
  void propose(std::int64_t sequence_value, std::uint64_t proposer_xid);

  // Takes in each poll's snapshot; returns the settled bound, for fetches that start after
  // the poll that took `snapshot`.
  std::int64_t observe(const Snapshot& snapshot);

 private:
  struct Proposal {
    std::int64_t sequence_value = 0;
    std::uint64_t proposer_xid = 0;
  };
  std::optional<Proposal> pending_;
  std::int64_t settled_ = 0;
};

class WakeSignal {
 public:
  // Records the poll taken just before a fetch began, and CommitHorizon's bound at it.
  void fetched(const OutboxPoll& before_fetch, std::int64_t settled);

  // True when rows may have become visible since the last fetch: the sequence moved, the
  // second look after a move is due, or a transaction running at that fetch has ended. True
  // before the first fetch.
  bool moved(const OutboxPoll& now) const;

 private:
  bool fetched_once_ = false;
  bool second_look_ = false;  // the last fetch followed a move of the sequence
  bool complete_ = false;     // the last fetch saw every row up to its sequence value
  std::int64_t sequence_value_ = 0;
  std::vector<std::uint64_t> running_at_fetch_;
};

}  // namespace deedkit::internal
