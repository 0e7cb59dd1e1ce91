// When the relay decides to fetch again, without servers.

#include <gtest/gtest.h>

#include "internal/wake_signal.hpp"

namespace deedkit::internal {
namespace {

OutboxPoll poll(std::int64_t sequence, const std::string& snapshot) {
  return {sequence, *Snapshot::parse(snapshot)};
}

TEST(WakeSignalTest, ParsesSnapshots) {
  const auto snapshot = Snapshot::parse("745:750:747,745");

  ASSERT_TRUE(snapshot.has_value());
  EXPECT_EQ(snapshot->xmin, 745u);
  EXPECT_EQ(snapshot->xmax, 750u);
  EXPECT_EQ(snapshot->running, (std::vector<std::uint64_t>{745, 747}));
  EXPECT_FALSE(Snapshot::parse("745:").has_value());
  EXPECT_TRUE(Snapshot::parse("10:10:").has_value());
}

TEST(WakeSignalTest, FetchesWhenTheSequenceMoves) {
  WakeSignal signal;
  EXPECT_TRUE(signal.moved(poll(5, "10:10:"))) << "nothing fetched yet";
  signal.fetched(poll(5, "10:10:"), 0);

  EXPECT_FALSE(signal.moved(poll(5, "10:12:")));
  EXPECT_TRUE(signal.moved(poll(6, "10:12:")));
}

TEST(WakeSignalTest, LooksOnceMoreAfterTheSequenceMoved) {
  WakeSignal signal;
  signal.fetched(poll(5, "10:10:"), 0);
  signal.fetched(poll(6, "10:11:"), 0);

  // The writer of id 6 may have had no transaction id at that check: look again once.
  EXPECT_TRUE(signal.moved(poll(6, "11:11:")));
  signal.fetched(poll(6, "11:11:"), 0);
  EXPECT_FALSE(signal.moved(poll(6, "11:11:")));
}

TEST(WakeSignalTest, FetchesWhenATransactionRunningAtTheLastFetchEnds) {
  WakeSignal signal;
  signal.fetched(poll(5, "8:12:8,9"), 0);

  EXPECT_FALSE(signal.moved(poll(5, "8:13:8,9,12")));
  EXPECT_TRUE(signal.moved(poll(5, "8:13:8,12"))) << "9 ended: its rows may be visible now";
  EXPECT_TRUE(signal.moved(poll(5, "9:13:9"))) << "8 ended";
}

TEST(WakeSignalTest, AfterAFetchPastTheHorizonOnlyAMoveOfTheSequenceCounts) {
  WakeSignal signal;
  signal.fetched(poll(5, "8:12:8,9"), 5);  // every row up to 5 was visible to that fetch

  EXPECT_FALSE(signal.moved(poll(5, "10:13:10"))) << "8 and 9 ended, but drew no id above 5";
  EXPECT_TRUE(signal.moved(poll(6, "10:13:10")));

  signal.fetched(poll(6, "10:13:10"), 5);  // the horizon lags the sequence: the old rules
  EXPECT_TRUE(signal.moved(poll(6, "11:13:11"))) << "not complete: the usual rules apply";
}

TEST(CommitHorizonTest, SettlesAProposalOnceEveryOlderTransactionHasEnded) {
  CommitHorizon horizon;
  EXPECT_EQ(horizon.observe(*Snapshot::parse("40:52:40,45")), 0) << "nothing proposed";
  EXPECT_TRUE(horizon.wants_proposal());

  // Sequence at 100 when transaction 50 was taken: writers of ids up to 100 are below 50.
  horizon.propose(100, 50);
  EXPECT_FALSE(horizon.wants_proposal());
  horizon.propose(200, 60);  // ignored: one at a time
  EXPECT_EQ(horizon.observe(*Snapshot::parse("40:52:40,45")), 0) << "40 and 45 still run";
  EXPECT_EQ(horizon.observe(*Snapshot::parse("45:60:45,55")), 0) << "45 still runs";
  EXPECT_EQ(horizon.observe(*Snapshot::parse("50:50:")), 0)
      << "xmin 50: a transaction numbered 50 or above may still run, unlisted";
  EXPECT_EQ(horizon.observe(*Snapshot::parse("55:60:55")), 100) << "everything below 55 ended";
  EXPECT_TRUE(horizon.wants_proposal());

  horizon.propose(90, 70);  // a lower value never moves the bound back
  EXPECT_EQ(horizon.observe(*Snapshot::parse("80:80:")), 100);
}

}  // namespace
}  // namespace deedkit::internal
