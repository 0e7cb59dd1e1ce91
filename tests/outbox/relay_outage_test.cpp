// The broker or the database goes away while rows flow and comes back: nothing lost, nothing
// doubled, streams in order.

#include <map>

#include <gtest/gtest.h>

#include "relay_test_support.hpp"

namespace deedkit::testing {
namespace {

class RelayOutageTest : public RelayFixture {
 protected:
  // Writes `batch` (versions batch*10+1 .. batch*10+10) of 100 streams, remembering the ids.
  void write_batch(ConnectionPool& pool, int batch) {
    for (int stream = 0; stream < kStreams; ++stream) {
      const std::string stream_id = "outage-" + std::to_string(stream);
      const auto ids = write_outbox(pool, stream_id, batch * kEventsPerBatch + 1,
                                    kEventsPerBatch);
      events_[stream_id].insert(events_[stream_id].end(), ids.begin(), ids.end());
    }
  }

  static constexpr int kStreams = 100;
  static constexpr int kEventsPerBatch = 10;
  std::map<std::string, std::vector<Uuid>> events_;
};

TEST_F(RelayOutageTest, ResumesAfterNatsRestartWithoutLossOrDuplicates) {
  ConnectionPool pool(PoolOptions{.database_uri = database_uri(), .max_connections = 1});
  NatsServer nats(scratch() / "nats");
  SpawnedRelay relay(scratch(), "relay", relay_arguments(nats.url()));
  write_batch(pool, 0);
  relay.start();
  ASSERT_TRUE(wait_until([&] { return count_rows("outbox", "published_at IS NOT NULL") > 0; }));

  // The broker stops while rows are in flight and more are written.
  nats.stop();
  write_batch(pool, 1);
  const bool noticed = wait_until([&] {
    const std::string log = relay.log();
    return log.find("lost the connection to NATS") != std::string::npos ||
           log.find("broker unavailable") != std::string::npos;
  });
  ASSERT_TRUE(noticed) << relay.log();
  write_batch(pool, 2);
  nats.start();

  const std::int64_t total = kStreams * kEventsPerBatch * 3;
  const bool drained = wait_until([&] {
    return count_rows("outbox", "published_at IS NULL") == 0 &&
           stream_message_count(nats.url()) >= static_cast<std::uint64_t>(total);
  });
  ASSERT_TRUE(drained) << relay.log();
  const auto messages = read_stream(nats.url());
  EXPECT_EQ(messages.size(), static_cast<std::size_t>(total));
  EXPECT_EQ(check_exactly_once_in_order(messages, events_), "");
  EXPECT_EQ(relay.terminate(), 0);
  EXPECT_EQ(error_lines(relay.log()), "");
}

TEST_F(RelayOutageTest, ResumesAfterItsDatabaseSessionsAreKilled) {
  ConnectionPool pool(PoolOptions{.database_uri = database_uri(), .max_connections = 1});
  NatsServer nats(scratch() / "nats");
  SpawnedRelay relay(scratch(), "relay", relay_arguments(nats.url()));
  write_batch(pool, 0);
  relay.start();
  ASSERT_TRUE(wait_until([&] { return count_rows("outbox", "published_at IS NOT NULL") > 0; }));

  // What a server restart does to the relay: every session of this database ends, its
  // partition locks with it, while rows keep coming.
  const std::string kill_sessions =
      "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
      "WHERE datname = current_database() AND pid <> pg_backend_pid()";
  for (int batch = 1; batch <= 3; ++batch) {
    query_value(database_uri(), kill_sessions);
    ConnectionPool fresh_pool(PoolOptions{.database_uri = database_uri(), .max_connections = 1});
    write_batch(fresh_pool, batch);
  }

  const std::int64_t total = kStreams * kEventsPerBatch * 4;
  const bool drained = wait_until([&] {
    return count_rows("outbox", "published_at IS NULL") == 0 &&
           stream_message_count(nats.url()) >= static_cast<std::uint64_t>(total);
  });
  ASSERT_TRUE(drained) << relay.log();
  const auto messages = read_stream(nats.url());
  EXPECT_EQ(messages.size(), static_cast<std::size_t>(total));
  EXPECT_EQ(check_exactly_once_in_order(messages, events_), "");
  EXPECT_TRUE(wait_until([&] {
    return relay.log().find("partition leases unavailable") != std::string::npos;
  })) << "the relay should notice that its lease session ended: " << relay.log();
  EXPECT_EQ(relay.terminate(), 0);
  EXPECT_EQ(error_lines(relay.log()), "");
}

}  // namespace
}  // namespace deedkit::testing
