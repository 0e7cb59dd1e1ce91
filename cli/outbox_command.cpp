// deedkit outbox: the state of the outbox and its dead letters, read from the database.

#include <cinttypes>
#include <cstdio>

#include "cli_context.hpp"
#include "deedkit/eventstore/connection_pool.hpp"
#include "deedkit/outbox/outbox_admin.hpp"

namespace deedkit::cli {

namespace {

ConnectionPool open_pool(const GlobalOptions& options, const std::string& command) {
  const auto database = open_database(options, false);
  if (!database) fail_command(command, database.error().to_string());
  return ConnectionPool(PoolOptions{.database_uri = *database, .max_connections = 1});
}

void print_status(const OutboxStatus& status) {
  std::printf("rows waiting:      %" PRId64 " (oldest %.1f s)\n", status.rows_waiting,
              static_cast<double>(status.oldest_waiting_age.count()) / 1000.0);
  std::printf("published/s:       %.1f (last minute)\n", status.published_per_second);
  std::printf("retries:           %" PRId64 " failed attempts on %" PRId64 " waiting rows\n",
              status.failed_attempts, status.rows_retrying);
  std::printf("dead letters:      %" PRId64 " (%" PRId64 " rows parked in their streams)\n",
              status.dead_letters, status.parked_rows);
  std::printf("published, kept:   %" PRId64 " (until retention deletes them)\n",
              status.published_rows_kept);
  std::printf("relays:            %zu\n", status.relays.size());
  for (const RelayProcess& relay : status.relays) {
    std::printf("  backend pid %d, %s, %d partitions, connected %lld s\n", relay.backend_pid,
                relay.client_address.c_str(), relay.partitions,
                static_cast<long long>(relay.connected_for.count()));
  }
}

void print_dead_letters(const std::vector<DeadLetter>& letters) {
  if (letters.empty()) {
    std::printf("no dead letters\n");
    return;
  }
  std::printf("%-10s %-40s %8s %-8s %7s %-20s %s\n", "outbox_id", "stream", "version",
              "attempts", "behind", "dead_at", "event_type / reason");
  for (const DeadLetter& letter : letters) {
    std::printf("%-10" PRId64 " %-40s %8" PRId64 " %-8d %7" PRId64 " %-20s %s\n",
                letter.outbox_id, letter.stream_id.c_str(), letter.stream_version,
                letter.attempts, letter.rows_waiting_behind, letter.dead_at.c_str(),
                letter.event_type.c_str());
    std::printf("%-10s event %s: %s\n", "", letter.event_id.c_str(), letter.reason.c_str());
  }
}

}  // namespace

void add_outbox_command(CLI::App& app, GlobalOptions& options) {
  auto* outbox = app.add_subcommand("outbox", "Inspect the outbox and manage dead letters");
  outbox->require_subcommand(1);
  outbox->footer(
      "A dead letter is a message the broker refused permanently (e.g. too large). Its\n"
      "stream's later rows wait behind it. 'retry' puts it back in line (after the cause is\n"
      "fixed, e.g. the server's max_payload raised); 'discard' gives up on it, and its\n"
      "stream moves on. A running relay notices either within about a second.\n\n"
      "Examples:\n"
      "  deedkit outbox status\n"
      "  deedkit outbox dead-letters\n"
      "  deedkit outbox retry 1234");

  outbox->add_subcommand("status", "Print backlog, throughput, retries, dead letters, relays")
      ->callback([&options] {
        ConnectionPool pool = open_pool(options, "outbox status");
        const auto status = read_outbox_status(pool);
        if (!status) fail_command("outbox status", status.error().to_string());
        print_status(*status);
        exit_with(0);
      });

  auto limit = std::make_shared<int>(100);
  auto* list = outbox->add_subcommand("dead-letters", "List dead letters, oldest first");
  list->add_option("--limit", *limit, "How many to list")->capture_default_str();
  // The option writes into *limit while the callback reads it; both live as long as the app.
  list->callback([&options, limit] {
    ConnectionPool pool = open_pool(options, "outbox dead-letters");
    const auto letters = list_dead_letters(pool, *limit);
    if (!letters) fail_command("outbox dead-letters", letters.error().to_string());
    print_dead_letters(*letters);
    exit_with(0);
  });

  const auto add_resolution = [&](const char* name, const char* description, auto resolve,
                                  const char* done) {
    auto outbox_id = std::make_shared<std::int64_t>(0);
    auto* command = outbox->add_subcommand(name, description);
    command->add_option("ID", *outbox_id, "The dead letter's outbox id")->required();
    command->callback([&options, outbox_id, name, resolve, done] {
      const std::string label = std::string("outbox ") + name;
      ConnectionPool pool = open_pool(options, label);
      if (auto resolved = resolve(pool, *outbox_id); !resolved) {
        fail_command(label, resolved.error().to_string(),
                     resolved.error().code == ErrorCode::kNotFound ? 3 : 1);
      }
      std::printf("dead letter %" PRId64 " %s\n", *outbox_id, done);
      exit_with(0);
    });
  };
  add_resolution("retry", "Put a dead letter back in line for publishing", retry_dead_letter,
                 "is back in line; its stream resumes once it is published");
  add_resolution("discard", "Give up on a dead letter; its stream moves on",
                 discard_dead_letter, "is discarded; its stream moves on");
}

}  // namespace deedkit::cli
