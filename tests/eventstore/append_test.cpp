#include <atomic>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <pqxx/transaction>

#include "event_factory.hpp"
#include "test_database.hpp"

namespace deedkit::testing {
namespace {

class AppendTest : public DatabaseTest {};

TEST_F(AppendTest, NoStreamAcceptsANewStreamAndRefusesAnExistingOne) {
  const std::string stream = fresh_stream();

  const auto first = store().append(stream, ExpectedVersion::no_stream(), make_events(2));
  const auto second = store().append(stream, ExpectedVersion::no_stream(), make_events(1));

  ASSERT_TRUE(first.has_value()) << first.error().to_string();
  EXPECT_EQ(first->first_version, 1);
  EXPECT_EQ(first->last_version, 2);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, ErrorCode::kConflict);
  EXPECT_NE(second.error().message.find(stream), std::string::npos) << second.error().message;
  EXPECT_NE(second.error().message.find("actual version 2"), std::string::npos)
      << second.error().message;
}

TEST_F(AppendTest, StreamExistsRefusesAMissingStreamAndAcceptsAnExistingOne) {
  const std::string stream = fresh_stream();

  const auto refused = store().append(stream, ExpectedVersion::stream_exists(), make_events(1));
  ASSERT_TRUE(store().append(stream, ExpectedVersion::no_stream(), make_events(1)));
  const auto accepted = store().append(stream, ExpectedVersion::stream_exists(), make_events(1));

  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  ASSERT_TRUE(accepted.has_value()) << accepted.error().to_string();
  EXPECT_EQ(accepted->last_version, 2);
}

TEST_F(AppendTest, ExactVersionAcceptsTheCurrentVersionAndRefusesStaleAndFutureOnes) {
  const std::string stream = fresh_stream();
  ASSERT_TRUE(store().append(stream, ExpectedVersion::no_stream(), make_events(3)));

  const auto stale = store().append(stream, ExpectedVersion::exact(2), make_events(1));
  const auto future = store().append(stream, ExpectedVersion::exact(7), make_events(1));
  const auto current = store().append(stream, ExpectedVersion::exact(3), make_events(2));

  ASSERT_FALSE(stale.has_value());
  EXPECT_EQ(stale.error().code, ErrorCode::kConflict);
  EXPECT_NE(stale.error().message.find("expected version 2, actual version 3"),
            std::string::npos)
      << stale.error().message;
  ASSERT_FALSE(future.has_value());
  EXPECT_EQ(future.error().code, ErrorCode::kConflict);
  ASSERT_TRUE(current.has_value()) << current.error().to_string();
  EXPECT_EQ(current->first_version, 4);
  EXPECT_EQ(current->last_version, 5);
}

TEST_F(AppendTest, AnyAppendsWhateverTheVersion) {
  const std::string stream = fresh_stream();

  const auto first = store().append(stream, ExpectedVersion::any(), make_events(1));
  const auto second = store().append(stream, ExpectedVersion::any(), make_events(2));

  ASSERT_TRUE(first.has_value()) << first.error().to_string();
  ASSERT_TRUE(second.has_value()) << second.error().to_string();
  EXPECT_EQ(second->last_version, 3);
}

TEST_F(AppendTest, ManyEventsAcrossStatementChunksAreAtomic) {
  const std::string stream = fresh_stream();
  auto events = make_events(40);
  // The 40th event reuses an id stored elsewhere, so the whole append must fail.
  const auto elsewhere = make_event();
  ASSERT_TRUE(store().append(fresh_stream(), ExpectedVersion::no_stream(),
                             std::vector<NewEvent>{elsewhere}));
  events.back().event_id = elsewhere.event_id;

  const auto failed = store().append(stream, ExpectedVersion::no_stream(), events);
  events.back().event_id = new_uuid();
  const auto succeeded = store().append(stream, ExpectedVersion::no_stream(), events);

  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().code, ErrorCode::kInvalidArgument) << failed.error().to_string();
  ASSERT_TRUE(succeeded.has_value()) << succeeded.error().to_string();
  EXPECT_EQ(succeeded->last_version, 40);
  const auto read = store().read_stream_forward(stream, 1, 100);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->size(), 40u);
}

TEST_F(AppendTest, ReappendingTheSameEventsAtTheSamePositionIsADuplicateNotAConflict) {
  const std::string stream = fresh_stream();
  const auto events = make_events(3);
  ASSERT_TRUE(store().append(stream, ExpectedVersion::no_stream(), events));

  const auto again = store().append(stream, ExpectedVersion::no_stream(), events);
  const auto again_exact = store().append(stream, ExpectedVersion::exact(0), events);

  ASSERT_TRUE(again.has_value()) << again.error().to_string();
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->first_version, 1);
  EXPECT_EQ(again->last_version, 3);
  ASSERT_TRUE(again_exact.has_value());
  EXPECT_TRUE(again_exact->duplicate);
  EXPECT_EQ(query_value(database_uri(), "SELECT count(*) FROM deedkit.events WHERE stream_id = '" +
                                            stream + "'"),
            "3");
}

TEST_F(AppendTest, SameEventsAtADifferentPositionAreAConflict) {
  const std::string stream = fresh_stream();
  const auto events = make_events(1);
  ASSERT_TRUE(store().append(stream, ExpectedVersion::no_stream(), make_events(1)));
  ASSERT_TRUE(store().append(stream, ExpectedVersion::exact(1), events));

  const auto moved = store().append(stream, ExpectedVersion::exact(2), events);

  ASSERT_FALSE(moved.has_value());
  EXPECT_EQ(moved.error().code, ErrorCode::kConflict) << moved.error().to_string();
}

TEST_F(AppendTest, InvalidInputIsRefusedWithTheReason) {
  EXPECT_EQ(store().append("", ExpectedVersion::any(), make_events(1)).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(store().append(fresh_stream(), ExpectedVersion::any(), {}).error().code,
            ErrorCode::kInvalidArgument);
  auto untyped = make_events(1);
  untyped[0].event_type.clear();
  const auto refused = store().append(fresh_stream(), ExpectedVersion::any(), untyped);
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message.find("event type"), std::string::npos);
}

TEST_F(AppendTest, PayloadBytesAndMetadataRoundTripExactly) {
  const std::string stream = fresh_stream();
  auto event = make_event(std::string("\0\x01\xff binary \0", 12));
  event.metadata.correlation_id = new_uuid();
  event.metadata.causation_id = new_uuid();
  event.metadata.principal = "alice \"the admin\"\n";
  event.schema_version = 3;
  ASSERT_TRUE(store().append(stream, ExpectedVersion::no_stream(), std::vector{event}));

  const auto read = store().read_stream_forward(stream, 1, 10);

  ASSERT_TRUE(read.has_value());
  ASSERT_EQ(read->size(), 1u);
  const RecordedEvent& stored = read->front();
  EXPECT_EQ(stored.payload, event.payload);
  EXPECT_EQ(stored.metadata, event.metadata);
  EXPECT_EQ(stored.event_id, event.event_id);
  EXPECT_EQ(stored.schema_version, 3);
  EXPECT_EQ(stored.event_type, event.event_type);
}

TEST_F(AppendTest, CallerOwnedUnitCommitsEventsWithItsOwnWrites) {
  const std::string stream = fresh_stream();
  {
    auto unit = UnitOfWork::begin(pool());
    ASSERT_TRUE(unit.has_value());
    ASSERT_TRUE(store().append(*unit, stream, ExpectedVersion::no_stream(), make_events(1)));
    // Dropped without commit: rolls back.
  }
  EXPECT_EQ(store().read_stream_forward(stream, 1, 10)->size(), 0u);

  auto unit = UnitOfWork::begin(pool());
  ASSERT_TRUE(unit.has_value());
  ASSERT_TRUE(store().append(*unit, stream, ExpectedVersion::no_stream(), make_events(1)));
  ASSERT_TRUE(unit->commit().has_value());
  EXPECT_EQ(store().read_stream_forward(stream, 1, 10)->size(), 1u);
}

TEST_F(AppendTest, ACleanConflictLeavesTheCallersUnitUsableForARetry) {
  const std::string stream = fresh_stream();
  ASSERT_TRUE(store().append(stream, ExpectedVersion::no_stream(), make_events(1)));

  auto unit = UnitOfWork::begin(pool());
  ASSERT_TRUE(unit.has_value());
  const auto conflict = store().append(*unit, stream, ExpectedVersion::no_stream(),
                                       make_events(1));
  const auto retried = store().append(*unit, stream, ExpectedVersion::exact(1), make_events(1));

  ASSERT_FALSE(conflict.has_value());
  EXPECT_EQ(conflict.error().code, ErrorCode::kConflict);
  ASSERT_TRUE(retried.has_value()) << retried.error().to_string();
  ASSERT_TRUE(unit->commit().has_value());
  EXPECT_EQ(store().read_stream_forward(stream, 1, 10)->size(), 2u);
}

TEST_F(AppendTest, APartialAppendAfterARaceRefusesToCommit) {
  const std::string stream = fresh_stream();
  ASSERT_TRUE(store().append(stream, ExpectedVersion::no_stream(), make_events(1)));
  auto first = UnitOfWork::begin(pool());
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(store().append(*first, stream, ExpectedVersion::exact(1), make_events(1)));

  // The second writer reads version 1, then waits on the first writer's version 2.
  Result<AppendResult> second_append = fail(ErrorCode::kInternal, "not run");
  std::optional<Result<void>> second_commit;
  std::thread second([&] {
    auto unit = UnitOfWork::begin(pool());
    ASSERT_TRUE(unit.has_value());
    second_append = store().append(*unit, stream, ExpectedVersion::exact(1), make_events(2));
    second_commit = unit->commit();
  });
  while (query_value(database_uri(),
                     "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                     "AND datname = current_database()") == "0") {
    std::this_thread::yield();
  }
  ASSERT_TRUE(first->commit().has_value());
  second.join();

  ASSERT_FALSE(second_append.has_value());
  EXPECT_EQ(second_append.error().code, ErrorCode::kConflict);
  ASSERT_TRUE(second_commit.has_value());
  EXPECT_FALSE(second_commit->has_value()) << "a half-written batch must not commit";
  EXPECT_EQ(store().read_stream_forward(stream, 1, 10)->size(), 2u);
}

TEST_F(AppendTest, EightConcurrentWritersOnOneStreamGetEachVersionExactlyOnce) {
  const std::string stream = fresh_stream();
  constexpr int kThreads = 8;
  constexpr int kAttemptsPerThread = 25;
  std::atomic<int> wins{0};
  std::atomic<int> conflicts{0};
  std::atomic<int> other_errors{0};

  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&] {
      for (int i = 0; i < kAttemptsPerThread; ++i) {
        auto unit = UnitOfWork::begin(pool());
        if (!unit) { ++other_errors; continue; }
        auto version = store().stream_version(*unit, stream);
        if (!version) { ++other_errors; continue; }
        auto appended = store().append(*unit, stream, ExpectedVersion::exact(*version),
                                       make_events(1));
        if (appended && unit->commit()) {
          ++wins;
        } else if (!appended && appended.error().code == ErrorCode::kConflict) {
          ++conflicts;
        } else {
          ++other_errors;
        }
      }
    });
  }
  for (auto& writer : writers) writer.join();

  EXPECT_EQ(other_errors.load(), 0);
  EXPECT_EQ(wins + conflicts, kThreads * kAttemptsPerThread);
  const std::string count_and_max = query_value(
      database_uri(), "SELECT count(*) || '/' || max(stream_version) || '/' || "
                      "count(DISTINCT stream_version) FROM deedkit.events WHERE stream_id = '" +
                          stream + "'");
  const std::string expected = std::to_string(wins.load());
  EXPECT_EQ(count_and_max, expected + "/" + expected + "/" + expected)
      << "versions must be 1..wins with no holes and no duplicates";
}

// Racing multi-event appends at an exact version: each is all or nothing. (A racing writer
// can take some of a batch's versions; the others must not be stored without them.)
TEST_F(AppendTest, RacingMultiEventAppendsAreAllOrNothing) {
  const std::string stream = fresh_stream();
  constexpr int kThreads = 8;
  constexpr int kAppendsPerThread = 20;
  std::mutex mutex;
  std::vector<std::vector<NewEvent>> batches;

  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&] {
      for (int i = 0; i < kAppendsPerThread; ++i) {
        std::int64_t version = 0;
        {
          auto unit = UnitOfWork::begin(pool());
          if (!unit) continue;
          auto read = store().stream_version(*unit, stream);
          if (!read) continue;
          version = *read;
        }
        // Batches of different sizes: a shorter winner leaves a longer loser's later
        // versions free, which is where a partial write could slip in.
        auto events = make_events(1 + i % 3);
        (void)store().append(stream, ExpectedVersion::exact(version), events);
        std::lock_guard lock(mutex);
        batches.push_back(std::move(events));
      }
    });
  }
  for (auto& writer : writers) writer.join();

  int partial = 0;
  for (const auto& batch : batches) {
    std::string ids;
    for (const auto& event : batch) {
      ids += (ids.empty() ? "'" : ",'") + to_string(event.event_id) + "'";
    }
    const std::string stored = query_value(
        database_uri(), "SELECT count(*) FROM deedkit.events WHERE event_id IN (" + ids + ")");
    if (stored != "0" && stored != std::to_string(batch.size())) ++partial;
  }
  EXPECT_EQ(partial, 0) << "appends stored only some of their events";
}

// "any" and "stream exists" promise no particular version, so losing the race for the next
// one to another writer is no conflict: every append succeeds.
TEST_F(AppendTest, RacingAppendsWithAnyOrStreamExistsNeverConflict) {
  const std::string stream = fresh_stream();
  ASSERT_TRUE(store().append(stream, ExpectedVersion::no_stream(), make_events(1)));
  constexpr int kThreads = 8;
  constexpr int kAppendsPerThread = 25;
  std::atomic<int> failures{0};

  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      const auto expected = t % 2 ? ExpectedVersion::any() : ExpectedVersion::stream_exists();
      for (int i = 0; i < kAppendsPerThread; ++i) {
        auto appended = store().append(stream, expected, make_events(1 + i % 2));
        if (!appended) {
          ++failures;
          ADD_FAILURE() << appended.error().to_string();
        }
      }
    });
  }
  for (auto& writer : writers) writer.join();

  EXPECT_EQ(failures.load(), 0);
  const int events = 1 + kThreads * (kAppendsPerThread / 2 * 3 + kAppendsPerThread % 2);
  EXPECT_EQ(query_value(database_uri(),
                        "SELECT count(*) || '/' || max(stream_version) FROM deedkit.events "
                        "WHERE stream_id = '" + stream + "'"),
            std::to_string(events) + "/" + std::to_string(events));
}

}  // namespace
}  // namespace deedkit::testing
