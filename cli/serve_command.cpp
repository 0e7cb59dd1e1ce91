#include <cstdio>

#include <spdlog/spdlog.h>

#include "cli_context.hpp"
#include "deedkit/idempotency/key_janitor.hpp"
#include "deedkit/service/http_service.hpp"
#include "durations.hpp"
#include "termination.hpp"

namespace deedkit::cli {

namespace {

struct ServeFlags {
  std::string listen = "127.0.0.1:8080";
  int threads = 16;
  int connections = 16;
  std::size_t max_body_bytes = 64 * 1024;
  int timeout_seconds = 10;
  std::string tokens_file;
  std::vector<std::string> store_rejections;
  std::string key_retention = "24h";
  std::string key_purge_interval = "5m";
};

Result<service::ServiceOptions> service_options(const ServeFlags& flags) {
  service::ServiceOptions options;
  const auto colon = flags.listen.rfind(':');
  if (colon == std::string::npos) {
    return fail(ErrorCode::kInvalidArgument,
                "--listen must be HOST:PORT, got '" + flags.listen + "'");
  }
  options.host = flags.listen.substr(0, colon);
  try {
    options.port = std::stoi(flags.listen.substr(colon + 1));
  } catch (const std::exception&) {
    return fail(ErrorCode::kInvalidArgument, "--listen has no valid port: '" + flags.listen + "'");
  }
  options.worker_threads = flags.threads;
  options.max_body_bytes = flags.max_body_bytes;
  options.read_timeout = std::chrono::seconds(flags.timeout_seconds);
  options.write_timeout = std::chrono::seconds(flags.timeout_seconds);
  options.store_rejections_of = {flags.store_rejections.begin(), flags.store_rejections.end()};
  if (!flags.tokens_file.empty()) {
    auto tokens = service::load_token_file(flags.tokens_file);
    if (!tokens) return std::unexpected(tokens.error());
    if (tokens->empty()) {
      return fail(ErrorCode::kInvalidArgument, flags.tokens_file + " has no tokens");
    }
    options.tokens = std::move(*tokens);
  }
  return options;
}

void run_serve(const GlobalOptions& globals, const ServeFlags& flags) {
  auto options = service_options(flags);
  if (!options) fail_command("serve", options.error().message, 2);
  block_termination_signals();

  auto database = open_database(globals, true);
  if (!database) fail_command("serve", database.error().to_string());
  ConnectionPool pool({.database_uri = *database, .max_connections = flags.connections});
  service::HttpService service(std::move(*options), pool);
  if (auto started = service.start(); !started) {
    fail_command("serve", started.error().to_string());
  }
  KeyJanitor janitor(pool, {.retention = std::chrono::duration_cast<std::chrono::seconds>(
                                             duration(flags.key_retention)),
                            .interval = duration(flags.key_purge_interval)});
  janitor.start();
  std::printf("deedkit serving on http://%s:%d\n",
              flags.listen.substr(0, flags.listen.rfind(':')).c_str(), service.port());
  std::fflush(stdout);

  const int signal = wait_for_termination_signal();
  spdlog::info("serve: signal {} received; finishing requests in flight", signal);
  janitor.stop();
  service.stop();
  exit_with(0);
}

}  // namespace

void add_serve_command(CLI::App& app, GlobalOptions& options) {
  auto flags = std::make_shared<ServeFlags>();
  auto* command = app.add_subcommand("serve", "Serve the HTTP API");
  command->add_option("--listen", flags->listen, "HOST:PORT to listen on (port 0: any free port)")
      ->capture_default_str();
  command->add_option("--threads", flags->threads, "HTTP worker threads")->capture_default_str();
  command->add_option("--connections", flags->connections, "PostgreSQL connections at most")
      ->capture_default_str();
  command->add_option("--max-body", flags->max_body_bytes, "Largest request body in bytes")
      ->capture_default_str();
  command->add_option("--timeout", flags->timeout_seconds, "Read/write timeout in seconds")
      ->capture_default_str();
  command->add_option("--tokens", flags->tokens_file,
                      "File of 'token principal' lines; turns bearer authentication on");
  command->add_option("--store-rejections", flags->store_rejections,
                      "Commands whose business rejections are stored and replayed on retry");
  command->add_option("--key-retention", flags->key_retention,
                      "How long an Idempotency-Key replays its response (then it counts as new)")
      ->check(duration_validator())
      ->capture_default_str();
  command->add_option("--key-purge-interval", flags->key_purge_interval,
                      "How often expired keys are purged, in bounded batches")
      ->check(duration_validator())
      ->capture_default_str();
  command->footer(
      "Examples:\n"
      "  deedkit serve                                  # private PostgreSQL, port 8080\n"
      "  deedkit --database postgresql:///deedkit serve --listen 0.0.0.0:8080 \\\n"
      "      --tokens /etc/deedkit/tokens\n"
      "  curl -X POST localhost:8080/v1/commands/RegisterAsset \\\n"
      "      -H 'Idempotency-Key: k1' -H 'Content-Type: application/json' -d @asset.json");
  command->callback([&options, flags] { run_serve(options, *flags); });
}

}  // namespace deedkit::cli
