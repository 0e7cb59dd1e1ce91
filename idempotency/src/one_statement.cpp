#include "deedkit/idempotency/one_statement.hpp"

#include <functional>

#include <pqxx/except>
#include <pqxx/result>
#include <spdlog/spdlog.h>

#include "deedkit/eventstore/binary_params.hpp"
#include "stored_rows.hpp"

namespace deedkit {

namespace {

// Plans with more events than this run an unprepared statement: each event count has its
// own statement text, and a connection should not prepare an unbounded number of them.
constexpr std::size_t kPreparedEventLimit = 16;

// Parameters: $1 scope, $2 key, $3 lock_timeout, $4 command name, $5 fingerprint,
// $6 fingerprint version, $7 status, $8 header lines, $9 body; with an append also
// $10 stream, $11 version read, and five per event from $12.
//
// The statement's sub-statements share one snapshot, so the final SELECT sees a stored
// response only if it committed before the statement began; the claim sees one committed
// later too (it waits for it), which the caller tells apart by "not claimed, none seen".
std::string write_sql(const CommandPlan& plan) {
  const bool append = plan.append.has_value();
  std::string sql =
      "WITH settings AS (SELECT set_config('lock_timeout', $3::text, true)), "
      "tip AS (SELECT " +
      std::string(append ? "$11::int8 = 0 OR EXISTS (SELECT 1 FROM deedkit.events "
                           "WHERE stream_id = $10::text AND stream_version = $11::int8)"
                         : "true") +
      " AS present), "
      "claim AS (INSERT INTO deedkit.idempotency_keys (scope, idempotency_key, command_name, "
      "fingerprint, fingerprint_version, response_status, response_headers, response_body) "
      "SELECT $1::text, $2::text, $4::text, $5::text, $6::int4, $7::int4, "
      "string_to_array($8::text, E'\\n'), $9::bytea FROM settings, tip WHERE tip.present "
      "ON CONFLICT DO NOTHING RETURNING 1)";

  if (append) {
    // The version after the one read must be free: the unique index refuses it otherwise,
    // which fails the whole statement, claim included.
    sql +=
        ", appended AS (INSERT INTO deedkit.events (stream_id, stream_version, event_id, "
        "event_type, schema_version, payload, metadata) "
        "SELECT $10::text, $11::int8 + batch.ordinal, batch.event_id, batch.event_type, "
        "batch.schema_version, batch.payload, batch.metadata FROM claim, (VALUES ";
    for (std::size_t i = 0; i < plan.append->events.size(); ++i) {
      const std::size_t base = 12 + i * 5;
      if (i > 0) sql += ", ";
      sql += "(" + std::to_string(i + 1) + "::int8, $" + std::to_string(base) + "::uuid, $" +
             std::to_string(base + 1) + "::text, $" + std::to_string(base + 2) +
             "::int4, $" + std::to_string(base + 3) + "::bytea, $" +
             std::to_string(base + 4) + "::jsonb)";
    }
    sql +=
        ") AS batch(ordinal, event_id, event_type, schema_version, payload, metadata) "
        "ORDER BY batch.ordinal RETURNING *)";
    for (std::size_t i = 0; i < plan.writes_from_appended.size(); ++i) {
      sql += ", companion_" + std::to_string(i) + " AS (" + plan.writes_from_appended[i] + ")";
    }
  }

  sql += " SELECT (SELECT count(*) FROM claim)::int4, (SELECT present FROM tip), "
         "stored.command_name, stored.fingerprint, stored.fingerprint_version, "
         "stored.response_status, array_to_string(stored.response_headers, E'\\n'), "
         "stored.response_body FROM (SELECT 1) AS one "
         "LEFT JOIN deedkit.idempotency_keys AS stored "
         "ON stored.scope = $1::text AND stored.idempotency_key = $2::text";
  return sql;
}

std::string statement_name(const CommandPlan& plan) {
  std::string companions;
  for (const std::string& write : plan.writes_from_appended) companions += write + ";";
  const std::string shape =
      plan.append ? "a" + std::to_string(plan.append->events.size()) : "c";
  return "deedkit_idem_one_" + shape + "_" +
         std::to_string(std::hash<std::string>{}(companions));
}

BinaryParams write_params(const IdempotencyKey& key, std::string_view command_name,
                          const RequestFingerprint& fingerprint, const CommandPlan& plan,
                          std::chrono::milliseconds wait) {
  BinaryParams params;
  const StoredResponse& response = plan.reply.response;
  params.text(key.scope)
      .text(key.key)
      .text(std::to_string(wait.count()) + "ms")
      .text(command_name)
      .text(fingerprint.hex)
      .int4(fingerprint.version)
      .int4(response.status)
      .text(idempotency_rows::header_lines(response))
      .bytea(response.body);
  if (!plan.append) return params;

  params.text(plan.append->stream_id).int8(plan.append->after_version);
  for (const NewEvent& event : plan.append->events) {
    params.uuid(event.event_id)
        .text(event.event_type)
        .int4(event.schema_version)
        .bytea(event.payload)
        .jsonb(metadata_to_json(event.metadata));
  }
  return params;
}

// What one attempt came to: written, answered from a stored response, or to be planned
// again because the stream moved on.
struct AttemptResult {
  std::optional<IdempotentResult> answer;  // empty: plan again
  bool wrote = false;
};

Result<AttemptResult> read_stored(UnitOfWork& unit, const IdempotencyKey& key,
                                  std::string_view command_name,
                                  const RequestFingerprint& fingerprint) {
  try {
    unit.lease().ensure_prepared("deedkit_idem_stored", idempotency_rows::kStoredRowSql);
    BinaryParams params;
    params.text(key.scope).text(key.key);
    const pqxx::result stored = unit.tx().exec_prepared("deedkit_idem_stored",
                                                        params.dynamic());
    if (stored.empty()) return AttemptResult{};
    auto replay =
        idempotency_rows::replay_or_mismatch(stored[0], 0, key, command_name, fingerprint);
    if (!replay) return std::unexpected(replay.error());
    return AttemptResult{std::move(*replay), false};
  } catch (const std::exception&) {
    return std::unexpected(unit.fail_with_current_exception("read stored response"));
  }
}

Result<AttemptResult> write_once(UnitOfWork& unit, const IdempotencyKey& key,
                                 std::string_view command_name,
                                 const RequestFingerprint& fingerprint, const CommandPlan& plan,
                                 const IdempotencyOptions& options) {
  const std::string stream = plan.append ? plan.append->stream_id : std::string("no stream");
  pqxx::result written;
  try {
    const BinaryParams params =
        write_params(key, command_name, fingerprint, plan, options.wait_for_in_flight);
    if (plan.append && plan.append->events.size() > kPreparedEventLimit) {
      written = unit.tx().exec_params(write_sql(plan), params.dynamic());
    } else {
      const std::string name = statement_name(plan);
      // The statement's text is built only the first time a connection prepares it.
      unit.lease().ensure_prepared_lazily(name, [&plan] { return write_sql(plan); });
      written = unit.tx().exec_prepared(name, params.dynamic());
    }
  } catch (const pqxx::unique_violation& error) {
    if (std::string_view(error.what()).find("events_stream_version_key") !=
        std::string_view::npos) {
      // Another writer appended after the version the plan read; nothing was stored.
      return AttemptResult{};
    }
    return std::unexpected(unit.fail_with_current_exception("write command to " + stream));
  } catch (const pqxx::transaction_rollback&) {
    // A deadlock or serialization failure rolled the statement back: nothing was stored.
    return AttemptResult{};
  } catch (const std::exception& error) {
    if (idempotency_rows::is_lock_timeout(error)) {
      // The wait was on the key (an attempt in flight) or on the stream's next version (a
      // writer still running); either way nothing was stored.
      unit.poison("idempotent write timed out");
      Error in_progress = idempotency_rows::still_in_progress(key);
      if (plan.append) {
        in_progress.message = "a request with Idempotency-Key '" + key.key +
                               "', or another writer of " + stream +
                               ", is still in progress; retry later";
      }
      return std::unexpected(std::move(in_progress));
    }
    return std::unexpected(unit.fail_with_current_exception("write command to " + stream));
  }

  const pqxx::row row = written[0];
  if (row[0].as<int>() == 1) return AttemptResult{IdempotentResult{plan.reply.response, false},
                                                  true};
  if (!row[2].is_null()) {
    auto replay = idempotency_rows::replay_or_mismatch(row, 2, key, command_name, fingerprint);
    if (!replay) return std::unexpected(replay.error());
    return AttemptResult{std::move(*replay), false};
  }
  if (!row[1].as<bool>()) {
    return fail(ErrorCode::kFailedPrecondition,
                "the plan appends to " + stream + " after version " +
                    std::to_string(plan.append->after_version) +
                    ", which the stream does not have");
  }
  // The key committed while this statement waited for it: read what it stored. Should it
  // be purged in between, the key is new again and the caller plans anew.
  return read_stored(unit, key, command_name, fingerprint);
}

void run_after_commit(const CommandPlan& plan, UnitOfWork& unit) {
  if (!plan.after_commit) return;
  if (auto done = plan.after_commit(unit); !done) {
    spdlog::warn("idempotent command committed, but its follow-up failed: {}; nothing is lost "
                 "(it only saves work later)",
                 done.error().to_string());
  }
}

}  // namespace

Result<IdempotentResult> with_idempotency_in_one_statement(
    ConnectionPool& pool, const IdempotencyKey& key, std::string_view command_name,
    const RequestFingerprint& fingerprint, const CommandPlanner& planner,
    const IdempotencyOptions& options) {
  if (auto valid = idempotency_rows::validate_call(key, options); !valid) {
    return std::unexpected(valid.error());
  }

  for (int attempt = 1;; ++attempt) {
    auto unit = UnitOfWork::autocommit(pool);
    if (!unit) return std::unexpected(unit.error());

    auto plan = planner(*unit);
    if (!plan) return std::unexpected(plan.error());
    if (plan->append && plan->append->events.empty()) {
      return fail(ErrorCode::kInvalidArgument,
                  "the plan appends to " + plan->append->stream_id +
                      " but has no events; leave `append` empty instead");
    }

    // A reply that is not stored writes nothing; a response stored for the key wins.
    auto result = plan->reply.store
                      ? write_once(*unit, key, command_name, fingerprint, *plan, options)
                      : read_stored(*unit, key, command_name, fingerprint);
    if (!result) return std::unexpected(result.error());
    if (!plan->reply.store && !result->answer) {
      return IdempotentResult{std::move(plan->reply.response), false};
    }
    if (result->answer) {
      if (result->wrote) run_after_commit(*plan, *unit);
      return std::move(*result->answer);
    }

    if (attempt >= options.max_attempts) {
      return fail(ErrorCode::kConflict,
                  "another writer kept appending to (or deadlocked on) " +
                      (plan->append ? plan->append->stream_id : std::string("the stream")) +
                      " while this command was planned (after " + std::to_string(attempt) +
                      " attempts)");
    }
  }
}

}  // namespace deedkit
