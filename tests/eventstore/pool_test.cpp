#include <gtest/gtest.h>
#include <pqxx/nontransaction>

#include "event_factory.hpp"
#include "test_database.hpp"

namespace deedkit::testing {
namespace {

class PoolTest : public DatabaseTest {};

TEST_F(PoolTest, AcquireWaitsForABoundAndThenFailsWithDeadlineExceeded) {
  ConnectionPool small({.database_uri = database_uri(), .max_connections = 1,
                        .acquire_timeout = std::chrono::milliseconds(50)});
  auto held = small.acquire();
  ASSERT_TRUE(held.has_value());

  const auto second = small.acquire();

  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(second.error().message.find("stayed busy"), std::string::npos);
  EXPECT_EQ(small.open_connections(), 1);
}

TEST_F(PoolTest, ReconnectsAfterTheServerKilledItsConnection) {
  ConnectionPool own({.database_uri = database_uri(), .max_connections = 1,
                      .health_check_after = std::chrono::seconds(0)});
  EventStore own_store(own);
  std::string pid;
  {
    auto lease = own.acquire();
    ASSERT_TRUE(lease.has_value());
    pqxx::nontransaction tx(lease->connection());
    pid = tx.exec("SELECT pg_backend_pid()")[0][0].c_str();
  }
  query_value(database_uri(), "SELECT pg_terminate_backend(" + pid + ")");

  const auto appended = own_store.append(fresh_stream(), ExpectedVersion::no_stream(),
                                         make_events(1));

  EXPECT_TRUE(appended.has_value()) << appended.error().to_string();
}

TEST_F(PoolTest, UnreachableServerIsUnavailableAndTheMessageHidesThePassword) {
  ConnectionPool nowhere({.database_uri = "postgresql://u:sekret@127.0.0.1:1/none"});

  const auto lease = nowhere.acquire();

  ASSERT_FALSE(lease.has_value());
  EXPECT_EQ(lease.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(lease.error().message.find("sekret"), std::string::npos) << lease.error().message;
}

}  // namespace
}  // namespace deedkit::testing
