// SIGTERM: the relay finishes the batch in flight, records every acknowledged row, and exits 0.

#include <map>
#include <set>

#include <gtest/gtest.h>

#include "relay_test_support.hpp"

namespace deedkit::testing {
namespace {

class RelayShutdownTest : public RelayFixture {};

TEST_F(RelayShutdownTest, SigtermRecordsEveryAcknowledgedRowAndExitsZero) {
  constexpr int kStreams = 100;
  constexpr int kEvents = 30;
  ConnectionPool pool(PoolOptions{.database_uri = database_uri(), .max_connections = 1});
  std::map<std::string, std::vector<Uuid>> events;
  for (int stream = 0; stream < kStreams; ++stream) {
    const std::string stream_id = "shutdown-" + std::to_string(stream);
    events[stream_id] = write_outbox(pool, stream_id, 1, kEvents);
  }
  NatsServer nats(scratch() / "nats");
  SpawnedRelay relay(scratch(), "relay", relay_arguments(nats.url()));
  relay.start();
  ASSERT_TRUE(wait_until([&] { return count_rows("outbox", "published_at IS NOT NULL") > 0; }));

  const int exit_status = relay.terminate();

  EXPECT_EQ(exit_status, 0) << relay.log();
  std::set<std::string> marked;
  const std::string marked_list = query_value(
      database_uri(),
      "SELECT string_agg(event_id::text, ',') FROM deedkit.outbox WHERE published_at IS NOT NULL");
  for (std::size_t start = 0; start < marked_list.size();) {
    const std::size_t comma = marked_list.find(',', start);
    marked.insert(marked_list.substr(start, comma - start));
    start = comma == std::string::npos ? marked_list.size() : comma + 1;
  }
  std::set<std::string> stored;
  for (const StoredMessage& message : read_stream(nats.url())) stored.insert(message.message_id);
  EXPECT_EQ(marked, stored) << "after SIGTERM, the rows marked published must be exactly the "
                               "messages JetStream acknowledged";
  EXPECT_NE(relay.log().find("stopped:"), std::string::npos) << relay.log();

  // A new relay carries on from there.
  relay.start();
  ASSERT_TRUE(wait_until([&] { return count_rows("outbox", "published_at IS NULL") == 0; }))
      << relay.log();
  EXPECT_EQ(check_exactly_once_in_order(read_stream(nats.url()), events), "");
  EXPECT_EQ(relay.terminate(), 0);
  // Nothing was published twice: a clean stop leaves no acknowledged row unrecorded.
  const std::string log = relay.log();
  std::size_t stops = 0;
  for (auto at = log.find("stopped:"); at != std::string::npos; at = log.find("stopped:", at + 1)) {
    ++stops;
  }
  std::size_t clean_stops = 0;
  for (auto at = log.find("(0 already in JetStream)"); at != std::string::npos;
       at = log.find("(0 already in JetStream)", at + 1)) {
    ++clean_stops;
  }
  EXPECT_EQ(stops, 2u);
  EXPECT_EQ(clean_stops, stops) << log;
  EXPECT_EQ(error_lines(log), "");
}

}  // namespace
}  // namespace deedkit::testing
