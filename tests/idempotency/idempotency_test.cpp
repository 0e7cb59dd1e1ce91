#include <atomic>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "deedkit/idempotency/idempotency.hpp"
#include "deedkit/idempotency/key_janitor.hpp"
#include "deedkit/outbox/outbox_writer.hpp"
#include "event_factory.hpp"
#include "keyed_command_test.hpp"

namespace deedkit::testing {
namespace {

// The command under test registers a "thing": one event in a new stream plus its outbox row,
// and answers 201 with the stream in the body and a Location header.
class IdempotencyTest : public KeyedCommandTest {
 protected:
  struct Counters {
    std::atomic<int> runs{0};
  };

  // A body that appends one event and one outbox row; `step_hook` runs between the steps.
  static IdempotentBody register_thing(Counters& counters, const std::string& stream,
                                       FaultHook step_hook = {}) {
    return [&counters, stream, step_hook](UnitOfWork& unit) -> Result<CommandReply> {
      ++counters.runs;
      const auto events = make_events(1, "thing");
      auto appended = store().append(unit, stream, ExpectedVersion::no_stream(), events);
      if (!appended) return std::unexpected(appended.error());
      if (step_hook) {
        if (auto hooked = step_hook("after_append", unit); !hooked) {
          return std::unexpected(hooked.error());
        }
      }
      if (auto written = write_outbox_rows(unit, stream, 1, events); !written) {
        return std::unexpected(written.error());
      }
      if (step_hook) {
        if (auto hooked = step_hook("after_outbox", unit); !hooked) {
          return std::unexpected(hooked.error());
        }
      }
      CommandReply reply;
      reply.response.status = 201;
      reply.response.headers = {{"Location", "/v1/things/" + stream}};
      reply.response.body = "{\"stream\":\"" + stream + "\",\"version\":1}";
      return reply;
    };
  }
};

TEST_F(IdempotencyTest, ANewKeyRunsTheCommandAndStoresItsResponse) {
  Counters counters;
  const std::string stream = fresh_stream("thing");
  const IdempotencyKey key{"alice", fresh_key()};

  const auto result = with_idempotency(pool(), key, "RegisterThing", fingerprint_of("a"),
                                       register_thing(counters, stream));

  ASSERT_TRUE(result.has_value()) << result.error().to_string();
  EXPECT_FALSE(result->replayed);
  EXPECT_EQ(result->response.status, 201);
  EXPECT_EQ(counters.runs, 1);
  EXPECT_EQ(count("events", stream), "1");
  EXPECT_EQ(count("outbox", stream), "1");
  EXPECT_EQ(key_count(key.key), "1");
}

TEST_F(IdempotencyTest, ARetryWithTheSameRequestReplaysTheStoredResponseWithoutRunning) {
  Counters counters;
  const std::string stream = fresh_stream("thing");
  const IdempotencyKey key{"alice", fresh_key()};
  const auto first = with_idempotency(pool(), key, "RegisterThing", fingerprint_of("a"),
                                      register_thing(counters, stream));

  const auto retry = with_idempotency(pool(), key, "RegisterThing", fingerprint_of("a"),
                                      register_thing(counters, stream));

  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(retry.has_value()) << retry.error().to_string();
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(retry->response, first->response);
  EXPECT_EQ(counters.runs, 1);
  EXPECT_EQ(count("events", stream), "1");
  EXPECT_EQ(count("outbox", stream), "1");
}

TEST_F(IdempotencyTest, TheSameKeyWithADifferentRequestIsRefusedAndRunsNothing) {
  Counters counters;
  const IdempotencyKey key{"alice", fresh_key()};
  ASSERT_TRUE(with_idempotency(pool(), key, "RegisterThing", fingerprint_of("a"),
                               register_thing(counters, fresh_stream("thing"))));

  const auto other_body = with_idempotency(pool(), key, "RegisterThing", fingerprint_of("b"),
                                           register_thing(counters, fresh_stream("thing")));
  const auto other_command = with_idempotency(pool(), key, "RenameThing", fingerprint_of("a"),
                                              register_thing(counters, fresh_stream("thing")));

  ASSERT_FALSE(other_body.has_value());
  EXPECT_EQ(other_body.error().code, ErrorCode::kAlreadyExists);
  ASSERT_FALSE(other_command.has_value());
  EXPECT_EQ(other_command.error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(counters.runs, 1);
}

TEST_F(IdempotencyTest, AFailedAttemptStoresNothingAndARetryRunsNormally) {
  Counters counters;
  const std::string stream = fresh_stream("thing");
  const IdempotencyKey key{"alice", fresh_key()};
  const IdempotentBody failing = [&](UnitOfWork& unit) -> Result<CommandReply> {
    auto appended = register_thing(counters, stream)(unit);
    if (!appended) return appended;
    return fail(ErrorCode::kInternal, "the command crashed after writing");
  };

  const auto failed = with_idempotency(pool(), key, "RegisterThing", fingerprint_of("a"),
                                       failing);
  const std::string keys_after_failure = key_count(key.key);
  const std::string events_after_failure = count("events", stream);
  const auto retry = with_idempotency(pool(), key, "RegisterThing", fingerprint_of("a"),
                                      register_thing(counters, stream));

  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(keys_after_failure, "0") << "a failed attempt left its claim behind";
  EXPECT_EQ(events_after_failure, "0");
  ASSERT_TRUE(retry.has_value()) << retry.error().to_string();
  EXPECT_FALSE(retry->replayed);
  EXPECT_EQ(count("events", stream), "1");
}

TEST_F(IdempotencyTest, UnstoredRejectionsRunAgainAndStoredOnesReplay) {
  Counters counters;
  const IdempotencyKey unstored{"alice", fresh_key()};
  const IdempotencyKey stored{"alice", fresh_key()};
  const auto rejection = [&](bool store) {
    return [&counters, store](UnitOfWork&) -> Result<CommandReply> {
      ++counters.runs;
      return CommandReply{{409, {}, "{\"code\":\"asset_already_listed\"}"}, store};
    };
  };

  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(with_idempotency(pool(), unstored, "ListAsset", fingerprint_of("x"),
                                 rejection(false)));
  }
  const int runs_unstored = counters.runs.exchange(0);
  const auto first = with_idempotency(pool(), stored, "ListAsset", fingerprint_of("x"),
                                      rejection(true));
  const auto second = with_idempotency(pool(), stored, "ListAsset", fingerprint_of("x"),
                                       rejection(true));

  EXPECT_EQ(runs_unstored, 2);
  EXPECT_EQ(counters.runs, 1);
  ASSERT_TRUE(second.has_value());
  EXPECT_TRUE(second->replayed);
  EXPECT_EQ(second->response.status, 409);
  EXPECT_EQ(second->response, first->response);
}

TEST_F(IdempotencyTest, ASecondAttemptWaitsForTheFirstAndReplaysItsResponse) {
  Counters counters;
  const std::string stream = fresh_stream("thing");
  const IdempotencyKey key{"alice", fresh_key()};
  std::promise<void> release_first;
  auto released = release_first.get_future().share();
  const IdempotencyOptions holding{.fault_hook = [released](std::string_view step, UnitOfWork&) {
    if (step == "before_commit") released.wait();
    return Result<void>{};
  }};

  auto first = std::async(std::launch::async, [&] {
    return with_idempotency(pool(), key, "RegisterThing", fingerprint_of("a"),
                            register_thing(counters, stream), holding);
  });
  while (counters.runs == 0) std::this_thread::yield();
  auto second = std::async(std::launch::async, [&] {
    return with_idempotency(pool(), key, "RegisterThing", fingerprint_of("a"),
                            register_thing(counters, stream));
  });
  wait_for_a_lock_waiter();
  release_first.set_value();

  const auto first_result = first.get();
  const auto second_result = second.get();
  ASSERT_TRUE(first_result.has_value()) << first_result.error().to_string();
  ASSERT_TRUE(second_result.has_value()) << second_result.error().to_string();
  EXPECT_TRUE(second_result->replayed);
  EXPECT_EQ(second_result->response, first_result->response);
  EXPECT_EQ(counters.runs, 1);
}

TEST_F(IdempotencyTest, ASecondAttemptRunsAsNewWhenTheFirstFails) {
  Counters counters;
  const std::string stream = fresh_stream("thing");
  const IdempotencyKey key{"alice", fresh_key()};
  std::promise<void> release_first;
  auto released = release_first.get_future().share();
  const IdempotencyOptions failing{
      .fault_hook = [released](std::string_view step, UnitOfWork&) -> Result<void> {
        if (step != "before_commit") return {};
        released.wait();
        return fail(ErrorCode::kInternal, "injected failure before commit");
      }};

  auto first = std::async(std::launch::async, [&] {
    return with_idempotency(pool(), key, "RegisterThing", fingerprint_of("a"),
                            register_thing(counters, stream), failing);
  });
  while (counters.runs == 0) std::this_thread::yield();
  auto second = std::async(std::launch::async, [&] {
    return with_idempotency(pool(), key, "RegisterThing", fingerprint_of("a"),
                            register_thing(counters, stream));
  });
  wait_for_a_lock_waiter();
  release_first.set_value();

  EXPECT_FALSE(first.get().has_value());
  const auto second_result = second.get();
  ASSERT_TRUE(second_result.has_value()) << second_result.error().to_string();
  EXPECT_FALSE(second_result->replayed);
  EXPECT_EQ(counters.runs, 2);
  EXPECT_EQ(count("events", stream), "1");
}

TEST_F(IdempotencyTest, ASecondAttemptGivesUpAfterTheBoundWithStillInProgress) {
  Counters counters;
  const IdempotencyKey key{"alice", fresh_key()};
  std::promise<void> release_first;
  auto released = release_first.get_future().share();
  const IdempotencyOptions holding{.fault_hook = [released](std::string_view step, UnitOfWork&) {
    if (step == "before_commit") released.wait();
    return Result<void>{};
  }};
  auto first = std::async(std::launch::async, [&] {
    return with_idempotency(pool(), key, "RegisterThing", fingerprint_of("a"),
                            register_thing(counters, fresh_stream("thing")), holding);
  });
  while (counters.runs == 0) std::this_thread::yield();

  const auto second = with_idempotency(
      pool(), key, "RegisterThing", fingerprint_of("a"),
      register_thing(counters, fresh_stream("thing")),
      IdempotencyOptions{.wait_for_in_flight = std::chrono::milliseconds(50)});
  release_first.set_value();

  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, ErrorCode::kDeadlineExceeded) << second.error().to_string();
  EXPECT_TRUE(first.get().has_value());
  EXPECT_EQ(counters.runs, 1);
}

TEST_F(IdempotencyTest, SixtyFourConcurrentSendsRunOnceAndGetIdenticalResponses) {
  Counters counters;
  const std::string stream = fresh_stream("thing");
  const IdempotencyKey key{"alice", fresh_key()};
  ConnectionPool wide({.database_uri = database_uri(), .max_connections = 70});
  std::atomic<bool> go{false};

  std::vector<std::future<Result<IdempotentResult>>> sends;
  for (int i = 0; i < 64; ++i) {
    sends.push_back(std::async(std::launch::async, [&] {
      while (!go) std::this_thread::yield();
      return with_idempotency(wide, key, "RegisterThing", fingerprint_of("a"),
                              register_thing(counters, stream),
                              {.wait_for_in_flight = std::chrono::seconds(30)});
    }));
  }
  go = true;

  std::vector<StoredResponse> responses;
  int executed = 0;
  for (auto& send : sends) {
    auto result = send.get();
    ASSERT_TRUE(result.has_value()) << result.error().to_string();
    if (!result->replayed) ++executed;
    responses.push_back(result->response);
  }

  EXPECT_EQ(counters.runs, 1);
  EXPECT_EQ(executed, 1);
  for (const auto& response : responses) EXPECT_EQ(response, responses.front());
  EXPECT_EQ(count("events", stream), "1");
  EXPECT_EQ(count("outbox", stream), "1");
}

class FaultInjectionTest : public IdempotencyTest,
                           public ::testing::WithParamInterface<std::string> {};

TEST_P(FaultInjectionTest, AFaultAtAnyStepLeavesNothingPartialAndARetrySucceedsOnce) {
  const std::string fault_step = GetParam();
  Counters counters;
  const std::string stream = fresh_stream("thing");
  const IdempotencyKey key{"alice", fresh_key()};
  const FaultHook inject = [fault_step](std::string_view step, UnitOfWork& unit) -> Result<void> {
    if (fault_step == "kill_connection" && step == "after_outbox") {
      // The server ends this transaction's backend, as a crash or failover would.
      const std::string pid = unit.tx().exec("SELECT pg_backend_pid()")[0][0].c_str();
      query_value(database_uri(), "SELECT pg_terminate_backend(" + pid + ")");
      return {};
    }
    if (step == fault_step) return fail(ErrorCode::kInternal, "injected fault at " + fault_step);
    return {};
  };

  const auto faulted = with_idempotency(pool(), key, "RegisterThing", fingerprint_of("a"),
                                        register_thing(counters, stream, inject),
                                        {.fault_hook = inject});
  const std::string events_after = count("events", stream);
  const std::string outbox_after = count("outbox", stream);
  const std::string keys_after = key_count(key.key);
  const auto retry = with_idempotency(pool(), key, "RegisterThing", fingerprint_of("a"),
                                      register_thing(counters, stream));
  const auto replay = with_idempotency(pool(), key, "RegisterThing", fingerprint_of("a"),
                                       register_thing(counters, stream));

  ASSERT_FALSE(faulted.has_value()) << "the fault at " << fault_step << " was not reported";
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

INSTANTIATE_TEST_SUITE_P(EveryStep, FaultInjectionTest,
                         ::testing::Values("after_claim", "after_append", "after_outbox",
                                           "before_store_response", "before_commit",
                                           "kill_connection"));

TEST_F(IdempotencyTest, ScopesDoNotSeeEachOthersKeys) {
  Counters counters;
  const std::string key = fresh_key();
  const std::string alice_stream = fresh_stream("thing");
  const std::string bob_stream = fresh_stream("thing");

  const auto alice = with_idempotency(pool(), {"alice", key}, "RegisterThing",
                                      fingerprint_of("a"), register_thing(counters, alice_stream));
  const auto bob = with_idempotency(pool(), {"bob", key}, "RegisterThing", fingerprint_of("a"),
                                    register_thing(counters, bob_stream));

  ASSERT_TRUE(alice.has_value());
  ASSERT_TRUE(bob.has_value());
  EXPECT_FALSE(bob->replayed) << "bob must never receive alice's stored response";
  EXPECT_NE(bob->response.body, alice->response.body);
  EXPECT_EQ(counters.runs, 2);
}

TEST_F(IdempotencyTest, KeysMustBePrintableAsciiOfOneTo255Characters) {
  Counters counters;
  for (const std::string& bad : {std::string(), std::string(256, 'k'), std::string("tab\there"),
                                std::string("caf\xc3\xa9")}) {
    const auto refused = with_idempotency(pool(), {"alice", bad}, "RegisterThing",
                                          fingerprint_of("a"),
                                          register_thing(counters, fresh_stream("thing")));
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  }
  EXPECT_TRUE(validate_idempotency_key(std::string(255, '~')).has_value());
  EXPECT_EQ(counters.runs, 0);
}

TEST_F(IdempotencyTest, ThePurgeRemovesOnlyExpiredKeysAndNeverALockedOne) {
  Counters counters;
  const std::string expired = fresh_key();
  const std::string locked = fresh_key();
  const std::string fresh = fresh_key();
  for (const auto& key : {expired, locked, fresh}) {
    ASSERT_TRUE(with_idempotency(pool(), {"purge", key}, "RegisterThing", fingerprint_of(key),
                                 register_thing(counters, fresh_stream("thing"))));
  }
  query_value(database_uri(),
              "UPDATE deedkit.idempotency_keys SET created_at = now() - interval '2 days' "
              "WHERE idempotency_key IN ('" + expired + "', '" + locked + "')");
  auto holder = UnitOfWork::begin(pool());
  ASSERT_TRUE(holder.has_value());
  holder->tx().exec("SELECT 1 FROM deedkit.idempotency_keys WHERE idempotency_key = '" + locked +
                    "' FOR UPDATE");

  const auto purged = purge_expired_idempotency_keys(pool(), std::chrono::hours(24), 1);

  ASSERT_TRUE(purged.has_value()) << purged.error().to_string();
  EXPECT_EQ(key_count(expired), "0");
  EXPECT_EQ(key_count(locked), "1");
  EXPECT_EQ(key_count(fresh), "1");
  const auto as_new = with_idempotency(pool(), {"purge", expired}, "RegisterThing",
                                       fingerprint_of(expired),
                                       register_thing(counters, fresh_stream("thing")));
  ASSERT_TRUE(as_new.has_value());
  EXPECT_FALSE(as_new->replayed) << "a purged key counts as new";
}

TEST_F(IdempotencyTest, TheJanitorPurgesExpiredKeysInTheBackgroundAndKeepsFreshOnes) {
  Counters counters;
  const std::string expired = fresh_key();
  const std::string fresh = fresh_key();
  for (const auto& key : {expired, fresh}) {
    ASSERT_TRUE(with_idempotency(pool(), {"janitor", key}, "RegisterThing", fingerprint_of(key),
                                 register_thing(counters, fresh_stream("thing"))));
  }
  query_value(database_uri(),
              "UPDATE deedkit.idempotency_keys SET created_at = now() - interval '25 hours' "
              "WHERE idempotency_key = '" + expired + "'");

  KeyJanitor janitor(pool(), {.interval = std::chrono::milliseconds(20)});
  janitor.start();
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (key_count(expired) != "0" && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::yield();
  }
  janitor.stop();

  EXPECT_EQ(key_count(expired), "0") << "the default retention is 24 hours";
  EXPECT_EQ(key_count(fresh), "1");
  EXPECT_GE(janitor.keys_purged(), 1);
}

}  // namespace
}  // namespace deedkit::testing
