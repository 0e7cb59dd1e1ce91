#pragma once

// Projections made for testing the runner.
//
// LedgerProjection writes one row per event it applies, keyed by event id with no ON
// CONFLICT: applying any event twice is a unique violation, which stops the projection and
// shows in its status. Its row count is therefore exactly the number of events applied.
// While `fail_on_poison` is set, an event of type "test.Poison" fails to apply. With
// `fail_batches_of_more_than_one`, any apply of two or more events fails (as a custom
// projection whose batched statement conflicts with itself would), while one at a time works.
//
// PreparingLedger writes the same rows through prepare and apply_prepared, and counts how
// the runner used them: whether each prepared batch was prepared on another thread than the
// one writing it (read ahead) and whether it was prepared for the very events written.
// While `fail_on_poison` is set, prepare fails on an event of type "test.Poison", and notes
// the thread it failed on.

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "deedkit/projections/projection.hpp"
#include "deedkit/projections/sql_array.hpp"

namespace deedkit::testing {

inline const std::string kHappened = "test.Happened";
inline const std::string kPoison = "test.Poison";

class LedgerProjection final : public Projection {
 public:
  LedgerProjection(std::string name, std::vector<std::string> types, int version = 1,
                   const std::atomic<bool>* fail_on_poison = nullptr,
                   bool fail_batches_of_more_than_one = false)
      : name_(std::move(name)),
        types_(std::move(types)),
        version_(version),
        fail_on_poison_(fail_on_poison),
        fail_batches_(fail_batches_of_more_than_one) {}

  std::string_view name() const override { return name_; }
  int version() const override { return version_; }
  std::vector<std::string> event_types() const override { return types_; }

  std::vector<ProjectionTable> tables() const override {
    return {{"ledger",
             "event_id uuid PRIMARY KEY, global_position bigint NOT NULL, "
             "stream_id text NOT NULL, version integer NOT NULL",
             {"(global_position)"}}};
  }

  // The view is named after the projection, so several ledgers can share a database.
  std::vector<ProjectionView> views() const override {
    return {{name_, "SELECT event_id, global_position, stream_id, version FROM {ledger}"}};
  }

  Result<void> apply(ApplyContext& context, EventBatch events) const override {
    if (fail_batches_ && events.size() > 1) {
      return fail(ErrorCode::kInvalidArgument, "batches of more than one event refused");
    }
    SqlArray ids, positions, streams, versions;
    for (const RecordedEvent* event : events) {
      if (fail_on_poison_ && fail_on_poison_->load() && event->event_type == kPoison) {
        return fail(ErrorCode::kInvalidArgument,
                    "poison event " + to_string(event->event_id) + " refused");
      }
      ids.add(event->event_id);
      positions.add(event->global_position);
      streams.add(event->stream_id);
      versions.add(static_cast<std::int64_t>(version_));
    }
    context.tx().exec_prepared(
        context.prepare("insert",
                        "INSERT INTO {ledger} SELECT * FROM unnest($1::uuid[], $2::int8[], "
                        "$3::text[], $4::int4[])"),
        ids.str(), positions.str(), streams.str(), versions.str());
    return {};
  }

 private:
  std::string name_;
  std::vector<std::string> types_;
  int version_;
  const std::atomic<bool>* fail_on_poison_;
  bool fail_batches_;
};

class PreparingLedger final : public Projection {
 public:
  PreparingLedger(std::string name, std::vector<std::string> types,
                  const std::atomic<bool>* fail_on_poison = nullptr)
      : name_(std::move(name)), types_(std::move(types)), fail_on_poison_(fail_on_poison) {}

  std::string_view name() const override { return name_; }
  int version() const override { return 1; }
  std::vector<std::string> event_types() const override { return types_; }

  std::vector<ProjectionTable> tables() const override {
    return {{"ledger", "event_id uuid PRIMARY KEY, global_position bigint NOT NULL", {}}};
  }
  std::vector<ProjectionView> views() const override {
    return {{name_, "SELECT event_id, global_position FROM {ledger}"}};
  }

  Result<void> apply(ApplyContext& context, EventBatch events) const override {
    ++plain_applies;
    auto prepared = prepare(events);
    if (!prepared) return std::unexpected(prepared.error());
    return apply_prepared(context, events, **prepared);
  }

  Result<std::unique_ptr<PreparedBatch>> prepare(EventBatch events) const override {
    auto batch = std::make_unique<Batch>();
    batch->prepared_on = std::this_thread::get_id();
    for (const RecordedEvent* event : events) {
      if (fail_on_poison_ && fail_on_poison_->load() && event->event_type == kPoison) {
        std::lock_guard lock(threads_mutex_);
        failed_on_.push_back(std::this_thread::get_id());
        return fail(ErrorCode::kInvalidArgument,
                    "poison event " + to_string(event->event_id) + " refused in prepare");
      }
      batch->event_ids.push_back(event->event_id);
      batch->ids.add(event->event_id);
      batch->positions.add(event->global_position);
    }
    return batch;
  }

  Result<void> apply_prepared(ApplyContext& context, EventBatch events,
                              PreparedBatch& prepared) const override {
    const auto& batch = static_cast<const Batch&>(prepared);
    if (batch.prepared_on != std::this_thread::get_id()) ++prepared_ahead;
    {
      std::lock_guard lock(threads_mutex_);
      written_on_.push_back(std::this_thread::get_id());
    }
    bool same_events = batch.event_ids.size() == events.size();
    for (std::size_t i = 0; same_events && i < events.size(); ++i) {
      same_events = batch.event_ids[i] == events[i]->event_id;
    }
    if (!same_events) ++mismatched;
    context.tx().exec_prepared(
        context.prepare("insert",
                        "INSERT INTO {ledger} SELECT * FROM unnest($1::uuid[], $2::int8[])"),
        batch.ids.str(), batch.positions.str());
    return {};
  }

  mutable std::atomic<int> plain_applies{0};   // apply called: nothing was prepared ahead
  mutable std::atomic<int> prepared_ahead{0};  // batches prepared on the read-ahead thread
  mutable std::atomic<int> mismatched{0};      // batches prepared for other events

  // How many failed prepares ran on a thread that never wrote a batch: the read-ahead's.
  int failed_ahead() const {
    std::lock_guard lock(threads_mutex_);
    int ahead = 0;
    for (const std::thread::id failed : failed_on_) {
      if (std::find(written_on_.begin(), written_on_.end(), failed) == written_on_.end()) {
        ++ahead;
      }
    }
    return ahead;
  }

 private:
  struct Batch final : PreparedBatch {
    std::thread::id prepared_on;
    std::vector<Uuid> event_ids;
    SqlArray ids, positions;
  };

  std::string name_;
  std::vector<std::string> types_;
  const std::atomic<bool>* fail_on_poison_;
  mutable std::mutex threads_mutex_;
  mutable std::vector<std::thread::id> failed_on_;   // guarded by threads_mutex_
  mutable std::vector<std::thread::id> written_on_;  // guarded by threads_mutex_
};

}  // namespace deedkit::testing
