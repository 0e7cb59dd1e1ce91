#include <cstdio>
#include <cstdlib>

#include "cli_context.hpp"
#include "deedkit/eventstore/migrations.hpp"
#include "private_postgres.hpp"

namespace deedkit::cli {

void fail_command(const std::string& command, const std::string& message, int code) {
  std::fprintf(stderr, "deedkit %s: %s\n", command.c_str(), message.c_str());
  exit_with(code);
}

std::optional<std::string> configured_database(const GlobalOptions& options) {
  if (!options.database.empty()) return options.database;
  if (const char* url = std::getenv("DEEDKIT_DATABASE_URL"); url && *url) return std::string(url);
  for (const char* name : {"PGHOST", "PGDATABASE", "PGSERVICE", "PGPORT", "PGUSER"}) {
    if (const char* value = std::getenv(name); value && *value) return std::string();
  }
  return std::nullopt;
}

Result<std::string> open_database(const GlobalOptions& options, bool apply_migrations) {
  std::string database;
  if (const auto configured = configured_database(options)) {
    database = *configured;
  } else {
    auto cluster = ensure_private_cluster(".");
    if (!cluster) return std::unexpected(cluster.error());
    database = cluster->database_uri;
  }

  if (apply_migrations) {
    const auto report = migrate(database);
    if (!report) return std::unexpected(report.error());
  }
  return database;
}

std::optional<std::string> configured_nats(const GlobalOptions& options) {
  if (!options.nats.empty()) return options.nats;
  if (const char* url = std::getenv("DEEDKIT_NATS_URL"); url && *url) return std::string(url);
  return std::nullopt;
}

}  // namespace deedkit::cli
