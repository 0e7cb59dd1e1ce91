// deedkit projections run|status|rebuild|retry|skip: operating the read side.

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include <pthread.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "cli_context.hpp"
#include "deedkit/projections/admin.hpp"
#include "deedkit/projections/real_estate.hpp"
#include "deedkit/projections/runner.hpp"

namespace deedkit::cli {

namespace {

struct ProjectionsOptions {
  std::vector<std::string> only;
  std::string name;
  int batch_size = RunnerOptions{}.batch_size;
};

// The projections this build knows, and borrowed pointers to them for the library's APIs.
struct Catalog {
  std::vector<std::unique_ptr<Projection>> owned = realestate::make_real_estate_projections();

  std::vector<const Projection*> all() const {
    std::vector<const Projection*> pointers;
    for (const auto& projection : owned) pointers.push_back(projection.get());
    return pointers;
  }

  const Projection* find(const std::string& name) const {
    for (const auto& projection : owned) {
      if (projection->name() == name) return projection.get();
    }
    return nullptr;
  }

  std::string names() const {
    std::string listed;
    for (const auto& projection : owned) {
      listed += (listed.empty() ? "" : ", ") + std::string(projection->name());
    }
    return listed;
  }
};

// SIGINT and SIGTERM are blocked in every thread (so call this before starting any) and
// collected with sigtimedwait: shutdown then runs as ordinary code, not in a handler.
sigset_t block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

// Waits up to `seconds` for SIGINT or SIGTERM; returns the signal, or 0 on timeout.
int wait_for_stop_signal(const sigset_t& signals, double seconds) {
  timespec timeout{};
  timeout.tv_sec = static_cast<time_t>(seconds);
  timeout.tv_nsec = static_cast<long>((seconds - static_cast<double>(timeout.tv_sec)) * 1e9);
  const int received = sigtimedwait(&signals, nullptr, &timeout);
  return received > 0 ? received : 0;
}

ConnectionPool open_pool(const GlobalOptions& options, const std::string& command,
                         std::size_t projections) {
  const auto database = open_database(options, true);
  if (!database) fail_command(command, database.error().to_string());
  // Each generation being applied reads on one connection while it writes on another, and
  // a projection has at most two generations at once.
  const int connections = static_cast<int>(4 * projections + 2);
  return ConnectionPool(PoolOptions{.database_uri = *database, .max_connections = connections});
}

void run_projections(const GlobalOptions& options, const ProjectionsOptions& flags) {
  const Catalog catalog;
  for (const std::string& name : flags.only) {
    if (!catalog.find(name)) {
      fail_command("projections run",
                   "unknown projection '" + name + "'; known: " + catalog.names());
    }
  }
  ConnectionPool pool = open_pool(options, "projections run", catalog.owned.size());

  const sigset_t signals = block_stop_signals();
  ProjectionRunner runner(pool, catalog.all(),
                          RunnerOptions{.batch_size = flags.batch_size, .only = flags.only});
  runner.start();
  std::string running = flags.only.empty() ? catalog.names() : "";
  for (const std::string& name : flags.only) running += (running.empty() ? "" : ", ") + name;
  spdlog::info("projections run: following {} on {} (batch size {}); stop with SIGINT or "
               "SIGTERM",
               running, redact_database_uri(pool.options().database_uri), flags.batch_size);

  while (wait_for_stop_signal(signals, 3600) == 0) {
  }
  spdlog::info("projections run: stopping");
  runner.stop();
  exit_with(0);
}

std::string describe_failure(const FailedEvent& failure) {
  return "event " + to_string(failure.event_id) + " (stream " + failure.stream_id +
         " version " + std::to_string(failure.stream_version) + ", type " +
         failure.event_type + ", position " + failure.position.to_string() +
         "): " + failure.error;
}

void print_generation(const char* label, const GenerationStatus& generation) {
  std::printf("  %-8s generation %d, version %d, at %s, %lld events read, %lld applied, "
              "lag %lld events / %.1f s\n",
              label, generation.generation, generation.version,
              generation.position.to_string().c_str(),
              static_cast<long long>(generation.events_read),
              static_cast<long long>(generation.events_applied),
              static_cast<long long>(generation.lag_events), generation.lag_seconds);
  if (generation.failure) {
    std::printf("  %-8s FAILED at %s\n", "", describe_failure(*generation.failure).c_str());
  }
}

void show_status(const GlobalOptions& options) {
  const Catalog catalog;
  ConnectionPool pool = open_pool(options, "projections status", 1);
  const auto projections = catalog.all();
  const auto statuses = projection_status(pool, projections);
  if (!statuses) fail_command("projections status", statuses.error().to_string());

  for (const ProjectionStatus& status : *statuses) {
    std::string leader = "no leader";
    if (status.leader_pid) {
      leader = "leader pid " + std::to_string(*status.leader_pid) + " (" +
               status.leader_application + ")";
    }
    std::printf("%s: %s, %s", status.name.c_str(), status.state().c_str(), leader.c_str());
    if (status.code_version == 0) std::printf(", not known to this build");
    if (status.live && status.code_version != 0 && status.live->version != status.code_version) {
      std::printf(", this build runs version %d", status.code_version);
    }
    std::printf("\n");
    if (status.live) print_generation("live", *status.live);
    if (status.building) print_generation("building", *status.building);
  }
  exit_with(0);
}

// Prints rebuild progress: rewritten in place on a terminal, a line every ten seconds
// otherwise (a log file should not fill with carriage returns).
class ProgressDisplay {
 public:
  ProgressDisplay() : terminal_(::isatty(STDOUT_FILENO) == 1) {}

  // Measures the rate from now and `events_read`. Without it, from the first show(), whose
  // line then has no rate yet: a resumed rebuild's count is only known from its status.
  void begin(std::int64_t events_read) {
    started_ = std::chrono::steady_clock::now();
    first_read_ = events_read;
  }

  void show(const std::string& name, const GenerationStatus& building) {
    const auto now = std::chrono::steady_clock::now();
    if (started_ == std::chrono::steady_clock::time_point{}) begin(building.events_read);
    const double elapsed = std::chrono::duration<double>(now - started_).count();
    const double rate =
        elapsed > 0 ? static_cast<double>(building.events_read - first_read_) / elapsed : 0;
    const std::int64_t total = std::max(building.events_total_estimate, building.events_read);
    const double percent =
        total > 0 ? 100.0 * static_cast<double>(building.events_read) / static_cast<double>(total)
                  : 100.0;
    const std::string left =
        rate > 0 ? format_seconds(static_cast<double>(total - building.events_read) / rate)
                 : "--";
    const std::string line = fmt::format(
        "rebuild {}: {} of ~{} events ({:.1f}%), {:.0f} events/s, {} left", name,
        building.events_read, total, percent, rate, left);

    if (terminal_) {
      std::printf("\r%-100s", line.c_str());
      std::fflush(stdout);
    } else if (now - last_line_ >= std::chrono::seconds(10)) {
      spdlog::info("{}", line);
      last_line_ = now;
    }
  }

  void finish() {
    if (terminal_) std::printf("\n");
  }

 private:
  static std::string format_seconds(double seconds) {
    const long total = static_cast<long>(seconds + 0.5);
    if (total >= 3600) return fmt::format("{}h{:02}m", total / 3600, total % 3600 / 60);
    if (total >= 60) return fmt::format("{}m{:02}s", total / 60, total % 60);
    return fmt::format("{}s", total);
  }

  const bool terminal_;
  std::chrono::steady_clock::time_point started_{};
  std::chrono::steady_clock::time_point last_line_{};
  std::int64_t first_read_ = 0;
};

void rebuild_projection(const GlobalOptions& options, const ProjectionsOptions& flags) {
  const Catalog catalog;
  const Projection* projection = catalog.find(flags.name);
  if (!projection) {
    fail_command("projections rebuild",
                 "unknown projection '" + flags.name + "'; known: " + catalog.names());
  }
  ConnectionPool pool = open_pool(options, "projections rebuild", 1);
  const auto request = request_rebuild(pool, *projection);
  if (!request) fail_command("projections rebuild", request.error().to_string());
  spdlog::info("projections rebuild {}: {} generation {} at version {}", flags.name,
               request->resumed ? "resuming" : "started", request->generation,
               projection->version());

  // Lead the projection here unless another process already does; either way the rebuild
  // runs where the leader is, and this command watches its checkpoint.
  const sigset_t signals = block_stop_signals();
  ProjectionRunner runner(pool, {projection},
                          RunnerOptions{.batch_size = flags.batch_size, .only = {flags.name}});
  ProgressDisplay progress;
  if (!request->resumed) progress.begin(0);
  runner.start();

  const std::vector<const Projection*> watched{projection};
  while (true) {
    if (wait_for_stop_signal(signals, 1.0) != 0) {
      progress.finish();
      std::printf("interrupted: generation %d keeps its checkpoint; 'deedkit projections "
                  "rebuild %s' or any 'projections run' resumes it\n",
                  request->generation, flags.name.c_str());
      runner.stop();
      exit_with(130);
    }
    auto statuses = projection_status(pool, watched, false);
    if (!statuses) {
      spdlog::warn("projections rebuild {}: reading progress failed: {}", flags.name,
                   statuses.error().to_string());
      continue;
    }
    // The answer covers every projection the database knows, not only the one rebuilt.
    const auto named = std::ranges::find(*statuses, flags.name, &ProjectionStatus::name);
    if (named == statuses->end()) {
      spdlog::warn("projections rebuild {}: its status is missing; reading it again",
                   flags.name);
      continue;
    }
    const ProjectionStatus& status = *named;
    if (status.live && status.live->generation == request->generation) break;
    if (!status.building || status.building->generation != request->generation) {
      progress.finish();
      runner.stop();
      fail_command("projections rebuild", "generation " + std::to_string(request->generation) +
                                              " was abandoned (a newer version replaced it)");
    }
    if (status.building->failure) {
      progress.finish();
      runner.stop();
      fail_command("projections rebuild",
                   "stopped at " + describe_failure(*status.building->failure) +
                       "; fix the cause and run 'deedkit projections retry " + flags.name +
                       "' or skip it with 'deedkit projections skip " + flags.name + "'");
    }
    progress.show(flags.name, *status.building);
  }

  progress.finish();
  runner.stop();
  std::printf("rebuild %s: generation %d is live\n", flags.name.c_str(), request->generation);
  exit_with(0);
}

void retry_failed(const GlobalOptions& options, const ProjectionsOptions& flags) {
  ConnectionPool pool = open_pool(options, "projections retry", 1);
  const auto cleared = retry_projection(pool, flags.name);
  if (!cleared) fail_command("projections retry", cleared.error().to_string());
  if (*cleared == 0) {
    std::printf("%s: nothing had failed\n", flags.name.c_str());
  } else {
    std::printf("%s: cleared %d failed generation(s); the leader applies the event again\n",
                flags.name.c_str(), *cleared);
  }
  exit_with(0);
}

void skip_failed(const GlobalOptions& options, const ProjectionsOptions& flags) {
  ConnectionPool pool = open_pool(options, "projections skip", 1);
  const char* user = std::getenv("USER");
  const std::string skipped_by = std::string(user ? user : "") + " (deedkit projections skip)";
  const auto skipped = skip_failed_event(pool, flags.name, skipped_by);
  if (!skipped) fail_command("projections skip", skipped.error().to_string());
  if (skipped->empty()) std::printf("%s: nothing had failed\n", flags.name.c_str());
  for (const FailedEvent& failure : *skipped) {
    std::printf("%s: skipped %s\n", flags.name.c_str(), describe_failure(failure).c_str());
  }
  exit_with(0);
}

}  // namespace

void add_projections_command(CLI::App& app, GlobalOptions& options) {
  auto* projections = app.add_subcommand("projections", "Run and operate the read models");
  projections->require_subcommand(1);
  projections->footer(
      "Read models live in schema deedkit_read (docs/projections.md). Any number of\n"
      "'projections run' may run: each projection is applied by one of them at a time.\n\n"
      "Examples:\n"
      "  deedkit projections run\n"
      "  deedkit projections status\n"
      "  deedkit projections rebuild assets\n"
      "  deedkit projections retry rent_roll");
  // Shared by the subcommands' callbacks, which CLI11 keeps as long as the App lives.
  auto flags = std::make_shared<ProjectionsOptions>();

  auto* run = projections->add_subcommand("run", "Catch up, then follow the log live");
  run->add_option("--only", flags->only, "Run only these projections (repeatable)");
  run->add_option("--batch-size", flags->batch_size, "Events per transaction at most")
      ->check(CLI::Range(1, 100000));
  run->callback([&options, flags] { run_projections(options, *flags); });

  projections->add_subcommand("status", "Position, lag and state of each projection")
      ->callback([&options] { show_status(options); });

  auto* rebuild = projections->add_subcommand(
      "rebuild", "Replay a projection into new tables, then switch readers over atomically");
  rebuild->add_option("name", flags->name, "Projection to rebuild")->required();
  rebuild->add_option("--batch-size", flags->batch_size, "Events per transaction at most")
      ->check(CLI::Range(1, 100000));
  rebuild->callback([&options, flags] { rebuild_projection(options, *flags); });

  auto* retry = projections->add_subcommand("retry", "Apply a failed projection's event again");
  retry->add_option("name", flags->name, "Projection to retry")->required();
  retry->callback([&options, flags] { retry_failed(options, *flags); });

  auto* skip = projections->add_subcommand(
      "skip", "Skip the event a projection failed on, recording the skip");
  skip->add_option("name", flags->name, "Projection whose failed event to skip")->required();
  skip->callback([&options, flags] { skip_failed(options, *flags); });
}

}  // namespace deedkit::cli
