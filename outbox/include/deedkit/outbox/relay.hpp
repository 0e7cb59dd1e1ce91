#pragma once

// The outbox relay: publishes the rows of deedkit.outbox to NATS JetStream, in stream order,
// and marks each one published once JetStream has acknowledged it. docs/relay.md explains the
// design; the guarantees, in short:
//
// - At least once: a row is marked published only after its PubAck. A relay that dies at any
//   point loses nothing; what it had sent but not marked is sent again, with the event id as
//   Nats-Msg-Id, and JetStream drops the copy while it is inside the stream's duplicate
//   window.
// - Per stream, in version order, always: a stream's version v+1 is handed to NATS only after
//   v was acknowledged. That holds with one relay, with several, across crashes and across
//   broker restarts (the argument is in relay.cpp and docs/relay.md).
// - Several relays share the work: each leases a fair share of the outbox's 64 partitions
//   with PostgreSQL session advisory locks; a dead relay's locks vanish with its connection
//   and the others take its partitions over within a few lease intervals.
// - A message the broker refuses for what it is (too large, or any refusal that is not about
//   the broker's own state, such as being full) is retried `max_attempts` times and then
//   moved to deedkit.outbox_dead_letters; its stream's later rows wait behind it until
//   an operator retries or discards it (outbox_admin.hpp).
//
// Lifecycle: construct, call run() on a thread of your choice; run() returns after stop() (it
// first waits for the acknowledgements of what is in flight, records them, and releases its
// partitions) or after a fatal error. A Relay runs once.
// Thread-safety: run() on one thread; stop() and metrics() from any thread, any time.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "deedkit/core/error.hpp"

namespace deedkit {

// The body each message carries: the deedkit.outbox.v1.Envelope Protobuf encoding, or its
// Protobuf JSON mapping.
enum class EnvelopeFormat { kProtobuf, kJson };

struct RelayOptions {
  // libpq URI or key=value settings; empty: libpq's PG* variables.
  std::string database_uri;

  // The NATS server(s), comma-separated. Unset: no broker; every message is written as one
  // JSON line to `json_lines` instead (and counts as published once written and flushed).
  std::optional<std::string> nats_url;
  std::FILE* json_lines = stdout;

  // The JetStream stream. Created with these subjects, file storage and `duplicate_window`
  // when missing; when it exists, its subjects must include these and a shorter duplicate
  // window is reported as a warning (the operator's configuration is never changed).
  std::string stream_name = "DEEDKIT";
  std::vector<std::string> stream_subjects = {"deedkit.>"};
  // Long enough to cover the relay's own redelivery after a crash, a broker outage or a
  // database outage; docs/relay.md explains the choice of one hour.
  std::chrono::seconds duplicate_window{3600};

  // The subject of each message. Placeholders: {category} (the stream id before its first
  // '-'), {type} (the event type), {stream} (the stream id). Each placeholder's value becomes
  // one subject token: characters outside [A-Za-z0-9_-] turn into '_'.
  std::string subject_template = "deedkit.{category}.{type}";
  EnvelopeFormat format = EnvelopeFormat::kProtobuf;

  // Messages handed to NATS and not yet acknowledged, over all streams (one per stream).
  int max_in_flight = 512;
  std::chrono::milliseconds ack_timeout{5000};
  // Refusals of one row for what it is (too large, or any code not about the broker's own
  // state) before it becomes a dead letter.
  int max_attempts = 3;

  // How often the relay asks PostgreSQL whether new rows may be waiting. Each check is one
  // read of the outbox's identity sequence and a snapshot: nearly free.
  std::chrono::milliseconds poll_interval{5};
  // A full fetch at least this often, whatever the checks say (docs/relay.md: wake-up).
  std::chrono::milliseconds fetch_interval{1000};
  // Rows read ahead per partition and held in memory.
  int rows_per_partition = 256;

  // How often the relay looks at the other relays and rebalances its partitions.
  std::chrono::milliseconds lease_interval{1000};

  // Waits between retries of the broker, the database and single messages.
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{10000};

  // On stop(), how long to wait for acknowledgements still in flight.
  std::chrono::milliseconds shutdown_grace{10000};

  // Published rows older than `retain_published` are deleted every `retention_interval`, in
  // transactions of at most `retention_batch` rows. A zero interval turns retention off. A
  // zero `retain_published` deletes each row as soon as its PubAck is recorded, instead of
  // marking it: the cheapest way through the outbox, with nothing left to inspect.
  std::chrono::seconds retain_published{24 * 3600};
  std::chrono::milliseconds retention_interval{60000};
  int retention_batch = 1000;
};

// What a running relay reports. Counters start at zero when the relay starts.
struct RelayMetrics {
  // Pending rows in this relay's partitions and the age of the oldest, as of the last check
  // (every few seconds); -1 before the first.
  std::int64_t rows_waiting = -1;
  std::chrono::milliseconds oldest_waiting_age{0};
  std::uint64_t published = 0;       // rows acknowledged and recorded
  std::uint64_t duplicates = 0;      // of those, acknowledged as already stored by JetStream
  double published_per_second = 0;   // over the last ten seconds
  // From a row's recorded_at (its writer's transaction start, at or before the commit) to
  // its PubAck, for rows JetStream stored (not duplicates), since the relay started. By the
  // relay's clock against PostgreSQL's: on different hosts, clock skew adds in. Quantiles
  // are rounded up to buckets 20% apart; beyond about 13 minutes they stop at that figure.
  std::uint64_t commit_to_ack_count = 0;
  std::chrono::microseconds commit_to_ack_p50{0};
  std::chrono::microseconds commit_to_ack_p99{0};
  std::uint64_t retries = 0;         // failed publish attempts that will be retried
  std::uint64_t dead_letters = 0;    // rows this relay moved to the dead-letter table
  std::uint64_t rows_deleted = 0;    // published rows removed by retention
  int owned_partitions = 0;
  int in_flight = 0;
  bool broker_connected = false;
  // Set when run() stopped because of an error it cannot recover from.
  std::optional<Error> fatal_error;
};

class Relay {
 public:
  explicit Relay(RelayOptions options);
  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // Relays until stop() is called, then finishes the batch in flight and returns {}.
  // Waiting on an unreachable broker or database is not an error: run() keeps retrying with
  // backoff and logs a warning. It fails with kInvalidArgument for unusable options, with
  // kFailedPrecondition when the JetStream stream exists but does not take the relay's
  // subjects, with kPermissionDenied or kInternal when the database refuses the relay's
  // statements (wrong role, missing migrations); the error is also kept in metrics().
  [[nodiscard]] Result<void> run();

  // Asks run() to finish. Safe from any thread; not async-signal-safe (call it from a thread
  // that waits for signals, not from a signal handler).
  void stop();

  RelayMetrics metrics() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Checks options without contacting any server: the subject template, the stream subjects
// and the numbers. Fails with kInvalidArgument naming the bad option.
[[nodiscard]] Result<void> validate_relay_options(const RelayOptions& options);

// `url` (one NATS URL or a comma-separated list) with any user, password or token replaced
// by "***", for logs, errors and anything else printed.
std::string redact_nats_url(const std::string& url);

}  // namespace deedkit
