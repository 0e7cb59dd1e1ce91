#pragma once

// The bookkeeping of projection generations (deedkit.projection_generations): creating a
// generation with its tables, moving its checkpoint, recording a failure, switching the
// views to it, and dropping retired ones. Shared by the runner and the admin functions.
//
// Every function runs its own transaction except advance_checkpoint, which joins the
// batch's unit of work so the checkpoint commits with the projection's writes.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "deedkit/core/error.hpp"
#include "deedkit/eventstore/connection_pool.hpp"
#include "deedkit/eventstore/unit_of_work.hpp"
#include "deedkit/projections/admin.hpp"
#include "deedkit/projections/projection.hpp"

namespace deedkit::internal {

inline constexpr std::string_view kLive = "live";
inline constexpr std::string_view kBuilding = "building";
inline constexpr std::string_view kRetired = "retired";

struct GenerationRow {
  std::string projection;
  int generation = 0;
  int version = 0;
  std::string role;
  std::vector<std::string> tables;
  LogPosition position;
  std::int64_t events_read = 0;
  std::int64_t events_applied = 0;
  std::int64_t events_at_start = 0;
  Timestamp created_at{};
  std::optional<Timestamp> checkpointed_at;
  std::optional<FailedEvent> failure;
};

// Every generation of `projection` (all of them when empty), ordered by projection and
// generation, retired ones included.
[[nodiscard]] Result<std::vector<GenerationRow>> load_generations(ConnectionPool& pool,
                                                                  std::string_view projection);

// One generation, or nullopt when it no longer exists.
[[nodiscard]] Result<std::optional<GenerationRow>> load_generation(ConnectionPool& pool,
                                                                   std::string_view projection,
                                                                   int generation);

// Creates a generation of `projection` at its code version, with role `role` (kLive or
// kBuilding), and its tables. A live generation also gets the views and the tables' read
// indexes (ProjectionTable::indexes), in the same transaction; a building one gets its
// read indexes from create_read_indexes() once it has caught up. Fails with kAlreadyExists
// when the projection already has a generation in that role, kInvalidArgument for a table
// name that breaks the naming rules.
[[nodiscard]] Result<GenerationRow> create_generation(ConnectionPool& pool,
                                                      const Projection& projection,
                                                      std::string_view role);

// Creates the read indexes of a generation's tables that do not exist yet, each in a
// transaction of its own (an interrupted run keeps the ones it finished).
[[nodiscard]] Result<void> create_read_indexes(ConnectionPool& pool, const Projection& projection,
                                              int generation);

// Moves the checkpoint of a generation from `from` to `to` inside `unit`, adding to its
// counters. Returns false, changing nothing, when the checkpoint is no longer at `from`, the
// generation failed or was retired: another runner got there first, or an operator acted.
// The row stays locked until `unit` ends, so concurrent batches of one generation
// serialise here.
[[nodiscard]] Result<bool> advance_checkpoint(UnitOfWork& unit, std::string_view projection,
                                              int generation, LogPosition from, LogPosition to,
                                              std::int64_t events_read,
                                              std::int64_t events_applied);

// Stops a generation at `event`, whose application failed with `error`, provided its
// checkpoint is still at `checkpoint`. Returns false when it is not (nothing recorded).
[[nodiscard]] Result<bool> record_failure(ConnectionPool& pool, std::string_view projection,
                                          int generation, LogPosition checkpoint,
                                          const RecordedEvent& event, const Error& error);

// Locks the live and the building row of `projection` (FOR UPDATE) inside `unit` and
// returns them, live first when there is one. A running batch of either generation
// finishes first; later ones wait until `unit` ends.
[[nodiscard]] Result<std::vector<GenerationRow>> lock_generations(UnitOfWork& unit,
                                                                  std::string_view projection);

// Inside `unit` (after lock_generations): retires the live generation, makes `generation`
// live, and points every view of `projection` at its tables.
[[nodiscard]] Result<void> make_live(UnitOfWork& unit, const Projection& projection,
                                     int generation, std::optional<int> retired_generation);

// Retires a generation that will never go live (a rebuild at an outdated version); its
// tables are dropped by drop_retired.
[[nodiscard]] Result<void> retire_generation(ConnectionPool& pool, std::string_view projection,
                                             int generation);

// Drops the tables of every retired generation of `projection` and forgets them. Waits at
// most `lock_timeout_ms` for readers of a table; one that stays busy is left for a later
// call. Returns how many generations were dropped.
[[nodiscard]] Result<int> drop_retired(ConnectionPool& pool, std::string_view projection,
                                       int lock_timeout_ms);

// The ids of the events skipped for `projection` at `version`, as canonical text.
[[nodiscard]] Result<std::unordered_set<std::string>> load_skips(ConnectionPool& pool,
                                                                 std::string_view projection,
                                                                 int version);

// Checks the names a projection gives its tables and views. kInvalidArgument names the
// offending one.
[[nodiscard]] Result<void> validate_projection(const Projection& projection);

}  // namespace deedkit::internal
