// deedkit relay: publishes the outbox to NATS JetStream (or JSON lines) until SIGTERM.

#include <atomic>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <pthread.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "cli_context.hpp"
#include "durations.hpp"
#include "deedkit/outbox/relay.hpp"

namespace deedkit::cli {

namespace {

// The durations the relay takes, as text ("500ms", "5s", "2m", "1h", or "0").
struct RelayDurations {
  std::string duplicate_window = "1h";
  std::string ack_timeout = "5s";
  std::string poll_interval = "5ms";
  std::string fetch_interval = "1s";
  std::string lease_interval = "1s";
  std::string backoff_initial = "100ms";
  std::string backoff_max = "10s";
  std::string shutdown_grace = "10s";
  std::string retain = "24h";
  std::string retention_interval = "1m";
};

struct RelayCommandOptions {
  bool to_stdout = false;
  std::string format = "protobuf";
  RelayDurations durations;
  RelayOptions relay;
};

void apply_durations(RelayCommandOptions& command) {
  const RelayDurations& text = command.durations;
  RelayOptions& relay = command.relay;
  relay.duplicate_window =
      std::chrono::duration_cast<std::chrono::seconds>(duration(text.duplicate_window));
  relay.ack_timeout = duration(text.ack_timeout);
  relay.poll_interval = duration(text.poll_interval);
  relay.fetch_interval = duration(text.fetch_interval);
  relay.lease_interval = duration(text.lease_interval);
  relay.backoff_initial = duration(text.backoff_initial);
  relay.backoff_max = duration(text.backoff_max);
  relay.shutdown_grace = duration(text.shutdown_grace);
  relay.retain_published = std::chrono::duration_cast<std::chrono::seconds>(duration(text.retain));
  relay.retention_interval = duration(text.retention_interval);
}

// Logs go to stderr: with --stdout, stdout carries the messages themselves.
void log_to_stderr() {
  auto logger = std::make_shared<spdlog::logger>(
      "", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  logger->set_level(spdlog::default_logger()->level());
  spdlog::set_default_logger(logger);
}

// SIGTERM and SIGINT are blocked in every thread (nats.c's included, as they inherit the
// mask) and taken by one waiting thread, which asks the relay to stop. stop() takes a mutex,
// which a signal handler must not.
class StopOnSignal {
 public:
  explicit StopOnSignal(Relay& relay) {
    sigemptyset(&signals_);
    sigaddset(&signals_, SIGTERM);
    sigaddset(&signals_, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
    waiter_ = std::thread([this, &relay] {
      int signal = 0;
      sigwait(&signals_, &signal);
      if (!finished_) {
        spdlog::info("relay: received {}, finishing the batch in flight",
                     signal == SIGTERM ? "SIGTERM" : "SIGINT");
        relay.stop();
      }
    });
  }

  ~StopOnSignal() {
    finished_ = true;
    pthread_kill(waiter_.native_handle(), SIGTERM);
    waiter_.join();
  }

  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;

 private:
  sigset_t signals_{};
  std::atomic<bool> finished_{false};
  std::thread waiter_;
};

void run_relay(const GlobalOptions& options, RelayCommandOptions& command) {
  log_to_stderr();
  const auto database = open_database(options, false);
  if (!database) fail_command("relay", database.error().to_string());

  command.relay.database_uri = *database;
  if (!command.to_stdout) command.relay.nats_url = configured_nats(options);
  command.relay.format = command.format == "json" ? EnvelopeFormat::kJson
                                                  : EnvelopeFormat::kProtobuf;
  apply_durations(command);
  if (auto valid = validate_relay_options(command.relay); !valid) {
    fail_command("relay", valid.error().to_string(), 2);
  }

  // A closed stdout or broker socket must surface as a write error, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  Relay relay(command.relay);
  std::optional<StopOnSignal> stop_on_signal;
  stop_on_signal.emplace(relay);
  const auto finished = relay.run();
  stop_on_signal.reset();

  if (!finished) fail_command("relay", finished.error().to_string());
  exit_with(0);
}

void add_relay_options(CLI::App& command, RelayCommandOptions& settings) {
  RelayOptions& relay = settings.relay;
  RelayDurations& durations = settings.durations;
  command.add_flag("--stdout", settings.to_stdout,
                   "Write JSON lines to stdout even when NATS is configured");
  command.add_option("--format", settings.format, "Message body: protobuf or json")
      ->check(CLI::IsMember({"protobuf", "json"}))
      ->capture_default_str();
  command.add_option("--stream", relay.stream_name, "JetStream stream")->capture_default_str();
  command.add_option("--stream-subject", relay.stream_subjects,
                     "Subjects of the stream when the relay creates it (repeatable)")
      ->capture_default_str();
  command.add_option("--subject", relay.subject_template,
                     "Subject template; placeholders {category}, {type}, {stream}")
      ->capture_default_str();
  command.add_option("--duplicate-window", durations.duplicate_window,
                     "JetStream duplicate window when the relay creates the stream")
      ->check(duration_validator())
      ->capture_default_str();
  command.add_option("--max-in-flight", relay.max_in_flight,
                     "Messages awaiting their PubAck, over all streams")
      ->capture_default_str();
  command.add_option("--ack-timeout", durations.ack_timeout, "Wait for one PubAck")
      ->check(duration_validator())
      ->capture_default_str();
  command.add_option("--max-attempts", relay.max_attempts,
                     "Permanent refusals before a row becomes a dead letter")
      ->capture_default_str();
  command.add_option("--poll-interval", durations.poll_interval,
                     "How often to check for new rows")
      ->check(duration_validator())
      ->capture_default_str();
  command.add_option("--fetch-interval", durations.fetch_interval,
                     "Full fetch at least this often")
      ->check(duration_validator())
      ->capture_default_str();
  command.add_option("--rows-per-partition", relay.rows_per_partition,
                     "Rows read ahead per partition")
      ->capture_default_str();
  command.add_option("--lease-interval", durations.lease_interval,
                     "How often to rebalance partitions between relays")
      ->check(duration_validator())
      ->capture_default_str();
  command.add_option("--backoff-initial", durations.backoff_initial, "First retry wait")
      ->check(duration_validator())
      ->capture_default_str();
  command.add_option("--backoff-max", durations.backoff_max, "Longest retry wait")
      ->check(duration_validator())
      ->capture_default_str();
  command.add_option("--shutdown-grace", durations.shutdown_grace,
                     "On SIGTERM, wait this long for PubAcks in flight")
      ->check(duration_validator())
      ->capture_default_str();
  command.add_option("--retain", durations.retain,
                     "Keep published rows this long; 0 deletes each row once acknowledged")
      ->check(duration_validator())
      ->capture_default_str();
  command.add_option("--retention-interval", durations.retention_interval,
                     "How often to delete old published rows; 0 turns it off")
      ->check(duration_validator())
      ->capture_default_str();
  command.add_option("--retention-batch", relay.retention_batch, "Rows deleted per transaction")
      ->capture_default_str();
}

}  // namespace

void add_relay_command(CLI::App& app, GlobalOptions& options) {
  auto settings = std::make_shared<RelayCommandOptions>();
  auto* command = app.add_subcommand("relay", "Publish the outbox to NATS JetStream");
  command->footer(
      "Publishes each outbox row to JetStream, in version order per stream, and marks it\n"
      "published after its PubAck. Run several for more throughput or availability: they\n"
      "share the 64 outbox partitions. Without NATS (--stdout, or no --nats and no\n"
      "DEEDKIT_NATS_URL) each message is one JSON line on stdout; logs go to stderr.\n"
      "SIGTERM or SIGINT: finish the batch in flight, record it, exit 0. docs/relay.md.\n\n"
      "Examples:\n"
      "  deedkit --nats nats://localhost:4222 relay\n"
      "  deedkit relay --stdout --log-level warn | jq .envelope.eventType");
  add_relay_options(*command, *settings);
  // CLI11 keeps the callback, and with it the options it fills, as long as the app lives.
  command->callback([&options, settings] { run_relay(options, *settings); });
}

}  // namespace deedkit::cli
