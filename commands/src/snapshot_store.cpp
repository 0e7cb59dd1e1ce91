#include "deedkit/commands/snapshot_store.hpp"

#include <pqxx/binarystring>
#include <pqxx/result>

#include "deedkit/eventstore/binary_params.hpp"

namespace deedkit {

Result<std::optional<Snapshot>> SnapshotStore::load(UnitOfWork& unit,
                                                    const std::string& stream_id,
                                                    int state_schema_version) const {
  try {
    unit.lease().ensure_prepared(
        "deedkit_snapshot_load",
        "SELECT stream_version, state FROM deedkit.snapshots "
        "WHERE stream_id = $1 AND state_schema_version = $2");
    const pqxx::result rows =
        unit.tx().exec_prepared("deedkit_snapshot_load", stream_id, state_schema_version);
    if (rows.empty()) return std::nullopt;
    return Snapshot{rows[0][0].as<std::int64_t>(), pqxx::binarystring(rows[0][1]).str()};
  } catch (const std::exception&) {
    return std::unexpected(unit.fail_with_current_exception("load snapshot of " + stream_id));
  }
}

Result<void> SnapshotStore::save(UnitOfWork& unit, const std::string& stream_id,
                                 const std::string& state_type, int state_schema_version,
                                 const Snapshot& snapshot) const {
  try {
    unit.lease().ensure_prepared(
        "deedkit_snapshot_save",
        "INSERT INTO deedkit.snapshots (stream_id, stream_version, state_type, "
        "state_schema_version, state) VALUES ($1::text, $2::int8, $3::text, $4::int4, "
        "$5::bytea) ON CONFLICT (stream_id) DO UPDATE SET stream_version = excluded.stream_version,"
        " state_type = excluded.state_type, state_schema_version = excluded.state_schema_version,"
        " state = excluded.state, taken_at = now() "
        "WHERE deedkit.snapshots.stream_version < excluded.stream_version "
        "OR deedkit.snapshots.state_schema_version <> excluded.state_schema_version");
    BinaryParams params;
    params.text(stream_id)
        .int8(snapshot.stream_version)
        .text(state_type)
        .int4(state_schema_version)
        .bytea(snapshot.state);
    unit.tx().exec_prepared("deedkit_snapshot_save", params.dynamic());
    return {};
  } catch (const std::exception&) {
    return std::unexpected(unit.fail_with_current_exception("save snapshot of " + stream_id));
  }
}

}  // namespace deedkit
