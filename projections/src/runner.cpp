#include "deedkit/projections/runner.hpp"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <optional>
#include <mutex>
#include <thread>

#include <pqxx/connection>
#include <pqxx/nontransaction>

#include "deedkit/eventstore/event_store.hpp"
#include "internal/generation_store.hpp"
#include "internal/generation_worker.hpp"
#include "internal/log_wake.hpp"
#include "internal/pause.hpp"
#include "internal/projections_log.hpp"

namespace deedkit {

namespace {

using internal::GenerationRow;
using internal::projections_log;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

// The first key of every projection leader lock ("dkpr"); the second is hashtext(name).
// admin.cpp looks for the same pair in pg_locks.
constexpr int kLeaderLockClass = 0x646b7072;

}  // namespace

class ProjectionRunner::Impl {
 public:
  Impl(ConnectionPool& pool, std::vector<const Projection*> projections, RunnerOptions options)
      : pool_(pool), store_(pool), options_(std::move(options)) {
    for (const Projection* projection : projections) {
      const std::string name(projection->name());
      const bool selected = options_.only.empty() ||
                            std::find(options_.only.begin(), options_.only.end(), name) !=
                                options_.only.end();
      if (selected) projections_.push_back(Led{projection, name});
    }
  }

  void start() {
    std::lock_guard lock(lifecycle_mutex_);
    if (control_.joinable()) return;
    control_ = std::jthread([this](std::stop_token stop) { control_loop(stop); });
  }

  void stop() {
    std::lock_guard lock(lifecycle_mutex_);
    if (!control_.joinable()) return;
    control_.request_stop();
    control_.join();
  }

  std::vector<std::string> led_projections() const {
    std::lock_guard lock(led_mutex_);
    return led_names_;
  }

 private:
  struct Worker {
    std::unique_ptr<internal::GenerationWorker> worker;
    std::jthread thread;
  };

  struct Led {
    const Projection* projection;
    std::string name;
    bool leading = false;
    // After declining to run a projection that a newer deedkit owns, the lock is left to
    // other processes until then.
    steady_clock::time_point declined_until{};
    std::string last_complaint;  // the last error logged for it, so it is logged once
    std::map<int, Worker> workers;  // by generation
  };

  void control_loop(const std::stop_token& stop);
  bool connect();
  // Whether the tip moved since the last poll; nullopt when the connection failed (every
  // lock is then given up).
  std::optional<bool> poll_tip();
  void acquire_leadership();
  void reconcile(Led& led);
  void start_worker(Led& led, const GenerationRow& generation);
  void complain(Led& led, const std::string& message);
  void decline(Led& led, const std::string& message);
  void abdicate();
  void publish_led();

  ConnectionPool& pool_;
  EventStore store_;
  const RunnerOptions options_;
  std::vector<Led> projections_;  // control thread only, after construction
  internal::LogWake wake_;

  // The dedicated session that holds the leader locks and polls the tip; control thread
  // only. Its loss is the loss of every lock.
  std::unique_ptr<pqxx::connection> lock_connection_;
  std::string last_tip_;

  std::mutex lifecycle_mutex_;  // serialises start and stop
  std::jthread control_;

  mutable std::mutex led_mutex_;
  std::vector<std::string> led_names_;  // guarded by led_mutex_
};

void ProjectionRunner::Impl::control_loop(const std::stop_token& stop) {
  milliseconds interval = options_.min_poll;
  milliseconds reconnect_backoff{100};
  auto next_leadership = steady_clock::now();

  while (!stop.stop_requested()) {
    if (!lock_connection_ && !connect()) {
      internal::pause_unless_stopped(reconnect_backoff, stop);
      reconnect_backoff = std::min(reconnect_backoff * 2, options_.max_retry_backoff);
      continue;
    }
    reconnect_backoff = milliseconds{100};

    const std::optional<bool> moved = poll_tip();
    if (!moved) continue;

    if (steady_clock::now() >= next_leadership) {
      acquire_leadership();
      if (!lock_connection_) continue;
      for (Led& led : projections_) {
        if (!lock_connection_) break;  // lost while reconciling: every lock is gone
        if (led.leading) reconcile(led);
      }
      next_leadership = steady_clock::now() + options_.leadership_interval;
    }

    // Poll quickly right after the log moved, since more usually follows; back off while
    // it stays still, so an idle runner costs a few cheap queries a second.
    interval = *moved ? options_.min_poll : std::min(interval * 2, options_.max_poll);
    internal::pause_unless_stopped(interval, stop);
  }

  abdicate();
  if (lock_connection_) {
    try {
      pqxx::nontransaction tx(*lock_connection_);
      tx.exec("SELECT pg_advisory_unlock_all()");
    } catch (const std::exception&) {
      // Closing the session below releases the locks anyway.
    }
    lock_connection_.reset();
  }
}

bool ProjectionRunner::Impl::connect() {
  try {
    auto connection = std::make_unique<pqxx::connection>(pool_.options().database_uri);
    pqxx::nontransaction tx(*connection);
    tx.exec_params("SELECT set_config('application_name', $1, false)",
                   options_.application_name);
    // The leader locks live on this session. If this host dies without closing the socket,
    // the server would hold them until its TCP keepalive (2 hours by default) noticed; with
    // these, about 4 s after the host died the session ends and another runner takes over.
    // (Ignored over a Unix socket, where a dead peer is seen at once.)
    tx.exec("SET tcp_keepalives_idle = 2; SET tcp_keepalives_interval = 1; "
            "SET tcp_keepalives_count = 2");
    tx.commit();
    lock_connection_ = std::move(connection);
    last_tip_.clear();
    return true;
  } catch (const std::exception& error) {
    projections_log().warn("projections: cannot open the leader-lock connection to {}: {}",
                           redact_database_uri(pool_.options().database_uri), error.what());
    return false;
  }
}

std::optional<bool> ProjectionRunner::Impl::poll_tip() {
  try {
    // Both values are read from shared memory, not from any table: the sequence moves when
    // an event is inserted, the horizon when the oldest running transaction ends (which is
    // when inserted events become readable in commit-safe order).
    pqxx::nontransaction tx(*lock_connection_);
    const pqxx::row tip = tx.exec1(
        "SELECT last_value::text || '/' || pg_snapshot_xmin(pg_current_snapshot())::text "
        "FROM deedkit.events_global_position_seq");
    std::string current = tip[0].c_str();
    if (current == last_tip_) return false;
    last_tip_ = std::move(current);
    wake_.notify();
    return true;
  } catch (const std::exception& error) {
    std::string leading;
    for (const Led& led : projections_) {
      if (led.leading) leading += (leading.empty() ? "" : ", ") + led.name;
    }
    projections_log().warn(
        "projections: the leader-lock connection failed ({}); stopping {} and reconnecting",
        error.what(), leading.empty() ? "nothing" : leading);
    abdicate();
    lock_connection_.reset();
    return std::nullopt;
  }
}

void ProjectionRunner::Impl::acquire_leadership() {
  try {
    for (Led& led : projections_) {
      if (led.leading || steady_clock::now() < led.declined_until) continue;
      pqxx::nontransaction tx(*lock_connection_);
      const bool acquired =
          tx.exec_params1("SELECT pg_try_advisory_lock($1, hashtext($2))", kLeaderLockClass,
                          led.name)[0]
              .as<bool>();
      if (!acquired) continue;
      led.leading = true;
      projections_log().info("projection {}: this process is now its leader", led.name);
    }
  } catch (const std::exception& error) {
    projections_log().warn("projections: taking leader locks failed ({}); reconnecting",
                           error.what());
    abdicate();
    lock_connection_.reset();
  }
  publish_led();
}

void ProjectionRunner::Impl::reconcile(Led& led) {
  for (auto it = led.workers.begin(); it != led.workers.end();) {
    it = it->second.worker->finished() ? led.workers.erase(it) : std::next(it);
  }

  const int code_version = led.projection->version();
  // Each pass fixes at most one thing and looks again: retire an outdated rebuild, create
  // a generation, then start the workers.
  for (int pass = 0; pass < 3; ++pass) {
    auto generations = internal::load_generations(pool_, led.name);
    if (!generations) return complain(led, generations.error().to_string());
    const GenerationRow* live = nullptr;
    const GenerationRow* building = nullptr;
    bool any_retired = false;
    for (const GenerationRow& row : *generations) {
      if (row.role == internal::kLive) live = &row;
      if (row.role == internal::kBuilding) building = &row;
      if (row.role == internal::kRetired) any_retired = true;
    }

    if (live && live->version > code_version) {
      return decline(led, "the database holds version " + std::to_string(live->version) +
                              ", newer than this build's " + std::to_string(code_version) +
                              "; leaving it to a newer deedkit");
    }
    if (building && building->version != code_version) {
      if (building->version > code_version) {
        return decline(led, "a rebuild at version " + std::to_string(building->version) +
                                " is under way, newer than this build's " +
                                std::to_string(code_version) + "; leaving it to a newer deedkit");
      }
      projections_log().info("projection {}: abandoning the rebuild at outdated version {}",
                             led.name, building->version);
      if (auto retired = internal::retire_generation(pool_, led.name, building->generation);
          !retired) {
        return complain(led, retired.error().to_string());
      }
      continue;
    }

    // A missing live generation is created live, so readers have the views from the
    // start; a changed version is rebuilt beside the live one.
    const bool first_run = !live && !building;
    const bool version_changed = live && live->version != code_version && !building;
    if (first_run || version_changed) {
      auto created = internal::create_generation(
          pool_, *led.projection, first_run ? internal::kLive : internal::kBuilding);
      if (!created) return complain(led, created.error().to_string());
      if (first_run) {
        projections_log().info("projection {}: created generation {} (version {}); "
                               "catching up from the start of the log",
                               led.name, created->generation, code_version);
      } else {
        projections_log().info(
            "projection {}: version {} -> {}: rebuilding into generation {}; generation {} "
            "keeps serving reads, frozen at {} until the switch",
            led.name, live->version, code_version, created->generation, live->generation,
            live->position.to_string());
      }
      continue;
    }

    led.last_complaint.clear();
    for (const GenerationRow* row : {live, building}) {
      if (row && row->version == code_version && !led.workers.contains(row->generation)) {
        start_worker(led, *row);
      }
    }
    if (any_retired) {
      auto dropped = internal::drop_retired(pool_, led.name, 100);
      if (!dropped) complain(led, "dropping retired tables: " + dropped.error().to_string());
    }
    return;
  }
}

void ProjectionRunner::Impl::start_worker(Led& led, const GenerationRow& generation) {
  const internal::WorkerEnvironment environment{pool_, store_, wake_, options_};
  Worker started;
  started.worker = std::make_unique<internal::GenerationWorker>(environment, *led.projection,
                                                                generation.generation);
  internal::GenerationWorker* worker = started.worker.get();
  started.thread = std::jthread([worker](std::stop_token stop) { worker->run(stop); });
  led.workers.emplace(generation.generation, std::move(started));
  projections_log().info("projection {}: applying generation {} ({}) from {}", led.name,
                         generation.generation, generation.role,
                         generation.position.to_string());
}

void ProjectionRunner::Impl::complain(Led& led, const std::string& message) {
  // Reconcile runs every leadership interval; an unchanged problem is logged once.
  if (message == led.last_complaint) return;
  led.last_complaint = message;
  projections_log().error("projection {}: {}", led.name, message);
}

void ProjectionRunner::Impl::decline(Led& led, const std::string& message) {
  complain(led, message);
  for (auto& [generation, worker] : led.workers) worker.thread.request_stop();
  led.workers.clear();
  led.leading = false;
  led.declined_until = steady_clock::now() + std::chrono::seconds(30);
  if (!lock_connection_) return publish_led();
  try {
    pqxx::nontransaction tx(*lock_connection_);
    tx.exec_params("SELECT pg_advisory_unlock($1, hashtext($2))", kLeaderLockClass, led.name);
  } catch (const std::exception& error) {
    projections_log().warn("projection {}: releasing its leader lock failed ({}); "
                           "reconnecting",
                           led.name, error.what());
    abdicate();
    lock_connection_.reset();
  }
  publish_led();
}

void ProjectionRunner::Impl::abdicate() {
  // Ask every worker first, then wait for all: they finish their current step in parallel.
  for (Led& led : projections_) {
    for (auto& [generation, worker] : led.workers) worker.thread.request_stop();
  }
  for (Led& led : projections_) {
    led.workers.clear();
    if (led.leading) projections_log().info("projection {}: no longer leading it", led.name);
    led.leading = false;
  }
  publish_led();
}

void ProjectionRunner::Impl::publish_led() {
  std::vector<std::string> names;
  for (const Led& led : projections_) {
    if (led.leading) names.push_back(led.name);
  }
  std::lock_guard lock(led_mutex_);
  led_names_ = std::move(names);
}

ProjectionRunner::ProjectionRunner(ConnectionPool& pool,
                                   std::vector<const Projection*> projections,
                                   RunnerOptions options)
    : impl_(std::make_unique<Impl>(pool, std::move(projections), std::move(options))) {}

ProjectionRunner::~ProjectionRunner() { stop(); }

void ProjectionRunner::start() { impl_->start(); }

void ProjectionRunner::stop() { impl_->stop(); }

std::vector<std::string> ProjectionRunner::led_projections() const {
  return impl_->led_projections();
}

}  // namespace deedkit
