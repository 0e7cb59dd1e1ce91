// The relay's ordering rule, without servers: one row per stream in flight, lowest version
// first, and a failed row blocks its stream.

#include <algorithm>
#include <limits>

#include <gtest/gtest.h>

#include "internal/stream_book.hpp"

namespace deedkit::internal {
namespace {

using Clock = StreamBook::Clock;

OutboxRow row(std::int64_t outbox_id, const std::string& stream, std::int64_t version,
              int partition = 0) {
  OutboxRow made;
  made.outbox_id = outbox_id;
  made.event_id = stream + "/" + std::to_string(version);
  made.stream_id = stream;
  made.stream_version = version;
  made.partition = partition;
  return made;
}

std::vector<std::string> ids(const std::vector<const OutboxRow*>& rows) {
  std::vector<std::string> names;
  for (const OutboxRow* started : rows) names.push_back(started->event_id);
  return names;
}

class StreamBookTest : public ::testing::Test {
 protected:
  void SetUp() override {
    book.set_owned(0, true);
    book.set_owned(1, true);
  }
  StreamBook book;
  const Clock::time_point now = Clock::now();
};

TEST_F(StreamBookTest, StartsOnlyTheLowestVersionOfEachStream) {
  book.add(row(3, "a", 2));
  book.add(row(1, "a", 1));
  book.add(row(2, "b", 1));

  const auto started = book.start_ready(now, 10);

  EXPECT_EQ(ids(started), (std::vector<std::string>{"a/1", "b/1"}));
  EXPECT_TRUE(book.start_ready(now, 10).empty()) << "a/2 must wait for a/1's acknowledgement";
}

TEST_F(StreamBookTest, TwoRowsWithOneEventIdAreNeverInFlightTogether) {
  // One event written to the outbox twice, under two streams: one message id.
  OutboxRow copy = row(2, "b", 1);
  copy.event_id = "a/1";
  book.add(row(1, "a", 1));
  book.add(std::move(copy));

  const auto first = book.start_ready(now, 10);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0]->stream_id, "a");
  EXPECT_TRUE(book.start_ready(now, 10).empty()) << "the copy waits for the first to settle";

  book.published("a/1");
  const auto second = book.start_ready(now, 10);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0]->stream_id, "b");
  book.published("a/1");
  EXPECT_EQ(book.row_count(), 0u);
  EXPECT_EQ(book.in_flight_count(), 0u);
}

TEST_F(StreamBookTest, StartsTheNextVersionOnlyAfterThePreviousIsPublished) {
  book.add(row(1, "a", 1));
  book.add(row(2, "a", 2));
  book.start_ready(now, 10);

  book.published("a/1");

  EXPECT_EQ(ids(book.start_ready(now, 10)), (std::vector<std::string>{"a/2"}));
  EXPECT_EQ(book.row_count(), 1u);
}

TEST_F(StreamBookTest, FailedRowStaysFirstAndBlocksItsStreamUntilItsRetry) {
  book.add(row(1, "a", 1));
  book.add(row(2, "a", 2));
  book.add(row(3, "b", 1));
  book.start_ready(now, 10);

  book.retry_later("a/1", now + std::chrono::seconds(5));
  book.published("b/1");

  EXPECT_TRUE(book.start_ready(now + std::chrono::seconds(1), 10).empty());
  EXPECT_EQ(ids(book.start_ready(now + std::chrono::seconds(5), 10)),
            (std::vector<std::string>{"a/1"}));
}

TEST_F(StreamBookTest, RespectsTheLimitOnRowsInFlight) {
  for (int stream = 0; stream < 5; ++stream) book.add(row(stream, "s" + std::to_string(stream), 1));

  EXPECT_EQ(book.start_ready(now, 2).size(), 2u);
  EXPECT_EQ(book.in_flight_count(), 2u);
  EXPECT_EQ(book.start_ready(now, 10).size(), 3u);
}

TEST_F(StreamBookTest, ParkedStreamIsForgottenWithAllItsRows) {
  book.add(row(1, "a", 1));
  book.add(row(2, "a", 2));
  book.start_ready(now, 10);

  book.hold("a/1");
  EXPECT_TRUE(book.start_ready(now, 10).empty()) << "a held stream must not publish";
  book.park("a");

  EXPECT_EQ(book.row_count(), 0u);
  EXPECT_TRUE(book.held_ids().empty());
}

TEST_F(StreamBookTest, ListsTheHeldIdsAboveEachPartitionsBound) {
  book.add(row(1, "a", 1, 0));
  book.add(row(5, "a", 2, 0));
  book.add(row(2, "b", 1, 1));
  book.add(row(7, "b", 2, 1));
  std::array<std::int64_t, kOutboxPartitions> bounds{};
  bounds.fill(std::numeric_limits<std::int64_t>::max());
  bounds[0] = 1;
  bounds[1] = 0;

  std::vector<std::int64_t> above = book.held_ids_above(bounds);
  std::vector<std::int64_t> all = book.held_ids();
  std::sort(above.begin(), above.end());
  std::sort(all.begin(), all.end());

  EXPECT_EQ(above, (std::vector<std::int64_t>{2, 5, 7}));
  EXPECT_EQ(all, (std::vector<std::int64_t>{1, 2, 5, 7}));
  EXPECT_EQ(book.row_count(), 4u);
}

TEST_F(StreamBookTest, LostConnectionPutsEveryRowInFlightBackInLine) {
  book.add(row(1, "a", 1));
  book.add(row(2, "b", 1));
  book.start_ready(now, 10);

  EXPECT_EQ(book.abandon_in_flight(), 2u);

  EXPECT_EQ(ids(book.start_ready(now, 10)), (std::vector<std::string>{"a/1", "b/1"}));
}

TEST_F(StreamBookTest, GivingUpAPartitionKeepsItsRowInFlightUntilItSettles) {
  book.add(row(1, "a", 1, 1));
  book.add(row(2, "a", 2, 1));
  book.start_ready(now, 10);

  book.set_owned(1, false);
  EXPECT_TRUE(book.busy(1));
  book.published("a/1");

  EXPECT_FALSE(book.busy(1));
  EXPECT_EQ(book.row_count(), 0u) << "rows of a partition given up are forgotten";
  EXPECT_EQ(book.add(row(3, "c", 1, 1)), StreamBook::Added::kNotOwned);
}

TEST_F(StreamBookTest, ARowOlderThanTheOneInFlightIsLeftForALaterFetch) {
  book.add(row(5, "a", 2));
  book.start_ready(now, 10);

  EXPECT_EQ(book.add(row(4, "a", 1)), StreamBook::Added::kBehindInFlight);
  EXPECT_EQ(book.add(row(5, "a", 2)), StreamBook::Added::kAlreadyHeld);
  EXPECT_EQ(book.row_count(), 1u) << "the older row is not held";
  ASSERT_NE(book.in_flight("a/2"), nullptr);
  EXPECT_EQ(book.in_flight("a/2")->outbox_id, 5) << "the row in flight is still the one sent";

  book.published("a/2");
  EXPECT_EQ(book.add(row(4, "a", 1)), StreamBook::Added::kAdded) << "fetched again later";
  EXPECT_EQ(ids(book.start_ready(now, 10)), (std::vector<std::string>{"a/1"}));
}

}  // namespace
}  // namespace deedkit::internal
