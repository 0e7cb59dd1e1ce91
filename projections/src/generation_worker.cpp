#include "internal/generation_worker.hpp"

#include <algorithm>
#include <condition_variable>
#include <mutex>

#include "internal/generation_store.hpp"
#include "internal/pause.hpp"
#include "internal/projections_log.hpp"

namespace deedkit::internal {

namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Errors of the database itself rather than of the event: applying the same batch again
// later can succeed.
bool is_transient(const Error& error) {
  switch (error.code) {
    case ErrorCode::kUnavailable:
    case ErrorCode::kAborted:
    case ErrorCode::kOutcomeUnknown:
    case ErrorCode::kDeadlineExceeded:
      return true;
    default:
      return false;
  }
}

constexpr milliseconds kFirstBackoff{100};
constexpr auto kWarningInterval = std::chrono::seconds(10);
constexpr auto kProgressInterval = std::chrono::seconds(10);
// Waiting for an empty log is bounded too, in case a wake-up is ever missed.
constexpr milliseconds kIdleRecheck{1000};
// How long the old tables may wait for their last readers before DROP gives up for now.
constexpr int kDropLockTimeoutMs = 1000;

double seconds_since(Timestamp start) {
  return std::chrono::duration<double>(now_utc() - start).count();
}

}  // namespace

GenerationWorker::GenerationWorker(const WorkerEnvironment& environment,
                                   const Projection& projection, int generation)
    : environment_(environment),
      projection_(projection),
      name_(projection.name()),
      generation_(generation),
      table_specs_(projection.tables()),
      tables_(generation, table_specs_),
      statement_prefix_("dkp_" + name_ + "_g" + std::to_string(generation) + "_") {
  for (std::string& type : projection.event_types()) handled_types_.insert(std::move(type));
}

void GenerationWorker::run(const std::stop_token& stop) {
  while (!stop.stop_requested()) {
    if (!loaded_ && !reload(stop)) {
      if (finished_.load()) break;
      continue;
    }
    if (failed_) {
      // Stopped at an event until an operator retries or skips it; either changes the row.
      pause_unless_stopped(environment_.options.leadership_interval, stop);
      loaded_ = false;
      continue;
    }

    const std::uint64_t seen = environment_.wake.epoch();
    auto batch = next_batch();
    if (!batch) {
      after_setback({Outcome::kTransient, batch.error()}, stop);
      continue;
    }
    if (!batch->events.empty()) {
      handle_batch(*batch, stop);
      continue;
    }

    if (role_ == kBuilding && !batch->held_back && attempt_switch(stop)) continue;
    // Held back by an open transaction: its end moves the snapshot horizon, which the tip
    // watch sees, so the same wake-up serves both cases.
    environment_.wake.wait_past(seen, kIdleRecheck, stop);
  }
  drop_prefetch();
  finished_.store(true);
}

bool GenerationWorker::reload(const std::stop_token& stop) {
  drop_prefetch();
  auto row = load_generation(environment_.pool, name_, generation_);
  if (!row) {
    after_setback({Outcome::kTransient, row.error()}, stop);
    return false;
  }
  if (!*row || (*row)->role == kRetired) {
    projections_log().debug("projection {} generation {}: retired; worker ends", name_,
                            generation_);
    finished_.store(true);
    return false;
  }

  auto skipped = load_skips(environment_.pool, name_, (*row)->version);
  if (!skipped) {
    after_setback({Outcome::kTransient, skipped.error()}, stop);
    return false;
  }
  skipped_event_ids_ = std::move(*skipped);
  role_ = (*row)->role;
  position_ = (*row)->position;
  failed_ = (*row)->failure.has_value();
  reader_.emplace(environment_.store, position_,
                  GlobalLogReaderOptions{.batch_size = environment_.options.batch_size});
  loaded_ = true;
  return true;
}

Result<GlobalLogBatch> GenerationWorker::next_batch() {
  prepared_ahead_.reset();
  if (!prefetched_.valid()) return reader_->next_batch();

  ReadAhead ahead = prefetched_.get();
  if (ahead.batch) prepared_ahead_ = std::move(ahead.prepared);
  return std::move(ahead.batch);
}

void GenerationWorker::prefetch() {
  // While this batch is applied, another connection reads the next one and the projection
  // prepares it: on two cores the read, the client's work and the write then overlap
  // instead of taking turns. The batch's events stay where they are when the result is
  // moved out of the future, so the pointers prepare saw stay valid.
  prefetched_ = std::async(std::launch::async, [this] {
    ReadAhead ahead{reader_->next_batch(), std::unique_ptr<PreparedBatch>()};
    if (ahead.batch && !ahead.batch->events.empty()) {
      const std::vector<const RecordedEvent*> handled = handled_events(ahead.batch->events);
      if (!handled.empty()) ahead.prepared = prepare(handled);
    }
    return ahead;
  });
}

void GenerationWorker::drop_prefetch() {
  if (prefetched_.valid()) (void)prefetched_.get();
}

void GenerationWorker::handle_batch(const GlobalLogBatch& batch, const std::stop_token& stop) {
  if (static_cast<int>(batch.events.size()) >= environment_.options.batch_size) prefetch();
  if (environment_.options.fault_hook) {
    environment_.options.fault_hook(BatchPoint::kRead, name_, generation_);
  }

  const SliceResult result =
      commit_slice(batch.events, batch.next, prepared_ahead_ ? &*prepared_ahead_ : nullptr);
  if (result.outcome == Outcome::kCommitted) {
    position_ = batch.next;
    backoff_ = milliseconds::zero();
    events_read_since_log_ += static_cast<std::int64_t>(batch.events.size());
    log_progress();
    return;
  }

  drop_prefetch();
  if (result.outcome == Outcome::kFailed) {
    projections_log().debug(
        "projection {} generation {}: batch of {} events after {} failed ({}); applying "
        "them one at a time to find the event",
        name_, generation_, batch.events.size(), position_.to_string(),
        result.error.to_string());
    isolate_failure(batch, stop);
    return;
  }
  after_setback(result, stop);
}

GenerationWorker::SliceResult GenerationWorker::commit_slice(
    std::span<const RecordedEvent> events, LogPosition to, Prepared* prepared) {
  auto unit = UnitOfWork::begin(environment_.pool);
  if (!unit) return {Outcome::kTransient, unit.error()};

  SliceResult written = write_slice(*unit, events, to, prepared);
  if (written.outcome != Outcome::kCommitted) return written;
  if (environment_.options.fault_hook) {
    environment_.options.fault_hook(BatchPoint::kApplied, name_, generation_);
  }

  if (auto committed = unit->commit(); !committed) {
    const Error& error = committed.error();
    return {is_transient(error) ? Outcome::kTransient : Outcome::kFailed, error};
  }
  if (environment_.options.fault_hook) {
    environment_.options.fault_hook(BatchPoint::kCommitted, name_, generation_);
  }
  return {};
}

GenerationWorker::SliceResult GenerationWorker::write_slice(UnitOfWork& unit,
                                                            std::span<const RecordedEvent> events,
                                                            LogPosition to,
                                                            Prepared* prepared) {
  const std::vector<const RecordedEvent*> handled = handled_events(events);

  try {
    // Losing the last commits in a server crash is harmless here: the checkpoint is lost
    // with the writes, and the events are applied again. Not waiting for the WAL flush
    // lets a rebuild run at the speed of the disk's bandwidth, not its latency.
    // Apply statements find their rows by key. A table that grew from empty has no
    // statistics yet, and the plan a connection caches for it may have been made while it
    // was tiny: without this, PostgreSQL chose sequential scans that read the whole table
    // in every batch (millions of rows per batch on a 1M-event rebuild of rent_roll).
    unit.tx().exec("SET LOCAL synchronous_commit = off; SET LOCAL enable_seqscan = off");
  } catch (const std::exception&) {
    const Error error = unit.fail_with_current_exception("begin a batch of " + name_);
    return {Outcome::kTransient, error};
  }

  // The checkpoint moves first: its row lock makes any other writer of this generation wait
  // here, before it has written anything, and then find the checkpoint moved.
  auto advanced = advance_checkpoint(unit, name_, generation_, position_, to,
                                     static_cast<std::int64_t>(events.size()),
                                     static_cast<std::int64_t>(handled.size()));
  if (!advanced) {
    return {is_transient(advanced.error()) ? Outcome::kTransient : Outcome::kFailed,
            advanced.error()};
  }
  if (!*advanced) {
    return {Outcome::kLost, Error{ErrorCode::kConflict,
                                  "the checkpoint of " + name_ + " generation " +
                                      std::to_string(generation_) + " is no longer at " +
                                      position_.to_string()}};
  }
  if (handled.empty()) return {};

  Prepared prepared_here;
  if (prepared == nullptr) {
    prepared_here = prepare(handled);
    prepared = &prepared_here;
  }
  Result<void> applied;
  try {
    ApplyContext context(unit.tx(), unit.lease(), tables_, statement_prefix_);
    if (!*prepared) {
      applied = std::unexpected(prepared->error());
    } else if (**prepared) {
      applied = projection_.apply_prepared(context, handled, ***prepared);
    } else {
      applied = projection_.apply(context, handled);
    }
  } catch (const std::exception&) {
    applied = std::unexpected(unit.fail_with_current_exception(
        "apply " + std::to_string(handled.size()) + " events to " + name_));
  }
  if (!applied) {
    unit.poison(applied.error().message);
    const Error& error = applied.error();
    return {is_transient(error) ? Outcome::kTransient : Outcome::kFailed, error};
  }
  return {};
}

void GenerationWorker::isolate_failure(const GlobalLogBatch& batch, const std::stop_token& stop) {
  const std::vector<RecordedEvent>& events = batch.events;
  // Each slice starts at one event and takes along the events after it that the projection
  // passes over, so it holds at most one event that writes, and that one comes first.
  std::size_t begin = 0;
  while (begin < events.size()) {
    std::size_t end = begin + 1;
    while (end < events.size() && !applies(events[end])) ++end;

    const auto slice = std::span(events).subspan(begin, end - begin);
    const LogPosition to = slice.back().log_position();
    const SliceResult result = commit_slice(slice, to);
    if (result.outcome == Outcome::kCommitted) {
      position_ = to;
      begin = end;
      continue;
    }
    if (result.outcome == Outcome::kFailed && applies(events[begin])) {
      record_failure(events[begin], result.error);
      return;
    }
    after_setback(result, stop);
    return;
  }
  projections_log().warn(
      "projection {} generation {}: a batch of {} events failed as a whole but every event "
      "applied on its own; continuing at {}",
      name_, generation_, events.size(), position_.to_string());
  // The reader went on past the batch read ahead (and dropped) while this one failed; read
  // again from the checkpoint, or that batch would be skipped.
  loaded_ = false;
}

void GenerationWorker::record_failure(const RecordedEvent& event, const Error& error) {
  loaded_ = false;
  auto recorded = internal::record_failure(environment_.pool, name_, generation_, position_,
                                           event, error);
  if (!recorded) {
    // The event fails again when the batch is retried, and is recorded then.
    projections_log().warn("projection {} generation {}: could not record the failure of "
                           "event {}: {}",
                           name_, generation_, to_string(event.event_id),
                           recorded.error().to_string());
    return;
  }
  if (!*recorded) return;  // the checkpoint moved meanwhile: another runner took over

  projections_log().error(
      "projection {} generation {} stopped at event {} (stream {} version {}, type {}, "
      "position {}): {}. Fix the cause and run 'deedkit projections retry {}', or skip the "
      "event with 'deedkit projections skip {}'",
      name_, generation_, to_string(event.event_id), event.stream_id, event.stream_version,
      event.event_type, event.log_position().to_string(), error.to_string(), name_, name_);
}

void GenerationWorker::after_setback(const SliceResult& result, const std::stop_token& stop) {
  // Whatever happened, the database holds the truth: reload the checkpoint from it before
  // reading on (after an outcome-unknown commit, that tells whether the batch committed).
  loaded_ = false;
  if (result.outcome == Outcome::kLost) {
    projections_log().info("projection {} generation {}: {}; reloading", name_, generation_,
                           result.error.message);
    return;
  }

  backoff_ = std::clamp(backoff_ * 2, kFirstBackoff, environment_.options.max_retry_backoff);
  const auto now = steady_clock::now();
  if (now - last_setback_warning_ >= kWarningInterval) {
    last_setback_warning_ = now;
    projections_log().warn("projection {} generation {}: {}; retrying in {} ms", name_,
                           generation_, result.error.to_string(), backoff_.count());
  }
  pause_unless_stopped(backoff_, stop);
}

bool GenerationWorker::attempt_switch(const std::stop_token& stop) {
  drop_prefetch();
  if (!read_indexes_ready_) {
    // Caught up: build the read indexes now, outside the switch, then catch up on what
    // arrived meanwhile before switching.
    const auto started = steady_clock::now();
    if (auto built = create_read_indexes(environment_.pool, projection_, generation_); !built) {
      after_setback({Outcome::kTransient, built.error()}, stop);
      return false;
    }
    read_indexes_ready_ = true;
    projections_log().info(
        "projection {} generation {}: caught up at {}; read indexes built in {:.1f} s", name_,
        generation_, position_.to_string(),
        std::chrono::duration<double>(steady_clock::now() - started).count());
    return true;
  }

  auto unit = UnitOfWork::begin(environment_.pool);
  if (!unit) {
    after_setback({Outcome::kTransient, unit.error()}, stop);
    return false;
  }

  auto locked = lock_generations(*unit, name_);
  if (!locked) {
    after_setback({Outcome::kTransient, locked.error()}, stop);
    return false;
  }
  const GenerationRow* self = nullptr;
  const GenerationRow* live = nullptr;
  for (const GenerationRow& row : *locked) {
    if (row.generation == generation_) self = &row;
    if (row.role == kLive) live = &row;
  }
  if (!self || self->role != kBuilding || self->failure || self->position != position_) {
    loaded_ = false;
    return true;
  }

  // The live generation cannot move while its row is locked, and this read starts after
  // the lock was granted: whatever the live tables include, this read returns too (the
  // snapshot horizon only moves forward). Applying it here, in the switching transaction,
  // means the new tables are never behind the old ones at the moment readers move over.
  auto batch = reader_->next_batch();
  if (!batch) {
    after_setback({Outcome::kTransient, batch.error()}, stop);
    return false;
  }
  LogPosition reached = position_;
  if (!batch->events.empty()) {
    if (write_slice(*unit, batch->events, batch->next, nullptr).outcome != Outcome::kCommitted) {
      // Rolled back; the ordinary path applies these events and deals with any failure.
      loaded_ = false;
      return true;
    }
    reached = batch->next;
  }
  const bool more = static_cast<int>(batch->events.size()) >= environment_.options.batch_size;
  const bool behind = live && live->position > reached;
  if (!more && !behind) {
    const std::optional<int> retired =
        live ? std::optional<int>(live->generation) : std::nullopt;
    if (auto made = make_live(*unit, projection_, generation_, retired); !made) {
      after_setback({Outcome::kTransient, made.error()}, stop);
      return false;
    }
  }
  if (auto committed = unit->commit(); !committed) {
    after_setback({Outcome::kTransient, committed.error()}, stop);
    return false;
  }
  position_ = reached;
  if (more || behind) return true;

  role_ = std::string(kLive);
  projections_log().info(
      "projection {}: rebuild finished; generation {} (version {}) is live at {} after "
      "reading {} events in {:.1f} s{}",
      name_, generation_, self->version, reached.to_string(),
      self->events_read + static_cast<std::int64_t>(batch->events.size()),
      seconds_since(self->created_at),
      live ? "; generation " + std::to_string(live->generation) + " retired" : "");
  auto dropped = drop_retired(environment_.pool, name_, kDropLockTimeoutMs);
  if (!dropped) {
    projections_log().warn("projection {}: dropping retired tables failed ({}); retrying later",
                           name_, dropped.error().to_string());
  }
  return true;
}

void GenerationWorker::log_progress() {
  const auto now = steady_clock::now();
  if (last_progress_log_ == steady_clock::time_point{}) last_progress_log_ = now;
  const auto elapsed = now - last_progress_log_;
  if (elapsed < kProgressInterval) return;

  const double rate = static_cast<double>(events_read_since_log_) /
                      std::chrono::duration<double>(elapsed).count();
  // A rebuild or a first catch-up is worth a lifecycle line; a follower's pace is not.
  const bool catching_up = role_ == kBuilding || rate >= 1000;
  projections_log().log(catching_up ? spdlog::level::info : spdlog::level::debug,
                        "projection {} generation {} ({}): at {}, {:.0f} events/s", name_,
                        generation_, role_, position_.to_string(), rate);
  last_progress_log_ = now;
  events_read_since_log_ = 0;
}

bool GenerationWorker::applies(const RecordedEvent& event) const {
  if (!handled_types_.contains(event.event_type)) return false;
  return skipped_event_ids_.empty() || !skipped_event_ids_.contains(to_string(event.event_id));
}

std::vector<const RecordedEvent*> GenerationWorker::handled_events(
    std::span<const RecordedEvent> events) const {
  std::vector<const RecordedEvent*> handled;
  handled.reserve(events.size());
  for (const RecordedEvent& event : events) {
    if (applies(event)) handled.push_back(&event);
  }
  return handled;
}

GenerationWorker::Prepared GenerationWorker::prepare(EventBatch handled) const {
  // It may run on the read-ahead thread, where an exception would surface only when the
  // batch is taken: turn it into the batch's error here.
  try {
    return projection_.prepare(handled);
  } catch (const std::exception& error) {
    return fail(ErrorCode::kInternal, "prepare " + std::to_string(handled.size()) +
                                          " events of " + name_ + ": " + error.what());
  }
}

}  // namespace deedkit::internal
