// with_idempotency_in_one_statement against a real PostgreSQL: every case of the
// idempotency table, failures late in the statement, and the wait on an attempt in flight.

#include <atomic>
#include <future>
#include <memory>
#include <thread>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "deedkit/idempotency/one_statement.hpp"
#include "deedkit/outbox/outbox_writer.hpp"
#include "event_factory.hpp"
#include "keyed_command_test.hpp"

namespace deedkit::testing {
namespace {

// A companion that fails after the events are inserted: NULL metadata breaks a NOT NULL.
const std::string kFailingAfterAppend =
    "INSERT INTO deedkit.outbox (event_id, stream_id, stream_version, event_type, "
    "schema_version, payload, metadata) SELECT event_id, stream_id, stream_version, "
    "event_type, schema_version, payload, NULL FROM appended";

// PostgreSQL runs the statement's unreferenced writes in an order of its own; a write that
// reads the outbox insert's RETURNING rows runs after it. The outbox insert is the plan's
// first write, which the statement names companion_0 (one_statement.cpp).
const std::string kOutboxReturning =
    outbox_insert_from_appended_sql() + " RETURNING event_id, stream_id, stream_version, "
                                        "event_type, schema_version, payload";
const std::string kFailingAfterOutbox =
    "INSERT INTO deedkit.outbox (event_id, stream_id, stream_version, event_type, "
    "schema_version, payload, metadata) SELECT event_id, stream_id, stream_version, "
    "event_type, schema_version, payload, NULL FROM companion_0";

class OneStatementTest : public KeyedCommandTest {
 protected:
  struct Counters {
    std::atomic<int> plans{0};
    std::atomic<int> after_commits{0};
  };

  static CommandReply created(const std::string& stream, std::int64_t version) {
    CommandReply reply;
    reply.response.status = version == 1 ? 201 : 200;
    reply.response.headers = {{"Location", "/v1/things/" + stream}};
    reply.response.body =
        "{\"stream\":\"" + stream + "\",\"version\":" + std::to_string(version) + "}";
    return reply;
  }

  // Plans one event at the end of `stream` (read through the planner's unit) with its outbox
  // row; `companions` replace the outbox row when given.
  static CommandPlanner append_thing(Counters& counters, const std::string& stream,
                                     std::vector<std::string> companions = {
                                         outbox_insert_from_appended_sql()}) {
    return [&counters, stream, companions](UnitOfWork& reads) -> Result<CommandPlan> {
      ++counters.plans;
      auto version = store().stream_version(reads, stream);
      if (!version) return std::unexpected(version.error());

      CommandPlan plan;
      plan.append = PlannedAppend{stream, *version, make_events(1, "thing")};
      plan.writes_from_appended = companions;
      plan.reply = created(stream, *version + 1);
      plan.after_commit = [&counters](UnitOfWork&) -> Result<void> {
        ++counters.after_commits;
        return {};
      };
      return plan;
    };
  }
};

TEST_F(OneStatementTest, ANewKeyWritesClaimEventOutboxRowAndResponseTogether) {
  Counters counters;
  const std::string stream = fresh_stream("thing");
  const IdempotencyKey key{"alice", fresh_key()};

  const auto result = with_idempotency_in_one_statement(pool(), key, "RegisterThing",
                                                        fingerprint_of("a"),
                                                        append_thing(counters, stream));

  ASSERT_TRUE(result.has_value()) << result.error().to_string();
  EXPECT_FALSE(result->replayed);
  EXPECT_EQ(result->response, created(stream, 1).response);
  EXPECT_EQ(count("events", stream), "1");
  EXPECT_EQ(count("outbox", stream), "1");
  EXPECT_EQ(key_count(key.key), "1");
  EXPECT_EQ(query_value(database_uri(),
                        "SELECT response_status || ' ' || convert_from(response_body, 'UTF8') "
                        "FROM deedkit.idempotency_keys WHERE idempotency_key = '" + key.key + "'"),
            "201 " + result->response.body);
  EXPECT_EQ(counters.after_commits, 1);
}

TEST_F(OneStatementTest, ARetryReplaysTheStoredResponseAndWritesNothing) {
  Counters counters;
  const std::string stream = fresh_stream("thing");
  const IdempotencyKey key{"alice", fresh_key()};
  const auto first = with_idempotency_in_one_statement(pool(), key, "RegisterThing",
                                                       fingerprint_of("a"),
                                                       append_thing(counters, stream));

  const auto retry = with_idempotency_in_one_statement(pool(), key, "RegisterThing",
                                                       fingerprint_of("a"),
                                                       append_thing(counters, stream));

  ASSERT_TRUE(first.has_value() && retry.has_value());
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(retry->response, first->response);
  EXPECT_EQ(count("events", stream), "1");
  EXPECT_EQ(count("outbox", stream), "1");
  EXPECT_EQ(counters.after_commits, 1);
}

TEST_F(OneStatementTest, TheSameKeyWithADifferentRequestIsRefusedAndWritesNothing) {
  Counters counters;
  const std::string stream = fresh_stream("thing");
  const IdempotencyKey key{"alice", fresh_key()};
  ASSERT_TRUE(with_idempotency_in_one_statement(pool(), key, "RegisterThing",
                                                fingerprint_of("a"),
                                                append_thing(counters, stream)));

  const auto other_body = with_idempotency_in_one_statement(
      pool(), key, "RegisterThing", fingerprint_of("b"), append_thing(counters, stream));
  const auto other_command = with_idempotency_in_one_statement(
      pool(), key, "RenameThing", fingerprint_of("a"), append_thing(counters, stream));

  ASSERT_FALSE(other_body.has_value());
  EXPECT_EQ(other_body.error().code, ErrorCode::kAlreadyExists);
  ASSERT_FALSE(other_command.has_value());
  EXPECT_EQ(other_command.error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(count("events", stream), "1");
}

TEST_F(OneStatementTest, AStreamThatMovedOnSinceThePlanIsPlannedAgain) {
  Counters counters;
  const std::string stream = fresh_stream("thing");
  ASSERT_TRUE(store().append(stream, ExpectedVersion::no_stream(), make_events(1)));
  const CommandPlanner planner = append_thing(counters, stream);
  // The first plan reads version 1; another writer then takes version 2 before the write.
  const CommandPlanner raced = [&](UnitOfWork& reads) -> Result<CommandPlan> {
    auto plan = planner(reads);
    if (counters.plans == 1) {
      EXPECT_TRUE(store().append(stream, ExpectedVersion::exact(1), make_events(1, "rival")));
    }
    return plan;
  };

  const auto result = with_idempotency_in_one_statement(
      pool(), {"alice", fresh_key()}, "RegisterThing", fingerprint_of("a"), raced);

  ASSERT_TRUE(result.has_value()) << result.error().to_string();
  EXPECT_EQ(counters.plans, 2);
  EXPECT_EQ(result->response, created(stream, 3).response);
  EXPECT_EQ(count("events", stream), "3");
  EXPECT_EQ(count("outbox", stream), "1");
}

TEST_F(OneStatementTest, APlanAfterAVersionTheStreamDoesNotHaveStoresNothing) {
  const std::string stream = fresh_stream("thing");
  const IdempotencyKey key{"alice", fresh_key()};
  const CommandPlanner beyond_the_end = [&](UnitOfWork&) -> Result<CommandPlan> {
    CommandPlan plan;
    plan.append = PlannedAppend{stream, 7, make_events(1)};
    plan.reply = created(stream, 8);
    return plan;
  };

  const auto result = with_idempotency_in_one_statement(pool(), key, "RegisterThing",
                                                        fingerprint_of("a"), beyond_the_end);

  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kFailedPrecondition) << result.error().to_string();
  EXPECT_EQ(count("events", stream), "0");
  EXPECT_EQ(key_count(key.key), "0");
}

TEST_F(OneStatementTest, MoreEventsThanAPreparedStatementTakesAreWrittenInTheSameStatement) {
  const std::string stream = fresh_stream("thing");
  const IdempotencyKey key{"alice", fresh_key()};
  const CommandPlanner many = [&](UnitOfWork&) -> Result<CommandPlan> {
    CommandPlan plan;
    plan.append = PlannedAppend{stream, 0, make_events(40, "many")};
    plan.writes_from_appended = {outbox_insert_from_appended_sql()};
    plan.reply = created(stream, 40);
    return plan;
  };

  const auto result = with_idempotency_in_one_statement(pool(), key, "RegisterThing",
                                                        fingerprint_of("a"), many);

  ASSERT_TRUE(result.has_value()) << result.error().to_string();
  EXPECT_EQ(count("events", stream), "40");
  EXPECT_EQ(count("outbox", stream), "40");
  EXPECT_EQ(query_value(database_uri(), "SELECT max(stream_version) FROM deedkit.outbox "
                                        "WHERE stream_id = '" + stream + "'"),
            "40");
}

TEST_F(OneStatementTest, AnAppendWithoutEventsIsRefusedAndStoresNothing) {
  const std::string stream = fresh_stream("thing");
  const IdempotencyKey key{"alice", fresh_key()};
  const CommandPlanner empty = [&](UnitOfWork&) -> Result<CommandPlan> {
    CommandPlan plan;
    plan.append = PlannedAppend{stream, 0, {}};
    plan.reply = created(stream, 0);
    return plan;
  };

  const auto result = with_idempotency_in_one_statement(pool(), key, "RegisterThing",
                                                        fingerprint_of("a"), empty);

  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(key_count(key.key), "0");
}

TEST_F(OneStatementTest, AnUnstoredReplyWritesNothingButAStoredResponseWinsOverIt) {
  Counters counters;
  const std::string stream = fresh_stream("thing");
  const CommandPlanner rejecting = [](UnitOfWork&) -> Result<CommandPlan> {
    CommandPlan plan;
    plan.reply.response.status = 409;
    plan.reply.response.body = "{\"rejected\":true}";
    plan.reply.store = false;
    return plan;
  };
  const IdempotencyKey fresh{"alice", fresh_key()};
  const IdempotencyKey used{"alice", fresh_key()};
  const auto stored = with_idempotency_in_one_statement(pool(), used, "RegisterThing",
                                                        fingerprint_of("a"),
                                                        append_thing(counters, stream));

  const auto rejected = with_idempotency_in_one_statement(pool(), fresh, "RegisterThing",
                                                          fingerprint_of("a"), rejecting);
  const auto replayed = with_idempotency_in_one_statement(pool(), used, "RegisterThing",
                                                          fingerprint_of("a"), rejecting);

  ASSERT_TRUE(rejected.has_value() && replayed.has_value() && stored.has_value());
  EXPECT_EQ(rejected->response.status, 409);
  EXPECT_FALSE(rejected->replayed);
  EXPECT_EQ(key_count(fresh.key), "0");
  EXPECT_TRUE(replayed->replayed);
  EXPECT_EQ(replayed->response, stored->response);
}

TEST_F(OneStatementTest, AStoredRejectionIsClaimedWithoutEventsAndReplayed) {
  const IdempotencyKey key{"alice", fresh_key()};
  std::atomic<int> plans{0};
  const CommandPlanner rejecting = [&](UnitOfWork&) -> Result<CommandPlan> {
    ++plans;
    CommandPlan plan;
    plan.reply.response.status = 409;
    plan.reply.response.body = "{\"rejection\":" + std::to_string(plans.load()) + "}";
    return plan;
  };

  const auto first = with_idempotency_in_one_statement(pool(), key, "RegisterThing",
                                                       fingerprint_of("a"), rejecting);
  const auto retry = with_idempotency_in_one_statement(pool(), key, "RegisterThing",
                                                       fingerprint_of("a"), rejecting);

  ASSERT_TRUE(first.has_value() && retry.has_value());
  EXPECT_FALSE(first->replayed);
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(retry->response.body, "{\"rejection\":1}");
  EXPECT_EQ(key_count(key.key), "1");
}

class LateFailureTest : public OneStatementTest,
                        public ::testing::WithParamInterface<std::string> {};

// The statement fails after the claim and the events are written: after the append (a
// broken outbox row follows them), or after the outbox rows (a good copy is written first,
// then the broken one).
TEST_P(LateFailureTest, LeavesNothingAndARetrySucceedsOnce) {
  Counters counters;
  const std::string stream = fresh_stream("thing");
  const IdempotencyKey key{"alice", fresh_key()};
  const std::vector<std::string> failing =
      GetParam() == "after_append"
          ? std::vector<std::string>{kFailingAfterAppend}
          : std::vector<std::string>{kOutboxReturning, kFailingAfterOutbox};

  const auto faulted = with_idempotency_in_one_statement(
      pool(), key, "RegisterThing", fingerprint_of("a"), append_thing(counters, stream, failing));
  const std::string events_after = count("events", stream);
  const std::string outbox_after = count("outbox", stream);
  const std::string keys_after = key_count(key.key);
  const auto retry = with_idempotency_in_one_statement(pool(), key, "RegisterThing",
                                                       fingerprint_of("a"),
                                                       append_thing(counters, stream));
  const auto replay = with_idempotency_in_one_statement(pool(), key, "RegisterThing",
                                                        fingerprint_of("a"),
                                                        append_thing(counters, stream));

  ASSERT_FALSE(faulted.has_value());
  EXPECT_EQ(events_after, "0");
  EXPECT_EQ(outbox_after, "0");
  EXPECT_EQ(keys_after, "0");
  ASSERT_TRUE(retry.has_value()) << retry.error().to_string();
  EXPECT_FALSE(retry->replayed);
  ASSERT_TRUE(replay.has_value());
  EXPECT_TRUE(replay->replayed);
  EXPECT_EQ(count("events", stream), "1");
  EXPECT_EQ(count("outbox", stream), "1");
}

INSTANTIATE_TEST_SUITE_P(Steps, LateFailureTest,
                         ::testing::Values("after_append", "after_outbox"));

TEST_F(OneStatementTest, AConnectionKilledMidStatementLeavesNothingAndARetrySucceeds) {
  Counters counters;
  const std::string stream = fresh_stream("thing");
  const IdempotencyKey key{"alice", fresh_key()};
  const auto events = make_events(1, "held");
  // A last write of the statement, after the claim, the event and the outbox row, waits on
  // a key that another transaction holds uncommitted.
  query_value(database_uri(),
              "CREATE TABLE IF NOT EXISTS public.held_keys (key text PRIMARY KEY)");
  pqxx::connection blocker_connection(database_uri());
  pqxx::work blocker(blocker_connection);
  blocker.exec("INSERT INTO public.held_keys VALUES ('" + stream + "')");
  const std::string held_write =
      "INSERT INTO public.held_keys SELECT stream_id FROM companion_0";
  const CommandPlanner held = [&](UnitOfWork&) -> Result<CommandPlan> {
    CommandPlan plan;
    plan.append = PlannedAppend{stream, 0, events};
    plan.writes_from_appended = {kOutboxReturning, held_write};
    plan.reply = created(stream, 1);
    return plan;
  };

  auto killed = std::async(std::launch::async, [&] {
    return with_idempotency_in_one_statement(pool(), key, "RegisterThing",
                                             fingerprint_of("a"), held);
  });
  query_value(database_uri(), "SELECT pg_terminate_backend(" + wait_for_a_lock_waiter() + ")");
  const auto result = killed.get();
  blocker.abort();

  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kUnavailable) << result.error().to_string();
  EXPECT_EQ(count("events", stream), "0");
  EXPECT_EQ(key_count(key.key), "0");
  const auto retry = with_idempotency_in_one_statement(pool(), key, "RegisterThing",
                                                       fingerprint_of("a"), held);
  ASSERT_TRUE(retry.has_value()) << retry.error().to_string();
  EXPECT_FALSE(retry->replayed);
  EXPECT_EQ(count("events", stream), "1");
  EXPECT_EQ(count("outbox", stream), "1");
}

// The first attempt runs through the transactional path and holds its claim until
// released, so the second is certain to meet it in flight.
class InFlightTest : public OneStatementTest {
 protected:
  static IdempotentBody register_in_transaction(const std::string& stream,
                                                std::atomic<bool>& claimed) {
    return [stream, &claimed](UnitOfWork& unit) -> Result<CommandReply> {
      claimed = true;
      const auto events = make_events(1, "first");
      auto appended = store().append(unit, stream, ExpectedVersion::no_stream(), events);
      if (!appended) return std::unexpected(appended.error());
      if (auto written = write_outbox_rows(unit, stream, 1, events); !written) {
        return std::unexpected(written.error());
      }
      return created(stream, 1);
    };
  }

  // The first attempt, holding its claim until released.
  struct HeldAttempt {
    std::promise<void> release;
    std::future<Result<IdempotentResult>> result;
  };

  // Starts the first attempt and returns once it holds its claim. Released, it commits,
  // or fails if `then_fail`.
  static std::unique_ptr<HeldAttempt> hold_first_attempt(const IdempotencyKey& key,
                                                         const std::string& stream,
                                                         bool then_fail) {
    auto held = std::make_unique<HeldAttempt>();
    auto released = held->release.get_future().share();
    auto claimed = std::make_shared<std::atomic<bool>>(false);
    const IdempotencyOptions options{
        .fault_hook = [released, then_fail](std::string_view step, UnitOfWork&) -> Result<void> {
          if (step != "before_commit") return {};
          released.wait();
          if (then_fail) return fail(ErrorCode::kInternal, "injected failure before commit");
          return {};
        }};
    held->result = std::async(std::launch::async, [key, stream, claimed, options] {
      return with_idempotency(pool(), key, "RegisterThing", fingerprint_of("a"),
                              register_in_transaction(stream, *claimed), options);
    });
    while (!*claimed) std::this_thread::yield();
    return held;
  }
};

TEST_F(InFlightTest, ASecondAttemptWaitsForTheFirstAndReplaysItsResponse) {
  Counters counters;
  const std::string stream = fresh_stream("thing");
  const IdempotencyKey key{"alice", fresh_key()};
  auto first = hold_first_attempt(key, stream, false);

  auto second = std::async(std::launch::async, [&] {
    return with_idempotency_in_one_statement(pool(), key, "RegisterThing",
                                             fingerprint_of("a"),
                                             append_thing(counters, stream));
  });
  wait_for_a_lock_waiter();
  first->release.set_value();
  const auto first_result = first->result.get();
  const auto second_result = second.get();

  ASSERT_TRUE(first_result.has_value()) << first_result.error().to_string();
  ASSERT_TRUE(second_result.has_value()) << second_result.error().to_string();
  EXPECT_TRUE(second_result->replayed);
  EXPECT_EQ(second_result->response, first_result->response);
  EXPECT_EQ(count("events", stream), "1");
  EXPECT_EQ(counters.after_commits, 0);
}

TEST_F(InFlightTest, ASecondAttemptWritesAsNewWhenTheFirstFails) {
  Counters counters;
  const std::string stream = fresh_stream("thing");
  const IdempotencyKey key{"alice", fresh_key()};
  auto first = hold_first_attempt(key, stream, true);

  auto second = std::async(std::launch::async, [&] {
    return with_idempotency_in_one_statement(pool(), key, "RegisterThing",
                                             fingerprint_of("a"),
                                             append_thing(counters, stream));
  });
  wait_for_a_lock_waiter();
  first->release.set_value();

  EXPECT_FALSE(first->result.get().has_value());
  const auto second_result = second.get();
  ASSERT_TRUE(second_result.has_value()) << second_result.error().to_string();
  EXPECT_FALSE(second_result->replayed);
  EXPECT_EQ(count("events", stream), "1");
  EXPECT_EQ(count("outbox", stream), "1");
}

TEST_F(InFlightTest, ASecondAttemptGivesUpAfterTheBoundWithStillInProgress) {
  Counters counters;
  const std::string stream = fresh_stream("thing");
  const IdempotencyKey key{"alice", fresh_key()};
  auto first = hold_first_attempt(key, stream, false);

  const auto second = with_idempotency_in_one_statement(
      pool(), key, "RegisterThing", fingerprint_of("a"), append_thing(counters, stream),
      IdempotencyOptions{.wait_for_in_flight = std::chrono::milliseconds(50)});
  first->release.set_value();

  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, ErrorCode::kDeadlineExceeded) << second.error().to_string();
  EXPECT_TRUE(first->result.get().has_value());
  EXPECT_EQ(count("events", stream), "1");
}

TEST_F(OneStatementTest, SixtyFourConcurrentSendsWriteOnceAndGetIdenticalResponses) {
  Counters counters;
  const std::string stream = fresh_stream("thing");
  const IdempotencyKey key{"alice", fresh_key()};
  ConnectionPool wide({.database_uri = database_uri(), .max_connections = 70});
  std::atomic<bool> go{false};

  std::vector<std::future<Result<IdempotentResult>>> sends;
  for (int i = 0; i < 64; ++i) {
    sends.push_back(std::async(std::launch::async, [&] {
      while (!go) std::this_thread::yield();
      return with_idempotency_in_one_statement(
          wide, key, "RegisterThing", fingerprint_of("a"), append_thing(counters, stream),
          {.wait_for_in_flight = std::chrono::seconds(30)});
    }));
  }
  go = true;

  std::vector<StoredResponse> responses;
  int written = 0;
  for (auto& send : sends) {
    auto result = send.get();
    ASSERT_TRUE(result.has_value()) << result.error().to_string();
    if (!result->replayed) ++written;
    responses.push_back(result->response);
  }

  EXPECT_EQ(written, 1);
  EXPECT_EQ(counters.after_commits, 1);
  for (const auto& response : responses) EXPECT_EQ(response, responses.front());
  EXPECT_EQ(count("events", stream), "1");
  EXPECT_EQ(count("outbox", stream), "1");
}

TEST_F(OneStatementTest, ScopesDoNotSeeEachOthersKeys) {
  Counters counters;
  const std::string key = fresh_key();
  const std::string alice_stream = fresh_stream("thing");
  const std::string bob_stream = fresh_stream("thing");

  const auto alice = with_idempotency_in_one_statement(
      pool(), {"alice", key}, "RegisterThing", fingerprint_of("a"),
      append_thing(counters, alice_stream));
  const auto bob = with_idempotency_in_one_statement(pool(), {"bob", key}, "RegisterThing",
                                                     fingerprint_of("a"),
                                                     append_thing(counters, bob_stream));

  ASSERT_TRUE(alice.has_value() && bob.has_value());
  EXPECT_FALSE(bob->replayed);
  EXPECT_NE(alice->response, bob->response);
  EXPECT_EQ(count("events", bob_stream), "1");
}

TEST_F(OneStatementTest, BadKeysAndAnUnboundedWaitAreRefusedBeforeAnythingRuns) {
  Counters counters;
  const std::string stream = fresh_stream("thing");

  const auto empty_key = with_idempotency_in_one_statement(
      pool(), {"alice", ""}, "RegisterThing", fingerprint_of("a"), append_thing(counters, stream));
  const auto no_wait = with_idempotency_in_one_statement(
      pool(), {"alice", fresh_key()}, "RegisterThing", fingerprint_of("a"),
      append_thing(counters, stream), {.wait_for_in_flight = std::chrono::milliseconds(0)});

  ASSERT_FALSE(empty_key.has_value());
  EXPECT_EQ(empty_key.error().code, ErrorCode::kInvalidArgument);
  ASSERT_FALSE(no_wait.has_value());
  EXPECT_EQ(no_wait.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(counters.plans, 0);
}

}  // namespace
}  // namespace deedkit::testing
