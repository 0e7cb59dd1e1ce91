// Without a broker: JSON lines on stdout, and retention of published rows.

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <thread>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <pqxx/connection>
#include <pqxx/transaction>

#include "deedkit/outbox/relay.hpp"
#include "deedkit/outbox/v1/envelope.pb.h"
#include "relay_test_support.hpp"

namespace deedkit::testing {
namespace {

class RelayStdoutTest : public RelayFixture {
 protected:
  // A relay run in this process that writes JSON lines to a temporary file. Its periodic full
  // fetch is an hour away, so only the wake-up check and the fetches' own scans find rows: the
  // tests below are about where those scans start.
  class FollowingRelay {
   public:
    explicit FollowingRelay(int rows_per_partition = RelayOptions{}.rows_per_partition)
        : lines_(open_scratch_file()), relay_(options(lines_, rows_per_partition)) {
      runner_ = std::thread([this] { finished_ = relay_.run(); });
    }
    ~FollowingRelay() {
      stop();
      std::fclose(lines_);
    }
    FollowingRelay(const FollowingRelay&) = delete;
    FollowingRelay& operator=(const FollowingRelay&) = delete;

    // Stops the relay and returns how its run ended.
    const Result<void>& stop() {
      if (runner_.joinable()) {
        relay_.stop();
        runner_.join();
      }
      return finished_;
    }

    // The JSON lines written so far.
    std::int64_t lines_written() const {
      std::rewind(lines_);
      std::int64_t written = 0;
      for (int c = std::fgetc(lines_); c != EOF; c = std::fgetc(lines_)) written += c == '\n';
      return written;
    }

   private:
    static std::FILE* open_scratch_file() {
      std::FILE* file = std::tmpfile();
      if (file == nullptr) throw std::runtime_error("cannot create a temporary file");
      return file;
    }

    static RelayOptions options(std::FILE* lines, int rows_per_partition) {
      RelayOptions options{.database_uri = database_uri(), .json_lines = lines};
      options.fetch_interval = std::chrono::hours(1);
      options.rows_per_partition = rows_per_partition;
      return options;
    }

    std::FILE* lines_;
    Relay relay_;
    Result<void> finished_;
    std::thread runner_;
  };

  // Waits until `rows` rows of `stream` are marked published; false if that never happens.
  static bool published(const std::string& stream, std::int64_t rows) {
    return wait_until([&] {
      return count_rows("outbox",
                        "stream_id = '" + stream + "' AND published_at IS NOT NULL") == rows;
    });
  }
};

// The relay's JSON lines, each parsed; a line that is not JSON fails the test.
std::vector<google::protobuf::Struct> read_json_lines(const std::filesystem::path& path) {
  std::vector<google::protobuf::Struct> parsed_lines;
  std::ifstream lines(path);
  for (std::string line; std::getline(lines, line);) {
    google::protobuf::Struct parsed;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(line, &parsed).ok()) << line;
    parsed_lines.push_back(std::move(parsed));
  }
  return parsed_lines;
}

// The envelope of one JSON line, read back into its Protobuf message.
bool envelope_of(const google::protobuf::Struct& line, deedkit::outbox::v1::Envelope& envelope) {
  std::string envelope_json;
  return google::protobuf::util::MessageToJsonString(line.fields().at("envelope"), &envelope_json)
             .ok() &&
         google::protobuf::util::JsonStringToMessage(envelope_json, &envelope).ok();
}

TEST_F(RelayStdoutTest, WritesOneJsonLinePerEventInStreamOrder) {
  ConnectionPool pool(PoolOptions{.database_uri = database_uri(), .max_connections = 1});
  std::map<std::string, std::vector<Uuid>> events;
  for (const std::string stream_id : {"asset-1", "asset-2", "lease-1"}) {
    events[stream_id] = write_outbox(pool, stream_id, 1, 4);
    const auto more = write_outbox(pool, stream_id, 5, 2);
    events[stream_id].insert(events[stream_id].end(), more.begin(), more.end());
  }
  SpawnedRelay relay(scratch(), "relay", relay_arguments(""));
  relay.start();
  ASSERT_TRUE(wait_until([&] { return count_rows("outbox", "published_at IS NULL") == 0; }))
      << relay.log();
  ASSERT_EQ(relay.terminate(), 0) << relay.log();

  std::vector<StoredMessage> messages;
  for (const google::protobuf::Struct& parsed : read_json_lines(relay.stdout_file())) {
    const auto& fields = parsed.fields();
    const auto& headers = fields.at("headers").struct_value().fields();
    deedkit::outbox::v1::Envelope envelope;
    ASSERT_TRUE(envelope_of(parsed, envelope));

    const std::string category = envelope.stream_id().substr(0, envelope.stream_id().find('-'));
    EXPECT_EQ(fields.at("subject").string_value(),
              "deedkit." + category + ".deedkit_test_v1_Happened");
    EXPECT_EQ(headers.at("Nats-Msg-Id").string_value(), envelope.event_id());
    EXPECT_EQ(envelope.principal(), "tester");
    EXPECT_EQ(envelope.payload().size(), 16u);
    messages.push_back({0, fields.at("subject").string_value(), envelope.event_id(),
                        envelope.stream_id(), envelope.stream_version(), {}});
  }
  EXPECT_EQ(messages.size(), 18u);
  EXPECT_EQ(check_exactly_once_in_order(messages, events), "");
}

TEST_F(RelayStdoutTest, RetentionDeletesOnlyRowsPublishedLongerAgoThanTheRetention) {
  ConnectionPool pool(PoolOptions{.database_uri = database_uri(), .max_connections = 1});
  for (int stream = 0; stream < 5; ++stream) {
    write_outbox(pool, "old-" + std::to_string(stream), 1, 5);
  }
  query_value(database_uri(),
              "UPDATE deedkit.outbox SET published_at = now() - interval '2 days'; SELECT 1");
  for (int stream = 0; stream < 3; ++stream) {
    write_outbox(pool, "new-" + std::to_string(stream), 1, 4);
  }
  SpawnedRelay relay(scratch(), "relay",
                     relay_arguments("", {"--retain", "1h", "--retention-interval", "100ms",
                                          "--retention-batch", "7"}));
  relay.start();

  const bool pruned = wait_until([&] {
    return count_rows("outbox", "stream_id LIKE 'old-%'") == 0 &&
           count_rows("outbox", "published_at IS NULL") == 0;
  });

  ASSERT_TRUE(pruned) << relay.log();
  EXPECT_EQ(count_rows("outbox", "stream_id LIKE 'new-%' AND published_at IS NOT NULL"), 12)
      << "rows published just now must be kept";
  EXPECT_NE(relay.log().find("retention: deleted 25 rows"), std::string::npos) << relay.log();
  EXPECT_EQ(relay.terminate(), 0);
}

TEST_F(RelayStdoutTest, WithNothingToRetainEachRowIsDeletedOnceItsPublicationIsRecorded) {
  ConnectionPool pool(PoolOptions{.database_uri = database_uri(), .max_connections = 1});
  std::map<std::string, std::vector<Uuid>> events;
  for (const std::string stream_id : {"asset-1", "asset-2"}) {
    events[stream_id] = write_outbox(pool, stream_id, 1, 6);
  }
  SpawnedRelay relay(scratch(), "relay", relay_arguments("", {"--retain", "0"}));
  relay.start();

  ASSERT_TRUE(wait_until([&] { return count_rows("outbox", "true") == 0; })) << relay.log();
  ASSERT_EQ(relay.terminate(), 0) << relay.log();
  std::vector<StoredMessage> messages;
  for (const google::protobuf::Struct& parsed : read_json_lines(relay.stdout_file())) {
    deedkit::outbox::v1::Envelope envelope;
    ASSERT_TRUE(envelope_of(parsed, envelope));
    messages.push_back({0, "", envelope.event_id(), envelope.stream_id(),
                        envelope.stream_version(), {}});
  }
  EXPECT_EQ(messages.size(), 12u);
  EXPECT_EQ(check_exactly_once_in_order(messages, events), "");
}

TEST_F(RelayStdoutTest, InProcessRelayReportsMetricsAndStopsCleanly) {
  ConnectionPool pool(PoolOptions{.database_uri = database_uri(), .max_connections = 1});
  for (int stream = 0; stream < 4; ++stream) {
    write_outbox(pool, "metrics-" + std::to_string(stream), 1, 5);
  }
  // Written "ten seconds ago": the commit-to-PubAck latency is measured from recorded_at.
  query_value(database_uri(),
              "UPDATE deedkit.outbox SET recorded_at = now() - interval '10 seconds'");
  std::FILE* lines = std::tmpfile();
  ASSERT_NE(lines, nullptr);
  Relay relay(RelayOptions{.database_uri = database_uri(), .json_lines = lines});
  Result<void> finished;
  std::thread runner([&] { finished = relay.run(); });

  const bool published = wait_until([&] { return relay.metrics().published == 20; });
  relay.stop();
  runner.join();

  EXPECT_TRUE(published) << "published " << relay.metrics().published;
  EXPECT_TRUE(finished.has_value()) << finished.error().to_string();
  const RelayMetrics metrics = relay.metrics();
  EXPECT_EQ(metrics.duplicates, 0u);
  EXPECT_EQ(metrics.dead_letters, 0u);
  EXPECT_FALSE(metrics.fatal_error.has_value());
  EXPECT_EQ(metrics.owned_partitions, 0) << "a stopped relay holds no partitions";
  EXPECT_EQ(metrics.commit_to_ack_count, 20u);
  EXPECT_GE(metrics.commit_to_ack_p50, std::chrono::seconds(10));
  EXPECT_GE(metrics.commit_to_ack_p99, metrics.commit_to_ack_p50);
  EXPECT_LT(metrics.commit_to_ack_p99, std::chrono::seconds(60));
  EXPECT_EQ(count_rows("outbox", "published_at IS NULL"), 0);
  std::fclose(lines);
}

// A writer that drew its outbox id first commits last: rows after it, in the same partition,
// are published while it is open, and its own row must still be found. The fetch starts
// above the ids the relay has dealt with in that partition, so this is also the test that
// the commit horizon keeps that bound below the open writer's row.
TEST_F(RelayStdoutTest, ARowCommittedAfterLaterRowsWerePublishedIsStillPublished) {
  ConnectionPool pool(PoolOptions{.database_uri = database_uri(), .max_connections = 1});
  const std::string late_partition =
      query_value(database_uri(), "SELECT hashtext('late-1') & 63");
  std::string early_stream;
  for (int n = 1; early_stream.empty(); ++n) {
    const std::string candidate = "early-" + std::to_string(n);
    const std::string partition =
        query_value(database_uri(), "SELECT hashtext('" + candidate + "') & 63");
    if (partition == late_partition) early_stream = candidate;
  }
  pqxx::connection late_connection(database_uri());
  pqxx::work late(late_connection);
  late.exec("INSERT INTO deedkit.outbox (event_id, stream_id, stream_version, event_type, "
            "schema_version, payload, metadata) "
            "VALUES (gen_random_uuid(), 'late-1', 1, 'test.Late', 1, '', '{}')");
  write_outbox(pool, early_stream, 1, 5);
  FollowingRelay relay;

  const bool early_published = published(early_stream, 5);
  // More rows, so that the relay fetches again (and could move its bound) while the late
  // writer is still open.
  write_outbox(pool, early_stream, 6, 5);
  const bool more_published = published(early_stream, 10);
  late.commit();
  const bool late_published = published("late-1", 1);
  const Result<void>& finished = relay.stop();

  EXPECT_TRUE(early_published);
  EXPECT_TRUE(more_published);
  EXPECT_TRUE(late_published) << "the row committed late was skipped";
  EXPECT_TRUE(finished.has_value()) << finished.error().to_string();
  EXPECT_EQ(count_rows("outbox", "stream_id = 'late-1' AND outbox_id < (SELECT min(outbox_id) "
                                 "FROM deedkit.outbox WHERE stream_id = '" + early_stream +
                                 "')"),
            1)
      << "the late row's id must lie below the rows published before it";
}

// Writers that commit out of order while the relay follows them: each pair of transactions
// draws two ids and commits the higher one first, and the lower one only once the higher
// one is published, while the other writers keep the relay fetching and moving its bounds.
// None may pass a row still to commit.
TEST_F(RelayStdoutTest, RowsCommittedOutOfOrderByConcurrentWritersAreAllPublished) {
  constexpr int kWriters = 4;
  constexpr int kPairs = 40;
  FollowingRelay relay(8);

  std::vector<std::thread> writers;
  for (int writer = 0; writer < kWriters; ++writer) {
    writers.emplace_back([writer] {
      pqxx::connection first_connection(database_uri());
      pqxx::connection second_connection(database_uri());
      const auto insert = [](pqxx::work& work, const std::string& stream) {
        work.exec("INSERT INTO deedkit.outbox (event_id, stream_id, stream_version, "
                  "event_type, schema_version, payload, metadata) VALUES (gen_random_uuid(), " +
                  work.quote(stream) + ", 1, 'test.Paired', 1, '', '{}')");
      };
      for (int pair = 0; pair < kPairs; ++pair) {
        const std::string prefix = "pair" + std::to_string(writer) + "x" + std::to_string(pair);
        pqxx::work first(first_connection);
        insert(first, prefix + "-first");
        pqxx::work second(second_connection);
        insert(second, prefix + "-second");
        second.commit();
        EXPECT_TRUE(published(prefix + "-second", 1)) << prefix;
        first.commit();
      }
    });
  }
  for (std::thread& writer : writers) writer.join();
  const std::int64_t expected = kWriters * kPairs * 2;
  const bool all_published = wait_until([&] {
    return count_rows("outbox", "published_at IS NOT NULL") == expected;
  });
  const Result<void>& finished = relay.stop();

  EXPECT_TRUE(all_published) << count_rows("outbox", "published_at IS NULL")
                             << " rows never published";
  EXPECT_EQ(count_rows("outbox", "stream_id LIKE 'pair%'"), expected);
  EXPECT_EQ(relay.lines_written(), expected) << "one line per row";
  EXPECT_TRUE(finished.has_value()) << finished.error().to_string();
}

// A partition with more rows than the relay's room for it: each fetch stops at the room, and
// the partition's bound must not pass the rows that fetch did not reach.
TEST_F(RelayStdoutTest, APartitionWithMoreRowsThanItsRoomIsPublishedWhole) {
  ConnectionPool pool(PoolOptions{.database_uri = database_uri(), .max_connections = 1});
  write_outbox(pool, "crowded-1", 1, 60);
  FollowingRelay relay(4);

  const bool all_published = published("crowded-1", 60);
  const Result<void>& finished = relay.stop();

  EXPECT_TRUE(all_published) << count_rows("outbox", "published_at IS NOT NULL")
                             << " of 60 rows published";
  EXPECT_TRUE(finished.has_value()) << finished.error().to_string();
}

// The relay's fetches start above ids it has dealt with; when the sequence is set back, new
// rows get ids below those bounds and must be found all the same.
TEST_F(RelayStdoutTest, RowsWrittenAfterTheSequenceWasSetBackArePublished) {
  ConnectionPool pool(PoolOptions{.database_uri = database_uri(), .max_connections = 1});
  write_outbox(pool, "before-1", 1, 5);
  FollowingRelay relay;

  const bool first_published = published("before-1", 5);
  // A second round, so that fetches have moved their bounds above the first ids.
  write_outbox(pool, "before-1", 6, 5);
  const bool second_published = published("before-1", 10);
  query_value(database_uri(), "TRUNCATE deedkit.outbox RESTART IDENTITY");
  write_outbox(pool, "after-1", 1, 3);
  const bool after_published = published("after-1", 3);
  const Result<void>& finished = relay.stop();

  EXPECT_TRUE(first_published);
  EXPECT_TRUE(second_published);
  EXPECT_TRUE(after_published) << "rows with ids below the relay's bounds were skipped";
  EXPECT_EQ(query_value(database_uri(), "SELECT max(outbox_id) FROM deedkit.outbox"), "3");
  EXPECT_TRUE(finished.has_value()) << finished.error().to_string();
}

TEST_F(RelayStdoutTest, RefusesUnusableOptionsBeforeTouchingAnyServer) {
  RelayOptions options{.database_uri = "host=/nonexistent"};
  options.subject_template = "deedkit.{nope}";

  Relay relay(options);
  const auto finished = relay.run();

  ASSERT_FALSE(finished.has_value());
  EXPECT_EQ(finished.error().code, ErrorCode::kInvalidArgument);
  const auto fatal = relay.metrics().fatal_error;
  ASSERT_TRUE(fatal.has_value()) << "the metrics must show why the relay stopped";
  EXPECT_EQ(fatal->code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace deedkit::testing
