#include "internal/relay_database.hpp"

#include <algorithm>
#include <charconv>
#include <string_view>
#include <type_traits>

#include <pqxx/binarystring>
#include <pqxx/nontransaction>
#include <pqxx/result>

#include "deedkit/eventstore/unit_of_work.hpp"

namespace deedkit::internal {

namespace {

// The sequence's value says "the outbox got new ids"; the snapshot lets WakeSignal see
// transactions end. Reading both is a single-row read with no locks. The partitions of
// parked streams come from a table that is empty unless an operator has work to do. The
// sequence's file changes when it is restarted (TRUNCATE ... RESTART IDENTITY).
constexpr const char* kPollSql =
    "SELECT CASE WHEN is_called THEN last_value ELSE 0 END, pg_current_snapshot()::text, "
    "  coalesce((SELECT array_agg(DISTINCT hashtext(stream_id) & 63) "
    "            FROM deedkit.outbox_dead_letters)::text, '{}'), "
    "  pg_relation_filenode('deedkit.outbox_outbox_id_seq')::int8 "
    "FROM deedkit.outbox_outbox_id_seq";

// The sequence is read (the scan) before the transaction id is taken (the target list), as
// CommitHorizon needs. The transaction commits without writing anything but its commit
// record, and does not wait for that to reach the disk. The horizon holds only once
// migration 9 has made writers take their transaction id before their outbox id.
constexpr const char* kProposeHorizonSql =
    "SELECT CASE WHEN is_called THEN last_value ELSE 0 END, "
    "  pg_current_xact_id()::text, set_config('synchronous_commit', 'off', true), "
    "  EXISTS (SELECT 1 FROM deedkit.schema_migrations WHERE version = 9) "
    "FROM deedkit.outbox_outbox_id_seq";

// One index range scan of outbox_pending_idx per partition, starting above the ids the relay
// has dealt with there and stopping after the rows it has room for. The skipped ids (rows in
// memory, and rows acknowledged but not yet recorded) are passed over before the limit
// applies, so what comes back is new to the relay. Rows are committed ones only: each
// statement reads a fresh READ COMMITTED snapshot. Whether any dead letter exists is asked
// once per statement, and only then is each row's stream looked up among them: usually
// there are none, and the lookup per row was a good part of the statement's work.
constexpr const char* kFetchSql =
    "SELECT r.outbox_id, r.event_id::text, r.stream_id, r.stream_version, r.event_type, "
    "  r.schema_version, r.payload, coalesce(r.metadata->>'correlation_id', ''), "
    "  coalesce(r.metadata->>'causation_id', ''), coalesce(r.metadata->>'principal', ''), "
    "  (extract(epoch FROM r.recorded_at) * 1000000)::int8, r.attempts, r.partition "
    "FROM unnest($1::int2[], $2::int4[], $4::int8[]) AS p(partition, room, after) "
    "CROSS JOIN LATERAL ("
    "  SELECT o.* FROM deedkit.outbox o "
    "  WHERE o.partition = p.partition AND o.published_at IS NULL AND o.outbox_id > p.after "
    "    AND o.outbox_id <> ALL ($3::int8[]) "
    "    AND (NOT (SELECT EXISTS (SELECT 1 FROM deedkit.outbox_dead_letters)) "
    "         OR NOT EXISTS (SELECT 1 FROM deedkit.outbox_dead_letters d "
    "                        WHERE d.stream_id = o.stream_id)) "
    "  ORDER BY o.outbox_id LIMIT p.room) AS r "
    "ORDER BY r.outbox_id";

// The mark does not wait for its WAL flush (synchronous_commit off for this statement's
// transaction alone): a mark lost in a server crash only means its row is published again,
// and JetStream drops that copy as a duplicate, the same as after a relay crash.
constexpr const char* kMarkSql =
    "WITH settings AS (SELECT set_config('synchronous_commit', 'off', true)) "
    "UPDATE deedkit.outbox SET published_at = now() FROM settings "
    "WHERE outbox_id = ANY ($1::int8[]) AND published_at IS NULL";

// With nothing to retain, an acknowledged row is deleted at once: cheaper than marking it,
// which writes a new row version with new index entries.
constexpr const char* kRemoveSql =
    "WITH settings AS (SELECT set_config('synchronous_commit', 'off', true)) "
    "DELETE FROM deedkit.outbox USING settings "
    "WHERE outbox_id = ANY ($1::int8[]) AND published_at IS NULL";
constexpr const char* kFailureSql =
    "UPDATE deedkit.outbox SET attempts = $2::int4, last_error = $3::text "
    "WHERE outbox_id = $1::int8 AND published_at IS NULL";

constexpr const char* kDeadLetterSql =
    "WITH failed AS ("
    "  UPDATE deedkit.outbox SET attempts = $2::int4, last_error = $3::text "
    "  WHERE outbox_id = $1::int8 AND published_at IS NULL "
    "  RETURNING outbox_id, event_id, stream_id, stream_version) "
    "INSERT INTO deedkit.outbox_dead_letters "
    "  (outbox_id, event_id, stream_id, stream_version, reason) "
    "SELECT outbox_id, event_id, stream_id, stream_version, $3::text FROM failed "
    "ON CONFLICT (outbox_id) DO NOTHING";

// SKIP LOCKED: two relays pruning at once take different rows instead of queueing.
constexpr const char* kRetentionSql =
    "WITH doomed AS ("
    "  SELECT outbox_id FROM deedkit.outbox "
    "  WHERE published_at IS NOT NULL "
    "    AND published_at < now() - make_interval(secs => $1::int8) "
    "  ORDER BY published_at LIMIT $2::int4 FOR UPDATE SKIP LOCKED) "
    "DELETE FROM deedkit.outbox o USING doomed WHERE o.outbox_id = doomed.outbox_id";

constexpr const char* kBacklogSql =
    "SELECT count(*), "
    "  coalesce((extract(epoch FROM now() - min(recorded_at)) * 1000)::int8, 0) "
    "FROM deedkit.outbox WHERE published_at IS NULL AND partition = ANY ($1::int2[])";

// "{1,5,9}" to {1, 5, 9}; PostgreSQL's text form of a one-dimensional int array.
std::vector<int> parse_int_array(std::string_view text) {
  std::vector<int> values;
  if (text.size() < 2) return values;
  text = text.substr(1, text.size() - 2);
  while (!text.empty()) {
    const std::size_t comma = text.find(',');
    int value = 0;
    const std::string_view item = text.substr(0, comma);
    std::from_chars(item.data(), item.data() + item.size(), value);
    values.push_back(value);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
  }
  return values;
}

OutboxRow parse_row(const pqxx::row& row) {
  OutboxRow parsed;
  parsed.outbox_id = row[0].as<std::int64_t>();
  parsed.event_id = row[1].c_str();
  parsed.stream_id = row[2].c_str();
  parsed.stream_version = row[3].as<std::int64_t>();
  parsed.event_type = row[4].c_str();
  parsed.schema_version = row[5].as<int>();
  parsed.payload = pqxx::binarystring(row[6]).str();
  parsed.correlation_id = row[7].c_str();
  parsed.causation_id = row[8].c_str();
  parsed.principal = row[9].c_str();
  parsed.recorded_at_micros = row[10].as<std::int64_t>();
  parsed.attempts = row[11].as<int>();
  parsed.partition = row[12].as<int>();
  return parsed;
}

}  // namespace

RelayDatabase::RelayDatabase(std::string database_uri)
    : pool_(PoolOptions{.database_uri = std::move(database_uri), .max_connections = 1}) {}

template <typename T, typename Body>
Result<T> RelayDatabase::run(const char* context, Body&& body) {
  if (!lease_) {
    auto lease = pool_.acquire();
    if (!lease) return std::unexpected(lease.error());
    lease_.emplace(std::move(*lease));
  }

  try {
    if constexpr (std::is_void_v<T>) {
      body(*lease_);
      return {};
    } else {
      return body(*lease_);
    }
  } catch (const std::exception&) {
    Error error = database_error(context);
    if (is_connection_error(error) || error.code == ErrorCode::kOutcomeUnknown) {
      lease_->discard();
      lease_.reset();
    }
    return std::unexpected(std::move(error));
  }
}

Result<OutboxPoll> RelayDatabase::poll() {
  return run<OutboxPoll>("check the outbox for new rows", [](ConnectionLease& lease) {
    lease.ensure_prepared("deedkit_relay_poll", kPollSql);
    pqxx::nontransaction tx(lease.connection());
    const pqxx::row row = tx.exec_prepared1("deedkit_relay_poll");

    OutboxPoll poll;
    poll.sequence_value = row[0].as<std::int64_t>();
    if (auto snapshot = Snapshot::parse(row[1].c_str())) poll.snapshot = std::move(*snapshot);
    poll.dead_letter_partitions = parse_int_array(row[2].c_str());
    std::sort(poll.dead_letter_partitions.begin(), poll.dead_letter_partitions.end());
    poll.sequence_file = row[3].as<std::int64_t>();
    return poll;
  });
}

Result<HorizonProposal> RelayDatabase::propose_horizon() {
  return run<HorizonProposal>("read the outbox sequence for the commit horizon",
                              [](ConnectionLease& lease) {
    lease.ensure_prepared("deedkit_relay_propose_horizon", kProposeHorizonSql);
    pqxx::nontransaction tx(lease.connection());
    const pqxx::row row = tx.exec_prepared1("deedkit_relay_propose_horizon");
    return HorizonProposal{row[0].as<std::int64_t>(), row[1].as<std::uint64_t>(),
                           row[3].as<bool>()};
  });
}

Result<std::vector<OutboxRow>> RelayDatabase::fetch(const std::vector<PartitionRoom>& rooms,
                                                    const std::vector<std::int64_t>& skip) {
  std::vector<int> partitions;
  std::vector<int> room;
  std::vector<std::int64_t> after;
  for (const PartitionRoom& entry : rooms) {
    partitions.push_back(entry.partition);
    room.push_back(entry.rows);
    after.push_back(entry.after);
  }

  return run<std::vector<OutboxRow>>("fetch pending outbox rows", [&](ConnectionLease& lease) {
    // NOTE: deliberately not a prepared statement. An unnamed statement is planned with its
    // parameters' values, so the skip list is a constant array, and PostgreSQL 15 checks
    // `<> ALL` against a constant array through a hash table. A prepared statement's generic
    // plan compares every candidate row with every skipped id: with thousands of rows in
    // memory that made fetching, not publishing, the relay's limit.
    pqxx::nontransaction tx(lease.connection());
    const pqxx::result result = tx.exec_params(kFetchSql, array_literal(partitions),
                                               array_literal(room), array_literal(skip),
                                               array_literal(after));
    std::vector<OutboxRow> rows;
    rows.reserve(result.size());
    for (const auto& row : result) rows.push_back(parse_row(row));
    return rows;
  });
}

Result<void> RelayDatabase::mark_published(const std::vector<std::int64_t>& ids) {
  if (ids.empty()) return {};
  return run<void>("mark outbox rows published", [&](ConnectionLease& lease) {
    lease.ensure_prepared("deedkit_relay_mark", kMarkSql);
    pqxx::nontransaction tx(lease.connection());
    tx.exec_prepared("deedkit_relay_mark", array_literal(ids));
  });
}

Result<void> RelayDatabase::remove_published(const std::vector<std::int64_t>& ids) {
  if (ids.empty()) return {};
  return run<void>("remove published outbox rows", [&](ConnectionLease& lease) {
    lease.ensure_prepared("deedkit_relay_remove", kRemoveSql);
    pqxx::nontransaction tx(lease.connection());
    tx.exec_prepared("deedkit_relay_remove", array_literal(ids));
  });
}

Result<void> RelayDatabase::record_failure(std::int64_t outbox_id, int attempts,
                                           const std::string& reason) {
  return run<void>("record a failed publish attempt", [&](ConnectionLease& lease) {
    lease.ensure_prepared("deedkit_relay_failure", kFailureSql);
    pqxx::nontransaction tx(lease.connection());
    tx.exec_prepared("deedkit_relay_failure", outbox_id, attempts, reason);
  });
}

Result<void> RelayDatabase::dead_letter(std::int64_t outbox_id, int attempts,
                                        const std::string& reason) {
  return run<void>("park an outbox row as a dead letter", [&](ConnectionLease& lease) {
    lease.ensure_prepared("deedkit_relay_dead_letter", kDeadLetterSql);
    pqxx::nontransaction tx(lease.connection());
    tx.exec_prepared("deedkit_relay_dead_letter", outbox_id, attempts, reason);
  });
}

Result<std::int64_t> RelayDatabase::delete_published(std::chrono::seconds older_than,
                                                     int batch) {
  return run<std::int64_t>("delete old published outbox rows", [&](ConnectionLease& lease) {
    lease.ensure_prepared("deedkit_relay_retention", kRetentionSql);
    pqxx::nontransaction tx(lease.connection());
    const pqxx::result result = tx.exec_prepared(
        "deedkit_relay_retention", static_cast<std::int64_t>(older_than.count()), batch);
    return static_cast<std::int64_t>(result.affected_rows());
  });
}

Result<Backlog> RelayDatabase::backlog(const std::vector<int>& partitions) {
  return run<Backlog>("measure the outbox backlog", [&](ConnectionLease& lease) {
    lease.ensure_prepared("deedkit_relay_backlog", kBacklogSql);
    pqxx::nontransaction tx(lease.connection());
    const pqxx::row row = tx.exec_prepared1("deedkit_relay_backlog", array_literal(partitions));
    return Backlog{row[0].as<std::int64_t>(),
                   std::chrono::milliseconds(row[1].as<std::int64_t>())};
  });
}

}  // namespace deedkit::internal
