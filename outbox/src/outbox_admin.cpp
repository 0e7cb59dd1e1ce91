#include "deedkit/outbox/outbox_admin.hpp"

#include <pqxx/result>
#include <pqxx/transaction>

#include "deedkit/eventstore/unit_of_work.hpp"
#include "internal/lease_keys.hpp"

namespace deedkit {

namespace {

constexpr const char* kCountsSql =
    "SELECT "
    " (SELECT count(*) FROM deedkit.outbox WHERE published_at IS NULL), "
    " (SELECT coalesce((extract(epoch FROM now() - min(recorded_at)) * 1000)::int8, 0) "
    "    FROM deedkit.outbox WHERE published_at IS NULL), "
    " (SELECT count(*) FROM deedkit.outbox "
    "    WHERE published_at > now() - interval '1 minute' AND discarded_at IS NULL), "
    " (SELECT count(*) FROM deedkit.outbox WHERE published_at IS NULL AND attempts > 0), "
    " (SELECT coalesce(sum(attempts), 0)::int8 FROM deedkit.outbox "
    "    WHERE published_at IS NULL), "
    " (SELECT count(*) FROM deedkit.outbox_dead_letters), "
    " (SELECT count(*) FROM deedkit.outbox o WHERE o.published_at IS NULL AND EXISTS ("
    "    SELECT 1 FROM deedkit.outbox_dead_letters d WHERE d.stream_id = o.stream_id)), "
    " (SELECT count(*) FROM deedkit.outbox WHERE published_at IS NOT NULL)";

// The relays are the sessions holding a member lock (partition_leases.cpp).
constexpr const char* kRelaysSql =
    "SELECT l.pid, coalesce(host(a.client_addr), 'local'), "
    "  (SELECT count(*) FROM pg_locks p WHERE p.pid = l.pid AND p.locktype = 'advisory' "
    "     AND p.granted AND p.objsubid = 2 AND p.classid::int8 = $1::int8), "
    "  coalesce(extract(epoch FROM now() - a.backend_start)::int8, 0) "
    "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
    "  AND l.classid::int8 = $2::int8 "
    "  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "ORDER BY l.pid";

constexpr const char* kDeadLettersSql =
    "SELECT d.outbox_id, d.event_id::text, d.stream_id, d.stream_version, "
    "  coalesce(o.event_type, ''), d.reason, "
    "  to_char(d.dead_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
    "  coalesce(o.attempts, 0), "
    "  (SELECT count(*) FROM deedkit.outbox w WHERE w.stream_id = d.stream_id "
    "     AND w.published_at IS NULL AND w.stream_version > d.stream_version) "
    "FROM deedkit.outbox_dead_letters d LEFT JOIN deedkit.outbox o USING (outbox_id) "
    "ORDER BY d.dead_at, d.outbox_id LIMIT $1::int4";

constexpr const char* kRemoveDeadLetterSql =
    "DELETE FROM deedkit.outbox_dead_letters WHERE outbox_id = $1::int8 RETURNING outbox_id";

constexpr const char* kRetrySql =
    "UPDATE deedkit.outbox SET attempts = 0, last_error = NULL "
    "WHERE outbox_id = $1::int8 AND published_at IS NULL";

constexpr const char* kDiscardSql =
    "UPDATE deedkit.outbox SET published_at = now(), discarded_at = now() "
    "WHERE outbox_id = $1::int8 AND published_at IS NULL";

// Removes the dead letter and applies `update_sql` to its row, in one transaction.
Result<void> resolve_dead_letter(ConnectionPool& pool, std::int64_t outbox_id,
                                 const char* update_sql, const std::string& action) {
  auto unit = UnitOfWork::begin(pool);
  if (!unit) return std::unexpected(unit.error());
  try {
    const pqxx::result removed = unit->tx().exec_params(kRemoveDeadLetterSql, outbox_id);
    if (removed.empty()) {
      return fail(ErrorCode::kNotFound,
                  "no dead letter with outbox id " + std::to_string(outbox_id));
    }
    unit->tx().exec_params(update_sql, outbox_id);
  } catch (const std::exception&) {
    return std::unexpected(unit->fail_with_current_exception(
        action + " dead letter " + std::to_string(outbox_id)));
  }
  return unit->commit();
}

}  // namespace

Result<OutboxStatus> read_outbox_status(ConnectionPool& pool) {
  auto unit = UnitOfWork::begin(pool);
  if (!unit) return std::unexpected(unit.error());
  try {
    OutboxStatus status;
    const pqxx::row counts = unit->tx().exec1(kCountsSql);
    status.rows_waiting = counts[0].as<std::int64_t>();
    status.oldest_waiting_age = std::chrono::milliseconds(counts[1].as<std::int64_t>());
    status.published_per_second = static_cast<double>(counts[2].as<std::int64_t>()) / 60.0;
    status.rows_retrying = counts[3].as<std::int64_t>();
    status.failed_attempts = counts[4].as<std::int64_t>();
    status.dead_letters = counts[5].as<std::int64_t>();
    status.parked_rows = counts[6].as<std::int64_t>();
    status.published_rows_kept = counts[7].as<std::int64_t>();

    for (const auto& row : unit->tx().exec_params(kRelaysSql, internal::kPartitionLockClass,
                                                  internal::kMemberLockClass)) {
      status.relays.push_back({row[0].as<int>(), row[1].c_str(), row[2].as<int>(),
                               std::chrono::seconds(row[3].as<std::int64_t>())});
    }
    return status;
  } catch (const std::exception&) {
    return std::unexpected(unit->fail_with_current_exception("read the outbox status"));
  }
}

Result<std::vector<DeadLetter>> list_dead_letters(ConnectionPool& pool, int limit) {
  auto unit = UnitOfWork::begin(pool);
  if (!unit) return std::unexpected(unit.error());
  try {
    std::vector<DeadLetter> letters;
    for (const auto& row : unit->tx().exec_params(kDeadLettersSql, limit)) {
      letters.push_back({row[0].as<std::int64_t>(), row[1].c_str(), row[2].c_str(),
                         row[3].as<std::int64_t>(), row[4].c_str(), row[5].c_str(),
                         row[6].c_str(), row[7].as<int>(), row[8].as<std::int64_t>()});
    }
    return letters;
  } catch (const std::exception&) {
    return std::unexpected(unit->fail_with_current_exception("list the outbox dead letters"));
  }
}

Result<void> retry_dead_letter(ConnectionPool& pool, std::int64_t outbox_id) {
  return resolve_dead_letter(pool, outbox_id, kRetrySql, "retry");
}

Result<void> discard_dead_letter(ConnectionPool& pool, std::int64_t outbox_id) {
  return resolve_dead_letter(pool, outbox_id, kDiscardSql, "discard");
}

}  // namespace deedkit
