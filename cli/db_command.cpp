#include <cstdio>

#include "cli_context.hpp"
#include "private_postgres.hpp"

namespace deedkit::cli {

void add_db_command(CLI::App& app, GlobalOptions& options) {
  auto* db = app.add_subcommand("db", "Show, start or stop the private PostgreSQL of this folder");
  db->require_subcommand(1);
  db->footer(
      "With no --database, DEEDKIT_DATABASE_URL or PG* variables, deedkit runs its own\n"
      "PostgreSQL 15 in ./.deedkit. It keeps running until 'deedkit db stop'.\n\n"
      "Examples:\n"
      "  deedkit db status\n"
      "  deedkit db start\n"
      "  deedkit db stop");

  db->add_subcommand("status", "Print whether the private PostgreSQL runs, and where")
      ->callback([] {
        std::printf("private PostgreSQL: %s\n", private_cluster_status(".").c_str());
        exit_with(0);
      });

  db->add_subcommand("start", "Create (first time), start and migrate the private PostgreSQL")
      ->callback([&options] {
        const auto database = open_database(options, true);
        if (!database) fail_command("db start", database.error().to_string());
        std::printf("private PostgreSQL: %s\n", private_cluster_status(".").c_str());
        exit_with(0);
      });

  db->add_subcommand("stop", "Stop the private PostgreSQL")->callback([] {
    if (auto stopped = stop_private_cluster("."); !stopped) {
      fail_command("db stop", stopped.error().to_string());
    }
    std::printf("private PostgreSQL: %s\n", private_cluster_status(".").c_str());
    exit_with(0);
  });
}

}  // namespace deedkit::cli
