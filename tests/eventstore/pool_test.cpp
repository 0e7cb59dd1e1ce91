#include <thread>
#include <vector>

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

TEST_F(PoolTest, AServerRestartCostsNoTransactionEvenWithEveryIdleConnectionDead) {
  constexpr int kConnections = 4;
  ConnectionPool own({.database_uri = database_uri(), .max_connections = kConnections});
  std::string pids;
  {
    std::vector<ConnectionLease> leases;
    for (int i = 0; i < kConnections; ++i) {
      auto lease = own.acquire();
      ASSERT_TRUE(lease.has_value());
      pqxx::nontransaction tx(lease->connection());
      const std::string pid = tx.exec("SELECT pg_backend_pid()")[0][0].c_str();
      pids += (pids.empty() ? "" : ",") + pid;
      leases.push_back(std::move(*lease));
    }
  }
  // What a restart does to a pool: every idle connection's backend is gone.
  query_value(database_uri(), "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE pid IN (" + pids + ")");
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (query_value(database_uri(), "SELECT count(*) FROM pg_stat_activity WHERE pid IN (" +
                                         pids + ")") != "0" &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::yield();
  }

  for (int i = 0; i < kConnections; ++i) {
    auto unit = UnitOfWork::begin(own);
    ASSERT_TRUE(unit.has_value()) << "transaction " << i << ": " << unit.error().to_string();
    EXPECT_NO_THROW(unit->tx().exec("SELECT 1")) << "transaction " << i;
    EXPECT_TRUE(unit->commit().has_value()) << "transaction " << i;
  }
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
