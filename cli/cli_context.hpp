#pragma once

// What every deedkit subcommand shares: the global options and the way a subcommand ends.
//
// Each subcommand lives in a file of its own and registers itself with add_<name>_command.
// Its callback finishes by calling exit_with(code), which CLI11 turns into the process's
// exit status; errors are printed to stderr by the subcommand, never to stdout.

#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "deedkit/core/error.hpp"

namespace deedkit::cli {

struct GlobalOptions {
  std::string database;   // --database; empty: DEEDKIT_DATABASE_URL, PG*, else private
  std::string nats;       // --nats; empty: DEEDKIT_NATS_URL, else none
  std::string log_level = "info";
};

// Ends the running subcommand with `code` as the process exit status.
[[noreturn]] inline void exit_with(int code) { throw CLI::RuntimeError(code); }

// Prints "deedkit <command>: <message>" to stderr and ends with status `code`.
[[noreturn]] void fail_command(const std::string& command, const std::string& message,
                               int code = 1);

// The database URI to use: --database, DEEDKIT_DATABASE_URL, "" when PG* variables are set
// (libpq reads them), else nullopt (nothing configured).
std::optional<std::string> configured_database(const GlobalOptions& options);

// The database a running subcommand uses: the configured one, else the private cluster of
// the current folder (started if needed). With `apply_migrations`, brings its schema up to
// date first. Fails with the reason the database cannot be used.
[[nodiscard]] deedkit::Result<std::string> open_database(const GlobalOptions& options,
                                                         bool apply_migrations);

// The NATS URL to use: --nats, else DEEDKIT_NATS_URL, else nullopt.
std::optional<std::string> configured_nats(const GlobalOptions& options);

void add_migrate_command(CLI::App& app, GlobalOptions& options);
void add_db_command(CLI::App& app, GlobalOptions& options);
void add_projections_command(CLI::App& app, GlobalOptions& options);
void add_serve_command(CLI::App& app, GlobalOptions& options);
void add_relay_command(CLI::App& app, GlobalOptions& options);
void add_outbox_command(CLI::App& app, GlobalOptions& options);
void add_streams_command(CLI::App& app, GlobalOptions& options);
void add_up_command(CLI::App& app, GlobalOptions& options);
void add_demo_command(CLI::App& app, GlobalOptions& options);

}  // namespace deedkit::cli
