#include <atomic>
#include <cstdlib>
#include <random>
#include <thread>

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "asset_commands.hpp"
#include "deedkit/commands/command_handler.hpp"
#include "test_database.hpp"

namespace deedkit::testing {
namespace {

using google::protobuf::util::MessageDifferencer;
using Handler = CommandHandler<AssetDecider>;

class CommandHandlerTest : public DatabaseTest {
 protected:
  static Handler handler(HandlerOptions options = {}) { return Handler(store(), options); }

  static std::string registered_asset(const Handler& with) {
    auto outcome = with.handle(register_asset(), CommandContext{});
    EXPECT_TRUE(outcome.has_value()) << outcome.error().to_string();
    return outcome->aggregate_id;
  }

  static LoadedAggregate<AssetDecider> load(const Handler& with, const std::string& asset_id) {
    auto unit = UnitOfWork::begin(pool());
    EXPECT_TRUE(unit.has_value());
    auto loaded = with.load(*unit, Handler::stream_for(asset_id));
    EXPECT_TRUE(loaded.has_value()) << loaded.error().to_string();
    return std::move(*loaded);
  }

  static void append_raw(const std::string& stream, const std::string& type, int schema_version,
                         const std::string& payload) {
    NewEvent event;
    event.event_id = new_uuid();
    event.event_type = type;
    event.schema_version = schema_version;
    event.payload = payload;
    ASSERT_TRUE(store().append(stream, ExpectedVersion::any(), std::vector{event}));
  }
};

TEST_F(CommandHandlerTest, ACreatingCommandGetsAnIdAndAppendsWithMetadata) {
  const Handler assets = handler();
  CommandContext context;
  context.principal = "alice";
  context.correlation_id = new_uuid();

  const auto outcome = assets.handle(register_asset(), context);

  ASSERT_TRUE(outcome.has_value()) << outcome.error().to_string();
  EXPECT_FALSE(outcome->rejection.has_value());
  EXPECT_TRUE(outcome->created);
  EXPECT_TRUE(parse_uuid(outcome->aggregate_id).has_value());
  EXPECT_EQ(outcome->stream_id, "asset-" + outcome->aggregate_id);
  EXPECT_EQ(outcome->version, 1);
  const auto stored = store().read_stream_forward(outcome->stream_id, 1, 10);
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ(stored->front().event_type, "deedkit.realestate.v1.AssetRegistered");
  EXPECT_EQ(stored->front().metadata.principal, "alice");
  EXPECT_EQ(stored->front().metadata.correlation_id, context.correlation_id);
  EXPECT_EQ(stored->front().metadata.causation_id, context.command_id);
}

TEST_F(CommandHandlerTest, ARejectionAppendsNothing) {
  const Handler assets = handler();
  const std::string asset_id = registered_asset(assets);
  ASSERT_TRUE(assets.handle(list_for_sale(asset_id, 300000'00), {}));

  const auto again = assets.handle(list_for_sale(asset_id, 310000'00), {});

  ASSERT_TRUE(again.has_value()) << again.error().to_string();
  ASSERT_TRUE(again->rejection.has_value());
  EXPECT_EQ(again->rejection->code, "asset_already_listed");
  EXPECT_EQ(again->version, 2);
  EXPECT_EQ(store().read_stream_forward(again->stream_id, 1, 10)->size(), 2u);
}

TEST_F(CommandHandlerTest, EightThreadsOnOneAssetLoseNoUpdate) {
  const Handler assets = handler({.max_attempts = 50});
  const std::string asset_id = registered_asset(assets);
  constexpr int kThreads = 8;
  constexpr int kCommandsPerThread = 10;
  std::atomic<int> succeeded{0};
  std::atomic<int> failed{0};

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCommandsPerThread; ++i) {
        const auto outcome = assets.handle(reappraise(asset_id, 100000 + t * 1000 + i), {});
        if (outcome && !outcome->rejection) {
          ++succeeded;
        } else {
          ++failed;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();

  EXPECT_EQ(failed, 0) << "every reappraisal is valid; conflicts must be retried";
  const auto loaded = load(assets, asset_id);
  EXPECT_EQ(loaded.version, 1 + succeeded.load());
  EXPECT_EQ(succeeded, kThreads * kCommandsPerThread);
}

TEST_F(CommandHandlerTest, SnapshotAndFullFoldGiveEqualStates) {
  const Handler with_snapshots = handler({.snapshot_every = 10});
  const Handler without = handler({.use_snapshots = false});
  const std::string asset_id = registered_asset(with_snapshots);
  for (int i = 0; i < 24; ++i) {
    ASSERT_TRUE(with_snapshots.handle(reappraise(asset_id, 100000 + i), {}));
  }

  const auto snapshotted = load(with_snapshots, asset_id);
  const auto folded = load(without, asset_id);

  EXPECT_EQ(snapshotted.snapshot_version, 20);
  EXPECT_EQ(snapshotted.events_folded, 5);
  EXPECT_EQ(folded.events_folded, 25);
  EXPECT_EQ(snapshotted.version, folded.version);
  EXPECT_TRUE(MessageDifferencer::Equals(snapshotted.state, folded.state))
      << snapshotted.state.DebugString() << "\nvs\n" << folded.state.DebugString();
}

TEST_F(CommandHandlerTest, DeletingEverySnapshotChangesNoResult) {
  const Handler assets = handler({.snapshot_every = 5});
  const std::string asset_id = registered_asset(assets);
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(assets.handle(reappraise(asset_id, 5000 + i), {}));
  const auto before = load(assets, asset_id);

  query_value(database_uri(), "DELETE FROM deedkit.snapshots");
  const auto after = load(assets, asset_id);

  EXPECT_GT(before.snapshot_version, 0);
  EXPECT_EQ(after.snapshot_version, 0);
  EXPECT_TRUE(MessageDifferencer::Equals(before.state, after.state));
}

TEST_F(CommandHandlerTest, ASnapshotOfAnOlderSchemaIsIgnoredAndReplaced) {
  const Handler assets = handler({.snapshot_every = 3});
  const std::string asset_id = registered_asset(assets);
  const std::string stream = Handler::stream_for(asset_id);
  query_value(database_uri(),
              "INSERT INTO deedkit.snapshots (stream_id, stream_version, state_type, "
              "state_schema_version, state) VALUES ('" + stream + "', 1, 'old', 0, 'garbage')");

  const auto loaded = load(assets, asset_id);
  ASSERT_TRUE(assets.handle(reappraise(asset_id, 7), {}));
  ASSERT_TRUE(assets.handle(reappraise(asset_id, 8), {}));

  EXPECT_EQ(loaded.snapshot_version, 0);
  EXPECT_EQ(loaded.events_folded, 1);
  EXPECT_EQ(query_value(database_uri(), "SELECT state_schema_version || '/' || stream_version "
                                        "FROM deedkit.snapshots WHERE stream_id = '" + stream + "'"),
            "1/3");
}

TEST_F(CommandHandlerTest, AnUpcasterRewritesOldEventsWhileReading) {
  // Version 1 of AssetReappraised stored whole euros; version 2 stores cents.
  Handler assets = handler({.use_snapshots = false});
  assets.codec().set_schema_version("deedkit.realestate.v1.AssetReappraised", 2);
  assets.codec().add_upcaster(
      "deedkit.realestate.v1.AssetReappraised", 1,
      [](std::string_view payload) -> Result<std::string> {
        v1::AssetReappraised event;
        if (!event.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
          return fail(ErrorCode::kDataLoss, "not an AssetReappraised v1");
        }
        event.mutable_valuation()->set_amount_minor(event.valuation().amount_minor() * 100);
        return event.SerializeAsString();
      });
  const std::string asset_id = registered_asset(assets);
  v1::AssetReappraised old_event;
  old_event.set_asset_id(asset_id);
  *old_event.mutable_valuation() = eur(1234);
  append_raw(Handler::stream_for(asset_id), "deedkit.realestate.v1.AssetReappraised", 1,
             old_event.SerializeAsString());

  const auto loaded = load(assets, asset_id);

  EXPECT_EQ(loaded.state.valuation().amount_minor(), 123400);
}

TEST_F(CommandHandlerTest, ACorruptPayloadIsAnErrorNamingStreamVersionAndType) {
  const Handler assets = handler({.use_snapshots = false});
  const std::string asset_id = registered_asset(assets);
  const std::string stream = Handler::stream_for(asset_id);
  append_raw(stream, "deedkit.realestate.v1.AssetReappraised", 1, "\xff\xff\xff not protobuf");

  auto unit = UnitOfWork::begin(pool());
  const auto loaded = assets.load(*unit, stream);
  const auto refused = assets.handle(reappraise(asset_id, 5), {});

  ASSERT_FALSE(loaded.has_value());
  EXPECT_EQ(loaded.error().code, ErrorCode::kDataLoss);
  EXPECT_NE(loaded.error().message.find(stream + "@2"), std::string::npos) << loaded.error().message;
  EXPECT_NE(loaded.error().message.find("AssetReappraised"), std::string::npos);
  ASSERT_FALSE(refused.has_value()) << "a command must not run on a state it could not load";
  EXPECT_EQ(store().read_stream_forward(stream, 1, 10)->size(), 2u);
}

TEST_F(CommandHandlerTest, AnUnknownEventTypeIsAnErrorNotASkip) {
  const Handler assets = handler({.use_snapshots = false});
  const std::string asset_id = registered_asset(assets);
  append_raw(Handler::stream_for(asset_id), "deedkit.realestate.v1.AssetTeleported", 1, "");

  auto unit = UnitOfWork::begin(pool());
  const auto loaded = assets.load(*unit, Handler::stream_for(asset_id));

  ASSERT_FALSE(loaded.has_value());
  EXPECT_EQ(loaded.error().code, ErrorCode::kDataLoss);
  EXPECT_NE(loaded.error().message.find("AssetTeleported"), std::string::npos);
}

TEST_F(CommandHandlerTest, RandomCommandSequencesReplayToTheStateAppliedInMemory) {
  const char* seed_text = std::getenv("DEEDKIT_TEST_SEED");
  const unsigned seed = seed_text ? static_cast<unsigned>(std::strtoul(seed_text, nullptr, 10))
                                  : std::random_device{}();
  std::printf("RandomCommandSequences seed: %u (set DEEDKIT_TEST_SEED to replay)\n", seed);
  std::mt19937 random(seed);
  const Handler assets = handler({.snapshot_every = 7});
  const Handler without = handler({.use_snapshots = false});

  for (int run = 0; run < 10; ++run) {
    const std::string asset_id = to_string(new_uuid());
    auto in_memory = AssetDecider::initial_state();
    auto apply = [&](const v1::AssetCommand& command) {
      const auto outcome = assets.handle(command, {});
      ASSERT_TRUE(outcome.has_value()) << outcome.error().to_string();
      const auto decision = AssetDecider::decide(command, in_memory);
      ASSERT_EQ(decision.has_value(), !outcome->rejection.has_value()) << "seed " << seed;
      if (decision) {
        for (const auto& event : *decision) in_memory = AssetDecider::evolve(in_memory, event);
      }
    };

    apply(register_asset(asset_id));
    for (int step = 0; step < 30; ++step) {
      switch (random() % 3) {
        case 0: apply(reappraise(asset_id, 1 + random() % 1000000)); break;
        case 1: apply(list_for_sale(asset_id, 1 + random() % 1000000)); break;
        default: apply(withdraw(asset_id)); break;
      }
    }

    const auto through_snapshots = load(assets, asset_id);
    const auto replayed = load(without, asset_id);
    EXPECT_TRUE(MessageDifferencer::Equals(replayed.state, in_memory)) << "seed " << seed;
    EXPECT_TRUE(MessageDifferencer::Equals(through_snapshots.state, in_memory)) << "seed " << seed;
  }
}

}  // namespace
}  // namespace deedkit::testing
