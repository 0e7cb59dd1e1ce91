#include <cstdio>

#include <pqxx/nontransaction>
#include <pqxx/result>

#include "cli_context.hpp"
#include "deedkit/core/json_text.hpp"
#include "deedkit/domain/asset.hpp"
#include "deedkit/domain/lease.hpp"
#include "deedkit/engine/event_codec.hpp"
#include "deedkit/eventstore/event_store.hpp"
#include "deedkit/service/command_catalog.hpp"

namespace deedkit::cli {

namespace {

struct StreamsFlags {
  std::string category;
  int limit = 50;
  std::string stream_id;
};

void list_streams(const GlobalOptions& globals, const StreamsFlags& flags) {
  auto database = open_database(globals, true);
  if (!database) fail_command("streams list", database.error().to_string());
  ConnectionPool pool({.database_uri = *database, .max_connections = 1});
  auto unit = UnitOfWork::begin(pool);
  if (!unit) fail_command("streams list", unit.error().to_string());
  try {
    const pqxx::result rows = unit->tx().exec_params(
        "SELECT stream_id, max(stream_version), max(recorded_at)::text FROM deedkit.events "
        "WHERE $1 = '' OR split_part(stream_id, '-', 1) = $1 "
        "GROUP BY stream_id ORDER BY max(global_position) DESC LIMIT $2",
        flags.category, flags.limit);
    for (const auto& row : rows) {
      std::printf("%-48s version %-6s last event %s\n", row[0].c_str(), row[1].c_str(),
                  row[2].c_str());
    }
  } catch (const std::exception&) {
    fail_command("streams list", unit->fail_with_current_exception("list streams").to_string());
  }
  exit_with(0);
}

// The event as JSON: decoded when its type belongs to a known aggregate, else described.
std::string event_json(const RecordedEvent& event) {
  static const EventCodec<realestate::v1::AssetEvent> assets;
  static const EventCodec<realestate::v1::LeaseEvent> leases;
  std::string data = "null";
  std::string problem;
  const StoredEventRef where{event.stream_id, event.stream_version};
  if (assets.knows(event.event_type)) {
    auto decoded = assets.decode(where, event.event_type, event.schema_version, event.payload);
    if (decoded) data = service::to_json(*decoded); else problem = decoded.error().message;
  } else if (leases.knows(event.event_type)) {
    auto decoded = leases.decode(where, event.event_type, event.schema_version, event.payload);
    if (decoded) data = service::to_json(*decoded); else problem = decoded.error().message;
  } else {
    problem = "no decoder for this event type in the deedkit binary";
  }

  std::string json = "{\"stream_version\":" + std::to_string(event.stream_version) +
                     ",\"global_position\":" + std::to_string(event.global_position) +
                     ",\"event_id\":" + json_string(to_string(event.event_id)) +
                     ",\"event_type\":" + json_string(event.event_type) +
                     ",\"schema_version\":" + std::to_string(event.schema_version) +
                     ",\"recorded_at\":" + json_string(format_rfc3339(event.recorded_at)) +
                     ",\"principal\":" + json_string(event.metadata.principal) +
                     ",\"data\":" + data;
  if (!problem.empty()) json += ",\"error\":" + json_string(problem);
  return json + "}";
}

void show_stream(const GlobalOptions& globals, const StreamsFlags& flags) {
  auto database = open_database(globals, true);
  if (!database) fail_command("streams show", database.error().to_string());
  ConnectionPool pool({.database_uri = *database, .max_connections = 1});
  const EventStore store(pool);

  std::int64_t next = 1;
  bool any = false;
  while (true) {
    auto batch = store.read_stream_forward(flags.stream_id, next, 500);
    if (!batch) fail_command("streams show", batch.error().to_string());
    for (const auto& event : *batch) std::printf("%s\n", event_json(event).c_str());
    any = any || !batch->empty();
    if (batch->size() < 500) break;
    next = batch->back().stream_version + 1;
  }
  if (!any) fail_command("streams show", "no stream named '" + flags.stream_id + "'", 1);
  exit_with(0);
}

}  // namespace

void add_streams_command(CLI::App& app, GlobalOptions& options) {
  auto flags = std::make_shared<StreamsFlags>();
  auto* streams = app.add_subcommand("streams", "Inspect the event log");
  streams->footer(
      "Examples:\n"
      "  deedkit streams list --category asset\n"
      "  deedkit streams show asset-470fe049-da5f-40df-bc91-b8e0c6225d85");
  streams->require_subcommand(1);

  auto* list = streams->add_subcommand("list", "List streams, most recently written first");
  list->add_option("--category", flags->category, "Only streams of this category (e.g. asset)");
  list->add_option("--limit", flags->limit, "At most this many streams")->capture_default_str();
  list->footer("Examples:\n  deedkit streams list\n  deedkit streams list --category lease");
  list->callback([&options, flags] { list_streams(options, *flags); });

  auto* show = streams->add_subcommand("show", "Print a stream's events as JSON lines");
  show->add_option("stream", flags->stream_id, "The stream id, e.g. asset-<uuid>")->required();
  show->footer("Example:\n  deedkit streams show asset-470fe049-da5f-40df-bc91-b8e0c6225d85");
  show->callback([&options, flags] { show_stream(options, *flags); });
}

}  // namespace deedkit::cli
