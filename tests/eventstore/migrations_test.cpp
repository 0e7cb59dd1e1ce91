#include <future>

#include <gtest/gtest.h>

#include "deedkit/eventstore/migrations.hpp"
#include "test_database.hpp"

namespace deedkit::testing {
namespace {

// Each test starts from an empty database of its own.
class MigrationsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    label_ = std::string("mig_") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    uri_ = create_database(label_);
  }
  void TearDown() override { drop_database(label_); }

  std::string label_;
  std::string uri_;
};

TEST_F(MigrationsTest, AppliesEveryMigrationOnceAndSkipsThemOnARerun) {
  const auto first = migrate(uri_);
  const auto second = migrate(uri_);

  ASSERT_TRUE(first.has_value()) << first.error().to_string();
  EXPECT_EQ(first->applied.size(), bundled_migrations().size());
  EXPECT_EQ(first->already_applied, 0);
  ASSERT_TRUE(second.has_value()) << second.error().to_string();
  EXPECT_TRUE(second->applied.empty());
  EXPECT_EQ(second->already_applied, static_cast<int>(bundled_migrations().size()));
  EXPECT_EQ(query_value(uri_, "SELECT count(*) FROM deedkit.schema_migrations"),
            std::to_string(bundled_migrations().size()));
}

TEST_F(MigrationsTest, RefusesAnAppliedMigrationWhoseTextChangedAndNamesIt) {
  std::vector<Migration> migrations = bundled_migrations();
  ASSERT_TRUE(migrate(uri_, migrations).has_value());
  migrations.front().sql += "\n-- edited after release\n";

  const auto refused = migrate(uri_, migrations);

  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(refused.error().message.find("0001_event_log"), std::string::npos)
      << refused.error().message;
}

TEST_F(MigrationsTest, RefusesADatabaseMigratedByANewerBuild) {
  std::vector<Migration> migrations = bundled_migrations();
  migrations.push_back({9999, "from_the_future", "SELECT 1"});
  ASSERT_TRUE(migrate(uri_, migrations).has_value());

  const auto refused = migrate(uri_);

  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message.find("9999"), std::string::npos) << refused.error().message;
}

TEST_F(MigrationsTest, AFailingMigrationIsRolledBackAndNamed) {
  std::vector<Migration> migrations = bundled_migrations();
  migrations.push_back({9000, "broken", "CREATE TABLE deedkit.half (id int); SELECT nope;"});

  const auto failed = migrate(uri_, migrations);

  ASSERT_FALSE(failed.has_value());
  EXPECT_NE(failed.error().message.find("9000_broken"), std::string::npos);
  EXPECT_EQ(query_value(uri_, "SELECT to_regclass('deedkit.half')::text"), "");
  EXPECT_EQ(query_value(uri_, "SELECT count(*) FROM deedkit.schema_migrations WHERE version = 9000"),
            "0");
}

TEST_F(MigrationsTest, FourConcurrentRunsApplyEachMigrationExactlyOnce) {
  std::vector<std::future<Result<MigrationReport>>> runs;
  for (int i = 0; i < 4; ++i) {
    runs.push_back(std::async(std::launch::async, [this] { return migrate(uri_); }));
  }

  std::size_t applied_in_total = 0;
  for (auto& run : runs) {
    const auto report = run.get();
    ASSERT_TRUE(report.has_value()) << report.error().to_string();
    applied_in_total += report->applied.size();
  }

  EXPECT_EQ(applied_in_total, bundled_migrations().size());
}

}  // namespace
}  // namespace deedkit::testing
