#pragma once

// Operating projections from outside the runner: status, retry, skip and rebuild requests.
//
// Everything here works on the bookkeeping tables (deedkit.projection_generations and
// deedkit.projection_skips), so it works the same whether the runner leading a projection
// is this process, another one, or none. A running leader notices a change within its
// leadership interval.
//
// Thread-safety: free functions over a pool; safe from any thread.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "deedkit/core/clock.hpp"
#include "deedkit/core/error.hpp"
#include "deedkit/core/ids.hpp"
#include "deedkit/eventstore/connection_pool.hpp"
#include "deedkit/eventstore/types.hpp"
#include "deedkit/projections/projection.hpp"

namespace deedkit {

// The event a generation stopped at.
struct FailedEvent {
  LogPosition position;
  std::string stream_id;
  std::int64_t stream_version = 0;
  Uuid event_id{};
  std::string event_type;
  std::string error;
  Timestamp failed_at{};
};

struct GenerationStatus {
  int generation = 0;
  int version = 0;
  std::string role;  // "live" or "building"
  LogPosition position;
  std::int64_t events_read = 0;
  std::int64_t events_applied = 0;
  // Events committed after the checkpoint, and how long the oldest of them has waited
  // (0 when there is none).
  std::int64_t lag_events = 0;
  double lag_seconds = 0;
  // For a building generation: the log's size when the rebuild started, plus what has been
  // appended since; the denominator of its progress.
  std::int64_t events_total_estimate = 0;
  std::optional<Timestamp> checkpointed_at;
  std::optional<FailedEvent> failure;
};

struct ProjectionStatus {
  std::string name;
  int code_version = 0;  // the version this build of deedkit would run; 0 if unknown here
  std::optional<GenerationStatus> live;
  std::optional<GenerationStatus> building;
  // The backend holding the leader lock, when some runner leads the projection.
  std::optional<int> leader_pid;
  std::string leader_application;

  // "failed" (a generation stopped at an event), "rebuilding", "running" (led and
  // following), "stopped" (no runner leads it) or "new" (never run).
  std::string state() const;
};

// The status of every projection known to the database or given in `projections`, by name.
// With `count_lags`, the events after each checkpoint are counted: a scan of the log's
// commit-order index that costs in proportion to the lag. Without, lag_* stay 0 and
// events_total_estimate comes from the log size recorded when a rebuild started. Fails with
// kUnavailable when the database cannot be reached.
[[nodiscard]] Result<std::vector<ProjectionStatus>> projection_status(
    ConnectionPool& pool, std::span<const Projection* const> projections,
    bool count_lags = true);

// Clears the failure of every failed generation of `name`, so its leader applies the failed
// event again. Returns how many generations were cleared (0 when none had failed).
[[nodiscard]] Result<int> retry_projection(ConnectionPool& pool, std::string_view name);

// Skips the event each failed generation of `name` stopped at: records it in
// deedkit.projection_skips with its error and `skipped_by`, and moves the checkpoint past it
// in the same transaction. Returns the events skipped (empty when nothing had failed).
[[nodiscard]] Result<std::vector<FailedEvent>> skip_failed_event(ConnectionPool& pool,
                                                                 std::string_view name,
                                                                 std::string_view skipped_by);

struct RebuildRequest {
  int generation = 0;
  bool resumed = false;  // a rebuild of this version was already under way
};

// Asks for `projection` to be rebuilt at its code version: creates a building generation
// with fresh tables (or returns the one already under way at that version, which resumes
// from its own checkpoint). The leader fills it while the live tables keep serving, and
// switches the views when it has caught up. Fails with kFailedPrecondition when a rebuild
// at another version is under way, kUnavailable when the database cannot be reached.
[[nodiscard]] Result<RebuildRequest> request_rebuild(ConnectionPool& pool,
                                                     const Projection& projection);

}  // namespace deedkit
