// Rebuilds under load: writers keep appending and readers keep querying the views while
// the projections are replayed into new tables. Readers must never see a table that is
// empty or half built, and the tables that go live must equal the fold of the log.

#include <atomic>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <pqxx/connection>
#include <pqxx/transaction>

#include "deedkit/projections/real_estate.hpp"
#include "projection_fixture.hpp"
#include "real_estate_fold.hpp"
#include "real_estate_script.hpp"
#include "test_projections.hpp"
#include "test_database.hpp"

namespace deedkit::testing {
namespace {

class RebuildTest : public ProjectionTest {
 protected:
  void write_units(RealEstateScript& script, int units) {
    for (int i = 0; i < units; ++i) {
      const std::string asset =
          script.register_asset(fresh_id(), "Unit " + std::to_string(i), "Tilburg", 90000 + i);
      script.list(asset, 95000 + i);
      const std::string lease = script.draft_lease(asset, fresh_id(), 800, "2022-01-01",
                                                   "2022-06-30");
      script.sign(lease);
      script.pay(lease, "2022-01", 800);
    }
  }

  realestate::AssetsProjection assets_;
  realestate::RentRollProjection rent_roll_;
  const std::vector<const Projection*> all_{&assets_, &rent_roll_};
};

TEST_F(RebuildTest, RebuildWhileWritersAppendAndReadersQueryNeverShowsAHalfBuiltTable) {
  RealEstateScript script(store());
  write_units(script, 40);
  ProjectionRunner runner(pool(), all_, fast_options(5));
  runner.start();
  ASSERT_TRUE(wait_until_caught_up(all_));
  const std::int64_t assets_before = query_int("SELECT count(*) FROM deedkit_read.asset_summary");
  const std::int64_t rent_before = query_int("SELECT count(*) FROM deedkit_read.rent_roll");
  ASSERT_EQ(assets_before, 40);

  // Rows are only ever added by these writers, so any count below the one before the
  // rebuild is a reader looking at tables that are not complete. Within one snapshot the
  // portfolio must also agree with the asset table it is derived from.
  std::atomic<bool> running{true};
  std::atomic<int> queries{0};
  std::atomic<int> violations{0};
  std::string first_violation;
  std::mutex violation_mutex;
  auto report = [&](const std::string& what) {
    std::lock_guard lock(violation_mutex);
    if (violations++ == 0) first_violation = what;
  };
  std::vector<std::thread> readers;
  for (int reader = 0; reader < 2; ++reader) {
    readers.emplace_back([&] {
      pqxx::connection connection(database_uri());
      while (running.load()) {
        pqxx::read_transaction tx(connection);
        const pqxx::row row = tx.exec1(
            "SELECT (SELECT count(*) FROM deedkit_read.asset_summary), "
            "(SELECT count(*) FROM deedkit_read.rent_roll), "
            "(SELECT count(*) FROM deedkit_read.asset_summary WHERE status <> 'ARCHIVED') = "
            "(SELECT coalesce(sum(asset_count), 0) FROM deedkit_read.portfolio)");
        if (row[0].as<std::int64_t>() < assets_before) {
          report("asset_summary had " + std::string(row[0].c_str()) + " rows");
        }
        if (row[1].as<std::int64_t>() < rent_before) {
          report("rent_roll had " + std::string(row[1].c_str()) + " rows");
        }
        if (!row[2].as<bool>()) report("portfolio disagreed with asset_summary");
        ++queries;
      }
    });
  }
  // Bounded, so the rebuild can catch up however slow the machine: 150 units are ~750
  // events, several batches' worth arriving while the new tables fill.
  std::thread writer([&] {
    RealEstateScript writing(store());
    for (int unit = 0; unit < 150 && running.load(); ++unit) write_units(writing, 1);
  });

  const auto assets_rebuild = request_rebuild(pool(), assets_);
  const auto rent_rebuild = request_rebuild(pool(), rent_roll_);
  ASSERT_TRUE(assets_rebuild.has_value() && rent_rebuild.has_value());
  const bool switched = wait_for(
      [&] {
        const auto assets = status_of("assets");
        const auto rent = status_of("rent_roll");
        return assets && assets->live && assets->live->generation == assets_rebuild->generation &&
               rent && rent->live && rent->live->generation == rent_rebuild->generation;
      },
      "both rebuilds to go live");

  running = false;
  writer.join();
  for (auto& reader : readers) reader.join();
  ASSERT_TRUE(switched);
  ASSERT_TRUE(wait_until_caught_up(all_));
  runner.stop();

  EXPECT_EQ(violations.load(), 0) << "first violation: " << first_violation;
  EXPECT_GT(queries.load(), 0);
  const LogFold fold = fold_log(store(), database_today(database_uri()));
  expect_same_models(fold.models, read_views(database_uri()));
  EXPECT_TRUE(wait_for(
      [&] {
        return query_int("SELECT count(*) FROM pg_tables WHERE schemaname = "
                         "'deedkit_read_data'") == 3;
      },
      "the replaced tables to be dropped, leaving asset_summary, portfolio and rent_roll"));
}

TEST_F(RebuildTest, ARebuildFillsItsTablesWithoutReadIndexesAndBuildsThemBeforeTheSwitch) {
  RealEstateScript script(store());
  write_units(script, 10);
  const std::vector<const Projection*> assets_only{&assets_};
  ProjectionRunner first_run(pool(), assets_only, fast_options(5));
  first_run.start();
  ASSERT_TRUE(wait_until_caught_up(assets_only));
  first_run.stop();
  const auto read_indexes_of = [&](int generation) {
    return query_int("SELECT count(*) FROM pg_indexes WHERE schemaname = 'deedkit_read_data' "
                     "AND tablename = 'asset_summary_g" + std::to_string(generation) +
                     "' AND indexname <> 'asset_summary_g" + std::to_string(generation) +
                     "_pkey'");
  };

  const auto rebuild = request_rebuild(pool(), assets_);
  ASSERT_TRUE(rebuild.has_value());
  const std::int64_t while_building = read_indexes_of(rebuild->generation);
  ProjectionRunner runner(pool(), assets_only, fast_options(5));
  runner.start();
  const bool switched = wait_for(
      [&] {
        const auto status = status_of("assets");
        return status && status->live && status->live->generation == rebuild->generation;
      },
      "the rebuild to go live");
  runner.stop();

  ASSERT_TRUE(switched);
  EXPECT_EQ(while_building, 0) << "a building generation starts with its keys only";
  EXPECT_EQ(read_indexes_of(rebuild->generation), 3) << "owner and the two listing indexes";
  EXPECT_EQ(query_int("SELECT count(*) FROM deedkit_read.asset_summary"), 10);
}

// A ledger whose read index is given: a new version may bring one PostgreSQL refuses.
class IndexedLedger final : public Projection {
 public:
  IndexedLedger(int version, std::string index)
      : ledger_("indexed", {kHappened}, version), index_(std::move(index)) {}

  std::string_view name() const override { return ledger_.name(); }
  int version() const override { return ledger_.version(); }
  std::vector<std::string> event_types() const override { return ledger_.event_types(); }
  std::vector<ProjectionTable> tables() const override {
    auto tables = ledger_.tables();
    tables[0].indexes = {index_};
    return tables;
  }
  std::vector<ProjectionView> views() const override { return ledger_.views(); }
  Result<void> apply(ApplyContext& context, EventBatch events) const override {
    return ledger_.apply(context, events);
  }

 private:
  LedgerProjection ledger_;
  std::string index_;
};

TEST_F(RebuildTest, ARebuildWithAReadIndexPostgreSqlRefusesFailsWhenRequested) {
  const IndexedLedger good(1, "(global_position)");
  const IndexedLedger broken(2, "(no_such_column)");
  const std::vector<const Projection*> first{&good};
  ProjectionRunner runner(pool(), first, fast_options(5));
  runner.start();
  ASSERT_TRUE(wait_until_caught_up(first));
  runner.stop();

  const auto rebuild = request_rebuild(pool(), broken);

  ASSERT_FALSE(rebuild.has_value()) << "the broken index must be refused at the request";
  EXPECT_NE(rebuild.error().message.find("no_such_column"), std::string::npos)
      << rebuild.error().to_string();
}

}  // namespace
}  // namespace deedkit::testing
