#pragma once

// The relay's statements on deedkit.outbox and deedkit.outbox_dead_letters, on one pooled
// connection that the relay keeps between calls. Every statement runs on its own
// (autocommit): each is atomic by itself, none holds locks across calls, and every write is
// idempotent, so a statement whose outcome was lost can simply run again.
//
// Errors are mapped as UnitOfWork does (database_error); after a connection error the
// connection is dropped and the next call opens a new one. Not thread-safe.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "deedkit/core/error.hpp"
#include "deedkit/eventstore/connection_pool.hpp"
#include "internal/outbox_row.hpp"
#include "internal/wake_signal.hpp"

namespace deedkit::internal {

struct PartitionRoom {
  int partition = 0;
  int rows = 0;  // how many more rows the relay will hold for this partition
  // Every pending row of the partition up to this id is held by the relay or recorded.
  std::int64_t after = 0;
};

// A bound for CommitHorizon to settle (see there).
struct HorizonProposal {
  std::int64_t sequence_value = 0;
  std::uint64_t proposer_xid = 0;
  bool schema_supports_it = false;  // migration 9 is applied
};

struct Backlog {
  std::int64_t rows = 0;
  std::chrono::milliseconds oldest_age{0};
};

class RelayDatabase {
 public:
  explicit RelayDatabase(std::string database_uri);

  // The outbox sequence's last value and the current snapshot.
  [[nodiscard]] Result<OutboxPoll> poll();

  // Reads the sequence, then takes a transaction id, and commits: a CommitHorizon proposal.
  [[nodiscard]] Result<HorizonProposal> propose_horizon();

  // Committed pending rows of the given partitions, oldest first per partition, at most
  // `rows` per partition above `after`, skipping the `skip` ids and every stream that has a
  // dead letter.
  [[nodiscard]] Result<std::vector<OutboxRow>> fetch(const std::vector<PartitionRoom>& rooms,
                                                     const std::vector<std::int64_t>& skip);

  // Sets published_at on those of `ids` still pending.
  [[nodiscard]] Result<void> mark_published(const std::vector<std::int64_t>& ids);

  // Deletes those of `ids` still pending: their publication is recorded by their absence.
  [[nodiscard]] Result<void> remove_published(const std::vector<std::int64_t>& ids);

  // Records a failed attempt (the row stays pending).
  [[nodiscard]] Result<void> record_failure(std::int64_t outbox_id, int attempts,
                                            const std::string& reason);

  // Records the last failed attempt and parks the row in deedkit.outbox_dead_letters, in one
  // statement. A row already parked stays as it is.
  [[nodiscard]] Result<void> dead_letter(std::int64_t outbox_id, int attempts,
                                         const std::string& reason);

  // Deletes at most `batch` rows published more than `older_than` ago; returns how many.
  [[nodiscard]] Result<std::int64_t> delete_published(std::chrono::seconds older_than,
                                                      int batch);

  [[nodiscard]] Result<Backlog> backlog(const std::vector<int>& partitions);

 private:
  // Runs `body` with the held connection (opening one if needed); maps its exceptions.
  template <typename T, typename Body>
  Result<T> run(const char* context, Body&& body);

  ConnectionPool pool_;
  std::optional<ConnectionLease> lease_;
};

// PostgreSQL's text form of an array of integers: "{1,2,3}".
template <typename Integers>
std::string array_literal(const Integers& values) {
  std::string text = "{";
  for (const auto value : values) {
    if (text.size() > 1) text += ',';
    text += std::to_string(value);
  }
  return text + "}";
}

}  // namespace deedkit::internal
