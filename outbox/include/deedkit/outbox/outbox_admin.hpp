#pragma once

// What an operator asks of the outbox: how far behind the relays are, which messages were
// parked as dead letters, and putting a dead letter back in line or discarding it. Everything
// here is read from and written to the database, so it works whether relays run or not.
//
// Thread-safety: each function uses one pooled connection; call from any thread.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "deedkit/core/error.hpp"
#include "deedkit/eventstore/connection_pool.hpp"

namespace deedkit {

// A running relay, as PostgreSQL sees its lease connection.
struct RelayProcess {
  int backend_pid = 0;         // the server process serving the relay's lease connection
  std::string client_address;  // "local" for a Unix socket
  int partitions = 0;          // outbox partitions it holds
  std::chrono::seconds connected_for{0};
};

struct OutboxStatus {
  std::int64_t rows_waiting = 0;  // pending rows (not published), parked ones included
  std::chrono::milliseconds oldest_waiting_age{0};
  double published_per_second = 0;   // over the last minute
  std::int64_t rows_retrying = 0;    // pending rows with at least one failed attempt
  std::int64_t failed_attempts = 0;  // the failed attempts ("retries") of pending rows
  std::int64_t dead_letters = 0;
  std::int64_t parked_rows = 0;         // pending rows in streams that have a dead letter
  std::int64_t published_rows_kept = 0;  // published rows retention has not deleted yet
  std::vector<RelayProcess> relays;
};

// Fails as UnitOfWork maps database errors (kUnavailable, kPermissionDenied, ...).
[[nodiscard]] Result<OutboxStatus> read_outbox_status(ConnectionPool& pool);

struct DeadLetter {
  std::int64_t outbox_id = 0;
  std::string event_id;
  std::string stream_id;
  std::int64_t stream_version = 0;
  std::string event_type;
  std::string reason;
  std::string dead_at;  // RFC 3339, UTC
  int attempts = 0;
  std::int64_t rows_waiting_behind = 0;  // later rows of the stream held back by it
};

// The oldest `limit` dead letters first.
[[nodiscard]] Result<std::vector<DeadLetter>> list_dead_letters(ConnectionPool& pool,
                                                                int limit = 100);

// Puts dead letter `outbox_id` back in line: it leaves the dead-letter table with its attempt
// count reset, and a running relay publishes it, then its stream's later rows, within about a
// second (RelayOptions::fetch_interval). Fails with kNotFound when there is no such dead
// letter.
[[nodiscard]] Result<void> retry_dead_letter(ConnectionPool& pool, std::int64_t outbox_id);

// Gives up on dead letter `outbox_id`: it is never published; its row is marked discarded
// (and published_at is set, so retention deletes it in time) and the stream's later rows
// move on. Fails with kNotFound when there is no such dead letter.
[[nodiscard]] Result<void> discard_dead_letter(ConnectionPool& pool, std::int64_t outbox_id);

}  // namespace deedkit
