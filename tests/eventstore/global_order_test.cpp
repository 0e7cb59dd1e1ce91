#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "deedkit/eventstore/global_log_reader.hpp"
#include "event_factory.hpp"
#include "test_database.hpp"

namespace deedkit::testing {
namespace {

class GlobalOrderTest : public DatabaseTest {};

// Drains the reader until it returns an empty batch; returns the event ids in order. With
// `until_settled`, an empty batch that is held back (by any open transaction on the server,
// including other test processes) is read again instead of ending the drain.
std::vector<Uuid> drain(GlobalLogReader& reader, bool until_settled, bool* held_back = nullptr) {
  std::vector<Uuid> ids;
  while (true) {
    auto batch = reader.next_batch();
    EXPECT_TRUE(batch.has_value()) << batch.error().to_string();
    if (!batch) return ids;
    if (batch->events.empty() && (!until_settled || !batch->held_back)) {
      if (held_back) *held_back = batch->held_back;
      return ids;
    }
    for (const auto& event : batch->events) ids.push_back(event.event_id);
  }
}

TEST_F(GlobalOrderTest, AFollowerNeverSkipsAnEventThatCommitsAfterAHigherPosition) {
  const std::string category = "late" + std::to_string(::testing::UnitTest::GetInstance()
                                                           ->random_seed());
  GlobalLogReader reader(store(), LogPosition::start(),
                         {.batch_size = 3, .category = category});

  // The slow writer takes its sequence value first but commits last.
  auto slow = UnitOfWork::begin(pool());
  ASSERT_TRUE(slow.has_value());
  const auto slow_events = make_events(2, "slow");
  ASSERT_TRUE(store().append(*slow, category + "-slow", ExpectedVersion::no_stream(),
                             slow_events));

  std::vector<NewEvent> fast_events;
  for (int i = 0; i < 5; ++i) {
    auto event = make_events(1, "fast");
    ASSERT_TRUE(store().append(category + "-fast" + std::to_string(i),
                               ExpectedVersion::no_stream(), event));
    fast_events.push_back(event[0]);
  }

  // While the slow transaction is open, the follower must not move past it.
  bool held_back = false;
  const auto before_commit = drain(reader, false, &held_back);
  EXPECT_TRUE(before_commit.empty())
      << "the follower returned events committed after an older open transaction; had it "
         "checkpointed them it would skip the slow writer's events";
  EXPECT_TRUE(held_back) << "the read must report that it is held back";

  ASSERT_TRUE(slow->commit().has_value());
  const auto after_commit = drain(reader, true);

  std::set<Uuid> expected;
  for (const auto& e : slow_events) expected.insert(e.event_id);
  for (const auto& e : fast_events) expected.insert(e.event_id);
  const std::set<Uuid> seen(after_commit.begin(), after_commit.end());
  EXPECT_EQ(after_commit.size(), expected.size()) << "each event exactly once";
  EXPECT_EQ(seen, expected);
}

TEST_F(GlobalOrderTest, ConcurrentWritersCommittingOutOfOrderAreEachSeenExactlyOnce) {
  const std::string category = "race" + std::to_string(::testing::UnitTest::GetInstance()
                                                           ->random_seed());
  constexpr int kWriters = 6;
  constexpr int kAppendsPerWriter = 60;
  std::atomic<bool> writing{true};
  std::vector<Uuid> followed;
  LogPosition checkpoint = LogPosition::start();

  std::thread follower([&] {
    // Restart the reader from its checkpoint now and then, as a crashed follower would.
    int batches = 0;
    bool last_round = false;
    while (true) {
      GlobalLogReader reader(store(), checkpoint, {.batch_size = 7, .category = category});
      for (int i = 0; i < 5; ++i) {
        auto batch = reader.next_batch();
        ASSERT_TRUE(batch.has_value()) << batch.error().to_string();
        for (const auto& event : batch->events) followed.push_back(event.event_id);
        checkpoint = reader.position();
        ++batches;
        if (batch->events.empty() && last_round && !batch->held_back) return;
      }
      last_round = !writing.load();
    }
  });

  std::vector<std::thread> writers;
  std::mutex appended_mutex;
  std::set<Uuid> appended;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < kAppendsPerWriter; ++i) {
        auto unit = UnitOfWork::begin(pool());
        ASSERT_TRUE(unit.has_value());
        const auto events = make_events(1 + i % 3);
        const std::string stream = category + "-w" + std::to_string(w) + "n" + std::to_string(i);
        ASSERT_TRUE(store().append(*unit, stream, ExpectedVersion::no_stream(), events));
        // Interleave statements so transactions commit in a different order than they
        // took their positions.
        if (i % 4 == 0) std::this_thread::yield();
        ASSERT_TRUE(unit->commit().has_value());
        std::lock_guard lock(appended_mutex);
        for (const auto& e : events) appended.insert(e.event_id);
      }
    });
  }
  for (auto& writer : writers) writer.join();
  writing = false;
  follower.join();

  const std::set<Uuid> unique(followed.begin(), followed.end());
  EXPECT_EQ(followed.size(), unique.size()) << "an event was delivered twice";
  EXPECT_EQ(unique, appended) << "the follower missed events";
}

}  // namespace
}  // namespace deedkit::testing
