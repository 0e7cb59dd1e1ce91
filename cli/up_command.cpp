#include <cstdio>
#include <thread>

#include <spdlog/spdlog.h>

#include "cli_context.hpp"
#include "deedkit/idempotency/key_janitor.hpp"
#include "deedkit/outbox/relay.hpp"
#include "deedkit/projections/real_estate.hpp"
#include "deedkit/projections/runner.hpp"
#include "deedkit/service/http_service.hpp"
#include "private_nats.hpp"
#include "termination.hpp"

namespace deedkit::cli {

namespace {

void run_up(const GlobalOptions& globals, const std::string& listen) {
  block_termination_signals();
  auto database = open_database(globals, true);
  if (!database) fail_command("up", database.error().to_string());

  // NATS: the configured one, else a private nats-server, else messages printed as JSON.
  std::optional<std::string> nats = configured_nats(globals);
  std::optional<PrivateNats> private_nats =
      nats ? std::nullopt : PrivateNats::start(".");
  if (private_nats) nats = private_nats->url();

  ConnectionPool pool({.database_uri = *database, .max_connections = 24});
  service::ServiceOptions service_options;
  const auto colon = listen.rfind(':');
  service_options.host = listen.substr(0, colon);
  service_options.port = std::atoi(listen.substr(colon + 1).c_str());
  service::HttpService service(service_options, pool);
  if (auto started = service.start(); !started) fail_command("up", started.error().to_string());
  KeyJanitor janitor(pool, {});  // keys kept for kDefaultIdempotencyRetention
  janitor.start();

  RelayOptions relay_options;
  relay_options.database_uri = *database;
  relay_options.nats_url = nats;
  Relay relay(relay_options);
  std::thread relaying([&relay] {
    if (auto ran = relay.run(); !ran) {
      spdlog::error("up: relay stopped: {}", ran.error().to_string());
    }
  });

  const auto projections = realestate::make_real_estate_projections();
  std::vector<const Projection*> running;
  for (const auto& projection : projections) running.push_back(projection.get());
  ProjectionRunner runner(pool, running);
  runner.start();

  std::printf("deedkit up: HTTP on http://%s:%d, relay to %s, projections running. "
              "Ctrl-C stops.\n",
              service_options.host.c_str(), service.port(),
              nats ? redact_nats_url(*nats).c_str() : "stdout (no NATS)");
  std::fflush(stdout);

  const int signal = wait_for_termination_signal();
  spdlog::info("up: signal {} received; stopping", signal);
  janitor.stop();
  service.stop();
  runner.stop();
  relay.stop();
  relaying.join();
  exit_with(0);
}

}  // namespace

void add_up_command(CLI::App& app, GlobalOptions& options) {
  auto listen = std::make_shared<std::string>("127.0.0.1:8080");
  auto* command = app.add_subcommand(
      "up", "Run the HTTP service, the relay and the projections in one process (development)");
  command->add_option("--listen", *listen, "HOST:PORT for the HTTP API")->capture_default_str();
  command->footer(
      "With nothing configured, uses the private PostgreSQL of this folder and starts a\n"
      "private nats-server (JetStream) when one is installed; otherwise relayed messages are\n"
      "printed as JSON lines.\n\n"
      "Examples:\n"
      "  deedkit up\n"
      "  deedkit --nats nats://127.0.0.1:4222 up --listen 0.0.0.0:8080");
  command->callback([&options, listen] { run_up(options, *listen); });
}

}  // namespace deedkit::cli
