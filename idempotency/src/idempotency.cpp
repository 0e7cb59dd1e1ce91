#include "deedkit/idempotency/idempotency.hpp"

#include <pqxx/except>
#include <pqxx/result>

#include "deedkit/core/sha256.hpp"
#include "deedkit/engine/event_codec.hpp"
#include "deedkit/eventstore/binary_params.hpp"
#include "stored_rows.hpp"

namespace deedkit {

Result<void> validate_idempotency_key(std::string_view key) {
  if (key.empty()) return fail(ErrorCode::kInvalidArgument, "Idempotency-Key is empty");
  if (key.size() > 255) {
    return fail(ErrorCode::kInvalidArgument,
                "Idempotency-Key is " + std::to_string(key.size()) +
                    " characters long; at most 255 are allowed");
  }
  for (std::size_t i = 0; i < key.size(); ++i) {
    const auto c = static_cast<unsigned char>(key[i]);
    if (c < 0x20 || c > 0x7e) {
      return fail(ErrorCode::kInvalidArgument,
                  "Idempotency-Key has a character that is not printable ASCII at position " +
                      std::to_string(i));
    }
  }
  return {};
}

RequestFingerprint fingerprint_request(std::string_view command_name,
                                       const google::protobuf::Message& command) {
  // The NUL separator keeps ("ab", X) and ("a", "b" + X) apart.
  std::string canonical(command_name);
  canonical.push_back('\0');
  canonical += deterministic_bytes(command);
  return RequestFingerprint{sha256_hex(canonical), RequestFingerprint::kCurrentVersion};
}

namespace {

// The lock_timeout is set by the same statement that claims, so the claim's wait on an
// in-flight attempt is bounded without a separate round trip. It stays set for the rest of
// the transaction, which also bounds any other lock wait of this command.
const std::string kClaimSql =
    "WITH settings AS (SELECT set_config('lock_timeout', $6::text, true)) "
    "INSERT INTO deedkit.idempotency_keys (scope, idempotency_key, command_name, fingerprint, "
    "fingerprint_version) SELECT $1::text, $2::text, $3::text, $4::text, $5::int2 "
    "FROM settings ON CONFLICT DO NOTHING RETURNING 1";

const std::string kStoreResponseSql =
    "UPDATE deedkit.idempotency_keys SET response_status = $3::int4, "
    "response_headers = string_to_array($4::text, E'\\n'), response_body = $5::bytea "
    "WHERE scope = $1::text AND idempotency_key = $2::text";

enum class ClaimState { kClaimed, kStoredElsewhere };

// Inserts the claim, waiting at most the bound for an attempt that holds the same key.
Result<ClaimState> claim(UnitOfWork& unit, const IdempotencyKey& key,
                         std::string_view command_name, const RequestFingerprint& fingerprint,
                         std::chrono::milliseconds wait) {
  try {
    unit.lease().ensure_prepared("deedkit_idem_claim", kClaimSql);
    const pqxx::result claimed = unit.tx().exec_prepared(
        "deedkit_idem_claim", key.scope, key.key, std::string(command_name), fingerprint.hex,
        fingerprint.version, std::to_string(wait.count()) + "ms");
    return claimed.empty() ? ClaimState::kStoredElsewhere : ClaimState::kClaimed;
  } catch (const std::exception& error) {
    if (idempotency_rows::is_lock_timeout(error)) {
      unit.poison("idempotency claim timed out");
      return std::unexpected(idempotency_rows::still_in_progress(key));
    }
    return std::unexpected(unit.fail_with_current_exception("claim idempotency key"));
  }
}

Result<IdempotentResult> replay_stored(UnitOfWork& unit, const IdempotencyKey& key,
                                       std::string_view command_name,
                                       const RequestFingerprint& fingerprint) {
  try {
    unit.lease().ensure_prepared("deedkit_idem_stored", idempotency_rows::kStoredRowSql);
    const pqxx::result stored = unit.tx().exec_prepared("deedkit_idem_stored", key.scope,
                                                        key.key);
    if (stored.empty()) {
      // The row we collided with was purged between our insert and this read.
      return fail(ErrorCode::kAborted, "idempotency key vanished while being read; retry");
    }
    return idempotency_rows::replay_or_mismatch(stored[0], 0, key, command_name, fingerprint);
  } catch (const std::exception&) {
    return std::unexpected(unit.fail_with_current_exception("read stored response"));
  }
}

Result<void> store_response(UnitOfWork& unit, const IdempotencyKey& key,
                            const StoredResponse& response) {
  try {
    unit.lease().ensure_prepared("deedkit_idem_store", kStoreResponseSql);
    BinaryParams params;
    params.text(key.scope)
        .text(key.key)
        .int4(response.status)
        .text(idempotency_rows::header_lines(response))
        .bytea(response.body);
    unit.tx().exec_prepared("deedkit_idem_store", params.dynamic());
    return {};
  } catch (const std::exception&) {
    return std::unexpected(unit.fail_with_current_exception("store idempotent response"));
  }
}

Result<void> run_hook(const IdempotencyOptions& options, std::string_view step,
                      UnitOfWork& unit) {
  if (!options.fault_hook) return {};
  return options.fault_hook(step, unit);
}

// One attempt in one unit. Returns the result, or the error with the unit's state.
Result<IdempotentResult> attempt_once(UnitOfWork& unit, const IdempotencyKey& key,
                                      std::string_view command_name,
                                      const RequestFingerprint& fingerprint,
                                      const IdempotentBody& body,
                                      const IdempotencyOptions& options) {
  auto claimed = claim(unit, key, command_name, fingerprint, options.wait_for_in_flight);
  if (!claimed) return std::unexpected(claimed.error());
  if (*claimed == ClaimState::kStoredElsewhere) {
    return replay_stored(unit, key, command_name, fingerprint);
  }
  if (auto hooked = run_hook(options, "after_claim", unit); !hooked) {
    return std::unexpected(hooked.error());
  }

  auto reply = body(unit);
  if (!reply) return std::unexpected(reply.error());
  if (!reply->store) {
    // Not stored: dropping the unit rolls the claim back, so a retry runs again.
    return IdempotentResult{std::move(reply->response), false};
  }

  if (auto hooked = run_hook(options, "before_store_response", unit); !hooked) {
    return std::unexpected(hooked.error());
  }
  if (auto stored = store_response(unit, key, reply->response); !stored) {
    return std::unexpected(stored.error());
  }
  if (auto hooked = run_hook(options, "before_commit", unit); !hooked) {
    return std::unexpected(hooked.error());
  }
  if (auto committed = unit.commit(); !committed) return std::unexpected(committed.error());
  return IdempotentResult{std::move(reply->response), false};
}

}  // namespace

Result<IdempotentResult> with_idempotency(ConnectionPool& pool, const IdempotencyKey& key,
                                          std::string_view command_name,
                                          const RequestFingerprint& fingerprint,
                                          const IdempotentBody& body,
                                          const IdempotencyOptions& options) {
  if (auto valid = idempotency_rows::validate_call(key, options); !valid) {
    return std::unexpected(valid.error());
  }

  for (int attempt = 1;; ++attempt) {
    auto unit = UnitOfWork::begin(pool);
    if (!unit) return std::unexpected(unit.error());

    auto result = attempt_once(*unit, key, command_name, fingerprint, body, options);
    const bool retry = !result && attempt < options.max_attempts &&
                       (result.error().code == ErrorCode::kConflict ||
                        result.error().code == ErrorCode::kAborted);
    if (!retry) return result;
  }
}

Result<long long> purge_expired_idempotency_keys(ConnectionPool& pool,
                                                 std::chrono::seconds retention,
                                                 int batch_size) {
  if (batch_size < 1) {
    return fail(ErrorCode::kInvalidArgument, "purge batch size must be at least 1");
  }
  long long purged = 0;
  while (true) {
    auto unit = UnitOfWork::begin(pool);
    if (!unit) return std::unexpected(unit.error());
    try {
      // Small batches keep each transaction short; SKIP LOCKED never waits on a key another
      // transaction locks. A replay reading a key as it goes finds it gone and runs anew.
      const pqxx::result deleted = unit->tx().exec_params(
          "DELETE FROM deedkit.idempotency_keys WHERE ctid IN ("
          " SELECT ctid FROM deedkit.idempotency_keys"
          " WHERE created_at < now() - make_interval(secs => $1)"
          " ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING 1",
          static_cast<long long>(retention.count()), batch_size);
      if (auto committed = unit->commit(); !committed) {
        return std::unexpected(committed.error());
      }
      purged += static_cast<long long>(deleted.size());
      if (static_cast<int>(deleted.size()) < batch_size) return purged;
    } catch (const std::exception&) {
      return std::unexpected(unit->fail_with_current_exception("purge idempotency keys"));
    }
  }
}

}  // namespace deedkit
