// The relay's two database helpers, each on its own thread and connection, against a real
// PostgreSQL: the recorder of published rows and the fetcher of pending ones.

#include <future>

#include <pqxx/pqxx>

#include <gtest/gtest.h>

#include "deedkit/outbox/outbox_writer.hpp"
#include "deedkit/eventstore/unit_of_work.hpp"
#include "event_factory.hpp"
#include "internal/async_fetcher.hpp"
#include "internal/mark_recorder.hpp"
#include "internal/relay_impl.hpp"
#include "relay_test_support.hpp"
#include "test_database.hpp"

namespace deedkit::testing {
namespace {

using namespace std::chrono_literals;

TEST(LatencyHistogramTest, QuantilesAreAtMostAFifthAboveTheTrueValue) {
  LatencyHistogram histogram;
  EXPECT_EQ(histogram.quantile(0.5), 0us) << "empty";
  // 1 ms .. 100 ms, one each: the median is 50 ms, the 99th percentile 99 ms.
  for (int ms = 1; ms <= 100; ++ms) histogram.add(std::chrono::milliseconds(ms));
  EXPECT_EQ(histogram.count(), 100u);
  EXPECT_GE(histogram.quantile(0.5), 50ms);
  EXPECT_LE(histogram.quantile(0.5), 60ms);
  EXPECT_GE(histogram.quantile(0.99), 99ms);
  EXPECT_LE(histogram.quantile(0.99), 119ms);
  EXPECT_LE(histogram.quantile(0.0), 1200us);

  histogram.add(std::chrono::hours(2));  // beyond the last bucket: counted in it
  histogram.add(-5ms);                   // clocks apart: counted in the first
  EXPECT_EQ(histogram.count(), 102u);
  EXPECT_GE(histogram.quantile(1.0), std::chrono::minutes(10));
}

class RelayHelpersTest : public DatabaseTest {
 protected:
  void SetUp() override { query_value(database_uri(), "TRUNCATE deedkit.outbox"); }

  // `count` pending rows of one new stream; returns their outbox ids in order.
  static std::vector<std::int64_t> pending_rows(int count) {
    const std::string stream = fresh_stream("helper");
    auto unit = UnitOfWork::begin(pool());
    EXPECT_TRUE(unit && write_outbox_rows(*unit, stream, 1, make_events(count)));
    EXPECT_TRUE(unit->commit());
    std::vector<std::int64_t> ids;
    const std::string first = query_value(
        database_uri(), "SELECT min(outbox_id) FROM deedkit.outbox WHERE stream_id = '" +
                            stream + "'");
    for (int i = 0; i < count; ++i) ids.push_back(std::stoll(first) + i);
    return ids;
  }

  static std::string published_count() {
    return query_value(database_uri(),
                       "SELECT count(*) FROM deedkit.outbox WHERE published_at IS NOT NULL");
  }

  static std::vector<internal::PartitionRoom> every_partition(int rows) {
    std::vector<internal::PartitionRoom> rooms;
    for (int partition = 0; partition < internal::kOutboxPartitions; ++partition) {
      rooms.push_back({partition, rows});
    }
    return rooms;
  }
};

TEST_F(RelayHelpersTest, TheRecorderMarksQueuedRowsAndCountsThemPendingUntilDone) {
  const auto ids = pending_rows(3);
  internal::MarkRecorder recorder(database_uri(), internal::MarkRecorder::Record::kMark, 10ms,
                                  100ms, {});

  recorder.record(ids);
  const auto pending_at_once = recorder.pending_ids();
  const bool idle = recorder.wait_until_idle(std::chrono::steady_clock::now() + 30s);

  std::vector<std::int64_t> sorted = pending_at_once;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, ids) << "queued rows are pending until recorded";
  EXPECT_TRUE(idle);
  EXPECT_TRUE(recorder.pending_ids().empty());
  EXPECT_EQ(recorder.take_recorded(), 3u);
  EXPECT_EQ(published_count(), "3");
}

TEST_F(RelayHelpersTest, TheRecorderKeepsRowsPendingAndReportsAnErrorRetryingCannotFix) {
  const auto ids = pending_rows(2);
  const std::string label = "relay_helpers_no_schema";
  const std::string empty_database = create_database(label);
  {
    internal::MarkRecorder recorder(empty_database, internal::MarkRecorder::Record::kMark,
                                    10ms, 100ms, {});
    recorder.record(ids);

    EXPECT_FALSE(recorder.wait_until_idle(std::chrono::steady_clock::now() + 30s));
    ASSERT_TRUE(recorder.fatal().has_value());
    EXPECT_NE(recorder.fatal()->message.find("outbox"), std::string::npos)
        << recorder.fatal()->to_string();
    EXPECT_EQ(recorder.pending_ids().size(), 2u);
  }
  drop_database(label);
  EXPECT_EQ(published_count(), "0");
}

TEST_F(RelayHelpersTest, TheFetcherReadsOnItsThreadSkipsTheGivenIdsAndTellsWhenDone) {
  const auto ids = pending_rows(4);
  std::promise<void> done;
  internal::AsyncFetcher fetcher(database_uri(), [&done] { done.set_value(); });

  fetcher.start(every_partition(10), {ids[0]}, {}, 0);
  const bool busy_while_running = fetcher.busy();
  done.get_future().wait();
  auto finished = fetcher.take();

  EXPECT_TRUE(busy_while_running);
  ASSERT_TRUE(finished.has_value());
  EXPECT_FALSE(fetcher.busy());
  EXPECT_FALSE(fetcher.take().has_value()) << "a finished fetch is taken once";
  ASSERT_TRUE(finished->rows.has_value()) << finished->rows.error().to_string();
  std::vector<std::int64_t> fetched;
  for (const auto& row : *finished->rows) fetched.push_back(row.outbox_id);
  EXPECT_EQ(fetched, std::vector<std::int64_t>(ids.begin() + 1, ids.end()));
}

TEST_F(RelayHelpersTest, AFetchStartsAboveThePartitionsBound) {
  const auto ids = pending_rows(4);
  const int partition = std::stoi(query_value(
      database_uri(),
      "SELECT partition FROM deedkit.outbox WHERE outbox_id = " + std::to_string(ids[0])));
  auto rooms = every_partition(10);
  rooms[static_cast<std::size_t>(partition)].after = ids[1];
  internal::RelayDatabase database(database_uri());

  const auto rows = database.fetch(rooms, {});

  ASSERT_TRUE(rows.has_value()) << rows.error().to_string();
  std::vector<std::int64_t> fetched;
  for (const auto& row : *rows) fetched.push_back(row.outbox_id);
  EXPECT_EQ(fetched, (std::vector<std::int64_t>{ids[2], ids[3]}));
}

// The relay's commit horizon rests on this: whoever draws an outbox id holds a transaction
// id already, so a snapshot that shows every transaction up to some id ended proves that no
// row with a lower outbox id can still commit.
TEST_F(RelayHelpersTest, AnOutboxIdIsDrawnOnlyByATransactionThatHoldsATransactionId) {
  pqxx::connection connection(database_uri());
  // Several transactions: a plain nextval() takes a transaction id too, but only on the
  // calls that write the sequence's WAL record (one in 32).
  for (int attempt = 0; attempt < 3; ++attempt) {
    pqxx::work work(connection);
    const bool assigned_before =
        !work.exec1("SELECT pg_current_xact_id_if_assigned()")[0].is_null();
    work.exec1("SELECT deedkit.next_outbox_id()");
    const bool assigned_after =
        !work.exec1("SELECT pg_current_xact_id_if_assigned()")[0].is_null();
    work.abort();

    EXPECT_FALSE(assigned_before);
    EXPECT_TRUE(assigned_after) << "attempt " << attempt;
  }
  EXPECT_EQ(query_value(database_uri(),
                        "SELECT column_default FROM information_schema.columns "
                        "WHERE table_schema = 'deedkit' AND table_name = 'outbox' "
                        "AND column_name = 'outbox_id'"),
            "deedkit.next_outbox_id()");
}

TEST_F(RelayHelpersTest, AHorizonProposalReadsTheSequenceAndTakesATransactionId) {
  const auto ids = pending_rows(2);
  internal::RelayDatabase database(database_uri());

  const auto proposal = database.propose_horizon();
  const auto poll = database.poll();

  ASSERT_TRUE(proposal.has_value()) << proposal.error().to_string();
  ASSERT_TRUE(poll.has_value()) << poll.error().to_string();
  EXPECT_EQ(proposal->sequence_value, ids[1]);
  EXPECT_GT(proposal->proposer_xid, 0u);
  EXPECT_GT(poll->snapshot.xmax, proposal->proposer_xid) << "the proposal has committed";
  // Other tests' transactions, anywhere in the cluster, may hold xmin back for a moment.
  internal::CommitHorizon horizon;
  horizon.propose(proposal->sequence_value, proposal->proposer_xid);
  EXPECT_TRUE(wait_until([&] {
    const auto later = database.poll();
    return later && horizon.observe(later->snapshot) == ids[1];
  }));
}

}  // namespace
}  // namespace deedkit::testing
