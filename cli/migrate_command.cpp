#include <cstdio>

#include "cli_context.hpp"
#include "deedkit/eventstore/migrations.hpp"

namespace deedkit::cli {

namespace {

void run_migrate(const GlobalOptions& options) {
  // With nothing configured, this migrates the private database of the current folder.
  const auto database = open_database(options, false);
  if (!database) fail_command("migrate", database.error().to_string());

  const auto report = migrate(*database);
  if (!report) fail_command("migrate", report.error().to_string());
  std::printf("migrations: %zu applied, %d already applied\n", report->applied.size(),
              report->already_applied);
  exit_with(0);
}

}  // namespace

void add_migrate_command(CLI::App& app, GlobalOptions& options) {
  auto* command = app.add_subcommand("migrate", "Apply the schema migrations in order");
  command->footer(
      "Each migration runs once in its own transaction; a changed applied migration is\n"
      "refused. Safe to run from several processes at once.\n\n"
      "Examples:\n"
      "  deedkit --database 'postgresql:///deedkit?host=/run/postgresql' migrate\n"
      "  DEEDKIT_DATABASE_URL=postgresql://deedkit@db/deedkit deedkit migrate");
  command->callback([&options] { run_migrate(options); });
}

}  // namespace deedkit::cli
