#include <gtest/gtest.h>

#include "event_factory.hpp"
#include "test_database.hpp"

namespace deedkit::testing {
namespace {

class ReadTest : public DatabaseTest {
 protected:
  // Reads the category from the start once no open transaction holds the horizon back
  // (other test processes share the server, and the horizon is server-wide).
  static Result<GlobalLogBatch> read_all_settled(const std::string& category) {
    while (true) {
      auto batch = store().read_all(LogPosition::start(), 100, category);
      if (!batch || !batch->held_back) return batch;
    }
  }
};

std::vector<std::int64_t> versions_of(const std::vector<RecordedEvent>& events) {
  std::vector<std::int64_t> versions;
  for (const auto& event : events) versions.push_back(event.stream_version);
  return versions;
}

TEST_F(ReadTest, ForwardReadsPageAcrossBatchEdgesWithoutGapsOrRepeats) {
  const std::string stream = fresh_stream();
  ASSERT_TRUE(store().append(stream, ExpectedVersion::no_stream(), make_events(25)));

  std::vector<std::int64_t> seen;
  std::int64_t next = 1;
  while (true) {
    const auto batch = store().read_stream_forward(stream, next, 7);
    ASSERT_TRUE(batch.has_value()) << batch.error().to_string();
    if (batch->empty()) break;
    for (auto version : versions_of(*batch)) seen.push_back(version);
    next = batch->back().stream_version + 1;
  }

  ASSERT_EQ(seen.size(), 25u);
  for (std::size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], static_cast<int>(i) + 1);
}

TEST_F(ReadTest, BackwardReadsStartAtTheEndAndPageDown) {
  const std::string stream = fresh_stream();
  ASSERT_TRUE(store().append(stream, ExpectedVersion::no_stream(), make_events(10)));

  const auto last_four = store().read_stream_backward(stream, std::nullopt, 4);
  const auto next_four = store().read_stream_backward(stream, 6, 4);
  const auto tail = store().read_stream_backward(stream, 2, 4);

  ASSERT_TRUE(last_four.has_value());
  EXPECT_EQ(versions_of(*last_four), (std::vector<std::int64_t>{10, 9, 8, 7}));
  EXPECT_EQ(versions_of(*next_four), (std::vector<std::int64_t>{6, 5, 4, 3}));
  EXPECT_EQ(versions_of(*tail), (std::vector<std::int64_t>{2, 1}));
}

TEST_F(ReadTest, UnknownStreamReadsAsEmpty) {
  const auto read = store().read_stream_forward("nothing-here", 1, 10);

  ASSERT_TRUE(read.has_value());
  EXPECT_TRUE(read->empty());
}

TEST_F(ReadTest, ForEachVisitsEveryEventInBatchesAndStopsOnTheVisitorsError) {
  const std::string stream = fresh_stream();
  ASSERT_TRUE(store().append(stream, ExpectedVersion::no_stream(), make_events(23)));
  auto unit = UnitOfWork::begin(pool());
  ASSERT_TRUE(unit.has_value());

  std::int64_t visited = 0;
  const auto all = store().for_each_in_stream(*unit, stream, 1, 5, [&](const RecordedEvent& e) {
    EXPECT_EQ(e.stream_version, ++visited);
    return Result<void>{};
  });
  const auto stopped = store().for_each_in_stream(
      *unit, stream, 1, 5, [](const RecordedEvent& e) -> Result<void> {
        if (e.stream_version == 12) return fail(ErrorCode::kDataLoss, "stop at 12");
        return {};
      });

  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(visited, 23);
  ASSERT_FALSE(stopped.has_value());
  EXPECT_EQ(stopped.error().message, "stop at 12");
}

TEST_F(ReadTest, GlobalLogFiltersByCategory) {
  const std::string asset = fresh_stream("rtasset");
  const std::string lease = fresh_stream("rtlease");
  ASSERT_TRUE(store().append(asset, ExpectedVersion::no_stream(), make_events(3)));
  ASSERT_TRUE(store().append(lease, ExpectedVersion::no_stream(), make_events(2)));

  const auto assets = read_all_settled("rtasset");
  const auto leases = read_all_settled("rtlease");

  ASSERT_TRUE(assets.has_value()) << assets.error().to_string();
  ASSERT_EQ(assets->events.size(), 3u);
  for (const auto& event : assets->events) EXPECT_EQ(event.stream_id, asset);
  ASSERT_EQ(leases->events.size(), 2u);
  EXPECT_EQ(stream_category(asset), "rtasset");
}

TEST_F(ReadTest, GlobalLogPagesWithoutGapsOrRepeats) {
  const std::string stream = fresh_stream("rtpage");
  ASSERT_TRUE(store().append(stream, ExpectedVersion::no_stream(), make_events(30)));

  std::vector<std::int64_t> seen;
  LogPosition position = LogPosition::start();
  while (true) {
    const auto batch = store().read_all(position, 8, "rtpage");
    ASSERT_TRUE(batch.has_value()) << batch.error().to_string();
    // Held back: another test's transaction on this server is still open; read again.
    if (batch->events.empty() && !batch->held_back) break;
    for (const auto& event : batch->events) seen.push_back(event.stream_version);
    position = batch->next;
  }

  ASSERT_EQ(seen.size(), 30u);
  for (std::size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], static_cast<int>(i) + 1);
}

}  // namespace
}  // namespace deedkit::testing
