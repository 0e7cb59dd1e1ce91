// deedkit: one command for migrating, serving, relaying, projecting and inspecting.

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "cli_context.hpp"

int main(int argc, char** argv) {
  CLI::App app{"deedkit: an event-sourced domain engine on PostgreSQL"};
  app.require_subcommand(1);

  deedkit::cli::GlobalOptions options;
  app.add_option("--database", options.database,
                 "PostgreSQL URI (default: DEEDKIT_DATABASE_URL, else the PG* variables)");
  app.add_option("--nats", options.nats, "NATS URL (default: DEEDKIT_NATS_URL)");
  app.add_option("--log-level", options.log_level, "trace, debug, info, warn or error")
      ->capture_default_str();
  app.parse_complete_callback([&options] {
    spdlog::set_level(spdlog::level::from_str(options.log_level));
  });

  deedkit::cli::add_migrate_command(app, options);
  deedkit::cli::add_db_command(app, options);

  CLI11_PARSE(app, argc, argv);
  return 0;
}
