#include "deedkit/eventstore/migrations.hpp"

#include <cstdio>

#include <pqxx/connection>
#include <pqxx/transaction>
#include <spdlog/spdlog.h>

#include "deedkit/core/sha256.hpp"
#include "deedkit/eventstore/connection_pool.hpp"
#include "deedkit/eventstore/unit_of_work.hpp"

namespace deedkit {

namespace {

// Any constant works, as long as every deedkit migrate uses the same one.
constexpr long long kMigrationLockKey = 0x6465656b6d6967;  // "deekmig"

std::string migration_label(const Migration& migration) {
  char number[8];
  std::snprintf(number, sizeof number, "%04d", migration.number);
  return std::string(number) + "_" + migration.name;
}

void ensure_bookkeeping(pqxx::work& tx) {
  tx.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kMigrationLockKey) + ")");
  tx.exec("CREATE SCHEMA IF NOT EXISTS deedkit");
  tx.exec(
      "CREATE TABLE IF NOT EXISTS deedkit.schema_migrations ("
      " version integer PRIMARY KEY,"
      " name text NOT NULL,"
      " checksum text NOT NULL,"
      " applied_at timestamptz NOT NULL DEFAULT now())");
}

// Applies one migration unless it is recorded. Returns whether it applied it.
Result<bool> apply_one(pqxx::connection& connection, const Migration& migration) {
  const std::string label = migration_label(migration);
  const std::string checksum = sha256_hex(migration.sql);
  pqxx::work tx(connection);

  ensure_bookkeeping(tx);
  const pqxx::result recorded = tx.exec_params(
      "SELECT checksum FROM deedkit.schema_migrations WHERE version = $1", migration.number);
  if (!recorded.empty()) {
    if (recorded[0][0].c_str() != checksum) {
      return fail(ErrorCode::kFailedPrecondition,
                  "migration " + label + " was applied with checksum " +
                      recorded[0][0].c_str() + " but its file now has checksum " + checksum +
                      "; applied migrations must never change: add a new migration instead");
    }
    return false;
  }

  try {
    tx.exec(migration.sql);
  } catch (const pqxx::sql_error& error) {
    return fail(ErrorCode::kInternal, "migration " + label + " failed: " + error.what());
  }
  tx.exec_params("INSERT INTO deedkit.schema_migrations (version, name, checksum) "
                 "VALUES ($1, $2, $3)",
                 migration.number, migration.name, checksum);
  tx.commit();
  return true;
}

Result<void> refuse_unknown_migrations(pqxx::connection& connection,
                                       std::span<const Migration> migrations) {
  pqxx::work tx(connection);
  ensure_bookkeeping(tx);
  const int newest_known = migrations.empty() ? 0 : migrations.back().number;
  const pqxx::result unknown = tx.exec_params(
      "SELECT version, name FROM deedkit.schema_migrations WHERE version > $1 ORDER BY version",
      newest_known);
  if (!unknown.empty()) {
    return fail(ErrorCode::kFailedPrecondition,
                std::string("the database has migration ") + unknown[0][0].c_str() + " (" +
                    unknown[0][1].c_str() +
                    ") that this deedkit build does not know; upgrade deedkit");
  }
  tx.commit();
  return {};
}

// True when every migration of this build is recorded with its checksum and nothing newer
// is: the common start of a service on a current schema. It only reads, so a role without
// the owner's rights (the service's, the relay's) can start; anything else, including a
// changed checksum, goes the full way below, which reports it.
bool schema_is_current(pqxx::connection& connection, std::span<const Migration> migrations) {
  pqxx::read_transaction tx(connection);
  const pqxx::result table =
      tx.exec("SELECT to_regclass('deedkit.schema_migrations') IS NOT NULL");
  if (!table[0][0].as<bool>()) return false;

  const pqxx::result recorded =
      tx.exec("SELECT version, checksum FROM deedkit.schema_migrations ORDER BY version");
  if (recorded.size() != migrations.size()) return false;
  for (std::size_t i = 0; i < migrations.size(); ++i) {
    if (recorded[i][0].as<int>() != migrations[i].number ||
        recorded[i][1].c_str() != sha256_hex(migrations[i].sql)) {
      return false;
    }
  }
  return true;
}

}  // namespace

Result<MigrationReport> migrate(const std::string& database_uri,
                                std::span<const Migration> migrations) {
  try {
    pqxx::connection connection(database_uri);
    if (schema_is_current(connection, migrations)) {
      return MigrationReport{.already_applied = static_cast<int>(migrations.size())};
    }
    if (auto known = refuse_unknown_migrations(connection, migrations); !known) {
      return std::unexpected(known.error());
    }

    MigrationReport report;
    for (const Migration& migration : migrations) {
      auto applied = apply_one(connection, migration);
      if (!applied) return std::unexpected(applied.error());
      if (*applied) {
        report.applied.push_back(migration_label(migration));
        spdlog::info("migrate: applied {}", report.applied.back());
      } else {
        ++report.already_applied;
      }
    }
    return report;
  } catch (const std::exception&) {
    Error error = database_error("migrate " + redact_database_uri(database_uri));
    return std::unexpected(std::move(error));
  }
}

}  // namespace deedkit
