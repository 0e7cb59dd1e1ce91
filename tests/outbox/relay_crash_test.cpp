// Several relays, killed and restarted while rows flow: nothing lost, nothing doubled, every
// stream in version order.

#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <signal.h>

#include "deedkit/outbox/outbox_admin.hpp"
#include "relay_test_support.hpp"

namespace deedkit::testing {
namespace {

class RelayCrashTest : public RelayFixture {
 protected:
  static std::string stream_name(int index) { return "crash-" + std::to_string(index); }
};

TEST_F(RelayCrashTest, ThreeRelaysKilledAndRestartedPublishEveryEventOnceInStreamOrder) {
  constexpr int kStreams = 200;
  constexpr int kRounds = 10;
  constexpr int kEventsPerRound = 5;
  constexpr int kTotal = kStreams * kRounds * kEventsPerRound;
  NatsServer nats(scratch() / "nats");
  std::vector<std::unique_ptr<SpawnedRelay>> relays;
  for (int i = 0; i < 3; ++i) {
    relays.push_back(std::make_unique<SpawnedRelay>(scratch(), "relay-" + std::to_string(i),
                                                    relay_arguments(nats.url())));
    relays.back()->start();
  }

  // The writer appends while the relays run, each transaction one stream's next versions.
  std::mutex events_mutex;
  std::map<std::string, std::vector<Uuid>> events;  // guarded by events_mutex
  std::thread writer([&] {
    ConnectionPool pool(PoolOptions{.database_uri = database_uri(), .max_connections = 1});
    for (int round = 0; round < kRounds; ++round) {
      for (int stream = 0; stream < kStreams; ++stream) {
        const auto ids = write_outbox(pool, stream_name(stream), round * kEventsPerRound + 1,
                                      kEventsPerRound);
        std::lock_guard lock(events_mutex);
        auto& stream_events = events[stream_name(stream)];
        stream_events.insert(stream_events.end(), ids.begin(), ids.end());
      }
    }
  });

  // Kill one relay at a time at growing progress, and start it again at once.
  for (int kill = 0; kill < 5; ++kill) {
    const std::int64_t progress = (kill + 1) * kTotal / 7;
    EXPECT_TRUE(wait_until([&] {
      return count_rows("outbox", "published_at IS NOT NULL") >= progress;
    })) << "publishing stalled before " << progress << " rows";
    SpawnedRelay& victim = *relays[static_cast<std::size_t>(kill % 3)];
    victim.kill();
    victim.start();
  }
  writer.join();

  const bool drained = wait_until(
      [&] {
        return count_rows("outbox", "published_at IS NULL") == 0 &&
               stream_message_count(nats.url()) >= static_cast<std::uint64_t>(kTotal);
      },
      std::chrono::seconds(45));
  ASSERT_TRUE(drained) << count_rows("outbox", "published_at IS NULL")
                       << " rows still pending; " << stream_message_count(nats.url())
                       << " messages in JetStream; relay-0 log:\n"
                       << relays[0]->log();

  const auto messages = read_stream(nats.url());
  EXPECT_EQ(messages.size(), static_cast<std::size_t>(kTotal))
      << "JetStream must hold exactly one message per event";
  EXPECT_EQ(check_exactly_once_in_order(messages, events), "");
  for (const auto& relay : relays) EXPECT_EQ(error_lines(relay->log()), "");
}

TEST_F(RelayCrashTest, RelaysShareThePartitionsAndASurvivorTakesOverADeadRelaysShare) {
  ConnectionPool pool(PoolOptions{.database_uri = database_uri(), .max_connections = 1});
  SpawnedRelay first(scratch(), "first", relay_arguments(""));
  SpawnedRelay second(scratch(), "second", relay_arguments(""));
  first.start();
  second.start();
  const auto shares = [&] {
    std::vector<int> partitions;
    if (auto status = read_outbox_status(pool)) {
      for (const deedkit::RelayProcess& relay : status->relays) {
        partitions.push_back(relay.partitions);
      }
    }
    return partitions;
  };

  const bool shared = wait_until([&] { return shares() == std::vector<int>{32, 32}; });
  ASSERT_TRUE(shared) << "two relays should hold 32 partitions each";
  first.kill();

  const bool taken_over = wait_until([&] { return shares() == std::vector<int>{64}; });
  EXPECT_TRUE(taken_over) << "the survivor should hold all 64 partitions; log:\n"
                          << second.log();
  EXPECT_EQ(second.terminate(), 0);
}

}  // namespace
}  // namespace deedkit::testing
