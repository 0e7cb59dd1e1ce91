// A message the broker refuses for its size: retried, parked as a dead letter with its
// stream's later rows behind it, then discarded or retried by an operator. A broker that
// refuses everything for its own state (here: full) is waited for instead.

#include <gtest/gtest.h>

#include "internal/publisher.hpp"
#include "relay_test_support.hpp"

namespace deedkit::testing {
namespace {

constexpr const char* kSmallServer = "max_payload: 2048";
constexpr const char* kLargeServer = "max_payload: 65536";

class RelayDeadLetterTest : public RelayFixture {
 protected:
  // Stream "parked-<n>": v1 small, v2 too large for kSmallServer, v3 small. Stream
  // "healthy-<n>": three small rows.
  void write_streams() {
    ConnectionPool pool(PoolOptions{.database_uri = database_uri(), .max_connections = 1});
    write_outbox(pool, "parked-1", 1, 1);
    write_outbox(pool, "parked-1", 2, 1, 4000);
    write_outbox(pool, "parked-1", 3, 1);
    write_outbox(pool, "healthy-1", 1, 3);
  }

  static std::string dead_letter_id() {
    return query_value(database_uri(),
                       "SELECT outbox_id FROM deedkit.outbox_dead_letters "
                       "WHERE stream_id = 'parked-1' AND stream_version = 2");
  }

  static std::int64_t published(const std::string& stream_id, int version) {
    return count_rows("outbox", "stream_id = '" + stream_id + "' AND stream_version = " +
                                    std::to_string(version) + " AND published_at IS NOT NULL");
  }

  std::vector<std::string> database_arguments(std::vector<std::string> command) const {
    std::vector<std::string> arguments = {"--database", database_uri()};
    arguments.insert(arguments.end(), command.begin(), command.end());
    return arguments;
  }

  static std::vector<std::int64_t> versions_of(const std::vector<StoredMessage>& messages,
                                               const std::string& stream_id) {
    std::vector<std::int64_t> versions;
    for (const StoredMessage& message : messages) {
      if (message.stream_id == stream_id) versions.push_back(message.version);
    }
    return versions;
  }
};

TEST(RefusalTest, OnlyRefusalsOfTheMessageItselfCountTowardsADeadLetter) {
  using Kind = internal::PublishOutcome::Kind;
  EXPECT_EQ(internal::classify_refusal(10054), Kind::kTooLarge);    // message exceeds maximum
  EXPECT_EQ(internal::classify_refusal(10077), Kind::kBrokerDown);  // store failed, full
  EXPECT_EQ(internal::classify_refusal(10023), Kind::kBrokerDown);  // insufficient resources
  EXPECT_EQ(internal::classify_refusal(10118), Kind::kBrokerDown);  // stream offline
  EXPECT_EQ(internal::classify_refusal(10002), Kind::kBrokerDown);  // account limits
  EXPECT_EQ(internal::classify_refusal(10047), Kind::kBrokerDown);  // storage exceeded
  EXPECT_EQ(internal::classify_refusal(10009), Kind::kBrokerDown);  // no cluster leader
  EXPECT_EQ(internal::classify_refusal(10060), Kind::kRejected);    // stream does not match
  EXPECT_EQ(internal::classify_refusal(99999), Kind::kRejected) << "unknown codes count";
}

TEST_F(RelayDeadLetterTest, OversizedMessageIsParkedAndDiscardingItLetsItsStreamMoveOn) {
  NatsServer nats(scratch() / "nats", kSmallServer);
  write_streams();
  SpawnedRelay relay(scratch(), "relay", relay_arguments(nats.url(), {"--max-attempts", "2"}));
  relay.start();

  const bool parked = wait_until([&] {
    return !dead_letter_id().empty() && published("healthy-1", 3) == 1 &&
           published("parked-1", 1) == 1;
  });
  ASSERT_TRUE(parked) << relay.log();
  EXPECT_EQ(published("parked-1", 3), 0) << "a row behind a dead letter must wait";
  EXPECT_EQ(query_value(database_uri(), "SELECT attempts FROM deedkit.outbox WHERE "
                                        "outbox_id = " + dead_letter_id()),
            "2");
  EXPECT_NE(query_value(database_uri(), "SELECT reason FROM deedkit.outbox_dead_letters")
                .find("exceeds the broker's limit"),
            std::string::npos);
  const CommandResult listed = run_deedkit(scratch(), database_arguments({"outbox",
                                                                          "dead-letters"}));
  EXPECT_EQ(listed.exit_status, 0);
  EXPECT_NE(listed.output.find("parked-1"), std::string::npos) << listed.output;
  const CommandResult status = run_deedkit(scratch(), database_arguments({"outbox", "status"}));
  EXPECT_NE(status.output.find("dead letters:      1 (2 rows parked"), std::string::npos)
      << status.output;

  const std::string id = dead_letter_id();
  const CommandResult discarded =
      run_deedkit(scratch(), database_arguments({"outbox", "discard", id}));
  EXPECT_EQ(discarded.exit_status, 0) << discarded.output;
  EXPECT_TRUE(wait_until([&] { return published("parked-1", 3) == 1; })) << relay.log();

  const auto messages = read_stream(nats.url());
  EXPECT_EQ(versions_of(messages, "parked-1"), (std::vector<std::int64_t>{1, 3}));
  EXPECT_EQ(versions_of(messages, "healthy-1"), (std::vector<std::int64_t>{1, 2, 3}));
  EXPECT_EQ(count_rows("outbox", "discarded_at IS NOT NULL"), 1);
  EXPECT_EQ(relay.terminate(), 0);
}

TEST_F(RelayDeadLetterTest, RetriedDeadLetterIsPublishedInOrderOnceTheBrokerTakesIt) {
  NatsServer nats(scratch() / "nats", kSmallServer);
  write_streams();
  SpawnedRelay relay(scratch(), "relay", relay_arguments(nats.url(), {"--max-attempts", "2"}));
  relay.start();
  ASSERT_TRUE(wait_until([&] { return !dead_letter_id().empty(); })) << relay.log();

  // The operator raises the limit, then puts the dead letter back in line.
  nats.stop();
  nats.set_config(kLargeServer);
  nats.start();
  const CommandResult retried =
      run_deedkit(scratch(), database_arguments({"outbox", "retry", dead_letter_id()}));
  EXPECT_EQ(retried.exit_status, 0) << retried.output;

  EXPECT_TRUE(wait_until([&] { return published("parked-1", 3) == 1; })) << relay.log();
  const auto messages = read_stream(nats.url());
  EXPECT_EQ(versions_of(messages, "parked-1"), (std::vector<std::int64_t>{1, 2, 3}));
  EXPECT_EQ(count_rows("outbox_dead_letters", "true"), 0);
  const CommandResult missing =
      run_deedkit(scratch(), database_arguments({"outbox", "retry", "987654321"}));
  EXPECT_EQ(missing.exit_status, 3) << "an unknown dead letter is 'not found': "
                                    << missing.output;
  EXPECT_EQ(relay.terminate(), 0);
}

TEST_F(RelayDeadLetterTest, ABrokerOutOfRoomIsWaitedForAndItsRefusalsMakeNoDeadLetters) {
  NatsServer nats(scratch() / "nats", kLargeServer);
  limit_stream_messages(nats.url(), 2);
  {
    ConnectionPool pool(PoolOptions{.database_uri = database_uri(), .max_connections = 1});
    write_outbox(pool, "full-1", 1, 4);
  }
  SpawnedRelay relay(scratch(), "relay", relay_arguments(nats.url(), {"--max-attempts", "2"}));
  relay.start();

  // Version 3 is refused ("maximum messages exceeded") more often than --max-attempts.
  const auto attempts_of_third = [&] {
    const std::string attempts = query_value(
        database_uri(),
        "SELECT attempts FROM deedkit.outbox WHERE stream_id = 'full-1' AND stream_version = 3");
    return attempts.empty() ? 0 : std::stoi(attempts);
  };
  ASSERT_TRUE(wait_until([&] { return attempts_of_third() > 2; })) << relay.log();
  EXPECT_EQ(count_rows("outbox_dead_letters", "true"), 0) << relay.log();
  EXPECT_EQ(published("full-1", 3), 0);

  // The operator makes room; the stream goes on where it stopped.
  limit_stream_messages(nats.url(), -1);
  EXPECT_TRUE(wait_until([&] { return published("full-1", 4) == 1; })) << relay.log();
  const auto messages = read_stream(nats.url());
  EXPECT_EQ(versions_of(messages, "full-1"), (std::vector<std::int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(count_rows("outbox_dead_letters", "true"), 0);
  EXPECT_EQ(relay.terminate(), 0);
}

}  // namespace
}  // namespace deedkit::testing
