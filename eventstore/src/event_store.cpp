#include "deedkit/eventstore/event_store.hpp"

#include <functional>

#include <pqxx/binarystring>
#include <pqxx/except>
#include <pqxx/nontransaction>
#include <pqxx/result>

#include "deedkit/eventstore/binary_params.hpp"
#include "internal/event_rows.hpp"

namespace deedkit {

namespace {

// Appends with more events than this are split into statements of this size; they still
// commit together. Each size has its own prepared statement, so the bound also bounds the
// number of statements a connection prepares.
constexpr std::size_t kMaxEventsPerStatement = 16;

// One statement checks the expected version and inserts: the stream's version is read from
// the (stream_id, stream_version) index in the same statement. When two writers race, the
// unique index makes the later one wait for the earlier; ON CONFLICT DO NOTHING then skips its
// rows instead of aborting the transaction, so the store can explain the conflict (or
// recognise a duplicate) in the same transaction.
std::string append_statement_sql(std::size_t event_count) {
  std::string sql =
      "WITH current AS (SELECT coalesce(max(stream_version), 0) AS version "
      "FROM deedkit.events WHERE stream_id = $1::text) "
      "INSERT INTO deedkit.events (stream_id, stream_version, event_id, event_type, "
      "schema_version, payload, metadata) "
      "SELECT $1::text, current.version + batch.ordinal, batch.event_id, batch.event_type, "
      "batch.schema_version, batch.payload, batch.metadata FROM current, (VALUES ";
  for (std::size_t i = 0; i < event_count; ++i) {
    const std::size_t base = 3 + i * 5;
    if (i > 0) sql += ", ";
    sql += "(" + std::to_string(i + 1) + "::int8, $" + std::to_string(base) + "::uuid, $" +
           std::to_string(base + 1) + "::text, $" + std::to_string(base + 2) + "::int4, $" +
           std::to_string(base + 3) + "::bytea, $" + std::to_string(base + 4) + "::jsonb)";
  }
  sql +=
      ") AS batch(ordinal, event_id, event_type, schema_version, payload, metadata) "
      "WHERE CASE $2::int8 WHEN -1 THEN true WHEN -2 THEN current.version = 0 "
      "WHEN -3 THEN current.version > 0 ELSE current.version = $2::int8 END "
      "ORDER BY batch.ordinal "
      "ON CONFLICT DO NOTHING RETURNING stream_version";
  return sql;
}

// Without a transaction around it, an append must be one statement that writes all of its
// rows or none: a plain INSERT, where a unique violation aborts every row at once (ON
// CONFLICT DO NOTHING would skip only the rows in conflict). How the stream's end is checked
// depends on the expectation, and the cheapest check is none at all:
//   kNew    no stream: versions 1..n; a stream that exists already has version 1 taken.
//   kAfter  exact v: versions v+1..v+n, written only if version v exists (no holes).
//   kAtEnd  any or stream exists: after the current last version.
enum class AtomicShape { kNew, kAfter, kAtEnd };

AtomicShape atomic_shape(ExpectedVersion expected) {
  if (expected.is_no_stream()) return AtomicShape::kNew;
  if (expected.is_exact()) return AtomicShape::kAfter;
  return AtomicShape::kAtEnd;
}

std::string atomic_append_sql(std::size_t event_count, AtomicShape shape) {
  // $1 is the stream; kAfter and kAtEnd take the expectation as $2; the events follow.
  const std::size_t first_event_param = shape == AtomicShape::kNew ? 2 : 3;
  std::string values;
  for (std::size_t i = 0; i < event_count; ++i) {
    const std::size_t base = first_event_param + i * 5;
    if (i > 0) values += ", ";
    values += "(" + std::to_string(i + 1) + "::int8, $" + std::to_string(base) + "::uuid, $" +
              std::to_string(base + 1) + "::text, $" + std::to_string(base + 2) + "::int4, $" +
              std::to_string(base + 3) + "::bytea, $" + std::to_string(base + 4) + "::jsonb)";
  }
  const std::string insert =
      "INSERT INTO deedkit.events (stream_id, stream_version, event_id, event_type, "
      "schema_version, payload, metadata) ";
  const std::string batch =
      " AS batch(ordinal, event_id, event_type, schema_version, payload, metadata) ";
  const std::string columns =
      "batch.event_id, batch.event_type, batch.schema_version, batch.payload, batch.metadata";

  switch (shape) {
    case AtomicShape::kNew:
      return insert + "SELECT $1::text, batch.ordinal, " + columns + " FROM (VALUES " + values +
             ")" + batch + "ORDER BY batch.ordinal RETURNING stream_version";
    case AtomicShape::kAfter:
      return insert + "SELECT $1::text, $2::int8 + batch.ordinal, " + columns +
             " FROM (VALUES " + values + ")" + batch +
             "WHERE EXISTS (SELECT 1 FROM deedkit.events WHERE stream_id = $1::text "
             "AND stream_version = $2::int8) ORDER BY batch.ordinal RETURNING stream_version";
    case AtomicShape::kAtEnd:
      return "WITH current AS (SELECT coalesce(max(stream_version), 0) AS version "
             "FROM deedkit.events WHERE stream_id = $1::text) " +
             insert + "SELECT $1::text, current.version + batch.ordinal, " + columns +
             " FROM current, (VALUES " + values + ")" + batch +
             "WHERE $2::int8 = -1 OR current.version > 0 ORDER BY batch.ordinal "
             "RETURNING stream_version";
  }
  return {};
}

Result<void> validate_append(const std::string& stream_id, ExpectedVersion expected,
                             std::span<const NewEvent> events) {
  if (!expected.is_valid()) {
    return fail(ErrorCode::kInvalidArgument,
                "append to " + stream_id + " expects a negative version; versions start at 1");
  }
  if (stream_id.empty() || stream_id.size() > 255) {
    return fail(ErrorCode::kInvalidArgument,
                "stream id must be 1 to 255 bytes, got " + std::to_string(stream_id.size()));
  }
  if (events.empty()) {
    return fail(ErrorCode::kInvalidArgument, "append to " + stream_id + " has no events");
  }
  for (const NewEvent& event : events) {
    if (event.event_type.empty() || event.event_type.size() > 255) {
      return fail(ErrorCode::kInvalidArgument,
                  "event " + to_string(event.event_id) + " for " + stream_id +
                      " needs an event type of 1 to 255 bytes");
    }
    if (event.schema_version < 1) {
      return fail(ErrorCode::kInvalidArgument,
                  "event " + to_string(event.event_id) + " for " + stream_id +
                      " has schema version " + std::to_string(event.schema_version) +
                      "; versions start at 1");
    }
  }
  return {};
}

std::string uuid_array_literal(std::span<const NewEvent> events) {
  std::string literal = "{";
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (i > 0) literal += ",";
    literal += to_string(events[i].event_id);
  }
  return literal + "}";
}

// The five parameters each event takes in both append statements, in their order.
void bind_events(BinaryParams& params, std::span<const NewEvent> events) {
  for (const NewEvent& event : events) {
    params.uuid(event.event_id)
        .text(event.event_type)
        .int4(event.schema_version)
        .bytea(event.payload)
        .jsonb(metadata_to_json(event.metadata));
  }
}

// Runs after an append wrote fewer rows than asked: either every event is already stored
// here at these positions (a retry: success), or the stream moved (a conflict).
// Where an append runs: a caller's transaction, or one autocommit statement; `poison` marks
// the transaction as unfit to commit.
struct AppendTarget {
  pqxx::transaction_base& tx;
  ConnectionLease& lease;
  std::function<void(std::string)> poison;
};

Result<AppendResult> explain_short_append(const AppendTarget& target,
                                          const std::string& stream_id,
                                          ExpectedVersion expected,
                                          std::span<const NewEvent> events,
                                          std::size_t rows_written) {
  pqxx::transaction_base& tx = target.tx;
  const pqxx::result stored = tx.exec_params(
      "SELECT event_id, stream_id, stream_version FROM deedkit.events "
      "WHERE event_id = ANY($1::uuid[]) ORDER BY stream_version",
      uuid_array_literal(events));

  bool all_here_in_order = rows_written == 0 && stored.size() == events.size();
  for (std::size_t i = 0; all_here_in_order && i < stored.size(); ++i) {
    const bool same_event = to_string(events[i].event_id) == stored[i][0].c_str();
    const bool same_stream = stream_id == stored[i][1].c_str();
    const bool consecutive = i == 0 || stored[i][2].as<std::int64_t>() ==
                                           stored[i - 1][2].as<std::int64_t>() + 1;
    all_here_in_order = same_event && same_stream && consecutive;
  }
  if (all_here_in_order) {
    const std::int64_t first = stored[0][2].as<std::int64_t>();
    const bool positions_match =
        !expected.is_exact() || first == expected.exact_version() + 1;
    if (positions_match) {
      return AppendResult{first, first + static_cast<std::int64_t>(events.size()) - 1, true};
    }
  }

  for (const auto& row : stored) {
    if (stream_id != row[1].c_str()) {
      target.poison("event id reused");
      return fail(ErrorCode::kInvalidArgument,
                  std::string("event id ") + row[0].c_str() + " is already stored in " +
                      row[1].c_str() + " at version " + row[2].c_str());
    }
  }

  const std::int64_t actual =
      tx.exec_params1("SELECT coalesce(max(stream_version), 0) FROM deedkit.events "
                      "WHERE stream_id = $1",
                      stream_id)[0]
          .as<std::int64_t>();
  // Only an exact version or "no stream" can truly mismatch. With "any", or "stream exists"
  // once it does, nothing written means a racing writer took the next version first: the
  // statement is simply run again at the new end (kAborted never leaves append_rows).
  const bool lost_race =
      rows_written == 0 && (expected.is_any() || (expected.is_stream_exists() && actual > 0));
  if (lost_race) return fail(ErrorCode::kAborted, "lost the race for the end of " + stream_id);

  // When nothing was written the transaction is still clean and the caller may reload and
  // try again in it; a partial write (a racing writer took only some of the versions) must
  // be rolled back.
  if (rows_written > 0) target.poison("partial append to " + stream_id + " after a conflict");
  return fail(ErrorCode::kConflict, "stream " + stream_id + " expected version " +
                                        expected.to_string() + ", actual version " +
                                        std::to_string(actual));
}

// The append itself: one prepared statement per chunk of events. Throws libpqxx exceptions;
// the callers map them.
Result<AppendResult> append_rows_once(const AppendTarget& target, const std::string& stream_id,
                                      ExpectedVersion expected,
                                      std::span<const NewEvent> events) {
  std::size_t rows_written = 0;
  std::int64_t first_version = 0;
  std::int64_t last_version = 0;
  ExpectedVersion chunk_expected = expected;

  for (std::size_t offset = 0; offset < events.size(); offset += kMaxEventsPerStatement) {
    const auto chunk =
        events.subspan(offset, std::min(kMaxEventsPerStatement, events.size() - offset));
    const std::string statement = "deedkit_append_" + std::to_string(chunk.size());
    target.lease.ensure_prepared(statement, append_statement_sql(chunk.size()));

    BinaryParams params;
    params.text(stream_id).int8(chunk_expected.encoded());
    bind_events(params, chunk);
    const pqxx::result written = target.tx.exec_prepared(statement, params.dynamic());
    rows_written += written.size();
    if (written.size() != chunk.size()) break;

    if (offset == 0) first_version = written.front()[0].as<std::int64_t>();
    last_version = written.back()[0].as<std::int64_t>();
    chunk_expected = ExpectedVersion::exact(last_version);
  }

  if (rows_written == events.size()) return AppendResult{first_version, last_version, false};
  return explain_short_append(target, stream_id, expected, events, rows_written);
}

// The append as one all-or-nothing statement (atomic_append_sql), for autocommit units.
// REQUIRES: events.size() <= kMaxEventsPerStatement.
Result<AppendResult> append_atomic_once(const AppendTarget& target, const std::string& stream_id,
                                        ExpectedVersion expected,
                                        std::span<const NewEvent> events) {
  const AtomicShape shape = atomic_shape(expected);
  const std::string statement = "deedkit_append_atomic_" +
                                std::to_string(static_cast<int>(shape)) + "_" +
                                std::to_string(events.size());
  target.lease.ensure_prepared(statement, atomic_append_sql(events.size(), shape));

  BinaryParams params;
  params.text(stream_id);
  if (shape != AtomicShape::kNew) params.int8(expected.encoded());
  bind_events(params, events);

  std::size_t rows_written = 0;
  try {
    const pqxx::result written = target.tx.exec_prepared(statement, params.dynamic());
    rows_written = written.size();
    if (rows_written == events.size()) {
      const std::int64_t first = written.front()[0].as<std::int64_t>();
      return AppendResult{first, written.back()[0].as<std::int64_t>(), false};
    }
  } catch (const pqxx::unique_violation&) {
    // Nothing was written: a version or an event id is taken. A retry of this very append
    // is a duplicate; anything else is a conflict (or, at the end, a lost race).
  }
  return explain_short_append(target, stream_id, expected, events, 0);
}

Result<AppendResult> append_rows(const AppendTarget& target, const std::string& stream_id,
                                 ExpectedVersion expected, std::span<const NewEvent> events,
                                 bool atomic) {
  constexpr int kMaxRaces = 16;  // each lost race means another writer made progress
  for (int race = 1;; ++race) {
    auto appended = atomic ? append_atomic_once(target, stream_id, expected, events)
                           : append_rows_once(target, stream_id, expected, events);
    if (appended || appended.error().code != ErrorCode::kAborted) return appended;
    if (race == kMaxRaces) {
      return fail(ErrorCode::kConflict, "stream " + stream_id + " expected version " +
                                            expected.to_string() + ": lost the race for its "
                                            "end " + std::to_string(kMaxRaces) + " times");
    }
  }
}

}  // namespace

Result<AppendResult> EventStore::append(UnitOfWork& unit, const std::string& stream_id,
                                        ExpectedVersion expected,
                                        std::span<const NewEvent> events) const {
  if (auto valid = validate_append(stream_id, expected, events); !valid) {
    return std::unexpected(valid.error());
  }
  // Without a transaction, one statement must carry the whole append; more events than fit
  // in one need a transaction from here on.
  const bool atomic = !unit.in_transaction() && events.size() <= kMaxEventsPerStatement;
  if (!unit.in_transaction() && !atomic) {
    if (auto begun = unit.begin_transaction(); !begun) return std::unexpected(begun.error());
  }
  try {
    const AppendTarget target{unit.tx(), unit.lease(),
                              [&unit](std::string reason) { unit.poison(std::move(reason)); }};
    return append_rows(target, stream_id, expected, events, atomic);
  } catch (const std::exception&) {
    return std::unexpected(unit.fail_with_current_exception("append to " + stream_id));
  }
}

Result<AppendResult> EventStore::append(const std::string& stream_id, ExpectedVersion expected,
                                        std::span<const NewEvent> events) const {
  if (auto valid = validate_append(stream_id, expected, events); !valid) {
    return std::unexpected(valid.error());
  }

  // Up to one statement's worth of events needs no explicit transaction: the atomic append
  // statement writes all of them or none, and skipping BEGIN and COMMIT saves two round trips.
  if (events.size() <= kMaxEventsPerStatement) {
    auto unit = UnitOfWork::autocommit(pool_);
    if (!unit) return std::unexpected(unit.error());
    return append(*unit, stream_id, expected, events);
  }

  // More events take several statements in a transaction of their own. A racing writer that
  // took only some of their versions poisons the unit; with "any" or "stream exists" that is
  // no conflict, so the append runs again in a fresh one.
  const bool any_version_will_do = expected.is_any() || expected.is_stream_exists();
  constexpr int kMaxRaces = 16;
  for (int race = 1;; ++race) {
    auto unit = UnitOfWork::begin(pool_);
    if (!unit) return std::unexpected(unit.error());
    auto appended = append(*unit, stream_id, expected, events);
    const bool lost_race = !appended && appended.error().code == ErrorCode::kConflict &&
                           unit->poisoned() && any_version_will_do;
    if (lost_race && race < kMaxRaces) continue;
    if (!appended) return appended;
    if (auto committed = unit->commit(); !committed) return std::unexpected(committed.error());
    return appended;
  }
}

Result<std::int64_t> EventStore::stream_version(UnitOfWork& unit,
                                                const std::string& stream_id) const {
  try {
    unit.lease().ensure_prepared("deedkit_stream_version",
                                 "SELECT coalesce(max(stream_version), 0) FROM deedkit.events "
                                 "WHERE stream_id = $1::text");
    return unit.tx().exec_prepared1("deedkit_stream_version", stream_id)[0].as<std::int64_t>();
  } catch (const std::exception&) {
    return std::unexpected(unit.fail_with_current_exception("version of " + stream_id));
  }
}

namespace {

Result<std::vector<RecordedEvent>> parse_rows(const pqxx::result& rows) {
  std::vector<RecordedEvent> events;
  events.reserve(rows.size());
  for (const auto& row : rows) {
    auto event = internal::parse_event_row(row);
    if (!event) return std::unexpected(event.error());
    events.push_back(std::move(*event));
  }
  return events;
}

const std::string kReadForwardSql =
    std::string("SELECT ") + internal::kEventColumns +
    " FROM deedkit.events e WHERE e.stream_id = $1 AND e.stream_version >= $2 "
    "ORDER BY e.stream_version LIMIT $3";

const std::string kReadBackwardSql =
    std::string("SELECT ") + internal::kEventColumns +
    " FROM deedkit.events e WHERE e.stream_id = $1 AND e.stream_version <= $2 "
    "ORDER BY e.stream_version DESC LIMIT $3";

// The snapshot (flagged in the last column) and the events after it, as one UNION ALL, with
// the columns a fold needs (stream_version, event_type, schema_version, payload). The
// snapshot row is told apart by its flag, wherever it comes; the events keep the order of
// their branch (an Append node emits each branch's rows as that branch produced them).
const std::string kFoldAfterSnapshotSql =
    "WITH snap AS (SELECT stream_version, state FROM deedkit.snapshots "
    "WHERE stream_id = $1::text AND state_schema_version = $2::int4) "
    "(SELECT snap.stream_version, NULL::text, NULL::int4, snap.state, true FROM snap) "
    "UNION ALL (SELECT e.stream_version, e.event_type, e.schema_version, e.payload, false "
    "FROM deedkit.events e WHERE e.stream_id = $1::text "
    "AND e.stream_version > coalesce((SELECT stream_version FROM snap), 0) "
    "ORDER BY e.stream_version LIMIT $3::int4)";

const std::string kFoldForwardSql =
    "SELECT e.stream_version, e.event_type, e.schema_version, e.payload, false "
    "FROM deedkit.events e WHERE e.stream_id = $1::text AND e.stream_version >= $2::int8 "
    "ORDER BY e.stream_version LIMIT $3::int4";

RecordedEvent parse_fold_row(const std::string& stream_id, const pqxx::row& row) {
  RecordedEvent event;
  event.stream_id = stream_id;
  event.stream_version = row[0].as<std::int64_t>();
  event.event_type = row[1].c_str();
  event.schema_version = row[2].as<int>();
  event.payload = pqxx::binarystring(row[3]).str();
  return event;
}

constexpr int kSnapshotFlagColumn = 4;

// Commit-safe order (docs/ordering.md): rows are ordered by the writing transaction's id and
// only rows of transactions older than the oldest one still running are returned. Those
// transactions have all ended, so nothing can appear later below the returned positions.
// The same statement, under the same horizon, reports whether committed rows wait beyond
// it; a second statement would see a newer horizon and could miss that. That check's bound
// is written as one row comparison, "after the checkpoint and at or above the horizon", and
// asks for the first such row in index order, so the scan starts at the horizon and stops at
// once: as two conditions (or as EXISTS, which the planner may answer with a sequential
// scan), it read every event after the checkpoint, which made a rebuild quadratic.
// The statement always returns at least one row: the flag, with NULL event columns when the
// batch is empty.
const std::string kReadAllSql =
    std::string(
        "WITH horizon AS NOT MATERIALIZED "
        "(SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin), "
        "batch AS (SELECT ") +
    internal::kEventColumns +
    ", e.transaction_id AS commit_order FROM deedkit.events e, horizon "
    "WHERE (e.transaction_id, e.global_position) > ($1::text::xid8, $2::int8) "
    "AND e.transaction_id < horizon.xmin "
    "AND ($4::text = '' OR split_part(e.stream_id, '-', 1) = $4::text) "
    "ORDER BY e.transaction_id, e.global_position LIMIT $3), "
    "held AS (SELECT (SELECT true FROM deedkit.events e, horizon "
    "WHERE (e.transaction_id, e.global_position) > (greatest(horizon.xmin, $1::text::xid8), "
    "CASE WHEN horizon.xmin > $1::text::xid8 THEN -1 ELSE $2::int8 END) "
    "AND ($4::text = '' OR split_part(e.stream_id, '-', 1) = $4::text) "
    "ORDER BY e.transaction_id, e.global_position LIMIT 1) IS NOT NULL AS held_back) "
    "SELECT batch.*, held.held_back FROM held LEFT JOIN batch ON true "
    "ORDER BY batch.commit_order, 1";

constexpr int kHeldBackColumn = 13;

}  // namespace

Result<std::vector<RecordedEvent>> EventStore::read_stream_forward(
    UnitOfWork& unit, const std::string& stream_id, std::int64_t from_version,
    int max_count) const {
  try {
    unit.lease().ensure_prepared("deedkit_read_forward", kReadForwardSql);
    return parse_rows(
        unit.tx().exec_prepared("deedkit_read_forward", stream_id, from_version, max_count));
  } catch (const std::exception&) {
    return std::unexpected(unit.fail_with_current_exception("read " + stream_id));
  }
}

Result<std::vector<RecordedEvent>> EventStore::read_stream_forward(
    const std::string& stream_id, std::int64_t from_version, int max_count) const {
  auto unit = UnitOfWork::begin(pool_);
  if (!unit) return std::unexpected(unit.error());
  return read_stream_forward(*unit, stream_id, from_version, max_count);
}

Result<std::vector<RecordedEvent>> EventStore::read_stream_backward(
    const std::string& stream_id, std::optional<std::int64_t> from_version,
    int max_count) const {
  auto unit = UnitOfWork::begin(pool_);
  if (!unit) return std::unexpected(unit.error());
  try {
    unit->lease().ensure_prepared("deedkit_read_backward", kReadBackwardSql);
    const std::int64_t upper = from_version.value_or(INT64_MAX);
    return parse_rows(
        unit->tx().exec_prepared("deedkit_read_backward", stream_id, upper, max_count));
  } catch (const std::exception&) {
    return std::unexpected(unit->fail_with_current_exception("read backward " + stream_id));
  }
}

Result<EventStore::SnapshotAndEvents> EventStore::read_stream_after_snapshot(
    UnitOfWork& unit, const std::string& stream_id, int state_schema_version,
    int max_count) const {
  try {
    unit.lease().ensure_prepared("deedkit_fold_after_snapshot", kFoldAfterSnapshotSql);
    const pqxx::result rows = unit.tx().exec_prepared(
        "deedkit_fold_after_snapshot", stream_id, state_schema_version, max_count);

    SnapshotAndEvents loaded;
    loaded.events.reserve(rows.size());
    for (const auto& row : rows) {
      if (row[kSnapshotFlagColumn].as<bool>()) {
        loaded.snapshot_version = row[0].as<std::int64_t>();
        loaded.snapshot_state = pqxx::binarystring(row[3]).str();
        continue;
      }
      loaded.events.push_back(parse_fold_row(stream_id, row));
    }
    return loaded;
  } catch (const std::exception&) {
    return std::unexpected(unit.fail_with_current_exception("read " + stream_id));
  }
}

Result<void> EventStore::fold_stream(
    UnitOfWork& unit, const std::string& stream_id, std::int64_t from_version, int batch_size,
    const std::function<Result<void>(const RecordedEvent&)>& visit) const {
  if (batch_size < 1) {
    return fail(ErrorCode::kInvalidArgument, "batch size must be at least 1");
  }
  std::int64_t next_version = from_version;
  while (true) {
    std::size_t fetched = 0;
    try {
      unit.lease().ensure_prepared("deedkit_fold_forward", kFoldForwardSql);
      const pqxx::result rows =
          unit.tx().exec_prepared("deedkit_fold_forward", stream_id, next_version, batch_size);
      for (const auto& row : rows) {
        const RecordedEvent event = parse_fold_row(stream_id, row);
        if (auto visited = visit(event); !visited) return visited;
        next_version = event.stream_version + 1;
      }
      fetched = rows.size();
    } catch (const std::exception&) {
      return std::unexpected(unit.fail_with_current_exception("read " + stream_id));
    }
    if (static_cast<int>(fetched) < batch_size) return {};
  }
}

Result<void> EventStore::for_each_in_stream(
    UnitOfWork& unit, const std::string& stream_id, std::int64_t from_version,
    int batch_size, const std::function<Result<void>(const RecordedEvent&)>& visit) const {
  if (batch_size < 1) {
    return fail(ErrorCode::kInvalidArgument, "batch size must be at least 1");
  }
  std::int64_t next_version = from_version;
  while (true) {
    auto batch = read_stream_forward(unit, stream_id, next_version, batch_size);
    if (!batch) return std::unexpected(batch.error());

    for (const RecordedEvent& event : *batch) {
      if (auto visited = visit(event); !visited) return visited;
    }
    if (static_cast<int>(batch->size()) < batch_size) return {};
    next_version = batch->back().stream_version + 1;
  }
}

Result<GlobalLogBatch> EventStore::read_all(LogPosition after, int max_count,
                                            const std::string& category) const {
  auto unit = UnitOfWork::begin(pool_);
  if (!unit) return std::unexpected(unit.error());
  try {
    unit->lease().ensure_prepared("deedkit_read_all", kReadAllSql);
    const std::string after_transaction = std::to_string(after.transaction_id);
    const pqxx::result rows = unit->tx().exec_prepared(
        "deedkit_read_all", after_transaction, after.global_position, max_count, category);

    GlobalLogBatch batch;
    batch.held_back = rows[0][kHeldBackColumn].as<bool>();
    for (const auto& row : rows) {
      if (row[0].is_null()) break;  // the empty batch's flag-only row
      auto event = internal::parse_event_row(row);
      if (!event) return std::unexpected(event.error());
      batch.events.push_back(std::move(*event));
    }
    batch.next = batch.events.empty() ? after : batch.events.back().log_position();
    return batch;
  } catch (const std::exception&) {
    return std::unexpected(unit->fail_with_current_exception("read the global log"));
  }
}

std::string LogPosition::to_string() const {
  return std::to_string(transaction_id) + "/" + std::to_string(global_position);
}

std::string ExpectedVersion::to_string() const {
  if (!is_valid()) return "invalid (a negative exact version)";
  if (is_any()) return "any";
  if (is_no_stream()) return "no stream";
  if (is_stream_exists()) return "stream exists";
  return std::to_string(value_);
}

std::string stream_category(const std::string& stream_id) {
  return stream_id.substr(0, stream_id.find('-'));
}

}  // namespace deedkit
