// The runner's guarantees: nothing skipped while following concurrent writers, failures
// stop one projection at the failing event without holding back the others, retry and
// skip, one leader per projection with takeover, and version bumps rebuilt and switched.

#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "deedkit/eventstore/unit_of_work.hpp"
#include "event_factory.hpp"
#include "projection_fixture.hpp"
#include "test_database.hpp"
#include "test_projections.hpp"

namespace deedkit::testing {
namespace {

class RunnerTest : public ProjectionTest {
 protected:
  // Appends `count` events of `type`, each in a transaction and stream of its own.
  std::vector<RecordedEvent> append(int count, const std::string& type = kHappened) {
    std::vector<RecordedEvent> appended;
    for (int i = 0; i < count; ++i) {
      const std::string stream = "test-" + to_string(new_uuid());
      NewEvent event = make_event("payload", type);
      auto result = store().append(stream, ExpectedVersion::no_stream(), std::span(&event, 1));
      EXPECT_TRUE(result.has_value()) << result.error().to_string();
      auto stored = store().read_stream_forward(stream, 1, 1);
      EXPECT_TRUE(stored.has_value() && stored->size() == 1);
      if (stored && !stored->empty()) appended.push_back(stored->front());
    }
    return appended;
  }

  std::int64_t ledger_rows(const std::string& view) {
    return query_int("SELECT count(*) FROM deedkit_read." + view);
  }
};

TEST_F(RunnerTest, FollowsConcurrentWritersCommittingOutOfOrderWithoutSkipping) {
  const LedgerProjection ledger("ledger", {kHappened});
  const std::vector<const Projection*> projections{&ledger};
  ProjectionRunner runner(pool(), projections, fast_options());
  runner.start();

  // Writers append while the runner follows. Every tenth transaction of each writer stays
  // open until the others have committed more: it took its positions earlier but commits
  // later, which is exactly what a reader ordering by position alone would skip.
  std::atomic<int> committed{0};
  std::vector<std::thread> writers;
  for (int writer = 0; writer < 4; ++writer) {
    writers.emplace_back([&, writer] {
      for (int i = 0; i < 60; ++i) {
        auto unit = UnitOfWork::begin(pool());
        ASSERT_TRUE(unit.has_value()) << unit.error().to_string();
        auto events = make_events(1 + i % 3);
        for (auto& event : events) event.event_type = kHappened;
        auto appended = store().append(*unit, "test-" + to_string(new_uuid()),
                                       ExpectedVersion::no_stream(), events);
        ASSERT_TRUE(appended.has_value()) << appended.error().to_string();
        if (i % 10 == writer) {
          const int target = committed.load() + 5;
          const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
          while (committed.load() < target && std::chrono::steady_clock::now() < give_up) {
            std::this_thread::yield();
          }
        }
        ASSERT_TRUE(unit->commit().has_value());
        ++committed;
      }
    });
  }
  for (auto& writer : writers) writer.join();

  ASSERT_TRUE(wait_until_caught_up(projections));
  runner.stop();

  EXPECT_EQ(ledger_rows("ledger"), query_int("SELECT count(*) FROM deedkit.events"))
      << "every committed event appears in the ledger exactly once";
  EXPECT_EQ(query_int("SELECT count(*) FROM deedkit.events e WHERE NOT EXISTS "
                      "(SELECT 1 FROM deedkit_read.ledger l WHERE l.event_id = e.event_id)"),
            0)
      << "no event was skipped";
  const auto status = status_of("ledger");
  ASSERT_TRUE(status && status->live);
  EXPECT_EQ(status->live->events_applied, ledger_rows("ledger"));
}

// A batch that fails as a whole but whose events all apply one at a time: the runner applies
// them singly and must then go on reading right after them. (It once went on after the batch
// it had read ahead meanwhile, skipping that batch without a word.)
TEST_F(RunnerTest, ABatchThatFailsOnlyAsAWholeIsAppliedSinglyAndNothingAfterItIsSkipped) {
  const int batch_size = 8;
  append(batch_size * 5);
  const LedgerProjection singles("singles", {kHappened}, 1, nullptr, true);
  const std::vector<const Projection*> projections{&singles};
  ProjectionRunner runner(pool(), projections, fast_options(batch_size));
  runner.start();

  ASSERT_TRUE(wait_until_caught_up(projections));
  runner.stop();

  EXPECT_EQ(ledger_rows("singles"), query_int("SELECT count(*) FROM deedkit.events"))
      << "events read ahead while a batch was being isolated were skipped";
}

// Batches read ahead are prepared on the reading thread while the one before is written,
// and each prepared batch is written with exactly the events it was prepared from.
TEST_F(RunnerTest, BatchesReadAheadArePreparedThereAndWrittenWithTheirOwnEvents) {
  const int batch_size = 8;
  append(batch_size * 5);
  const PreparingLedger ledger("prepared", {kHappened});
  const std::vector<const Projection*> projections{&ledger};
  ProjectionRunner runner(pool(), projections, fast_options(batch_size));
  runner.start();

  ASSERT_TRUE(wait_until_caught_up(projections));
  runner.stop();

  EXPECT_EQ(ledger_rows("prepared"), batch_size * 5);
  EXPECT_EQ(ledger.plain_applies.load(), 0) << "a preparing projection's apply is not needed";
  EXPECT_GE(ledger.prepared_ahead.load(), 4) << "every batch after the first is read ahead";
  EXPECT_EQ(ledger.mismatched.load(), 0);
}

class FailingProjectionTest : public RunnerTest {
 protected:
  void SetUp() override {
    RunnerTest::SetUp();
    before_ = append(10);
    poison_ = append(1, kPoison).front();
    after_ = append(10);
  }

  // Starts the runner and waits until `picky` has stopped at the poison event and `steady`
  // has applied everything.
  void run_until_picky_fails(ProjectionRunner& runner) {
    runner.start();
    wait_for(
        [&] {
          const auto picky = status_of("picky");
          return picky && picky->live && picky->live->failure;
        },
        "picky to stop at the poison event");
    const std::vector<const Projection*> steady{&steady_};
    wait_until_caught_up(steady);
  }

  std::atomic<bool> poisoned_{true};
  const LedgerProjection picky_{"picky", {kHappened, kPoison}, 1, &poisoned_};
  const LedgerProjection steady_{"steady", {kHappened, kPoison}};
  const std::vector<const Projection*> both_{&picky_, &steady_};
  std::vector<RecordedEvent> before_;
  RecordedEvent poison_;
  std::vector<RecordedEvent> after_;
};

TEST_F(FailingProjectionTest, AFailedProjectionStopsAtTheEventWhileOthersKeepFollowing) {
  ProjectionRunner runner(pool(), both_, fast_options());
  run_until_picky_fails(runner);

  const auto picky = status_of("picky");
  ASSERT_TRUE(picky && picky->live && picky->live->failure);
  EXPECT_EQ(picky->state(), "failed");
  const FailedEvent& failure = *picky->live->failure;
  EXPECT_EQ(failure.event_id, poison_.event_id);
  EXPECT_EQ(failure.stream_id, poison_.stream_id);
  EXPECT_EQ(failure.event_type, kPoison);
  EXPECT_EQ(failure.position, poison_.log_position());
  EXPECT_NE(failure.error.find("refused"), std::string::npos) << failure.error;
  EXPECT_EQ(picky->live->position, before_.back().log_position())
      << "every event before the failing one is applied, even within its batch";
  EXPECT_EQ(ledger_rows("picky"), 10);
  EXPECT_EQ(ledger_rows("steady"), 21) << "a failed projection holds back no other";
}

TEST_F(FailingProjectionTest, APrepareThatFailsStopsTheProjectionAtTheEventLikeApply) {
  const PreparingLedger picky("picky", {kHappened, kPoison}, &poisoned_);
  ProjectionRunner runner(pool(), std::vector<const Projection*>{&picky, &steady_},
                          fast_options(4));
  run_until_picky_fails(runner);

  const auto status = status_of("picky");
  ASSERT_TRUE(status && status->live && status->live->failure);
  EXPECT_EQ(status->live->failure->event_id, poison_.event_id);
  EXPECT_NE(status->live->failure->error.find("refused in prepare"), std::string::npos)
      << status->live->failure->error;
  EXPECT_EQ(status->live->position, before_.back().log_position());
  EXPECT_EQ(ledger_rows("picky"), 10);
  EXPECT_GE(picky.failed_ahead(), 1) << "the batch holding the poison was read ahead";
}

TEST_F(FailingProjectionTest, RetryAppliesTheFailedEventAgain) {
  ProjectionRunner runner(pool(), both_, fast_options());
  run_until_picky_fails(runner);

  poisoned_ = false;
  const auto cleared = retry_projection(pool(), "picky");
  ASSERT_TRUE(cleared.has_value()) << cleared.error().to_string();
  EXPECT_EQ(*cleared, 1);

  ASSERT_TRUE(wait_until_caught_up(both_));
  EXPECT_EQ(ledger_rows("picky"), 21);
  EXPECT_EQ(query_int("SELECT count(*) FROM deedkit.projection_skips"), 0);
}

TEST_F(FailingProjectionTest, SkipRecordsTheEventAndMovesOnAndARebuildSkipsItAgain) {
  ProjectionRunner runner(pool(), both_, fast_options());
  run_until_picky_fails(runner);

  const auto skipped = skip_failed_event(pool(), "picky", "tester");
  ASSERT_TRUE(skipped.has_value()) << skipped.error().to_string();
  ASSERT_EQ(skipped->size(), 1u);
  EXPECT_EQ(skipped->front().event_id, poison_.event_id);

  ASSERT_TRUE(wait_until_caught_up(both_));
  EXPECT_EQ(ledger_rows("picky"), 20) << "everything but the skipped event is applied";
  EXPECT_EQ(query_value(database_uri(),
                        "SELECT event_id || ' ' || event_type || ' ' || skipped_by || ' ' || "
                        "global_position FROM deedkit.projection_skips"),
            to_string(poison_.event_id) + " " + kPoison + " tester " +
                std::to_string(poison_.global_position));
  const auto picky = status_of("picky");
  ASSERT_TRUE(picky && picky->live);
  EXPECT_EQ(picky->live->events_read, 21);
  EXPECT_EQ(picky->live->events_applied, 20);

  // The same version rebuilt skips the same event, so the new tables match the old.
  const auto rebuild = request_rebuild(pool(), picky_);
  ASSERT_TRUE(rebuild.has_value()) << rebuild.error().to_string();
  wait_for(
      [&] {
        const auto status = status_of("picky");
        return status && status->live && status->live->generation == rebuild->generation;
      },
      "the rebuild of picky to go live");
  EXPECT_EQ(ledger_rows("picky"), 20);
}

TEST_F(RunnerTest, OneRunnerLeadsEachProjectionAndAnotherTakesOverWhenItStops) {
  const LedgerProjection ledger("ledger", {kHappened});
  const std::vector<const Projection*> projections{&ledger};
  auto first = std::make_unique<ProjectionRunner>(pool(), projections, fast_options());
  ProjectionRunner second(pool(), projections, fast_options());
  first->start();
  second.start();
  append(30);

  ASSERT_TRUE(wait_for(
      [&] { return !first->led_projections().empty() || !second.led_projections().empty(); },
      "one runner to lead"));
  const bool first_leads = !first->led_projections().empty();
  EXPECT_NE(first_leads, !second.led_projections().empty())
      << "exactly one runner leads the projection";
  ASSERT_TRUE(wait_until_caught_up(projections));

  ProjectionRunner& follower = first_leads ? second : *first;
  if (first_leads) {
    first.reset();
  } else {
    second.stop();
  }
  append(30);
  ASSERT_TRUE(wait_for([&] { return !follower.led_projections().empty(); },
                       "the follower to take over"));
  ASSERT_TRUE(wait_until_caught_up(projections));
  EXPECT_EQ(ledger_rows("ledger"), 60) << "each event applied once across the handover";
}

TEST_F(RunnerTest, VersionBumpRebuildsIntoNewTablesAndSwitchesTheView) {
  append(25);
  const LedgerProjection version_one("ledger", {kHappened}, 1);
  const std::vector<const Projection*> first{&version_one};
  {
    ProjectionRunner runner(pool(), first, fast_options());
    runner.start();
    ASSERT_TRUE(wait_until_caught_up(first));
  }
  EXPECT_EQ(query_int("SELECT count(*) FROM deedkit_read.ledger WHERE version = 1"), 25);

  append(5);
  const LedgerProjection version_two("ledger", {kHappened}, 2);
  const std::vector<const Projection*> second{&version_two};
  ProjectionRunner runner(pool(), second, fast_options());
  runner.start();
  ASSERT_TRUE(wait_for(
      [&] {
        const auto status = status_of("ledger");
        return status && status->live && status->live->version == 2 && !status->building;
      },
      "version 2 to go live"));
  ASSERT_TRUE(wait_until_caught_up(second));

  EXPECT_EQ(query_int("SELECT count(*) FROM deedkit_read.ledger WHERE version = 2"), 30)
      << "the view reads the new tables, built from the start of the log";
  EXPECT_TRUE(wait_for(
      [&] {
        return query_int("SELECT count(*) FROM pg_tables WHERE schemaname = "
                         "'deedkit_read_data' AND tablename LIKE 'ledger_g%'") == 1;
      },
      "the old generation's table to be dropped"));
}

}  // namespace
}  // namespace deedkit::testing
