// deedkit: one command for migrating, serving, relaying, projecting and inspecting.

#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "database_config.hpp"
#include "deedkit/eventstore/migrations.hpp"

namespace {

int run_migrate(const std::string& database_flag) {
  const auto database = deedkit::cli::configured_database(database_flag);
  if (!database) {
    std::fprintf(stderr,
                 "deedkit migrate: no database configured; pass --database URI or set "
                 "DEEDKIT_DATABASE_URL or the PG* variables\n");
    return 2;
  }

  const auto report = deedkit::migrate(*database);
  if (!report) {
    std::fprintf(stderr, "deedkit migrate: %s\n", report.error().to_string().c_str());
    return 1;
  }
  std::printf("migrations: %zu applied, %d already applied\n", report->applied.size(),
              report->already_applied);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"deedkit: an event-sourced domain engine on PostgreSQL"};
  app.require_subcommand(1);

  std::string database;
  app.add_option("--database", database,
                 "PostgreSQL URI (default: DEEDKIT_DATABASE_URL, else the PG* variables)")
      ->envname("")
      ->capture_default_str();

  auto* migrate = app.add_subcommand("migrate", "Apply the schema migrations in order");
  migrate->footer(
      "Examples:\n"
      "  deedkit --database postgresql:///deedkit?host=/run/postgresql migrate\n"
      "  DEEDKIT_DATABASE_URL=postgresql://deedkit@db/deedkit deedkit migrate");

  CLI11_PARSE(app, argc, argv);

  if (migrate->parsed()) return run_migrate(database);
  return 2;
}
