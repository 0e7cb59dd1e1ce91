#include "deedkit/projections/admin.hpp"

#include <map>

#include <pqxx/result>

#include "deedkit/eventstore/unit_of_work.hpp"
#include "internal/generation_store.hpp"

namespace deedkit {

namespace {

using internal::GenerationRow;

// Must match the key runner.cpp locks ("dkpr" and hashtext(name)). pg_locks shows the two
// int4 keys as unsigned oids.
constexpr std::int64_t kLeaderLockClass = 0x646b7072;

GenerationStatus to_status(const GenerationRow& row) {
  GenerationStatus status;
  status.generation = row.generation;
  status.version = row.version;
  status.role = row.role;
  status.position = row.position;
  status.events_read = row.events_read;
  status.events_applied = row.events_applied;
  status.events_total_estimate = std::max(row.events_at_start, row.events_read);
  status.checkpointed_at = row.checkpointed_at;
  status.failure = row.failure;
  return status;
}

// Counts what lies after the checkpoint in commit-safe order: a range scan of the
// (transaction_id, global_position) index, proportional to the lag.
void count_lag(pqxx::transaction_base& tx, GenerationStatus& status) {
  const pqxx::row lag = tx.exec_params1(
      "SELECT count(*), coalesce(extract(epoch FROM now() - min(recorded_at)), 0)::float8 "
      "FROM deedkit.events WHERE (transaction_id, global_position) > ($1::text::xid8, $2)",
      std::to_string(status.position.transaction_id), status.position.global_position);
  status.lag_events = lag[0].as<std::int64_t>();
  status.lag_seconds = std::max(0.0, lag[1].as<double>());
  status.events_total_estimate = status.events_read + status.lag_events;
}

void find_leader(pqxx::transaction_base& tx, ProjectionStatus& status) {
  const pqxx::result holder = tx.exec_params(
      "SELECT a.pid, coalesce(a.application_name, '') FROM pg_locks l "
      "JOIN pg_stat_activity a ON a.pid = l.pid "
      "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
      "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
      "AND l.classid = $1::int8::oid AND l.objid = (hashtext($2)::int8 & 4294967295)::oid",
      kLeaderLockClass, status.name);
  if (holder.empty()) return;
  status.leader_pid = holder[0][0].as<int>();
  status.leader_application = holder[0][1].c_str();
}

}  // namespace

std::string ProjectionStatus::state() const {
  const bool failed = (live && live->failure) || (building && building->failure);
  if (failed) return "failed";
  if (building) return "rebuilding";
  if (!live) return "new";
  return leader_pid ? "running" : "stopped";
}

Result<std::vector<ProjectionStatus>> projection_status(
    ConnectionPool& pool, std::span<const Projection* const> projections, bool count_lags) {
  auto generations = internal::load_generations(pool, "");
  if (!generations) return std::unexpected(generations.error());

  std::map<std::string, ProjectionStatus> by_name;
  for (const Projection* projection : projections) {
    ProjectionStatus& status = by_name[std::string(projection->name())];
    status.name = projection->name();
    status.code_version = projection->version();
  }
  for (const GenerationRow& row : *generations) {
    ProjectionStatus& status = by_name[row.projection];
    status.name = row.projection;
    if (row.role == internal::kLive) status.live = to_status(row);
    if (row.role == internal::kBuilding) status.building = to_status(row);
  }

  auto unit = UnitOfWork::begin(pool);
  if (!unit) return std::unexpected(unit.error());
  std::vector<ProjectionStatus> statuses;
  try {
    for (auto& [name, status] : by_name) {
      find_leader(unit->tx(), status);
      if (count_lags && status.live) count_lag(unit->tx(), *status.live);
      if (count_lags && status.building) count_lag(unit->tx(), *status.building);
      statuses.push_back(std::move(status));
    }
  } catch (const std::exception&) {
    return std::unexpected(unit->fail_with_current_exception("read projection status"));
  }
  return statuses;
}

Result<int> retry_projection(ConnectionPool& pool, std::string_view name) {
  auto unit = UnitOfWork::begin(pool);
  if (!unit) return std::unexpected(unit.error());
  try {
    const pqxx::result cleared = unit->tx().exec_params(
        "UPDATE deedkit.projection_generations SET failed_at = NULL, "
        "failed_transaction_id = NULL, failed_global_position = NULL, failed_stream_id = NULL, "
        "failed_stream_version = NULL, failed_event_id = NULL, failed_event_type = NULL, "
        "failed_error = NULL WHERE projection = $1 AND failed_at IS NOT NULL "
        "AND role <> 'retired'",
        std::string(name));
    if (auto committed = unit->commit(); !committed) return std::unexpected(committed.error());
    return static_cast<int>(cleared.affected_rows());
  } catch (const std::exception&) {
    return std::unexpected(
        unit->fail_with_current_exception("retry projection " + std::string(name)));
  }
}

Result<std::vector<FailedEvent>> skip_failed_event(ConnectionPool& pool, std::string_view name,
                                                   std::string_view skipped_by) {
  auto generations = internal::load_generations(pool, name);
  if (!generations) return std::unexpected(generations.error());

  auto unit = UnitOfWork::begin(pool);
  if (!unit) return std::unexpected(unit.error());
  std::vector<FailedEvent> skipped;
  try {
    pqxx::transaction_base& tx = unit->tx();
    for (const GenerationRow& row : *generations) {
      if (!row.failure || row.role == internal::kRetired) continue;
      const FailedEvent& failure = *row.failure;

      // The checkpoint moves onto the failed event only if the generation still stands
      // where it was read: a concurrent retry or skip leaves it alone.
      const pqxx::result moved = tx.exec_params(
          "UPDATE deedkit.projection_generations SET transaction_id = failed_transaction_id, "
          "global_position = failed_global_position, events_read = events_read + 1, "
          "checkpointed_at = now(), failed_at = NULL, failed_transaction_id = NULL, "
          "failed_global_position = NULL, failed_stream_id = NULL, "
          "failed_stream_version = NULL, failed_event_id = NULL, failed_event_type = NULL, "
          "failed_error = NULL WHERE projection = $1 AND generation = $2 "
          "AND failed_event_id = $3::uuid AND role <> 'retired'",
          row.projection, row.generation, to_string(failure.event_id));
      if (moved.affected_rows() != 1) continue;

      tx.exec_params(
          "INSERT INTO deedkit.projection_skips (projection, version, generation, event_id, "
          "transaction_id, global_position, stream_id, stream_version, event_type, error, "
          "skipped_by) VALUES ($1, $2, $3, $4::uuid, $5::text::xid8, $6, $7, $8, $9, $10, "
          "coalesce(nullif($11, ''), current_user)) ON CONFLICT DO NOTHING",
          row.projection, row.version, row.generation, to_string(failure.event_id),
          std::to_string(failure.position.transaction_id), failure.position.global_position,
          failure.stream_id, failure.stream_version, failure.event_type, failure.error,
          std::string(skipped_by));
      skipped.push_back(failure);
    }
    if (auto committed = unit->commit(); !committed) return std::unexpected(committed.error());
    return skipped;
  } catch (const std::exception&) {
    return std::unexpected(unit->fail_with_current_exception(
        "skip the failed event of projection " + std::string(name)));
  }
}

Result<RebuildRequest> request_rebuild(ConnectionPool& pool, const Projection& projection) {
  const std::string name(projection.name());
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto generations = internal::load_generations(pool, name);
    if (!generations) return std::unexpected(generations.error());
    for (const GenerationRow& row : *generations) {
      if (row.role != internal::kBuilding) continue;
      if (row.version == projection.version()) return RebuildRequest{row.generation, true};
      return fail(ErrorCode::kFailedPrecondition,
                  "projection " + name + " is already being rebuilt at version " +
                      std::to_string(row.version) + " (generation " +
                      std::to_string(row.generation) + "), not this build's version " +
                      std::to_string(projection.version()));
    }

    auto created = internal::create_generation(pool, projection, internal::kBuilding);
    if (created) return RebuildRequest{created->generation, false};
    // Another process asked at the same moment: the unique index let one of us through.
    if (created.error().code != ErrorCode::kAlreadyExists) {
      return std::unexpected(created.error());
    }
  }
  return fail(ErrorCode::kAborted, "projection " + name +
                                       ": a rebuild appeared and disappeared while asking "
                                       "for one; ask again");
}

}  // namespace deedkit
