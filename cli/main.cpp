// deedkit: one command for migrating, serving, relaying, projecting and inspecting.

#include <cstdio>
#include <string_view>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "cli_context.hpp"

namespace {

// The first argument that is neither a global option nor its value: the command's name.
const char* first_command_word(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view argument = argv[i];
    if (argument == "--database" || argument == "--nats" || argument == "--log-level") {
      ++i;
      continue;
    }
    if (argument.starts_with("-")) continue;
    return argv[i];
  }
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"deedkit: an event-sourced domain engine on PostgreSQL"};
  app.require_subcommand(1);
  // Global options may follow the subcommand too ("deedkit relay --nats URL"); subcommands
  // created after this inherit it.
  app.fallthrough();

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
  deedkit::cli::add_projections_command(app, options);
  deedkit::cli::add_serve_command(app, options);
  deedkit::cli::add_relay_command(app, options);
  deedkit::cli::add_outbox_command(app, options);
  deedkit::cli::add_streams_command(app, options);
  deedkit::cli::add_up_command(app, options);
  deedkit::cli::add_demo_command(app, options);

  // CLI11 reports a mistyped command as "a subcommand is required"; name it instead.
  if (const char* word = first_command_word(argc, argv); word != nullptr) {
    try {
      app.get_subcommand(word);
    } catch (const CLI::OptionNotFound&) {
      std::fprintf(stderr, "deedkit: unknown command '%s'; 'deedkit --help' lists them\n", word);
      return 2;
    }
  }

  CLI11_PARSE(app, argc, argv);
  return 0;
}
