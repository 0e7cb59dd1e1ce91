#pragma once

// Schema migrations: the numbered files of sql/, embedded into the library at build time.
//
// Each migration runs once, in its own transaction, and is recorded in
// deedkit.schema_migrations with the SHA-256 of its text. A migration already applied whose
// text has since changed is refused, naming it. Concurrent runs serialise on a transaction
// advisory lock, so two processes never apply the same migration.

#include <span>
#include <string>
#include <vector>

#include "deedkit/core/error.hpp"

namespace deedkit {

struct Migration {
  int number;
  std::string name;
  std::string sql;
};

// The migrations in sql/, in order.
const std::vector<Migration>& bundled_migrations();

struct MigrationReport {
  std::vector<std::string> applied;  // "0001_event_log", in the order applied
  int already_applied = 0;
};

// Brings the database at `database_uri` (empty: PG* variables) up to date.
// Fails with kFailedPrecondition when an applied migration changed or the database has a
// migration this build does not know (a newer deedkit migrated it); kUnavailable when the
// server cannot be reached; kInternal with the migration's name when its SQL fails (that
// migration is rolled back, earlier ones stay applied).
[[nodiscard]] Result<MigrationReport> migrate(
    const std::string& database_uri,
    std::span<const Migration> migrations = bundled_migrations());

}  // namespace deedkit
