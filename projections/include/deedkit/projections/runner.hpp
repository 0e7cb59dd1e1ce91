#pragma once

// Runs projections: catches them up with the global log, then follows it live.
//
// Leadership: any number of processes may run the same projections. Each projection is
// applied by exactly one of them at a time, the one holding its session advisory lock on the
// runner's dedicated connection. The others retry the lock every `leadership_interval`, so
// when the leader dies (its session ends and the lock with it) one of them takes over. The
// checkpoint update is also a compare-and-set, so even a leader that lost its lock without
// noticing cannot apply an event twice.
//
// Wake-up: no NOTIFY (it would serialise every writer at commit). The dedicated connection
// polls the log's tip (the events sequence and the snapshot horizon), starting every
// `min_poll` after a change and backing off to `max_poll` while nothing moves; projections
// waiting for events wake when the tip moves.
//
// Each generation being applied (the live one, and a rebuilding one when there is one) runs
// on its own thread, so a stalled or failed projection never holds back the others. A
// projection whose code version differs from its live generation's is rebuilt into new
// tables while the old ones keep serving; see docs/projections.md.
//
// Lifecycle: construct, start(), stop() (or destroy). Thread-safety: start, stop and the
// accessors may be called from any thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "deedkit/core/error.hpp"
#include "deedkit/eventstore/connection_pool.hpp"
#include "deedkit/projections/projection.hpp"

namespace deedkit {

// Points inside the handling of one batch, for fault injection in tests.
enum class BatchPoint {
  kRead,       // the batch has been read; no transaction is open
  kApplied,    // apply and the checkpoint update ran; the transaction is not committed
  kCommitted,  // the transaction committed
};

struct RunnerOptions {
  // Events per read, and so at most per transaction.
  int batch_size = 2000;
  // Only these projections are run (by name); empty: all that were given.
  std::vector<std::string> only;
  std::chrono::milliseconds min_poll{1};
  std::chrono::milliseconds max_poll{25};
  // How often a follower retries the leader locks, and the leader checks for new
  // generations and drops retired ones.
  std::chrono::milliseconds leadership_interval{500};
  // Longest wait between retries after the database went away.
  std::chrono::milliseconds max_retry_backoff{5000};
  // Shown in pg_stat_activity for the lock connection, and so in `projections status`.
  std::string application_name = "deedkit projections";
  // Test seam: called on the applying thread at each BatchPoint; may end the process.
  std::function<void(BatchPoint, std::string_view projection, int generation)> fault_hook;
};

class ProjectionRunner {
 public:
  // REQUIRES: `pool` and every projection outlive the runner; projection names are unique.
  // The pool should allow two connections per generation being applied.
  ProjectionRunner(ConnectionPool& pool, std::vector<const Projection*> projections,
                   RunnerOptions options = {});
  ~ProjectionRunner();
  ProjectionRunner(const ProjectionRunner&) = delete;
  ProjectionRunner& operator=(const ProjectionRunner&) = delete;

  // Starts the runner's threads and returns. Connection problems are retried in the
  // background (and logged), never returned. Calling start twice is a no-op.
  void start();

  // Stops every thread and releases the leader locks. An in-flight batch is rolled back
  // (its events are applied again by the next leader). Idempotent; the destructor calls it.
  void stop();

  // The projections this runner currently leads.
  std::vector<std::string> led_projections() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace deedkit
