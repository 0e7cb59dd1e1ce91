// Processes that die at any point: inside a batch (before or after its commit) through a
// fault seam in a child process, and the real 'deedkit projections run' killed with SIGKILL
// while writers append. After a restart every read model equals the fold of the log, and
// no event took effect twice.

#include <atomic>
#include <csignal>
#include <thread>

#include <gtest/gtest.h>

#include "deedkit/projections/real_estate.hpp"
#include "projection_fixture.hpp"
#include "real_estate_fold.hpp"
#include "real_estate_script.hpp"
#include "test_database.hpp"

namespace deedkit::testing {
namespace {

constexpr int kCrashed = 42;

class CrashTest : public ProjectionTest {
 protected:
  // A history of `units` assets, each with a lease paid for a few months.
  void write_history(RealEstateScript& script, int units) {
    for (int i = 0; i < units; ++i) {
      const std::string owner = fresh_id();
      const std::string asset =
          script.register_asset(owner, "Unit " + std::to_string(i), "Gouda", 100000 + i);
      if (i % 2 == 0) script.list(asset, 120000 + i);
      if (i % 4 == 0) script.accept_offer(asset, fresh_id(), 115000);
      if (i % 8 == 0) script.complete_sale(asset);
      const std::string lease = script.draft_lease(asset, fresh_id(), 1000 + i, "2021-01-01",
                                                   "2021-12-31");
      script.sign(lease);
      script.pay(lease, "2021-01", 1000 + i);
      script.pay(lease, "2021-02", 1000 + i);
      if (i % 3 == 0) script.terminate(lease, "2021-05-15");
    }
  }

  int run_child(const std::string& crash_at, int crash_after, int crash_generation = 0) {
    std::vector<std::string> argv{PROJECTION_CRASH_CHILD, "--database", database_uri(),
                                  "--batch-size", "7"};
    if (!crash_at.empty()) {
      argv.insert(argv.end(), {"--crash-at", crash_at, "--crash-after",
                               std::to_string(crash_after), "--crash-generation",
                               std::to_string(crash_generation)});
    }
    return wait_process(spawn_process(argv));
  }

  // The ledger holds one row per event applied, under a primary key: its size must match
  // its own checkpoint counter at every moment, crash or not. Both are read in one
  // statement, under one snapshot: a dead child's last COMMIT may still be completing on
  // the server, and two reads could fall on either side of it.
  void expect_ledger_matches_its_checkpoint() {
    const auto ledger = status_of("ledger");
    if (!ledger || !ledger->live) return;
    EXPECT_EQ(query_value(database_uri(),
                          "SELECT (SELECT count(*) FROM deedkit_read.ledger) = events_applied "
                          "FROM deedkit.projection_generations "
                          "WHERE projection = 'ledger' AND role = 'live'"),
              "t")
        << "the ledger's rows and its checkpoint committed together";
  }

  void expect_everything_applied_once() {
    const LogFold fold = fold_log(store(), database_today(database_uri()));
    expect_same_models(fold.models, read_views(database_uri()));
    EXPECT_EQ(query_int("SELECT count(*) FROM deedkit_read.ledger"),
              fold.asset_events + fold.lease_events);
    const auto assets = status_of("assets");
    const auto rent_roll = status_of("rent_roll");
    ASSERT_TRUE(assets && assets->live && rent_roll && rent_roll->live);
    EXPECT_EQ(assets->live->events_applied, fold.asset_events);
    EXPECT_EQ(rent_roll->live->events_applied, fold.lease_events);
    EXPECT_EQ(assets->live->events_read, fold.events);
  }
};

TEST_F(CrashTest, CrashAtAnyPointOfABatchLeavesEveryEventAppliedOnce) {
  RealEstateScript script(store());
  write_history(script, 24);

  for (const char* point : {"read", "applied", "committed"}) {
    for (const int after : {1, 4, 9}) {
      const int exit_code = run_child(point, after);
      EXPECT_TRUE(exit_code == kCrashed || exit_code == 0)
          << "child crashing at " << point << " after " << after << " ended with "
          << exit_code;
      expect_ledger_matches_its_checkpoint();
    }
  }
  ASSERT_EQ(run_child("", 0), 0) << "a run without faults catches up";

  expect_everything_applied_once();
}

TEST_F(CrashTest, InterruptedRebuildResumesFromItsOwnCheckpoint) {
  RealEstateScript script(store());
  write_history(script, 12);
  ASSERT_EQ(run_child("", 0), 0);

  const realestate::AssetsProjection assets;
  const auto rebuild = request_rebuild(pool(), assets);
  ASSERT_TRUE(rebuild.has_value()) << rebuild.error().to_string();
  ASSERT_EQ(run_child("committed", 3, rebuild->generation), kCrashed);

  const auto interrupted = status_of("assets");
  ASSERT_TRUE(interrupted && interrupted->building);
  EXPECT_EQ(interrupted->building->generation, rebuild->generation);
  EXPECT_EQ(interrupted->building->events_read, 21) << "three batches of seven committed";

  const auto resumed = request_rebuild(pool(), assets);
  ASSERT_TRUE(resumed.has_value()) << resumed.error().to_string();
  EXPECT_TRUE(resumed->resumed);
  EXPECT_EQ(resumed->generation, rebuild->generation);
  ASSERT_EQ(run_child("", 0), 0);

  const auto finished = status_of("assets");
  ASSERT_TRUE(finished && finished->live);
  EXPECT_EQ(finished->live->generation, rebuild->generation);
  expect_everything_applied_once();
}

TEST_F(CrashTest, SigkilledRunnerRestartsWithoutApplyingAnyEventTwice) {
  // The writers keep appending the whole time, so kills land at arbitrary points.
  std::atomic<bool> writing{true};
  std::thread writer([&] {
    RealEstateScript script(store());
    while (writing.load()) write_history(script, 1);
  });
  const std::vector<std::string> run{DEEDKIT_CLI, "--database", database_uri(), "--log-level",
                                     "warn", "projections", "run", "--batch-size", "5"};

  std::int64_t seen = 0;
  for (int kill = 0; kill < 4; ++kill) {
    const pid_t runner = spawn_process(run);
    ASSERT_GT(runner, 0);
    wait_for(
        [&] {
          const auto assets = status_of("assets");
          return assets && assets->live && assets->live->events_read > seen;
        },
        "the runner to make progress");
    ::kill(runner, SIGKILL);
    EXPECT_EQ(wait_process(runner), 128 + SIGKILL);
    seen = status_of("assets")->live->events_read;
  }
  writing = false;
  writer.join();

  const pid_t runner = spawn_process(run);
  realestate::AssetsProjection assets;
  realestate::RentRollProjection rent_roll;
  const std::vector<const Projection*> projections{&assets, &rent_roll};
  EXPECT_TRUE(wait_until_caught_up(projections));
  ::kill(runner, SIGTERM);
  EXPECT_EQ(wait_process(runner), 0) << "SIGTERM stops the runner cleanly";

  const LogFold fold = fold_log(store(), database_today(database_uri()));
  expect_same_models(fold.models, read_views(database_uri()));
  EXPECT_EQ(status_of("assets")->live->events_applied, fold.asset_events);
  EXPECT_EQ(status_of("rent_roll")->live->events_applied, fold.lease_events);
}

}  // namespace
}  // namespace deedkit::testing
