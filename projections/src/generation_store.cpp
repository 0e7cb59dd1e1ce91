#include "internal/generation_store.hpp"

#include <regex>
#include <sstream>

#include <pqxx/result>
#include <pqxx/subtransaction>

namespace deedkit::internal {

namespace {

// The read index `i` of `table`, named after the table so that creating it again is a no-op.
struct ReadIndex {
  std::string qualified_name;
  std::string create_sql;
};

ReadIndex read_index(const GenerationTables& tables, const ProjectionTable& table,
                     std::size_t i) {
  const std::string& qualified = tables.qualified(table.name);
  const std::size_t dot = qualified.find('.');
  const std::string name = qualified.substr(dot + 1) + "_read_" + std::to_string(i);
  return {qualified.substr(0, dot + 1) + name,
          "CREATE INDEX IF NOT EXISTS " + name + " ON " + qualified + " " +
              tables.expand(table.indexes[i])};
}

const std::string kGenerationColumns =
    "projection, generation, version, role, array_to_string(tables, ' '), "
    "transaction_id::text, global_position, events_read, events_applied, events_at_start, "
    "(extract(epoch FROM checkpointed_at) * 1000000)::int8, "
    "(extract(epoch FROM failed_at) * 1000000)::int8, failed_transaction_id::text, "
    "failed_global_position, failed_stream_id, failed_stream_version, failed_event_id, "
    "failed_event_type, failed_error, (extract(epoch FROM created_at) * 1000000)::int8";

Timestamp micros_to_time(const pqxx::field& field) {
  return Timestamp(std::chrono::microseconds(field.as<std::int64_t>()));
}

GenerationRow parse_generation(const pqxx::row& row) {
  GenerationRow parsed;
  parsed.projection = row[0].c_str();
  parsed.generation = row[1].as<int>();
  parsed.version = row[2].as<int>();
  parsed.role = row[3].c_str();
  std::istringstream tables(row[4].c_str());
  for (std::string table; tables >> table;) parsed.tables.push_back(table);
  parsed.position = {std::stoull(row[5].c_str()), row[6].as<std::int64_t>()};
  parsed.events_read = row[7].as<std::int64_t>();
  parsed.events_applied = row[8].as<std::int64_t>();
  parsed.events_at_start = row[9].as<std::int64_t>();
  if (!row[10].is_null()) parsed.checkpointed_at = micros_to_time(row[10]);
  parsed.created_at = micros_to_time(row[19]);

  if (!row[11].is_null()) {
    FailedEvent failure;
    failure.failed_at = micros_to_time(row[11]);
    failure.position = {std::stoull(row[12].c_str()), row[13].as<std::int64_t>()};
    failure.stream_id = row[14].c_str();
    failure.stream_version = row[15].as<std::int64_t>();
    failure.event_id = parse_uuid(row[16].c_str()).value_or(Uuid{});
    failure.event_type = row[17].c_str();
    failure.error = row[18].c_str();
    parsed.failure = std::move(failure);
  }
  return parsed;
}

const std::regex& name_pattern() {
  static const std::regex pattern("[a-z][a-z0-9_]{0,39}");
  return pattern;
}

// Replaces each view of the projection so it reads the generation's tables. CREATE OR
// REPLACE keeps the grants readers hold; a view whose columns changed shape (a new version)
// cannot be replaced that way, and is dropped and created again in the same transaction.
void point_views(pqxx::transaction_base& tx, const Projection& projection,
                 const GenerationTables& tables) {
  for (const ProjectionView& view : projection.views()) {
    const std::string name = "deedkit_read." + view.name;
    const std::string select = tables.expand(view.select);
    try {
      // The runner's units are always transactions (UnitOfWork::begin).
      pqxx::subtransaction attempt(dynamic_cast<pqxx::dbtransaction&>(tx), "replace_view");
      attempt.exec("CREATE OR REPLACE VIEW " + name + " AS " + select);
      attempt.commit();
    } catch (const pqxx::sql_error&) {
      tx.exec("DROP VIEW IF EXISTS " + name);
      tx.exec("CREATE VIEW " + name + " AS " + select);
    }
    tx.exec("GRANT SELECT ON " + name + " TO deedkit_reader");
  }
}

// The log's size for a rebuild's progress display: the planner's estimate when it is large
// (counting would take seconds), else an exact count.
std::int64_t estimate_log_size(pqxx::transaction_base& tx) {
  const auto estimate =
      tx.exec1("SELECT greatest(reltuples, 0)::int8 FROM pg_class "
               "WHERE oid = 'deedkit.events'::regclass")[0]
          .as<std::int64_t>();
  if (estimate >= 1'000'000) return estimate;
  return tx.exec1("SELECT count(*) FROM deedkit.events")[0].as<std::int64_t>();
}

}  // namespace

Result<void> validate_projection(const Projection& projection) {
  const std::string name(projection.name());
  if (!std::regex_match(name, name_pattern())) {
    return fail(ErrorCode::kInvalidArgument,
                "projection name '" + name + "' must match [a-z][a-z0-9_]{0,39}");
  }
  if (projection.version() < 1) {
    return fail(ErrorCode::kInvalidArgument, "projection " + name + " has version " +
                                                 std::to_string(projection.version()) +
                                                 "; versions start at 1");
  }
  for (const ProjectionTable& table : projection.tables()) {
    if (!std::regex_match(table.name, name_pattern())) {
      return fail(ErrorCode::kInvalidArgument, "projection " + name + " has a table named '" +
                                                   table.name +
                                                   "'; names must match [a-z][a-z0-9_]{0,39}");
    }
  }
  for (const ProjectionView& view : projection.views()) {
    if (!std::regex_match(view.name, name_pattern())) {
      return fail(ErrorCode::kInvalidArgument, "projection " + name + " has a view named '" +
                                                   view.name +
                                                   "'; names must match [a-z][a-z0-9_]{0,39}");
    }
  }
  return {};
}

Result<std::vector<GenerationRow>> load_generations(ConnectionPool& pool,
                                                    std::string_view projection) {
  auto unit = UnitOfWork::begin(pool);
  if (!unit) return std::unexpected(unit.error());
  try {
    const pqxx::result rows = unit->tx().exec_params(
        "SELECT " + kGenerationColumns +
            " FROM deedkit.projection_generations WHERE $1 = '' OR projection = $1 "
            "ORDER BY projection, generation",
        std::string(projection));
    std::vector<GenerationRow> generations;
    for (const auto& row : rows) generations.push_back(parse_generation(row));
    return generations;
  } catch (const std::exception&) {
    return std::unexpected(unit->fail_with_current_exception(
        "load the generations of projection " + std::string(projection)));
  }
}

Result<std::optional<GenerationRow>> load_generation(ConnectionPool& pool,
                                                     std::string_view projection,
                                                     int generation) {
  auto unit = UnitOfWork::begin(pool);
  if (!unit) return std::unexpected(unit.error());
  try {
    const pqxx::result rows = unit->tx().exec_params(
        "SELECT " + kGenerationColumns +
            " FROM deedkit.projection_generations WHERE projection = $1 AND generation = $2",
        std::string(projection), generation);
    if (rows.empty()) return std::nullopt;
    return parse_generation(rows[0]);
  } catch (const std::exception&) {
    return std::unexpected(unit->fail_with_current_exception(
        "load generation " + std::to_string(generation) + " of " + std::string(projection)));
  }
}

Result<void> create_read_indexes(ConnectionPool& pool, const Projection& projection,
                                 int generation) {
  const std::vector<ProjectionTable> declared = projection.tables();
  const GenerationTables tables(generation, declared);
  for (const ProjectionTable& table : declared) {
    for (std::size_t i = 0; i < table.indexes.size(); ++i) {
      auto unit = UnitOfWork::begin(pool);
      if (!unit) return std::unexpected(unit.error());
      try {
        unit->tx().exec(read_index(tables, table, i).create_sql);
        if (auto committed = unit->commit(); !committed) {
          return std::unexpected(committed.error());
        }
      } catch (const std::exception&) {
        return std::unexpected(unit->fail_with_current_exception(
            "create read index " + std::to_string(i) + " of " + tables.qualified(table.name)));
      }
    }
  }
  return {};
}

Result<GenerationRow> create_generation(ConnectionPool& pool, const Projection& projection,
                                        std::string_view role) {
  if (auto valid = validate_projection(projection); !valid) {
    return std::unexpected(valid.error());
  }
  const std::string name(projection.name());
  auto unit = UnitOfWork::begin(pool);
  if (!unit) return std::unexpected(unit.error());

  try {
    pqxx::transaction_base& tx = unit->tx();
    const int generation =
        tx.exec1("SELECT nextval('deedkit.projection_generation_seq')")[0].as<int>();
    const std::vector<ProjectionTable> declared = projection.tables();
    const GenerationTables tables(generation, declared);

    // A rebuild fills its tables faster without the read indexes: each row it writes would
    // otherwise update every one of them. They are built once, when it has caught up.
    // On the empty tables of a building generation each index is created and dropped again
    // at once: a definition that PostgreSQL refuses fails the request now, not at the end.
    for (const ProjectionTable& table : declared) {
      tx.exec("CREATE TABLE " + tables.qualified(table.name) + " (" + table.columns + ")");
      for (std::size_t i = 0; i < table.indexes.size(); ++i) {
        const ReadIndex index = read_index(tables, table, i);
        tx.exec(index.create_sql);
        if (role != kLive) tx.exec("DROP INDEX " + index.qualified_name);
      }
    }

    std::string table_list = "{";
    for (const std::string& qualified : tables.all()) {
      if (table_list.size() > 1) table_list += ",";
      table_list += qualified;
    }
    table_list += "}";
    const std::int64_t log_size = role == kBuilding ? estimate_log_size(tx) : 0;
    const pqxx::result row = tx.exec_params(
        "INSERT INTO deedkit.projection_generations (projection, generation, version, role, "
        "tables, events_at_start) VALUES ($1, $2, $3, $4, $5::text[], $6) RETURNING " +
            kGenerationColumns,
        name, generation, projection.version(), std::string(role), table_list, log_size);

    if (role == kLive) point_views(tx, projection, tables);
    GenerationRow created = parse_generation(row[0]);
    if (auto committed = unit->commit(); !committed) return std::unexpected(committed.error());
    return created;
  } catch (const std::exception&) {
    return std::unexpected(unit->fail_with_current_exception(
        "create a " + std::string(role) + " generation of projection " + name));
  }
}

Result<bool> advance_checkpoint(UnitOfWork& unit, std::string_view projection, int generation,
                                LogPosition from, LogPosition to, std::int64_t events_read,
                                std::int64_t events_applied) {
  try {
    unit.lease().ensure_prepared(
        "deedkit_projection_advance",
        "UPDATE deedkit.projection_generations SET transaction_id = $5::text::xid8, "
        "global_position = $6::int8, events_read = events_read + $7::int8, "
        "events_applied = events_applied + $8::int8, checkpointed_at = now() "
        "WHERE projection = $1::text AND generation = $2::int4 AND role <> 'retired' "
        "AND failed_at IS NULL AND transaction_id = $3::text::xid8 "
        "AND global_position = $4::int8");
    const pqxx::result updated = unit.tx().exec_prepared(
        "deedkit_projection_advance", std::string(projection), generation,
        std::to_string(from.transaction_id), from.global_position,
        std::to_string(to.transaction_id), to.global_position, events_read, events_applied);
    return updated.affected_rows() == 1;
  } catch (const std::exception&) {
    return std::unexpected(unit.fail_with_current_exception(
        "move the checkpoint of " + std::string(projection) + " generation " +
        std::to_string(generation)));
  }
}

Result<bool> record_failure(ConnectionPool& pool, std::string_view projection, int generation,
                            LogPosition checkpoint, const RecordedEvent& event,
                            const Error& error) {
  auto unit = UnitOfWork::begin(pool);
  if (!unit) return std::unexpected(unit.error());
  try {
    const pqxx::result updated = unit->tx().exec_params(
        "UPDATE deedkit.projection_generations SET failed_at = now(), "
        "failed_transaction_id = $5::text::xid8, failed_global_position = $6, "
        "failed_stream_id = $7, failed_stream_version = $8, failed_event_id = $9::uuid, "
        "failed_event_type = $10, failed_error = $11 "
        "WHERE projection = $1 AND generation = $2 AND role <> 'retired' "
        "AND failed_at IS NULL AND transaction_id = $3::text::xid8 AND global_position = $4",
        std::string(projection), generation, std::to_string(checkpoint.transaction_id),
        checkpoint.global_position, std::to_string(event.transaction_id),
        event.global_position, event.stream_id, event.stream_version,
        to_string(event.event_id), event.event_type, error.to_string());
    if (auto committed = unit->commit(); !committed) return std::unexpected(committed.error());
    return updated.affected_rows() == 1;
  } catch (const std::exception&) {
    return std::unexpected(unit->fail_with_current_exception(
        "record the failure of " + std::string(projection) + " generation " +
        std::to_string(generation)));
  }
}

Result<std::vector<GenerationRow>> lock_generations(UnitOfWork& unit,
                                                    std::string_view projection) {
  try {
    const pqxx::result rows = unit.tx().exec_params(
        "SELECT " + kGenerationColumns +
            " FROM deedkit.projection_generations WHERE projection = $1 "
            "AND role IN ('live', 'building') ORDER BY role DESC FOR UPDATE",
        std::string(projection));
    std::vector<GenerationRow> generations;
    for (const auto& row : rows) generations.push_back(parse_generation(row));
    return generations;
  } catch (const std::exception&) {
    return std::unexpected(unit.fail_with_current_exception(
        "lock the generations of projection " + std::string(projection)));
  }
}

Result<void> make_live(UnitOfWork& unit, const Projection& projection, int generation,
                       std::optional<int> retired_generation) {
  const std::string name(projection.name());
  try {
    pqxx::transaction_base& tx = unit.tx();
    // Retire first: the unique index allows one live row per projection at any moment.
    if (retired_generation) {
      tx.exec_params(
          "UPDATE deedkit.projection_generations SET role = 'retired' "
          "WHERE projection = $1 AND generation = $2",
          name, *retired_generation);
    }
    tx.exec_params(
        "UPDATE deedkit.projection_generations SET role = 'live', switched_at = now() "
        "WHERE projection = $1 AND generation = $2",
        name, generation);
    const std::vector<ProjectionTable> declared = projection.tables();
    point_views(tx, projection, GenerationTables(generation, declared));
    return {};
  } catch (const std::exception&) {
    return std::unexpected(unit.fail_with_current_exception(
        "switch the views of " + name + " to generation " + std::to_string(generation)));
  }
}

Result<void> retire_generation(ConnectionPool& pool, std::string_view projection,
                               int generation) {
  auto unit = UnitOfWork::begin(pool);
  if (!unit) return std::unexpected(unit.error());
  try {
    unit->tx().exec_params(
        "UPDATE deedkit.projection_generations SET role = 'retired' "
        "WHERE projection = $1 AND generation = $2 AND role = 'building'",
        std::string(projection), generation);
    return unit->commit();
  } catch (const std::exception&) {
    return std::unexpected(unit->fail_with_current_exception(
        "retire generation " + std::to_string(generation) + " of " + std::string(projection)));
  }
}

Result<int> drop_retired(ConnectionPool& pool, std::string_view projection,
                         int lock_timeout_ms) {
  auto retired = load_generations(pool, projection);
  if (!retired) return std::unexpected(retired.error());

  int dropped = 0;
  for (const GenerationRow& generation : *retired) {
    if (generation.role != kRetired) continue;
    auto unit = UnitOfWork::begin(pool);
    if (!unit) return std::unexpected(unit.error());
    try {
      pqxx::transaction_base& tx = unit->tx();
      // A reader still scanning an old table holds a lock that DROP must wait for; rather
      // than queue every later reader behind that wait, give up and try again later.
      tx.exec("SET LOCAL lock_timeout = " + std::to_string(lock_timeout_ms));
      for (const std::string& table : generation.tables) {
        // CASCADE takes along views of an older version that the new one no longer defines;
        // the views it does define already read the new tables.
        tx.exec("DROP TABLE IF EXISTS " + table + " CASCADE");
      }
      tx.exec_params(
          "DELETE FROM deedkit.projection_generations WHERE projection = $1 "
          "AND generation = $2 AND role = 'retired'",
          generation.projection, generation.generation);
      if (auto committed = unit->commit(); !committed) {
        return std::unexpected(committed.error());
      }
      ++dropped;
    } catch (const pqxx::sql_error& error) {
      if (error.sqlstate() == "55P03") continue;  // lock_not_available: retry later
      return std::unexpected(unit->fail_with_current_exception(
          "drop retired generation " + std::to_string(generation.generation) + " of " +
          generation.projection));
    } catch (const std::exception&) {
      return std::unexpected(unit->fail_with_current_exception(
          "drop retired generation " + std::to_string(generation.generation) + " of " +
          generation.projection));
    }
  }
  return dropped;
}

Result<std::unordered_set<std::string>> load_skips(ConnectionPool& pool,
                                                   std::string_view projection, int version) {
  auto unit = UnitOfWork::begin(pool);
  if (!unit) return std::unexpected(unit.error());
  try {
    const pqxx::result rows = unit->tx().exec_params(
        "SELECT DISTINCT event_id::text FROM deedkit.projection_skips "
        "WHERE projection = $1 AND version = $2",
        std::string(projection), version);
    std::unordered_set<std::string> skipped;
    for (const auto& row : rows) skipped.insert(row[0].c_str());
    return skipped;
  } catch (const std::exception&) {
    return std::unexpected(unit->fail_with_current_exception(
        "load the skipped events of " + std::string(projection)));
  }
}

}  // namespace deedkit::internal
