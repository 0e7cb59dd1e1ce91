#pragma once

// with_idempotency_in_one_statement: the fast path of with_idempotency for commands that
// append to one stream.
//
// The command is planned first: the planner loads what it needs through an autocommit unit
// (reads only) and decides. Then one statement writes everything: the claim with the stored
// response, the events (after the version the plan read), and the rows that must commit with
// the events (outbox rows). A statement is atomic, so there is no transaction to hold open;
// it costs one round trip and one commit, where the transactional path costs six.
//
// The cases of with_idempotency hold, with one difference in how they come about:
//  - new key: the statement claims the key and writes everything.
//  - completed key: the statement claims nothing and writes nothing; the stored response is
//    read in the same statement and compared: replay, or kAlreadyExists for another request.
//  - key held by an attempt still running: both attempts may plan, but the claim waits for
//    the first (bounded by wait_for_in_flight; then kDeadlineExceeded), and only one attempt
//    ever writes. Deciding twice is harmless: decide is pure, and only a decision that is
//    written is seen.
//  - the stream moved on since the plan read it: the statement fails on the version as a
//    whole (nothing stored) and the command is planned again, up to max_attempts.
//  - a reply that is not to be stored (a rejection): nothing is written; a stored response
//    for the key, if there is one, wins over the fresh rejection.
//  - the connection lost while the statement ran: kUnavailable. The statement may or may not
//    have committed; a retry with the same key replays it if it did.
//
// Thread-safety: free function; safe from any thread.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "deedkit/eventstore/types.hpp"
#include "deedkit/idempotency/idempotency.hpp"

namespace deedkit {

// The events a plan appends: to `stream_id`, after `after_version` (the version the plan
// read; 0 when the stream must not exist yet).
struct PlannedAppend {
  std::string stream_id;
  std::int64_t after_version = 0;
  std::vector<NewEvent> events;
};

struct CommandPlan {
  std::optional<PlannedAppend> append;  // none: the command writes no events
  CommandReply reply;
  // INSERT ... SELECT ... FROM appended statements written in the same statement as the
  // events; `appended` holds the new rows of deedkit.events (all columns). The outbox's
  // is outbox_insert_from_appended_sql().
  std::vector<std::string> writes_from_appended;
  // Runs after the statement committed, for work that may be lost without harm (a
  // snapshot). Its error is logged, never returned: the command has already happened.
  std::function<Result<void>(UnitOfWork& autocommit)> after_commit;
};

// Plans one attempt: reads through `reads` (an autocommit unit), writes nothing. Called
// again when the stream moved on before the write.
using CommandPlanner = std::function<Result<CommandPlan>(UnitOfWork& reads)>;

// See the header comment. Errors from the planner pass through unchanged and store nothing.
// options.fault_hook is not used: there are no steps between which to inject a fault.
[[nodiscard]] Result<IdempotentResult> with_idempotency_in_one_statement(
    ConnectionPool& pool, const IdempotencyKey& key, std::string_view command_name,
    const RequestFingerprint& fingerprint, const CommandPlanner& planner,
    const IdempotencyOptions& options = {});

}  // namespace deedkit
